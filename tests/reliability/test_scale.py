"""Scale: a chain of 100,000 ops and a graph with 100,000 uses of one tensor -- forward,
backward on both engines, printing and DOT export finish without RecursionError, with
correct gradients, in time roughly linear in the size (the tape measured at two sizes a
factor 10 apart, each phase allowed a factor 30 = 3x slack over linear; quadratic would be
100).  The symbolic engine's growth is measured at 2,000 and 8,000 ops (factor 4, allowed
12), and it runs the full 100,000-op graphs too.  Timings go to the suite's figures.
"""
from __future__ import annotations

import gc
import time

import numpy as np
import pytest

import symgrad
from symgrad import viz

SMALL, LARGE = 10_000, 100_000
SLACK = 3.0  # allowed factor over linear growth


def chain(n: int):
    """``n`` ops, each feeding the next: alternately ``* 1.0001`` and ``+ 0.001``."""
    x = symgrad.tensor([0.5, 1.0], requires_grad=True, name="x")
    y = x
    for i in range(n):
        y = y * 1.0001 if i % 2 else y + 0.001
    return x, y.sum(), np.full(2, 1.0001 ** (n // 2))


def fan_out(n: int):
    """One intermediate ``h = exp(x)`` used by ``n`` ops, stacked and summed."""
    x = symgrad.tensor([0.5, 1.0], requires_grad=True, name="x")
    h = x.exp()
    y = symgrad.stack([h * float(i % 7 + 1) for i in range(n)]).sum()
    factor = sum(i % 7 + 1 for i in range(n))
    return x, y, factor * np.exp([0.5, 1.0])


GRAPHS = {"chain": chain, "fan_out": fan_out}


def _timed(fn, repeat: int = 1):
    """(result of the last call, best wall time of ``repeat`` calls)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def _phases(build, n: int, engine: str, repeat: int, keep: bool = False):
    """Time forward, repr, DOT export and backward of one graph of size ``n``."""
    times = {}
    (x, y, expected), times["forward"] = _timed(lambda: build(n), repeat)
    text, times["repr"] = _timed(lambda: repr(y) + repr(y.grad_fn) + repr(x), repeat)
    assert "grad_fn=<SumBackward0>" in text
    dot, times["dot"] = _timed(lambda: viz.draw(y).source, repeat)
    assert dot.startswith("digraph") and dot.count("->") >= n
    with symgrad.backward_engine(engine):
        _, times["backward"] = _timed(lambda: y.backward(retain_graph=True), 1)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)
    return (times, (x, y, expected)) if keep else times


def _linear(small: dict, large: dict, factor: float, label: str, figures) -> None:
    for phase in small:
        figures.set(f"scale {label} {phase} seconds", round(large[phase], 3))
        ratio = large[phase] / max(small[phase], 0.01)
        assert ratio <= factor * SLACK, (
            f"{label} {phase}: {large[phase]:.2f}s vs {small[phase]:.2f}s at 1/{factor:g} the size "
            f"(ratio {ratio:.1f} > {factor * SLACK:g})")


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_100k_ops_forward_print_dot_and_backward_on_both_engines(graph, figures, fresh_cache):
    build = GRAPHS[graph]
    small = _phases(build, SMALL, "tape", repeat=2)
    large, (x, y, expected) = _phases(build, LARGE, "tape", repeat=1, keep=True)
    _linear(small, large, LARGE / SMALL, f"tape {graph} {LARGE}", figures)
    figures.set("largest graph (ops)", LARGE + 2)
    if graph in SYMBOLIC_100K_IN_PROCESS:
        x.grad = None
        with symgrad.backward_engine("symbolic"):
            _, seconds = _timed(lambda: y.backward(), 1)  # the same graph, freed afterwards
        figures.set(f"scale symbolic {graph} {LARGE} backward seconds", round(seconds, 3))
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)


SYMBOLIC_100K_IN_PROCESS = {"chain"}  # 12-22 s; the fan-out takes 25-45 s, see the next test
SYMBOLIC_BUDGET = 15.0  # seconds for one symbolic backward of 100,000 ops, to stay in the suite

_FAN_OUT_SCRIPT = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import symgrad
x = symgrad.tensor([0.5, 1.0], requires_grad=True)
h = x.exp()
y = symgrad.stack([h * float(i % 7 + 1) for i in range({n})]).sum()
start = time.perf_counter()
with symgrad.backward_engine("symbolic"):
    y.backward()
seconds = time.perf_counter() - start
expected = sum(i % 7 + 1 for i in range({n})) * np.exp([0.5, 1.0])
print(json.dumps({{"seconds": seconds, "ok": bool(np.allclose(x.grad.numpy(), expected, rtol=1e-9))}}))
"""


def test_symbolic_backward_of_a_100k_fan_out_within_budget(figures, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(symgrad.__file__).resolve().parents[1])
    script = _FAN_OUT_SCRIPT.format(root=root, n=LARGE)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                              cwd=tmp_path)
    except subprocess.TimeoutExpired:
        figures.set(f"scale symbolic fan_out {LARGE} backward seconds", "> 30 (stopped)")
        raise AssertionError("the symbolic fan-out backward did not finish in 30 s") from None
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    figures.set(f"scale symbolic fan_out {LARGE} backward seconds", round(result["seconds"], 3))
    assert result["ok"], "wrong gradient"
    assert result["seconds"] <= SYMBOLIC_BUDGET, f"{result['seconds']:.1f} s > {SYMBOLIC_BUDGET:g} s"


def test_large_tensors_print_abbreviated_and_complete_on_request():
    x = symgrad.tensor(np.arange(200_000, dtype=np.float64).reshape(100_000, 2), requires_grad=True)
    text = repr(x * 2)
    assert len(text) < 1_000 and "..." in text and "grad_fn=<MulBackward0>" in text
    assert len((x * 2).tolist()) == 100_000  # everything, on request


# ---------------------------------------------------------------------------- symbolic engine
SYM_SMALL, SYM_LARGE = 2_000, 8_000


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_symbolic_engine_backward_is_linear(graph, figures, fresh_cache):
    build = GRAPHS[graph]
    times = {}
    for n in (SYM_SMALL, SYM_LARGE):
        x, y, expected = build(n)
        with symgrad.backward_engine("symbolic"):
            _, times[n] = _timed(lambda: y.backward(), 1)
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)
    figures.set(f"scale symbolic {graph} backward seconds at {SYM_SMALL}", round(times[SYM_SMALL], 3))
    figures.set(f"scale symbolic {graph} backward seconds at {SYM_LARGE}", round(times[SYM_LARGE], 3))
    ratio = times[SYM_LARGE] / max(times[SYM_SMALL], 0.01)
    assert ratio <= SYM_LARGE / SYM_SMALL * SLACK, (times, ratio)


# ---------------------------------------------------------------------------- closed forms
def test_closed_form_of_a_deep_chain_is_built_in_linear_time(figures):
    times = {}
    for n in (SYM_SMALL, SYM_LARGE):
        _, y, _ = chain(n)
        _, times[n] = _timed(lambda: y.expr, 1)
    figures.set(f"scale tensor.expr seconds at {SYM_LARGE}", round(times[SYM_LARGE], 3))
    assert times[SYM_LARGE] / max(times[SYM_SMALL], 0.01) <= SYM_LARGE / SYM_SMALL * SLACK, times


def test_expression_graph_dot_of_a_deep_closed_form():
    _, y, _ = chain(SYM_LARGE)
    dot = viz.draw(y.expr).source
    assert dot.startswith("digraph") and dot.count("->") >= SYM_LARGE


@pytest.mark.xfail(strict=True, raises=RecursionError, reason=(
    "symbolic printing: text()/str()/repr() of a closed form 2,000 ops deep raise RecursionError "
    "(SymPy's recursive printer; no iterative printing or abbreviation in symgrad/symbolic/printing.py)"))
def test_text_of_a_deep_closed_form_is_complete():
    _, y, _ = chain(SYM_SMALL)
    from symgrad.symbolic import text

    full = text(y.expr)
    assert full.count("1.0001") == SYM_SMALL // 2


@pytest.mark.xfail(strict=True, reason=(
    "symbolic printing: repr(Tensor.expr) is SymPy's complete str, never abbreviated (a 600-term form "
    "prints ~7,100 characters); the complete text is what text()/str() give"))
def test_repr_of_a_long_closed_form_is_abbreviated_and_text_is_complete():
    x = symgrad.tensor([0.5, 1.0], requires_grad=True, name="x")
    y = symgrad.stack([(x * float(k)).sin() for k in range(1, 601)]).sum()
    from symgrad.symbolic import text

    full = text(y.expr)
    assert full.count("sin(") == 600  # complete on request
    assert len(repr(y.expr)) <= 2_000 and ("..." in repr(y.expr) or "…" in repr(y.expr))


def test_backward_after_reading_the_closed_form_of_a_deep_chain(fresh_cache):
    """Reading ``t.expr`` first must not change what backward builds (this once recursed)."""
    x, y, expected = chain(SYM_SMALL)
    y.expr
    with symgrad.backward_engine("symbolic"):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)


def test_symbolic_backward_through_a_chain_of_300_sines():
    x = symgrad.tensor([0.5, 1.0], requires_grad=True)
    y = x
    for _ in range(300):
        y = y.sin()
    with symgrad.backward_engine("symbolic"):
        y.sum().backward()
    x2 = symgrad.tensor([0.5, 1.0], requires_grad=True)
    y2 = x2
    for _ in range(300):
        y2 = y2.sin()
    with symgrad.backward_engine("tape"):
        y2.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-9)
