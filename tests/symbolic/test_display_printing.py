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


def _ties(program) -> bool:
    """Whether a ``maximum``/``minimum`` (or a ``max``/``min`` reduction) of the program
    meets a tie at its inputs (there the engine splits the gradient, and the displayed
    ``[a > b]`` shows the rule off ties)."""
    from symgrad.testing.generator import Ref, Step

    values = []
    for item in program.layout:
        if not isinstance(item, Step):
            values.append(program.inputs[item])
            continue
        args = [values[a.index] if isinstance(a, Ref) else a for a in item.args]
        arrays = [np.asarray(a) for a in args if isinstance(a, (np.ndarray, float, int))]
        if item.op in ("maximum", "minimum", "clamp", "clamp_tensor", "max", "min") and any(
                np.any(a == b) for k, a in enumerate(arrays) for b in arrays[k + 1:]):
            return True
        if item.op in ("max", "min", "extremum_mask") and np.unique(arrays[0]).size < arrays[0].size:
            return True  # a reduction may meet a tie among its own elements (stack(x, x) does)
        out = program.__class__(program.names, program.inputs, program.layout[:len(values) + 1])(*program.tensors())
        values.append(out.detach().numpy())
    return False


def _check_program(program) -> None:
    if _ties(program):
        return
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


def test_a_symbolic_shape_says_how_to_print_a_size_by_name():
    from symgrad.symbolic import array_symbol

    with pytest.raises(TypeError, match=r"symbolic size 'n'.*sizes=\{'n': number\}"):
        array_symbol("X", ("n", 3))
