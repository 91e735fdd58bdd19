"""SIGKILL under load at three points of a run, and of the delivery process: every acknowledged
event is delivered."""

from __future__ import annotations

import os
import signal

import pytest

from connector.testing import wait_until

from .load import Load, config, env, message_ids, report

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize("point", ["early", "mid-load", "while-delivering", "delivery-process"])
def test_sigkill_loses_no_acknowledged_event(daemon_factory, fake_segment, point):
    slow = 'max_in_flight = 1\nbatch_max_messages = 20' if point == "while-delivering" else ""
    daemon = daemon_factory(config(sink_extra=slow), env=env(fake_segment.url)).start()
    load = Load(daemon.base_url + "/webhooks/jebbit", posters=16).start()
    try:
        if point == "early":
            wait_until(lambda: len(load.acknowledged) >= 50, timeout=60)
        elif point == "mid-load":
            wait_until(lambda: len(load.acknowledged) >= 1500, timeout=60)
        elif point == "while-delivering":
            wait_until(lambda: len(load.acknowledged) >= 2000, timeout=60)
            load.stop()
            wait_until(lambda: len(fake_segment.messages) >= 400, timeout=60)
        if point == "delivery-process":  # the sinks' process dies under load: the daemon exits 1
            (delivery,) = wait_until(daemon.children)
            wait_until(lambda: len(load.acknowledged) >= 1500 and len(fake_segment.messages) >= 400, timeout=60)
            os.kill(delivery, signal.SIGKILL)
            assert daemon.wait(timeout=30) == 1
        else:
            daemon.kill()
    finally:
        load.stop()
    wanted = message_ids(load.acknowledged)
    if point == "while-delivering":
        assert not wanted <= fake_segment.message_ids(), "the kill must land while delivering"
    restarted = daemon_factory(config(), env=env(fake_segment.url)).start()
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=120)
    assert restarted.stop() == 0
    report(f"crash {point}", load, fake_segment)
    assert fake_segment.violations == []
