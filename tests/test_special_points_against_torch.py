"""Gradients at the special points of each op, against PyTorch, on every evaluation path.

Where an op is not smooth, or its formula divides by zero (``abs``, ``relu``, ``clamp``
at 0 and at its bounds, ties of ``max``/``maximum``, ``sinc`` and ``xlogy`` at 0,
``-inf`` inside ``logsumexp``/``softmax``, overflowing ``exp``...), PyTorch picks a value;
users compare with it.  Each row runs the eager tape, the symbolic engine and a
transform (``value_and_grad``) and demands PyTorch's value and gradient, NaN and signed
infinities included.  Found this way: ``sinc``'s symbolic gradient at 0 and ``xlogy``'s
at ``x = 0, y <= 0`` were NaN (a ``Piecewise`` form: its selection's 0 times the branch's
infinite derivative), the tape's ``xlogy`` gradient for ``y`` at ``(0, 0)`` was 0
where PyTorch's is NaN, and ``atan2``'s gradient at the origin was 0/0 where PyTorch's is 0.  Skipped cleanly without torch.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as SF

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _lib(x):
    """symgrad's or torch's namespace, for the tensor ``x``."""
    return torch if isinstance(x, torch.Tensor) else symgrad


def _f(x):
    return TF if isinstance(x, torch.Tensor) else SF


def _constant(x, values):
    lib = _lib(x)
    return lib.tensor(values, dtype=lib.float64)


POINTS = {
    "abs at +-0": (lambda x: x.abs(), [0.0, -0.0, 1.0]),
    "relu at +-0": (lambda x: x.relu(), [0.0, -0.0]),
    "sqrt at 0": (lambda x: x.sqrt(), [0.0, 4.0]),
    "x**2 at 0": (lambda x: x ** 2, [0.0]),
    "x**0.5 at 0": (lambda x: x ** 0.5, [0.0]),
    "x**0 at 0": (lambda x: x ** 0, [0.0, 2.0]),
    "x**-1 at 0": (lambda x: x ** -1.0, [0.0]),
    "clamp at its bounds": (lambda x: x.clamp(min=0.0, max=1.0), [0.0, 1.0, 0.5, -1.0, 2.0]),
    "clamp(min) at its bound": (lambda x: x.clamp(min=0.0), [0.0]),
    "max of ties": (lambda x: x.max(), [1.0, 1.0, 0.0]),
    "amax of ties": (lambda x: x.amax(), [1.0, 1.0, 0.0]),
    "max(dim) of ties": (lambda x: x.reshape(1, 3).max(dim=1)[0], [1.0, 1.0, 0.0]),
    "min of ties": (lambda x: x.min(), [1.0, 1.0]),
    "maximum at a tie": (lambda x: x.maximum(x * 1), [1.0, 2.0]),
    "minimum at a tie": (lambda x: x.minimum(x.flip(0)), [1.0, 1.0]),
    "where, NaN in the branch not taken": (lambda x: _lib(x).where(x > 0, x.sqrt(), x * 0), [-1.0, 4.0]),
    "norm at 0": (lambda x: x.norm(), [0.0, 0.0]),
    "norm(p=1) at 0": (lambda x: x.norm(p=1), [0.0, 1.0]),
    "norm(p=inf) at a tie": (lambda x: x.norm(p=float("inf")), [1.0, -1.0]),
    "norm of a zero vector": (lambda x: (x - x.mean()).norm(), [1.0, 1.0]),
    "log at 0": (lambda x: x.log(), [0.0, 1.0]),
    "log1p at -1": (lambda x: x.log1p(), [-1.0]),
    "rsqrt at 0": (lambda x: x.rsqrt(), [0.0]),
    "asin at 1": (lambda x: x.asin(), [1.0]),
    "acosh at 1": (lambda x: x.acosh(), [1.0]),
    "logsumexp with -inf": (lambda x: (x + _constant(x, [0.0, -np.inf])).logsumexp(0), [1.0, 2.0]),
    "softmax with -inf": (lambda x: (x + _constant(x, [0.0, -np.inf])).softmax(0)[0], [1.0, 2.0]),
    "std of one element": (lambda x: x[:1].std(), [1.0, 2.0]),
    "var of equal elements": (lambda x: x.var(), [1.0, 1.0]),
    "std of equal elements": (lambda x: x.std(), [1.0, 1.0]),
    "std(correction=0) of one element": (lambda x: x[:1].std(correction=0), [1.0, 2.0]),
    "std of rows, one of them constant": (lambda x: x.reshape(2, 2).std(dim=1), [1.0, 1.0, 0.5, 2.0]),
    "vector_norm(ord=3) at 0": (lambda x: _lib(x).linalg.vector_norm(x, 3), [0.0, 0.0]),
    "vector_norm(ord=3) of a zero row": (lambda x: _lib(x).linalg.vector_norm(x.reshape(2, 2), 3, dim=1),
                                         [0.0, 0.0, 1.0, -2.0]),
    "norm(p=3) at 0": (lambda x: x.norm(p=3), [0.0, 0.0]),
    "vector_norm(ord=inf, dim) of ties": (lambda x: _lib(x).linalg.vector_norm(x.reshape(2, 3), float("inf"), dim=1),
                                          [1.0, -3.0, 3.0, 3.0, 0.0, 1.0]),
    "vector_norm(ord=-inf, dim) of ties": (lambda x: _lib(x).linalg.vector_norm(x.reshape(2, 3), -float("inf"),
                                                                                dim=0), [1.0, -3.0, 3.0, -1.0, 0.0, 3.0]),
    "norm(p=inf, dim) of ties": (lambda x: x.reshape(2, 3).norm(p=float("inf"), dim=1), [2.0, -2.0, 1.0, 0.0, 1.0, 1.0]),
    "det of a singular matrix": (lambda x: _lib(x).linalg.det(x.reshape(2, 2)), [1.0, 2.0, 2.0, 4.0]),
    "sign at 0": (lambda x: x.sign(), [0.0, 1.0]),
    "floor": (lambda x: x.floor(), [1.5, -0.5]),
    "round at halves": (lambda x: x.round(), [0.5, 1.5]),
    "trunc": (lambda x: x.trunc(), [1.5]),
    "frac": (lambda x: x.frac(), [1.5, -1.5]),
    "remainder": (lambda x: x % 1.0, [2.5, -0.5]),
    "x / x at 0": (lambda x: x / x, [0.0]),
    "exp overflowing": (lambda x: x.exp(), [1000.0]),
    "sigmoid at the extremes": (lambda x: x.sigmoid(), [-1000.0, 1000.0]),
    "tanh at the extreme": (lambda x: x.tanh(), [-1000.0]),
    "sinc at 0": (lambda x: x.sinc(), [0.0, 0.5]),
    "xlogy(x, x) at 0": (lambda x: _lib(x).xlogy(x, x), [0.0, 1.0]),
    "xlogy at y <= 0": (lambda x: _lib(x).xlogy(x * 0, x - 1), [1.0, 0.0]),
    "xlogy at (0, 0) and (0, -1), both inputs": (lambda x: _lib(x).xlogy(x[:2] * 0, x[2:]), [5.0, 5.0, 0.0, -1.0]),
    "hypot at 0": (lambda x: _lib(x).hypot(x, x), [0.0]),
    "prod with two zeros": (lambda x: x.prod(), [0.0, 0.0, 2.0]),
    "prod with one zero": (lambda x: x.prod(), [0.0, 3.0, 2.0]),
    "cumprod through a zero": (lambda x: x.cumprod(0), [2.0, 0.0, 3.0]),
    "leaky_relu at 0": (lambda x: _f(x).leaky_relu(x, 0.1), [0.0]),
    "elu at 0": (lambda x: _f(x).elu(x), [0.0]),
    "gelu at 0": (lambda x: _f(x).gelu(x), [0.0]),
    "huber_loss at the kink": (lambda x: _f(x).huber_loss(x, x * 0, reduction="sum"), [1.0, 0.0]),
    "l1_loss at 0": (lambda x: _f(x).l1_loss(x, x * 0 + 1, reduction="sum"), [1.0, 0.0]),
    "topk of ties": (lambda x: x.topk(1)[0], [1.0, 1.0, 0.0]),
    "topk of ties, smallest": (lambda x: x.topk(2, largest=False)[0] * _constant(x, [1.0, 2.0]), [1.0, 0.0, 0.0, 1.0]),
    "sort of ties, weighted": (lambda x: x.sort(stable=True)[0] * _constant(x, [1.0, 2.0, 3.0, 4.0]), [2.0, 1.0, 2.0, 1.0]),
    "sort of ties, descending": (lambda x: x.sort(descending=True, stable=True)[0] * _constant(x, [1.0, 2.0, 3.0, 4.0]),
                                 [2.0, 1.0, 2.0, 1.0]),
    "atan2 at the origin": (lambda x: _lib(x).atan2(x, x * 1), [0.0, 1.0]),
    "logaddexp(a, a) at -inf": (lambda x: _lib(x).logaddexp(x.log(), x.log()), [0.0, 1.0]),
}

# What symgrad still gives differently (visible here, not hidden): each must fail, so a fix shows up.
DIFFERENT: dict[str, str] = {
    "det of a singular matrix": "det's gradient is det(A) A^-T, so at a singular A the backward raises numpy's "
                                "LinAlgError (PyTorch gives the adjugate); a closed form cannot branch on "
                                "singularity, and an SVD adjugate would make second derivatives NaN at repeated "
                                "singular values",
}


def _torch_run(f, values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    out = f(x).sum()
    out.backward()
    return float(out), x.grad.numpy()


def _symgrad_run(f, values, path):
    if path == "transform":
        value, grad = symgrad.value_and_grad(lambda x: f(x).sum())(np.array(values))
        return float(value), np.asarray(grad)
    x = symgrad.tensor(values, dtype=symgrad.float64, requires_grad=True)
    with symgrad.backward_engine(path):
        out = f(x).sum()
        out.backward()
    return float(out), x.grad.numpy()


@pytest.mark.parametrize("path", ["tape", "symbolic", "transform"])
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.xfail(reason=DIFFERENT[name], strict=True))
                                  if name in DIFFERENT else name for name in POINTS])
def test_value_and_gradient_at_special_points_are_pytorchs(name, path):
    f, values = POINTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = _torch_run(f, values)
        got = _symgrad_run(f, values, path)
    np.testing.assert_array_equal(np.float64(got[0]), np.float64(expected[0]))
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=0, equal_nan=True)
    np.testing.assert_array_equal(np.signbit(got[1]) & np.isinf(got[1]), np.signbit(expected[1]) & np.isinf(expected[1]))


HIGHER_ORDER = {
    "sinc at 0": (lambda x: x.sinc(), [0.0, 0.5, -1.5]),
    "xlogy(x, 1 + x) at 0": (lambda x: _lib(x).xlogy(x, 1 + x), [0.0, 0.5]),
    "abs at 0": (lambda x: x.abs() * x, [0.0, 0.5]),
}


@pytest.mark.parametrize("name", list(HIGHER_ORDER))
def test_jvp_and_hessian_at_special_points_are_pytorchs(name):
    # found by a random program: sinc's derivative at 0, differentiated again, was 0 * NaN
    f, values = HIGHER_ORDER[name]
    point = np.array(values)
    tangent = np.linspace(1.0, 2.0, len(values))
    t_point, t_tangent = (torch.tensor(a, dtype=torch.float64) for a in (point, tangent))
    expected_tangent = torch.func.jvp(f, (t_point,), (t_tangent,))[1].numpy()
    expected_hessian = torch.func.hessian(lambda x: f(x).sum())(t_point).numpy()
    if name == "sinc at 0":  # torch's sinc''(0) is 0 (its derivative is masked to 0 there);
        expected_hessian[0, 0] = -np.pi ** 2 / 3  # the true value (JAX's, the Maclaurin series')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_allclose(symgrad.jvp(f, (point,), (tangent,))[1], expected_tangent, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(symgrad.hessian(lambda x: f(x).sum())(point), expected_hessian, rtol=1e-12,
                                   atol=1e-15, equal_nan=True)
