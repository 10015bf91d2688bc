"""``symgrad.explain`` (``symgrad/symbolic/printing/explain.py``): the chain rule step by step.

Each explanation is checked against the engines: its forward values against the tensors',
its last adjoint against ``backward()``'s gradient, its closed form against its numbers;
and every name a line uses is defined on an earlier line.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.symbolic.core.symbols import ArrayValue
from symgrad.symbolic.codegen.read_text import evaluate_text
from symgrad.symbolic.printing.display import ENGINE_HELPERS
from symgrad.symbolic.printing.explain import explain
from symgrad.testing import random_program


def _seed_002(rng):
    """The example of seed 002: a linear model ``y = x @ w.T + b`` and a squared error."""
    w = symgrad.tensor([[3.0, 1.0]], requires_grad=True, name="w")
    b = symgrad.tensor([[3.0]], requires_grad=True, name="b")
    x = symgrad.tensor(rng.normal(size=(10, 2)), name="x")
    t = symgrad.tensor(rng.normal(size=(10, 1)), name="t")
    loss = ((x @ w.t() + b - t) ** 2).mean()
    loss.name = "loss"
    return loss, [w, b]


def _mlp(rng):
    """A two-layer tanh MLP with a squared error."""
    X = symgrad.tensor(rng.normal(size=(4, 3)), name="X")
    Y = symgrad.tensor(rng.normal(size=(4, 2)), name="Y")
    W1 = symgrad.tensor(rng.normal(size=(3, 5)), requires_grad=True, name="W1")
    b1 = symgrad.tensor(rng.normal(size=5), requires_grad=True, name="b1")
    W2 = symgrad.tensor(rng.normal(size=(5, 2)), requires_grad=True, name="W2")
    return ((symgrad.tanh(X @ W1 + b1) @ W2 - Y) ** 2).sum(), [W1, b1, W2]


def _check(y, x) -> None:
    e = explain(y, x)
    (expected,) = symgrad.autograd.grad(y, [x], retain_graph=True)
    np.testing.assert_allclose(e.gradient_value, expected.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e.forward[-1].value, y.detach().numpy(), rtol=1e-12)
    known = {s.name for s in sp.preorder_traversal(e.expr) if isinstance(s, sp.Symbol)}
    values = {name: None for name in known}
    for step in e.forward:
        used = {s.name for s in step.definition.free_symbols}
        assert used <= known, f"{step.name} = {step.definition} uses undefined {used - known}"
        known.add(step.name.name)
        values[step.name.name] = step.value
    known.add(e.function.name + "bar")
    for step in e.backward:
        for contribution in step.contributions:
            used = {s.name for s in contribution.free_symbols}
            assert used <= known, f"{step.adjoint} uses undefined {used - known}"
        known.add(step.adjoint.name)
    shown = str(e) + e.latex()
    assert not [h for h in ENGINE_HELPERS if h in shown], shown
    inputs = {t.name: t.detach().numpy() for t in _leaves(y)}
    closed = evaluate_text(symgrad.symbolic.text(e.gradient), inputs)
    np.testing.assert_allclose(np.broadcast_to(closed, expected.shape), expected.numpy(), rtol=1e-9, atol=1e-12)


def _leaves(y):
    from symgrad.symbolic import tensor_graph

    return [t for t in tensor_graph(y)[1].values() if hasattr(t, "name")]


@pytest.mark.parametrize("model", [_seed_002, _mlp])
def test_explanations_of_models_agree_with_backward_and_define_every_name(model, rng):
    y, params = model(rng)
    for p in params:
        _check(y, p)


def test_explanations_of_random_programs_agree_with_backward(rng):
    checked = 0
    while checked < 25:
        program = random_program(rng, ops=["mul", "add", "tanh", "exp", "sum", "matmul", "mean", "sigmoid",
                                           "transpose", "log"], max_steps=5)
        tensors = program.tensors()
        y = program(*tensors)
        y = y if y.shape == () else y.sum()
        for t in tensors:
            try:
                symgrad.autograd.grad(y, [t], retain_graph=True)
            except RuntimeError:  # the program does not use this input
                continue
            _check(y, t)
            checked += 1


def test_the_seed_002_explanation_reads_as_the_chain_rule(rng):
    loss, (w, _) = _seed_002(rng)
    shown = str(explain(loss, w)).splitlines()
    assert shown[0] == "Chain rule for dloss/dw, where loss = mean((b - t + x @ w.T)**2)"
    assert "  u_1 = w.T  = [[3.], [1.]]" in shown
    assert "  du_4/du_3 = 2*u_3" in shown
    assert "  u_1bar = x.T @ u_2bar" in [line.split("  =")[0] for line in shown]


def test_a_local_derivative_of_tanh_is_sympys():
    x = sp.Symbol("x", real=True)
    e = explain(sp.tanh(x ** 2), x)
    assert [str(d.partial) for d in e.locals] == ["1 - tanh(u_1)**2", "2*x"]
    assert e.gradient == sp.diff(sp.tanh(x ** 2), x) and e.gradient_value is None


def test_notebooks_get_text_and_latex():
    x = sp.Symbol("x", real=True)
    bundle = explain(sp.sin(x) * x, x)._repr_mimebundle_()
    assert bundle["text/plain"].startswith("Chain rule for df/dx")
    assert bundle["text/latex"].startswith("$$\n\\begin{aligned}") and r"\overline{x}" in bundle["text/latex"]


def test_bad_requests_raise_naming_the_problem():
    x, y = sp.symbols("x y", real=True)
    with pytest.raises(ValueError, match="does not depend on y"):
        explain(sp.sin(x), y)
    with pytest.raises(TypeError, match="one x at a time"):
        explain(sp.sin(x), [x, y])
    v = symgrad.tensor([1.0, 2.0], requires_grad=True, name="v")
    with pytest.raises(ValueError, match="needs a scalar y"):
        explain(v * 2, v)


def test_data_computed_without_recording_is_defined_where_it_is_named():
    y = symgrad.tensor([1.0, 0.0, 1.0], name="y")
    w = symgrad.tensor([0.5, 0.2, 0.1], requires_grad=True, name="w")
    p = symgrad.sigmoid(w)
    others = symgrad.tensor([0.0, 1.0, 0.0])  # data without a name, computed from nothing named
    e = explain(-(y * symgrad.log(p) + others * symgrad.log(1 - p)).sum(), w)
    ((symbol, value, definition),) = e.unnamed_data
    assert symbol.name == "t0" and value.tolist() == [0.0, 1.0, 0.0] and definition == ArrayValue.of(value)
    assert str(e).splitlines()[1].startswith("  and t0 = array((0.0, 1.0, 0.0)), an array no one named")
    assert r"\text{data:} & t_{0} &= \left(0.0, 1.0, 0.0\right)" in e.latex()


def test_names_of_the_steps_never_meet_the_users():
    f, u_1 = sp.symbols("f u_1", real=True)
    e = explain(sp.sin(f * u_1), f)
    assert [str(step.name) for step in e.forward] == ["u_1'", "f'"]
    assert str(e).splitlines()[0] == "Chain rule for df'/df, where f' = sin(f*u_1)"
