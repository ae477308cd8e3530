"""A per-call time bound for property tests: ``bounded(seconds, fn, *args)`` runs ``fn`` and fails the test if
one call takes longer (SIGALRM from setitimer, so a parser stuck in a loop is interrupted, not waited for).

Hypothesis' own deadline is off in these tests: it measures every example against a fixed time, which a slow or
loaded machine misses; this bound is only there to catch calls that never return."""

from __future__ import annotations

import signal
from typing import Any, Callable

import pytest

BOUND_S = 5.0


class _Overrun(BaseException):
    """Raised in the main thread by the alarm; BaseException so that no ``except Exception`` in the code under
    test swallows it."""


def bounded(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, failing the test if it runs past ``seconds``."""

    def on_alarm(signum, frame):
        raise _Overrun()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args, **kwargs)
    except _Overrun:
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s on input {args[:1]!r:.300}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
