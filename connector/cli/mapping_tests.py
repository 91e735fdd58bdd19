"""``connector test -c FILE``: the config's ``[[tests]]``, each a mapper, one raw record and what it
must give, run without a daemon and without secrets.

A record is mapped as the pipeline maps it (canonical JSON, its id from the mapper's first input).
``expect`` passes when the mapper gives as many messages, and each listed key is equal (nested
tables compared the same way: unlisted keys are ignored); ``expect_dead_letter`` when the mapper
refuses the record with a reason that contains it. A failure prints both sides.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from .. import ids
from ..config import Config, MappingTest
from ..errors import CommandError, ConfigError, RecordRejected
from ..graph import build_mappers
from ..records import Record

_pretty = msgspec.json.Encoder(order="sorted")


def run_tests(config: Config) -> int:
    """Run every ``[[tests]]`` of ``config``; print a line each (and both sides of a failure)."""
    if not config.tests:
        raise CommandError(f"{config.path} has no [[tests]] (README: \"Testing a mapping in the config\")")
    mappers = build_mappers(config)
    failed = 0
    for test in config.tests:
        problem = _run(config, mappers[test.mapper], test)
        print(f"{'PASS' if problem is None else 'FAIL'}  {test.name}")
        if problem is not None:
            failed += 1
            print(problem)
    print(f"{len(config.tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _run(config: Config, mapper: Any, test: MappingTest) -> str | None:
    """None when ``test`` passes; else what differs, both sides shown."""
    source = config.mappers[test.mapper].inputs[0]
    record = _record(config, test, source)
    try:
        messages, reason = mapper.map(record), None
    except RecordRejected as exc:
        messages, reason = None, exc.reason
    except Exception as exc:  # as the pipeline says it
        messages, reason = None, f"mapper failed: {exc!r}"
    if test.expect_dead_letter is not None:
        if reason is not None and test.expect_dead_letter in reason:
            return None
        got = f"a dead letter: {reason}" if reason is not None else f"messages:\n{_show(messages)}"
        return f"  expected a dead letter with {test.expect_dead_letter!r}\n  got {got}"
    if reason is not None:
        return f"  expected messages:\n{_show(test.expect)}\n  got a dead letter: {reason}"
    assert test.expect is not None and messages is not None
    if len(messages) == len(test.expect) and all(_matches(e, m) for e, m in zip(test.expect, messages)):
        return None
    return f"  expected (listed keys only):\n{_show(test.expect)}\n  got:\n{_show(messages)}"


def _record(config: Config, test: MappingTest, source: str) -> Record:
    if test.input_file is not None:
        try:
            with open(os.path.join(config.directory, test.input_file), "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ConfigError(f"{config.path}: tests {test.name!r}: input_file: {exc.strerror}") from None
    else:
        raw = (test.input or "").encode()
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{config.path}: tests {test.name!r}: the input is not JSON: {exc}") from None
    body = ids.canonical(value)
    return Record(1, ids.record_id(source, body), source, time.time(), body)


def _matches(expected: Any, got: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(k in got and _matches(v, got[k]) for k, v in expected.items())
    return bool(expected == got)


def _show(value: Any) -> str:
    text = _pretty.encode(value).decode()
    return "\n".join("    " + line for line in text.splitlines() or [text])
