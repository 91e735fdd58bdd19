"""Retry timing for every retry loop: exponential backoff with full jitter, and ``Retry-After``.

A ``Retry-After`` of 0, a negative number or a date in the past means "use your own backoff",
never "retry at once": a server that answers ``Retry-After: 0`` under load would otherwise be
hammered in a tight loop.
"""

from __future__ import annotations

import random
import time


def full_jitter(attempt: int, initial: float, cap: float) -> float:
    """A delay drawn uniformly from 0 to ``min(cap, initial * 2**attempt)`` (attempt counts from 0)."""
    return random.uniform(0, min(cap, initial * 2 ** min(attempt, 30)))


def retry_after_seconds(value: str | None, cap: float, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, capped at ``cap``.

    ``value`` is delay-seconds or an HTTP date. None when it is absent or unreadable, or asks for
    no wait at all (0, negative, a past date): the caller then uses its own backoff.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            import email.utils  # here: the date form is rare, and the module slow to import

            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not seconds > 0:  # also NaN
        return None
    return min(seconds, cap)
