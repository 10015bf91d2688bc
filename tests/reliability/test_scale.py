"""Scale: a chain of 100,000 ops and a graph with 100,000 uses of one tensor -- forward,
backward on both engines, printing and DOT export finish without RecursionError, with
correct gradients, and with work linear in the size.

Growth is measured in function calls (``work_counter``, ``symgrad.testing.work``), the same on
every machine: each phase at two sizes a factor 4 apart, allowed 1.5x over linear
(quadratic would be 4x over).  Seconds are never asserted; the 100,000-op runs report
theirs in the suite's figures.
"""
from __future__ import annotations

import gc
import re
import sys
import threading
import time

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import viz

LARGE = 100_000


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


def _timed(fn):
    """(result, wall time of the call): for the suite's figures, never asserted."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _phases(build, n: int, engine: str):
    """Time forward, repr, DOT export and backward of one graph of size ``n``; returns the
    times and ``(x, y, expected gradient)``."""
    times = {}
    (x, y, expected), times["forward"] = _timed(lambda: build(n))
    text, times["repr"] = _timed(lambda: repr(y) + repr(y.grad_fn) + repr(x))
    assert "grad_fn=<SumBackward0>" in text
    dot, times["dot"] = _timed(lambda: viz.draw(y).source)
    assert dot.startswith("digraph") and dot.count("->") >= n
    with symgrad.backward_engine(engine):
        _, times["backward"] = _timed(lambda: y.backward(retain_graph=True))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)
    return times, (x, y, expected)


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_100k_ops_forward_print_dot_and_backward_on_both_engines(graph, figures, fresh_cache):
    build = GRAPHS[graph]
    times, (x, y, expected) = _phases(build, LARGE, "tape")
    for phase, seconds in times.items():
        figures.set(f"scale tape {graph} {LARGE} {phase} seconds", round(seconds, 3))
    figures.set("largest graph (ops)", LARGE + 2)
    if graph in SYMBOLIC_100K_IN_PROCESS:
        x.grad = None
        with symgrad.backward_engine("symbolic"):
            _, seconds = _timed(lambda: y.backward())  # the same graph, freed afterwards
        figures.set(f"scale symbolic {graph} {LARGE} backward seconds", round(seconds, 3))
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)


SYMBOLIC_100K_IN_PROCESS = {"chain"}  # the fan-out runs in a process of its own, see the next test
HANG_GUARD = 600  # seconds: only to stop a run that hangs (it took 13-21 s when measured)

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


def test_symbolic_backward_of_a_100k_fan_out(figures, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(symgrad.__file__).resolve().parents[1])
    script = _FAN_OUT_SCRIPT.format(root=root, n=LARGE)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=HANG_GUARD, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the symbolic fan-out backward hung (stopped after {HANG_GUARD} s)") from None
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    figures.set(f"scale symbolic fan_out {LARGE} backward seconds", round(result["seconds"], 3))
    assert result["ok"], "wrong gradient"


def test_large_tensors_print_abbreviated_and_complete_on_request():
    x = symgrad.tensor(np.arange(200_000, dtype=np.float64).reshape(100_000, 2), requires_grad=True)
    text = repr(x * 2)
    assert len(text) < 1_000 and "..." in text and "grad_fn=<MulBackward0>" in text
    assert len((x * 2).tolist()) == 100_000  # everything, on request


# ---------------------------------------------------------------------------- linear work
GROWTH_SIZES = (2_000, 8_000)


def _phase_work(build, n: int, engine: str, counter) -> dict:
    """Function calls of each phase on a graph of size ``n``; the gradient is checked."""
    calls = {}
    calls["forward"], (x, y, expected) = counter(lambda: build(n))
    calls["repr"], _ = counter(lambda: repr(y) + repr(y.grad_fn) + repr(x))
    calls["dot"], _ = counter(lambda: viz.draw(y).source)
    calls["expr"], _ = counter(lambda: y.expr)
    with symgrad.backward_engine(engine):
        calls["backward"], _ = counter(lambda: y.backward())
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-9)
    return calls


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("graph", list(GRAPHS))
def test_every_phase_does_linear_work(graph, engine, work_counter, fresh_cache):
    build = GRAPHS[graph]
    _phase_work(build, 300, engine, work_counter.count)  # warm up imports and per-op templates
    small, large = (_phase_work(build, n, engine, work_counter.count) for n in GROWTH_SIZES)
    for phase in small:
        work_counter.linear(f"{engine} {graph}: {phase}", GROWTH_SIZES, (small[phase], large[phase]))


def test_expression_graph_dot_of_a_deep_closed_form():
    _, y, _ = chain(GROWTH_SIZES[1])
    dot = viz.draw(y.expr).source
    assert dot.startswith("digraph") and dot.count("->") >= GROWTH_SIZES[1]


def test_text_of_a_deep_closed_form_is_complete():
    _, y, _ = chain(GROWTH_SIZES[0])
    from symgrad.symbolic import text

    full = text(y.expr)
    assert full.count("1.0001") == GROWTH_SIZES[0] // 2
    assert full.count(" + 0.001)") == GROWTH_SIZES[0] // 2
    assert str(y.expr) == full and len(repr(y.expr)) <= 2_000 < len(full)


def test_latex_and_pretty_of_a_deep_closed_form_are_complete():
    """LaTeX is spliced from pieces; pretty names the pieces (``p₁``) and defines each once."""
    from symgrad.symbolic import latex, pretty

    n = GROWTH_SIZES[0]
    _, y, _ = chain(n)
    tex = latex(y.expr)
    assert tex.count("1.0001") == n // 2 and tex.count(" + 0.001") == n // 2
    assert tex.count(r"\left(") == tex.count(r"\right)") >= n // 2
    shown = pretty(y.expr, wrap_line=False)
    lines = shown.splitlines()
    assert shown.count("1.0001") == n // 2 and shown.count(" + 0.001") == n // 2
    names = [line.split(" = ")[0].split()[-1] for line in lines[1:]]
    assert lines[1].startswith("where  p₁ = ") and names == [f"p{_subscript(k)}" for k in range(1, len(lines))]
    assert all(len(re.findall(name + "(?![₀-₉])", shown)) == 2 for name in names)  # named once, defined once


def _subscript(k: int) -> str:
    return str(k).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


@pytest.mark.parametrize("printer", ["text", "latex", "pretty"])
def test_printing_a_deep_closed_form_does_linear_work(printer, work_counter):
    from symgrad.symbolic import latex, pretty, text

    shown = {"text": text, "latex": latex, "pretty": pretty}[printer]
    shown(chain(300)[1].expr)  # warm up imports and SymPy's caches
    forms = [chain(n)[1].expr for n in GROWTH_SIZES]
    calls = tuple(work_counter.count(lambda form=form: shown(form))[0] for form in forms)
    work_counter.linear(f"{printer}() of a deep closed form", GROWTH_SIZES, calls)


def _with_a_deep_stack(print_form, form) -> str:
    """``print_form(form)`` run by SymPy's own printer alone, given the stack it needs: in a
    thread with a large stack, under a raised recursion limit (the reference for what
    symgrad prints where SymPy's printer runs out of depth)."""
    printed: dict = {}

    def run():
        try:
            printed["text"] = print_form(form)
        except BaseException as error:  # noqa: BLE001 (re-raised in the test's thread)
            printed["error"] = error

    limit, stack = sys.getrecursionlimit(), threading.stack_size(512 * 2**20)
    sys.setrecursionlimit(200_000)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(stack)
    if "error" in printed:
        raise printed["error"]
    return printed["text"]


def test_str_repr_and_notebook_latex_of_a_deep_elementwise_form():
    """A node below the sum is SymPy's (``Add``/``Mul``): SymPy's printer alone recurses
    too deep for it; ``str`` is the text SymPy's printer gives with a deep enough stack,
    ``repr`` that text abbreviated, ``latex()`` SymPy's LaTeX, and a notebook shows it
    within its budget."""
    from sympy.printing.str import sstr

    from symgrad.symbolic import latex
    from symgrad.symbolic.printing.notebook import DISPLAY_BUDGET, sympy_bundle
    from symgrad.symbolic.printing.printers import REPR_LENGTH, abbreviate

    form = chain(GROWTH_SIZES[0])[1].expr.args[0]
    assert isinstance(form, (sp.Add, sp.Mul))
    with pytest.raises(RecursionError):
        sstr(form, order=None)
    shown = str(form)
    assert shown == _with_a_deep_stack(lambda f: sstr(f, order=None), form)
    assert repr(form) == abbreviate(shown, REPR_LENGTH) and len(repr(form)) <= REPR_LENGTH < len(shown)
    assert latex(form) == _with_a_deep_stack(sp.latex, form)
    assert all(len(shown) <= DISPLAY_BUDGET for shown in sympy_bundle(form).values())


def test_repr_of_a_long_closed_form_is_abbreviated_and_text_is_complete():
    x = symgrad.tensor([0.5, 1.0], requires_grad=True, name="x")
    y = symgrad.stack([(x * float(k)).sin() for k in range(1, 601)]).sum()
    from symgrad.symbolic import text

    full = text(y.expr)
    assert full.count("sin(") == 600  # complete on request
    assert len(repr(y.expr)) <= 2_000 and ("..." in repr(y.expr) or "…" in repr(y.expr))


def test_backward_after_reading_the_closed_form_of_a_deep_chain(fresh_cache):
    """Reading ``t.expr`` first must not change what backward builds (this once recursed)."""
    x, y, expected = chain(GROWTH_SIZES[0])
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
