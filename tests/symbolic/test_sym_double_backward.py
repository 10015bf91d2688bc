"""Grad of grad (``create_graph=True``) through every indexing form and the losses built on
indexing (``F.cross_entropy``, ``F.nll_loss``), on the symbolic engine against the tape.

Issue 13: the symbolic engine's ``create_graph=True`` evaluated its closed forms with
tensor ops and turned every segment input into a tensor, but an integer-array or mask
index has no tensor (its array stays in the index), so any ``x[[0, 2]]``, ``x[mask]`` or
``F.cross_entropy`` raised ``TypeError: cannot build a tensor from None``.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F

MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
ROW_MASK = np.array([True, False, True])

INDEXINGS = {
    "int": lambda x: x[1],
    "negative_int": lambda x: x[-1, -2],
    "slice": lambda x: x[1:, ::2],
    "negative_slice": lambda x: x[-2:, :-1],
    "int_array": lambda x: x[[0, 2]],
    "negative_int_array": lambda x: x[[-1, 0], 1],
    "repeated_int_array": lambda x: x[[0, 2, 0, 0]],
    "two_int_arrays": lambda x: x[[0, 2, 2], [3, 1, 1]],
    "bool_mask": lambda x: x[MASK],
    "row_mask": lambda x: x[ROW_MASK],
    "none": lambda x: x[None, 1:],
    "ellipsis": lambda x: x[..., 2],
    "mixed": lambda x: x[None, [2, 0, 2], 1:3],
    "ellipsis_array": lambda x: x[..., [3, 3, 0]],
    "mask_and_slice": lambda x: x[ROW_MASK, 1:],
    "tensor_index": lambda x: x[symgrad.tensor([2, 1, 2])],
}


def _cubic(picked):
    """A function whose second derivative is not constant, so grad of grad checks values."""
    weights = symgrad.tensor(np.linspace(0.5, 2.0, int(np.prod(picked.shape))).reshape(picked.shape))
    return (weights * picked ** 3).sum() + (picked.sin() * picked).sum()


LOSSES = {
    "cross_entropy": lambda x: F.cross_entropy(x, symgrad.tensor([3, 0, 1])),
    "cross_entropy_weight_ignore": lambda x: F.cross_entropy(
        x, symgrad.tensor([3, -100, 1]), weight=symgrad.tensor([1.0, 2.0, 0.5, 3.0])),
    "cross_entropy_sum": lambda x: F.cross_entropy(x * x, symgrad.tensor([2, 2, 0]), reduction="sum"),
    "nll_loss": lambda x: F.nll_loss(x.log_softmax(dim=1) * x, symgrad.tensor([1, 0, 3])),
    "nll_loss_weight": lambda x: F.nll_loss(x.sin(), symgrad.tensor([1, 0, 3]),
                                            weight=symgrad.tensor([1.0, 2.0, 0.5, 3.0])),
}

PROGRAMS = {**{f"index_{k}": (lambda f: lambda x: _cubic(f(x)))(f) for k, f in INDEXINGS.items()}, **LOSSES}


def _grad_of_grad(program, first: str, second: str):
    x = symgrad.tensor(np.linspace(-1.2, 1.5, 12).reshape(3, 4), requires_grad=True, name="x")
    with symgrad.backward_engine(first):
        (g,) = symgrad.autograd.grad(PROGRAMS[program](x), x, create_graph=True)
    assert g.grad_fn is not None
    with symgrad.backward_engine(second):
        ((g * symgrad.tensor(np.arange(12.0).reshape(3, 4) - 4)).sum() + (g ** 2).sum()).backward()
    return g.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_grad_of_grad_through_indexing_is_the_tapes(program):
    want = _grad_of_grad(program, "tape", "tape")
    assert np.any(want[1] != 0)
    for engines in [("symbolic", "symbolic"), ("symbolic", "tape"), ("tape", "symbolic"), ("both", "both")]:
        for got, expected in zip(_grad_of_grad(program, *engines), want):
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=str(engines))


def test_grad_of_grad_through_an_int_array_index_is_the_closed_form():
    # f = sum(x[[0, 2, 0]] ** 3): df/dx = 3 c x**2 (c = how often x is picked), d/dx sum(df/dx) = 6 c x
    x = symgrad.tensor([1.5, -2.0, 0.5], requires_grad=True)
    (g,) = symgrad.autograd.grad((x[[0, 2, 0]] ** 3).sum(), x, create_graph=True)
    g.sum().backward()
    counts = np.array([2.0, 0.0, 1.0])
    np.testing.assert_allclose(g.detach().numpy(), 3 * counts * x.detach().numpy() ** 2)
    np.testing.assert_allclose(x.grad.numpy(), 6 * counts * x.detach().numpy())


# ---------------------------------------------------------------------------- a ** b at 0
# Issue 13: where the first derivative of a ** b is selected to be 0 (d/db where a == 0 and
# b >= 0; d/da where b == 0), the branch not taken was still 0 * log(0) or b * 0 ** -1, so
# its derivatives (create_graph=True) were 0 * inf = nan: d(grad_b)/dg at a = 0 was NaN.
# Like JAX (the branch not taken is computed at a = 1), they are finite.  PyTorch 2.13 gives
# NaN for d(grad_a)/dg at b = 0 and for d(grad_b)/db at a = 0 (its d(grad_b)/dg is 0).
A = [0.0, 0.0, 0.0, 0.0, 2.0, 0.5, 0.0]
B = [0.5, 0.0, 2.0, -1.0, 0.0, 1.5, 1.0]
SELECTED_B = np.array([a == 0 and b >= 0 for a, b in zip(A, B)])  # d/db selected to 0
SELECTED_A = np.array([b == 0 for b in B])  # d/da selected to 0

POWERS = {
    "tensor_base": lambda a, b: a ** b,
    "zero_number_base": lambda a, b: (0.0 ** b) * (a + 1),
    "zeros_tensor_base": lambda a, b: symgrad.tensor(np.zeros(len(A))) ** b + a,
    "zeros_tensor_exponent": lambda a, b: a ** symgrad.tensor(np.zeros(len(A))) * b,
}


def _pow_second(program: str, first: str, second: str):
    a = symgrad.tensor(A, requires_grad=True)
    b = symgrad.tensor(B, requires_grad=True)
    g = symgrad.tensor(np.linspace(0.5, 2.0, len(A)), requires_grad=True)
    with np.errstate(all="ignore"), symgrad.backward_engine(first):
        grad_a, grad_b = symgrad.autograd.grad(POWERS[program](a, b), [a, b], grad_outputs=g, create_graph=True)
    out = {"grad_a": grad_a.detach().numpy(), "grad_b": grad_b.detach().numpy()}
    with np.errstate(all="ignore"), symgrad.backward_engine(second):
        for name, grad in (("grad_a", grad_a), ("grad_b", grad_b)):
            for wrt_name, wrt in (("g", g), ("a", a), ("b", b)):
                (d,) = symgrad.autograd.grad(grad.sum(), wrt, retain_graph=True, allow_unused=True)
                out[f"d{name}/d{wrt_name}"] = np.zeros(len(A)) if d is None else d.numpy()
    return out


@pytest.mark.parametrize("program", sorted(POWERS))
@pytest.mark.parametrize("engines", [("tape", "tape"), ("symbolic", "symbolic"), ("symbolic", "tape"),
                                     ("tape", "symbolic")])
def test_second_derivatives_of_a_power_at_zero_are_finite_where_the_first_is_selected(program, engines):
    got = _pow_second(program, *engines)
    g = np.linspace(0.5, 2.0, len(A))
    # gradients are linear in g: d(grad)/dg is the gradient for g = 1
    np.testing.assert_allclose(got["dgrad_a/dg"], got["grad_a"] / g, rtol=1e-13)
    np.testing.assert_allclose(got["dgrad_b/dg"], got["grad_b"] / g, rtol=1e-13)
    if program == "tensor_base":
        for key in ("dgrad_b/dg", "dgrad_b/db"):
            assert np.all(got[key][SELECTED_B] == 0), (key, got[key])
        for key in ("dgrad_a/dg", "dgrad_a/da"):
            assert np.all(got[key][SELECTED_A] == 0), (key, got[key])
    reference = _pow_second(program, "tape", "tape")
    for key, value in got.items():
        np.testing.assert_allclose(value, reference[key], rtol=1e-13, equal_nan=True, err_msg=key)
