"""Timing machinery of the benchmark suite: cases, interleaved rounds, statistics, checks.

A workload is a list of :class:`Group` objects (one per problem size); a group holds one
:class:`Case` per tool.  Running a group

1. prepares every case (derivation, compilation, tracing, first call -- timed once and
   reported as *setup*), skipping tools that are not installed and recording failures;
2. with ``check=True``, compares each tool's gradient with the reference case's (the
   symgrad default), element by element;
3. calibrates each case's inner loop so one sample lasts about ``sample_seconds``;
4. in a group with ``memory=True``, measures the peak memory of one call of each case
   (:func:`peak_memory`), after the warm-up calls of step 3;
5. runs ``rounds`` rounds; in each round every case takes one sample, in an order that
   rotates (and reverses every other round), so that slow drifts of the machine hit all
   tools alike;
6. reports the median, quartiles and extremes of the per-call times.

Nothing here knows about any particular tool.
"""
from __future__ import annotations

import gc
import math
import signal
import statistics
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


class Skip(Exception):
    """Raised by a case's ``prepare`` when it cannot run here (the message says why)."""


class TimedOut(Exception):
    """A preparation ran past its time limit."""


@dataclass
class Prepared:
    """A case ready to time.

    ``call`` is the timed zero-argument callable; ``grads`` returns the arrays to
    compare in ``--check`` (the gradient, in the workload's order); ``setup`` holds
    one-off costs in seconds (``derive``, ``compile``, ``first call`` ...).
    """

    call: Callable[[], Any]
    grads: Callable[[], Sequence[Any]] | None = None
    setup: dict = field(default_factory=dict)
    note: str = ""


@dataclass
class Case:
    tool: str
    prepare: Callable[[], Prepared]
    role: str = "tool"  # "floor", "symgrad", "tool"
    requires: tuple = ()  # keys of bench_tools.TOOLS
    quick: bool = True  # also run with --quick
    heavy: bool = False  # minutes of setup: skipped with --quick even under --check
    note: str = ""
    timeout: float | None = None  # seconds allowed for prepare
    untraced: str = ""  # why tracemalloc cannot see this tool's arrays (its peak memory is then not measured)


@dataclass
class Group:
    workload: str
    label: str
    cases: list
    reference: str  # the tool whose time is the ratio's denominator, and whose gradient is the truth
    rtol: float = 1e-7
    atol: float = 1e-9
    params: dict = field(default_factory=dict)
    divisor: int = 1  # report time per call / divisor (W4: per epoch of a 100-epoch fit)
    memory: bool = False  # also measure each case's peak memory (see peak_memory)
    memory_reference: str = ""  # the tool whose peak memory is the memory ratio's denominator


@dataclass
class Row:
    workload: str
    label: str
    tool: str
    role: str
    status: str = "ok"  # ok, skipped, failed
    reason: str = ""
    samples: list = field(default_factory=list)
    inner: int = 0
    setup: dict = field(default_factory=dict)
    check: str = ""
    note: str = ""
    params: dict = field(default_factory=dict)
    peak_memory: float | None = None  # bytes: tracemalloc peak of one call (None: not measured)
    memory_note: str = ""  # why the peak memory was not measured
    memory_reference: str = ""  # in a group measuring memory: the tool whose peak is the ratio's denominator

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def q1(self) -> float:
        return _quantile(self.samples, 0.25)

    @property
    def q3(self) -> float:
        return _quantile(self.samples, 0.75)

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def max(self) -> float:
        return max(self.samples) if self.samples else math.nan

    def as_dict(self) -> dict:
        return {
            "workload": self.workload, "label": self.label, "tool": self.tool, "role": self.role,
            "status": self.status, "reason": self.reason, "median": self.median, "q1": self.q1, "q3": self.q3,
            "min": self.min, "max": self.max, "samples": self.samples, "inner": self.inner, "setup": self.setup,
            "check": self.check, "note": self.note, "params": self.params,
            "peak_memory": self.peak_memory, "memory_note": self.memory_note,
            "memory_reference": self.memory_reference,
        }


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    return float(np.quantile(np.asarray(values), q))


class _Alarm:
    """Raise :class:`TimedOut` in the main thread after ``seconds`` (pure-Python work only)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def _fire(self, *_: Any) -> None:
        raise TimedOut(f"gave up after {self.seconds:g} s")

    def __enter__(self):
        if self.seconds:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


def compare(reference: Sequence[Any], other: Sequence[Any], rtol: float, atol: float) -> str:
    """'' when every array of ``other`` matches ``reference``, else a description."""
    if len(reference) != len(other):
        return f"{len(other)} gradient arrays, expected {len(reference)}"
    for i, (r, o) in enumerate(zip(reference, other)):
        r = np.asarray(r, dtype=np.float64)
        o = np.asarray(o, dtype=np.float64)
        if r.shape != o.shape:
            if r.size == o.size:
                o = o.reshape(r.shape)
            else:
                return f"gradient {i}: shape {o.shape}, expected {r.shape}"
        bad = ~np.isclose(o, r, rtol=rtol, atol=atol)
        if bad.any():
            j = int(np.argmax(np.where(bad, np.abs(o - r), -1)))
            return (f"gradient {i}: {int(bad.sum())} of {r.size} elements differ; worst at flat index {j}: "
                    f"{o.flat[j]!r} vs {r.flat[j]!r} (rtol={rtol}, atol={atol})")
    return ""


def peak_memory(call: Callable[[], Any]) -> int:
    """The peak of the memory allocated during one ``call()``, in bytes, above what was
    allocated before it, as :mod:`tracemalloc` sees it: every NumPy array's data (NumPy
    reports its allocations to tracemalloc) and every Python object, including the
    outputs, which are alive when the peak is read.  Memory allocated by other means
    (torch's and XLA's allocators, C code's own ``malloc``) is invisible to it.  Call it
    after warm-up calls, so that caches filled by a first call are not counted."""
    if tracemalloc.is_tracing():
        raise RuntimeError("peak_memory needs tracemalloc to be off (it starts and stops it)")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - before
        del result
    finally:
        tracemalloc.stop()
    return peak


def run_group(group: Group, *, rounds: int, sample_seconds: float, check: bool, quick: bool,
              available: Callable[[tuple], str], log: Callable[[str], None]) -> list[Row]:
    """Prepare, check and time every case of ``group``; one :class:`Row` per case."""
    rows: list[Row] = []
    ready: list[tuple[Row, Prepared]] = []
    untraced: dict[str, str] = {}
    for case in group.cases:
        row = Row(group.workload, group.label, case.tool, case.role, note=case.note, params=dict(group.params),
                  memory_reference=group.memory_reference if group.memory else "")
        rows.append(row)
        untraced[case.tool] = case.untraced
        if quick and (case.heavy or not case.quick and not check):  # --check runs every tool but the heavy
            row.status, row.reason = "skipped", "not run with --quick (slow setup)"
            continue
        missing = available(case.requires)
        if missing:
            row.status, row.reason = "skipped", missing
            continue
        log(f"  {group.workload} {group.label}: preparing {case.tool}")
        gc.collect()
        t0 = time.perf_counter()
        try:
            with _Alarm(case.timeout):
                prepared = case.prepare()
        except Skip as exc:
            row.status, row.reason = "skipped", str(exc)
            continue
        except TimedOut as exc:
            row.status, row.reason = "failed", f"setup {exc}"
            continue
        except Exception as exc:  # noqa: BLE001  (a tool that breaks is reported, not fatal)
            row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            log(traceback.format_exc())
            continue
        row.setup = dict(prepared.setup)
        row.setup.setdefault("prepare total", time.perf_counter() - t0)
        if prepared.note:
            row.note = (row.note + "; " if row.note else "") + prepared.note
        ready.append((row, prepared))

    if check:
        reference = next(((r, p) for r, p in ready if r.tool == group.reference), None)
        if reference is None:
            for row, _ in ready:
                row.check = "no reference"
        else:
            try:
                truth = [np.asarray(a) for a in reference[1].grads()]
            except Exception as exc:  # noqa: BLE001
                truth = None
                reference[0].check = f"reference failed: {exc}"
            for row, prepared in ready:
                if truth is None or prepared.grads is None:
                    row.check = row.check or "n/a"
                    continue
                try:
                    mismatch = compare(truth, list(prepared.grads()), group.rtol, group.atol)
                except Exception as exc:  # noqa: BLE001
                    mismatch = f"{type(exc).__name__}: {exc}"
                row.check = "reference" if row is reference[0] else ("agrees" if not mismatch else mismatch)
                if mismatch and row is not reference[0]:
                    log(f"  CHECK FAILED {group.workload} {group.label} {row.tool}: {mismatch}")

    # calibrate
    inner: dict[int, int] = {}
    for i, (row, prepared) in enumerate(ready):
        try:
            t0 = time.perf_counter()
            prepared.call()
            dt = time.perf_counter() - t0
            k = 1
            if dt < sample_seconds / 4:
                t0 = time.perf_counter()
                for _ in range(3):
                    prepared.call()
                dt = (time.perf_counter() - t0) / 3
            k = max(1, int(sample_seconds / max(dt, 1e-9)))
            inner[i] = k
            row.inner = k
        except Exception as exc:  # noqa: BLE001
            row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    live = [i for i in range(len(ready)) if ready[i][0].status == "ok"]
    if group.memory:
        for i in live:
            row, prepared = ready[i]
            if untraced[row.tool]:
                row.memory_note = untraced[row.tool]
                continue
            try:
                row.peak_memory = peak_memory(prepared.call)
            except Exception as exc:  # noqa: BLE001
                row.memory_note = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    for r in range(rounds):
        order = live[r % len(live):] + live[:r % len(live)] if live else []
        if r % 2:
            order = order[::-1]
        for i in order:
            row, prepared = ready[i]
            call, k = prepared.call, inner[i]
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(k):
                call()
            row.samples.append((time.perf_counter() - t0) / k / group.divisor)
    return rows


def fmt_time(seconds: float) -> str:
    """``1.23 ms``-style text for a duration."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} us"
    return f"{seconds * 1e9:.3g} ns"
