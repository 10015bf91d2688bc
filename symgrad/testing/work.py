"""Machine-independent measures of work, for tests that must show how a cost grows.

Seconds depend on the machine and on whatever else runs on it, so a test that asserts a
time is a flaky test. What a test can assert instead is *work*: the Python and C
function calls made while the code runs (``sys.setprofile``). The same code on the same
input makes the same calls on any machine, and a quadratic algorithm, a recursive tree
comparison or a re-walk of a whole graph per node shows as a count that grows faster
than the input. With a ``limit``, the count also stops work that would run away (a
loop that once ran for minutes fails at once, the same way everywhere).

The pytest plugin offers both functions as the ``work_counter`` fixture.

>>> calls, total = count_calls(lambda: sum(x * x for x in range(100)))
>>> total, calls > 100
(328350, True)
>>> def pairs(n):  # quadratic: a call for every pair
...     return sum(abs(i - j) for i in range(n) for j in range(i))
>>> sizes = (50, 200)
>>> calls = tuple(count_calls(lambda n=n: pairs(n))[0] for n in sizes)
>>> round(calls[1] / calls[0])
16
>>> assert_linear("pairs", sizes, calls)
Traceback (most recent call last):
    ...
AssertionError: pairs: ... calls at size 200 against ... at 50: ...x the work for 4x the size (linear with 1.5x slack allows 6.0x)
"""
from __future__ import annotations

import sys
from typing import Any, Callable

__all__ = ["count_calls", "assert_linear", "WorkLimitExceeded"]


class WorkLimitExceeded(Exception):
    """Raised inside the counted work once it has made more calls than its limit."""


def count_calls(work: Callable[[], Any], limit: int | None = None) -> tuple[int, Any]:
    """``(function calls made while running work(), its result)``; past ``limit``
    calls, :class:`WorkLimitExceeded` stops the work at its next Python call (a loop
    inside one C function is one call, and is not interrupted).

    >>> count_calls(lambda: len("abc"))[1]
    3
    >>> count_calls(lambda: sum(i for i in range(10**9)), limit=1000)
    Traceback (most recent call last):
        ...
    symgrad.testing.work.WorkLimitExceeded: the work made more than 1,000 function calls
    """
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event == "call" or event == "c_call":
            calls += 1
            if limit is not None and calls > limit and event == "call":
                sys.setprofile(None)
                raise WorkLimitExceeded(f"the work made more than {limit:,} function calls")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = work()
    finally:
        sys.setprofile(previous)
    return calls, result


def assert_linear(label: str, sizes: tuple[int, int], calls: tuple[int, int], slack: float = 1.5) -> None:
    """Fail unless the calls at the larger size are at most ``slack`` times what linear
    growth from the smaller size predicts (fixed costs only make the check lenient).

    >>> assert_linear("a loop", (10, 40), (105, 400))
    """
    (small_n, large_n), (small_calls, large_calls) = sizes, calls
    if not (0 < small_n < large_n) or small_calls <= 0:
        raise ValueError(f"assert_linear needs sizes 0 < small < large and a positive small count, got sizes={sizes}, "
                         f"calls={calls}")
    allowed = slack * small_calls * large_n / small_n
    if large_calls > allowed:
        raise AssertionError(
            f"{label}: {large_calls:,} calls at size {large_n:,} against {small_calls:,} at {small_n:,}: "
            f"{large_calls / small_calls:.1f}x the work for {large_n / small_n:g}x the size "
            f"(linear with {slack:g}x slack allows {allowed / small_calls:.1f}x)")
