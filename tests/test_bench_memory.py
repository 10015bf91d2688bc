"""The benchmark suite's peak-memory measurement (``benchmarks/bench_harness.py``), its
report (the column and the issue-17 targets of ``benchmarks/bench_report.py``) and W1's
hand-written NumPy gradient, the reference of that column, checked against finite
differences and both engines."""
from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import symgrad

sys.path.append(str(Path(__file__).resolve().parent.parent / "benchmarks"))  # last: shadows nothing
import bench_report  # noqa: E402
from bench_harness import Case, Group, Prepared, Row, peak_memory, run_group  # noqa: E402
from w1_formula import formula, hand_value_and_grad  # noqa: E402

MB = 10**6


def test_peak_memory_counts_what_one_call_allocates_and_not_what_was_there_before():
    before = np.ones(2 * MB)  # allocated earlier: not counted
    n = MB // 8  # one MB of float64

    def call():
        scratch = np.ones(3 * n)  # freed before the call returns, but part of its peak
        del scratch
        return np.ones(n) + before[:n]

    peak = peak_memory(call)
    assert 3 * MB <= peak < 3 * MB + 100_000  # the scratch array, then the 1 MB output once it is freed
    assert not tracemalloc.is_tracing()


def test_peak_memory_refuses_to_run_inside_another_trace():
    tracemalloc.start()
    try:
        with pytest.raises(RuntimeError, match="tracemalloc"):
            peak_memory(lambda: None)
    finally:
        tracemalloc.stop()


def test_a_memory_group_measures_traced_cases_and_names_why_the_others_are_not():
    n = MB // 8
    cases = [Case("hand", lambda: Prepared(lambda: np.ones(n))),
             Case("double", lambda: Prepared(lambda: (np.ones(n), np.ones(n))), role="symgrad"),
             Case("elsewhere", lambda: Prepared(lambda: None), untraced="allocates outside NumPy")]
    group = Group("W9", "test", cases, reference="double", memory=True, memory_reference="hand")
    rows = {r.tool: r for r in run_group(group, rounds=1, sample_seconds=0.001, check=False, quick=True,
                                         available=lambda keys: "", log=lambda s: None)}
    assert rows["hand"].peak_memory >= MB and rows["double"].peak_memory >= 2 * MB
    assert rows["elsewhere"].peak_memory is None and rows["elsewhere"].memory_note == "allocates outside NumPy"
    assert {r.memory_reference for r in rows.values()} == {"hand"}
    plain = run_group(Group("W9", "test", cases[:1], reference="hand"), rounds=1, sample_seconds=0.001,
                      check=False, quick=True, available=lambda keys: "", log=lambda s: None)
    assert plain[0].peak_memory is None and plain[0].memory_reference == ""


def _result(peaks: dict) -> dict:
    rows = []
    for tool, peak in peaks.items():
        role = "symgrad" if tool.startswith("symgrad") else "tool"
        row = Row("W1", "1e6 points", tool, role, samples=[1.0], peak_memory=peak,
                  memory_note="" if peak is not None else "not traced", memory_reference="hand")
        rows.append(row.as_dict())
    return {"rows": rows}


@pytest.mark.parametrize("symgrad_mb, verdict", [(150.0, "met"), (160.0, "missed"), (80.0, "met")])
def test_memory_targets_judge_the_ratio_to_the_hand_written_gradient(symgrad_mb, verdict):
    default = bench_report.MEMORY_TARGETS["W1"][0]
    result = _result({"hand": 100 * MB, default: symgrad_mb * MB, "torch eager": None})
    (target,) = bench_report._memory_targets(result)
    assert default in target[0] and "default path" in target[0]
    assert target[1] == f"{symgrad_mb:g} MB vs 100 MB ({symgrad_mb / 100:.2f}x)"
    assert target[2] == verdict
    table = "\n".join(bench_report._group_table(result["rows"], default))
    assert "peak memory (vs hand)" in table and f"| {symgrad_mb:g} MB ({symgrad_mb / 100:.2f}x) |" in table
    assert "| not measured |" in table and "torch eager (not traced)" in table


def test_hand_written_w1_gradient_matches_finite_differences_and_both_engines():
    rng = np.random.default_rng(11)
    args = [rng.uniform(-1.0, 1.0, 7) for _ in range(3)]
    value, grads = hand_value_and_grad(*args)
    assert np.isclose(value, formula(np, *args).sum(), rtol=1e-13)
    h = 1e-6
    for i, grad in enumerate(grads):
        for k in range(7):
            up = [a.copy() for a in args]
            down = [a.copy() for a in args]
            up[i][k] += h
            down[i][k] -= h
            fd = (formula(np, *up).sum() - formula(np, *down).sum()) / (2 * h)
            assert np.isclose(grad[k], fd, rtol=1e-6, atol=1e-8), (i, k)
    for engine in ("symbolic", "tape"):
        xs = [symgrad.tensor(a, requires_grad=True) for a in args]
        with symgrad.backward_engine(engine):
            expected = symgrad.autograd.grad(formula(symgrad, *xs).sum(), xs)
        for grad, e in zip(grads, expected):
            np.testing.assert_allclose(grad, e.numpy(), rtol=1e-12, atol=1e-14)
