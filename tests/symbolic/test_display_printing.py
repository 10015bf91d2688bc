"""The display layer (``symgrad/symbolic/printing/display.py``): every printed form -- symgrad's
printers, Python's ``str``/``repr`` and SymPy's own ``pretty``/``latex`` -- is in standard
notation, holds no engine helper, and the text form evaluates to the engine's value.

Each displayed text form is read back by :func:`evaluate_text` and compared with the value
the engine computes, for random programs over every op of the op table and for their
gradients.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad

from symgrad.ops import OPS
from symgrad.symbolic import diff, latex, pretty, tensor_graph, text
from symgrad.symbolic.codegen.read_text import evaluate_text
from symgrad.symbolic.printing.display import ENGINE_HELPERS
from symgrad.testing import random_program
from symgrad.testing.generator import covered_ops

MASK_KINDS = ("mask",)


def _values(y, tensors) -> dict:
    """Every array a form of ``y``'s graph may name: the inputs, data and index arrays."""
    values = {t.name: t.detach().numpy() for t in tensors}
    for symbol, array in tensor_graph(y)[1].items():
        values[getattr(symbol, "name", str(symbol))] = np.asarray(getattr(array, "_data", array))
    return values


def _check_program(program) -> None:
    tensors = program.tensors()
    y = program(*tensors)
    y = y if y.shape == () else y.sum()
    y.backward()
    values = _values(y, tensors)
    forms = [("value", y.expr, y.detach().numpy())]
    for t, grad in zip(tensors, diff(y, list(tensors), allow_unused=True)):
        expected = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
        forms.append((f"d/d{t.name}", grad, expected))
    for what, form, expected in forms:
        shown = text(form)
        for printed in (shown, pretty(form), latex(form), str(form), repr(form), sp.pretty(form), sp.latex(form)):
            leaked = [h for h in ENGINE_HELPERS if h in printed]
            assert not leaked, f"{what} prints {leaked}: {printed}\n{program}"
        value = np.asarray(evaluate_text(shown, values))
        if value.size == np.size(expected):  # a sum over size-1 axes needs no sign in the display
            value = value.reshape(np.shape(expected))
        np.testing.assert_allclose(np.broadcast_to(value, np.shape(expected)), expected, rtol=1e-7, atol=1e-9,
                                   err_msg=f"{what} shown as {shown}\n{program}")


DIFFERENTIABLE_OPS = [name for name in covered_ops() if OPS[name].kind not in MASK_KINDS]


@pytest.mark.parametrize("op", DIFFERENTIABLE_OPS)
def test_every_op_prints_in_standard_notation_and_reads_back_to_its_value(op, rng):
    for _ in range(6):
        _check_program(random_program(rng, ops=[op, "mul", "add"], max_steps=4))


def test_random_programs_print_in_standard_notation_and_read_back_to_their_values(rng):
    for _ in range(60):
        _check_program(random_program(rng, max_steps=6))


def test_every_op_of_the_table_is_covered_by_the_display_checks():
    assert set(OPS) - set(covered_ops()) == set(), "an op without a recipe is never displayed by these tests"


def test_sizes_print_by_name_and_keep_the_value(rng):
    X = symgrad.tensor(rng.normal(size=(50, 3)), name="X")
    y = symgrad.tensor(rng.normal(size=50), name="y")
    w = symgrad.tensor(rng.normal(size=3), requires_grad=True, name="w")
    loss = ((X @ w - y) ** 2).mean()
    loss.backward()
    gradient = diff(loss, w)
    shown = text(gradient, sizes={"n": 50})
    assert shown == "X.T @ (2*(-y + X @ w)/n)" and "50" not in latex(gradient, sizes={"n": 50})
    value = evaluate_text(shown, {"X": X.numpy(), "y": y.numpy(), "w": w.detach().numpy(), "n": 50})
    np.testing.assert_allclose(value, w.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("sizes, message", [
    ({"n": 1}, "at least 2"), ({"n": 2.5}, "integer"), ({"2n": 50}, "identifier"),
    ({"n": 50, "m": 50}, "both 50"),
])
def test_bad_sizes_are_refused_naming_them(sizes, message):
    with pytest.raises(ValueError, match=message):
        text(sp.Symbol("x") / 50, sizes=sizes)


def _mse(X, y, w):
    from symgrad.symbolic.forms.structural import Matmul, Mean

    return Mean.of((Matmul.of(X, w) - y) ** 2)


def test_a_size_by_name_prints_for_any_size_and_refuses_to_compile():
    from symgrad.symbolic import array_symbol, compile_exprs

    X, y, w = array_symbol("X", ("n", 3)), array_symbol("y", ("n",)), array_symbol("w", (3,))
    gradient = diff(_mse(X, y, w), w)
    assert text(gradient) == "X.T @ (2*(-y + X @ w)/n)"
    assert latex(gradient) == r"{X}^{T} \cdot \left(\frac{2 \left(- y + X \cdot w\right)}{n}\right)"
    from symgrad.symbolic.forms.structural import Mean

    assert text(diff(Mean.of(X ** 2), X)) == "2*X/(3*n)"  # a mean over n*3 elements
    with pytest.raises(TypeError, match=r"X has the size 'n' by name only: compiled code computes with numbers"):
        compile_exprs([X, y, w], [gradient])


def test_named_axes_with_numbers_print_by_name_and_compile(rng):
    from symgrad.symbolic import array_symbol, compile_exprs

    X, y = array_symbol("X", (50, 3), dims=("n", None)), array_symbol("y", (50,), dims=("n",))
    w = array_symbol("w", (3,))
    gradient = diff(_mse(X, y, w), w)
    assert text(gradient) == "X.T @ (2*(-y + X @ w)/n)"
    values = [rng.normal(size=(50, 3)), rng.normal(size=50), rng.normal(size=3)]
    (computed,) = compile_exprs([X, y, w], [gradient]).outputs_of(values)
    np.testing.assert_allclose(computed, 2 * values[0].T @ (values[0] @ values[2] - values[1]) / 50, rtol=1e-12)


def test_tensors_with_named_axes_print_sizes_by_name(rng):
    X = symgrad.tensor(rng.normal(size=(50, 3)), name="X", dims=("n", None))
    y = symgrad.tensor(rng.normal(size=50), name="y", dims=("n",))
    w = symgrad.tensor(rng.normal(size=3), requires_grad=True, name="w")
    loss = ((X @ w - y) ** 2).mean()
    loss.backward()
    gradient = diff(loss, w)
    shown = text(gradient)
    assert shown == "X.T @ (2*(-y + X @ w)/n)" and "50" not in latex(gradient), shown
    value = evaluate_text(shown, {"X": X.numpy(), "y": y.numpy(), "w": w.detach().numpy(), "n": 50})
    np.testing.assert_allclose(value, w.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dims", [("n",), ("n", "2d"), ("n", 3)])
def test_bad_axis_names_are_refused_naming_them(dims):
    with pytest.raises(ValueError, match=r"dims of the tensor 'X' must give one name"):
        symgrad.tensor(np.zeros((2, 3)), name="X", dims=dims)


# ---------------------------------------------------------------------------- named data
def _eager_bce(rng, n=5):
    X = symgrad.tensor(rng.normal(size=(n, 3)), name="X")
    y = symgrad.tensor((rng.uniform(size=n) < 0.5).astype(float), name="y")
    w = symgrad.tensor(rng.normal(size=3), requires_grad=True, name="w")
    p = symgrad.sigmoid(X @ w)
    return X, y, w, -(y * symgrad.log(p) + (1 - y) * symgrad.log(1 - p)).mean()


def _printed(form) -> list:
    from symgrad.symbolic import ClosedForm

    closed = ClosedForm(form)
    bundle = closed._repr_mimebundle_()
    return [text(form), pretty(form), latex(form), str(closed), repr(closed), closed.latex(),
            bundle["text/plain"], bundle["text/latex"]]


def test_data_computed_without_recording_prints_as_what_it_is(rng):
    X, y, w, loss = _eager_bce(rng)
    gradient = diff(loss, w)
    for printed in _printed(gradient):
        assert "t0" not in printed and "t_{0}" not in printed and "t₀" not in printed, printed
        assert "1 - y" in printed, printed
    loss.backward()
    values = {"X": X.numpy(), "y": y.numpy(), "w": w.detach().numpy()}
    np.testing.assert_allclose(evaluate_text(text(gradient), values), w.grad.numpy(), rtol=1e-12)
    simple = text(gradient, simplify=True)  # 1 - y is y's now: simplify cancels it
    assert "y" in simple and "log" not in simple and len(simple) < len(text(gradient)) / 2, simple
    np.testing.assert_allclose(evaluate_text(simple, values), w.grad.numpy(), rtol=1e-9)


def test_a_long_data_definition_is_named_and_listed_with_the_form(rng):
    X = symgrad.tensor(rng.normal(size=(6, 3)), name="X")
    w = symgrad.tensor(rng.normal(size=3), requires_grad=True, name="w")
    centred = (X - X.mean(dim=0)) / (X ** 2).sum(dim=0)
    loss = (symgrad.tanh(centred @ w) ** 2).sum()
    loss.backward()
    gradient = diff(loss, w)
    shown = text(gradient)
    assert shown.count("\nwhere t0 = ") == 1 and shown.split("\n")[1].endswith("/sum(X**2, dim=0)"), shown
    assert r"\quad \text{where } t_{0} = " in latex(gradient) and "where  t₀ = " in pretty(gradient)
    np.testing.assert_allclose(evaluate_text(shown, {"X": X.numpy(), "w": w.detach().numpy()}), w.grad.numpy(),
                               rtol=1e-12)


def test_data_changed_in_place_after_it_was_computed_is_not_printed_by_its_old_definition(rng):
    X, y, w, _ = _eager_bce(rng)
    others = 1 - y
    y.data[0] = 5.0  # others still holds 1 - (the old y)
    p = symgrad.sigmoid(X @ w)
    gradient = diff(-(others * symgrad.log(1 - p)).mean(), w)
    assert "1 - y" not in text(gradient) and "t0" in text(gradient)


def test_a_chain_of_unrecorded_ops_keeps_a_bounded_history():
    from symgrad.tape.node import MAX_ORIGIN_SIZE

    x = symgrad.tensor([1.0, 2.0], name="x")
    chain = [x]
    for _ in range(3 * MAX_ORIGIN_SIZE):
        chain.append(chain[-1] * 0.5)
    assert chain[MAX_ORIGIN_SIZE]._origin.size == MAX_ORIGIN_SIZE
    assert all(t._origin is None for t in chain[MAX_ORIGIN_SIZE + 1:])


def test_data_with_a_definition_can_still_be_differentiated_with_respect_to(rng):
    X, y, w, _ = _eager_bce(rng)
    others = 1 - y
    loss = (others * (X @ w)).sum()
    assert text(diff(loss, others)) == "X @ w"
    assert text(diff(loss, w)) == "X.T @ (1 - y)"


def test_explain_shows_data_by_its_definition(rng):
    X, y, w, loss = _eager_bce(rng)
    shown = str(symgrad.explain(loss, w))
    assert "1 - y" in shown and "t0" not in shown, shown
    centred = (X - X.mean(dim=0)) / (X ** 2).sum(dim=0)
    explained = symgrad.explain((symgrad.tanh(centred @ w) ** 2).sum(), w)
    assert "\n  and t0 = (X - mean(X, dim=0))/sum(X**2, dim=0), data computed without recording" in str(explained)
    assert r"&\text{data:} & t_{0} &= \frac{X - " in explained.latex() and "where" not in explained.latex()


# ---------------------------------------------------------------------------- ties
TIES = {  # x = [3, 3, 3, 1] meets a tie in each; c weights the outputs
    "maximum": (lambda x, c: (symgrad.maximum(x, c) * c).sum(), [1.0, 3.0, 4.0, 3.0]),
    "max over all": (lambda x, c: x.max() * c.sum(), [2.0]),
    "max along an axis": (lambda x, c: (x.reshape(2, 2).max(dim=1)[0] * c).sum(), [2.0, 5.0]),
    "min along the first axis": (lambda x, c: (x.reshape(2, 2).min(dim=0)[0] * c).sum(), [2.0, 5.0]),
}


@pytest.mark.parametrize("case", sorted(TIES))
def test_the_display_says_what_the_engine_does_at_ties(case):
    function, weights = TIES[case]
    x = symgrad.tensor([3.0, 3.0, 3.0, 1.0], requires_grad=True, name="x")
    c = symgrad.tensor(weights, name="c")
    y = function(x, c)
    y.backward()
    shown = text(diff(y, x))
    value = evaluate_text(shown, {"x": x.detach().numpy(), "c": c.numpy()})
    np.testing.assert_allclose(np.broadcast_to(value, (4,)), x.grad.numpy(), err_msg=shown)
    assert "argmax" in shown or "argmin" in shown or "==" in shown, shown


def test_a_mask_of_named_tensors_made_numbers_prints_as_a_bracket(rng):
    x = symgrad.tensor(rng.normal(size=4), requires_grad=True, name="x")
    y = symgrad.tensor(rng.normal(size=4), name="y")
    for loss in [((y > 0) * x ** 2).sum(), ((x > 0).float() * y * x).sum(), ((x > 0) * y * x).sum()]:
        (expected,) = symgrad.autograd.grad(loss, [x])
        shown = text(diff(loss, x))
        assert "[" in shown and "t0" not in shown and "cast" not in shown, shown
        value = evaluate_text(shown, {"x": x.detach().numpy(), "y": y.numpy()})
        np.testing.assert_allclose(np.broadcast_to(value, (4,)), expected.numpy(), rtol=1e-6, err_msg=shown)


@pytest.mark.parametrize("make", [
    lambda x: x.sum(1)[0],                       # index_put of the number 1 into one unit axis
    lambda x: x.sum(1).prod(-1),                 # prod's adjoint of a number
    lambda x: x.sum(1)[0] * x.sum(),
    lambda x: (x[0, :, None] * 3.0).sum(),       # a number times a column
    lambda x: x.sum(1).unsqueeze(0).squeeze(0)[0],
], ids=["getitem", "prod", "product", "column", "unit axes"])
def test_a_number_arranged_in_unit_axes_prints_as_the_number(make, rng):
    """A gradient of 1 put into a (1,)-shaped place was shown as ``1[None]``, which no
    reader (and no ``evaluate_text``) can compute; it is the number itself."""
    x = symgrad.tensor(rng.normal(size=(1, 3)), requires_grad=True, name="x")
    y = make(x)
    y.backward()
    shown = text(diff(y, x))
    assert "1[None]" not in shown
    np.testing.assert_allclose(np.broadcast_to(evaluate_text(shown, {"x": x.detach().numpy()}), (1, 3)),
                               x.grad.numpy(), rtol=1e-12)
