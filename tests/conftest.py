"""Suite-wide fixtures: a machine-independent measure of work for the scaling tests.

Tests never assert on seconds (timings depend on the machine and on whatever else runs
on it; speed is the benchmark suite's business, ``benchmarks/``). Where a test must show
that a cost grows linearly with the size of a graph, it counts the Python and C function
calls made while the work runs (``sys.setprofile``): the same code on the same input
makes the same calls on any machine, and a quadratic algorithm, a recursive tree
comparison or a re-walk of the whole graph per node shows up as a count that grows
faster than the size.  With a ``limit``, the count also stops work that would run away
(a loop that once ran for minutes fails at once, the same way on every machine).
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import pytest


class WorkLimitExceeded(Exception):
    """Raised inside the counted work once it has made more calls than its limit."""


def count_calls(work: Callable[[], Any], limit: int | None = None) -> tuple[int, Any]:
    """``(number of function calls made while running work(), its result)``; past
    ``limit`` calls, :class:`WorkLimitExceeded` stops the work."""
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
    """Calls at the larger size at most ``slack`` times what linear growth from the
    smaller size predicts (fixed costs only make the check more lenient)."""
    (small_n, large_n), (small_calls, large_calls) = sizes, calls
    allowed = slack * small_calls * large_n / small_n
    assert large_calls <= allowed, (
        f"{label}: {large_calls:,} calls at size {large_n:,} against {small_calls:,} at {small_n:,}: "
        f"{large_calls / small_calls:.1f}x the work for {large_n / small_n:g}x the size "
        f"(linear with {slack:g}x slack allows {allowed / small_calls:.1f}x)")


@pytest.fixture
def work_counter():
    """``count_calls`` and ``assert_linear`` for scaling tests (see this module's docstring)."""
    class Counter:
        count = staticmethod(count_calls)
        linear = staticmethod(assert_linear)

    return Counter
