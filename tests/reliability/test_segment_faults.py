"""Segment failing at random for 20 s (500, 503, 429, timeouts, resets): nothing is lost."""

from __future__ import annotations

import time

import pytest

from connector.testing import ResettingProxy, wait_until

from .load import Load, config, env, message_ids, report

pytestmark = pytest.mark.reliability


def test_random_segment_failures_lose_nothing(daemon_factory, fake_segment):
    proxy = ResettingProxy(fake_segment.port).start()
    try:
        daemon = daemon_factory(config(), env=env(proxy.url)).start()
        fake_segment.slow_seconds = 1.5
        fake_segment.chaos(0.25, 20)
        proxy.reset_rate = 0.05
        load = Load(daemon.base_url + "/webhooks/jebbit", posters=16, pause=0.02).start()
        time.sleep(20)
        load.stop()
        proxy.reset_rate = 0.0
        wanted = message_ids(load.acknowledged)
        wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=120)
        assert daemon.stop() == 0
        line = report("segment faults", load, fake_segment)
        print(f"  injected: {dict(fake_segment.injected)}, connection resets: {proxy.resets}")
        assert sum(fake_segment.injected.values()) > 20 and proxy.resets > 0, line
        assert fake_segment.violations == []
    finally:
        proxy.stop()
