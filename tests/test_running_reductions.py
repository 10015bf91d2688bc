"""``cumprod``, ``logcumsumexp``, ``amax`` and ``amin`` beyond the op table's rows: the
gradient of ``cumprod`` where its input has zeros and ``amax``/``amin``'s even split between
ties, on both engines against PyTorch (skipped without torch); ``logcumsumexp`` at extreme
values on both engines; second derivatives against PyTorch; traced against eager runs; and
the refused arguments."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

ENGINES = ["tape", "symbolic"]

WITH_ZEROS = np.array([[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 2.0], [2.0, 0.5, 3.0, 0.0], [0.5, -2.0, 1.5, 3.0]])
TIES = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 1.0, 5.0], [-1.0, -1.0, -1.0, -1.0]])
EXTREME = np.array([[-1e3, 1e3, 0.0, 1e3], [1e3, -1e3, -1e3, 0.0]])

CALLS = {  # (name, data, symgrad call, torch call)
    "cumprod with zeros, dim 1": (WITH_ZEROS, lambda x: x.cumprod(1), lambda x: x.cumprod(1)),
    "cumprod with zeros, dim 0": (WITH_ZEROS, lambda x: x.cumprod(0), lambda x: x.cumprod(0)),
    "amax over all, ties": (TIES, lambda x: x.amax(), lambda x: x.amax()),
    "amax over dim 1, ties": (TIES, lambda x: x.amax(1), lambda x: x.amax(1)),
    "amin over dim 0 kept, ties": (TIES, lambda x: x.amin(0, keepdim=True), lambda x: x.amin(0, keepdim=True)),
    "amin over (0, 1), ties": (TIES, lambda x: x.amin((0, 1)), lambda x: x.amin((0, 1))),
    "logcumsumexp at +-1e3": (EXTREME, lambda x: x.logcumsumexp(1), lambda x: x.logcumsumexp(1)),
}


def _weighted(out, tensor):
    """A loss that weighs every output differently, so each output's gradient shows."""
    weights = np.linspace(-1.0, 2.0, out.numel()).reshape(tuple(out.shape))
    return (out * tensor(weights)).sum()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("call", sorted(CALLS))
def test_value_and_gradient_match_torch(call, engine, dtype):
    torch = pytest.importorskip("torch")
    data, ours, theirs = CALLS[call]
    data = data.astype(dtype)
    with symgrad.backward_engine(engine):
        x = symgrad.tensor(data, requires_grad=True)
        y = ours(x)
        _weighted(y, symgrad.tensor).backward()
    tx = torch.tensor(data, requires_grad=True)
    ty = theirs(tx)
    _weighted(ty, lambda w: torch.tensor(w, dtype=tx.dtype)).backward()
    # float32 at |x| = 1e3: x - out loses about 1e3 * 2**-24 before exp, hence rtol 2e-4
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == "float64" else {"rtol": 2e-4, "atol": 1e-5}
    assert y.dtype == np.dtype(dtype) and x.grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)


def test_ties_share_the_gradient_evenly():
    """The rule itself, without torch: three tied maxima get a third each."""
    x = symgrad.tensor([[1.0, 3.0, 3.0, 3.0], [2.0, 0.0, 2.0, 1.0]], requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5, 0]])


SMOOTH = {  # losses whose second derivatives are compared with torch (inputs without zeros)
    "cumprod": lambda x: (x.cumprod(1) ** 2).sum(),
    "cumprod dim 0": lambda x: (x.cumprod(0) * x).sum(),
    "logcumsumexp": lambda x: (x.logcumsumexp(1) ** 2).sum(),
    "amax": lambda x: (x.amax(1) ** 2).sum(),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("loss", sorted(SMOOTH))
def test_second_derivatives_match_torch(loss, engine, rng):
    torch = pytest.importorskip("torch")
    values = rng.uniform(0.5, 2.0, size=(3, 4)) * rng.choice([-1.0, 1.0], size=(3, 4))
    direction = rng.standard_normal((3, 4))

    def hvp(L, tensor):
        x = tensor(values, requires_grad=True)
        (g,) = L.autograd.grad(SMOOTH[loss](x), x, create_graph=True)
        (h,) = L.autograd.grad((g * tensor(direction)).sum(), x)
        return g.detach().numpy(), h.numpy()

    with symgrad.backward_engine(engine):
        got = hvp(symgrad, symgrad.tensor)
    for a, b in zip(got, hvp(torch, torch.tensor)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_cumprod_second_derivative_at_a_zero_matches_differences(engine):
    """At a lone zero the gradient is a polynomial in the other inputs; its derivative along a
    direction that keeps the zero is the finite difference of the gradient."""
    values = np.array([[1.5, 0.0, 2.0, -1.0], [0.5, 1.2, 0.0, 2.0]])
    direction = np.array([[0.3, 0.0, -0.7, 0.4], [1.1, -0.2, 0.0, 0.6]])
    loss = SMOOTH["cumprod"]

    def gradient(v):
        with symgrad.backward_engine("tape"):
            x = symgrad.tensor(v, requires_grad=True)
            loss(x).backward()
        return x.grad.numpy()

    with symgrad.backward_engine(engine):
        x = symgrad.tensor(values, requires_grad=True)
        (g,) = symgrad.autograd.grad(loss(x), x, create_graph=True)
        (h,) = symgrad.autograd.grad((g * symgrad.tensor(direction)).sum(), x)
    eps = 1e-6
    differences = (gradient(values + eps * direction) - gradient(values - eps * direction)) / (2 * eps)
    # the Hessian is symmetric: h = H @ direction
    np.testing.assert_allclose(h.numpy(), differences, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("call", ["cumprod", "logcumsumexp", "amax", "amin"])
def test_traced_gradient_matches_a_fresh_eager_run(call):
    """The masks (zeros, ties) are recomputed at every call of a traced function."""
    def f(x):
        out = getattr(x, call)(1)
        return (out * symgrad.tensor(np.linspace(1.0, 2.0, out.numel()).reshape(tuple(out.shape)))).sum()

    g = symgrad.grad(f)
    for values in (WITH_ZEROS, TIES[:, ::-1].copy(), WITH_ZEROS[::-1, ::-1].copy()):
        with symgrad.backward_engine("tape"):
            x = symgrad.tensor(values, requires_grad=True)
            f(x).backward()
        np.testing.assert_allclose(g(values), x.grad.numpy(), rtol=1e-12, atol=1e-14)


BAD = [
    (lambda: symgrad.ones(2, 3).cumprod(2), IndexError, "out of range"),
    (lambda: symgrad.ones(2, 3).logcumsumexp(-3), IndexError, "out of range"),
    (lambda: symgrad.ones(2, 3).amax((0, -2)), ValueError, "same dimension twice"),
    (lambda: symgrad.ones(2, 3).amin(5), IndexError, "out of range"),
]


@pytest.mark.parametrize("call, error, words", BAD)
def test_refused_arguments_name_the_problem(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize("name", ["logcumsumexp", "cumprod", "cumsum"])
def test_jvp_matches_central_differences(name):
    """``jvp`` transposes the VJP; logcumsumexp's adjoint splits the upstream gradient into
    its positive and negative parts (stable, linear only in value), which once left the
    seed symbol in the transpose: ``NameError: ... symbol g``."""
    rng = np.random.default_rng(3)
    x, v = rng.uniform(-2.0, 2.0, size=(3, 4)), rng.standard_normal((3, 4))
    x[0, 1] = 0.0  # cumprod through a zero

    def f(t):
        return getattr(symgrad, name)(t, dim=1) * 1.5

    value, tangent = symgrad.jvp(f, (x,), (v,))
    h = 1e-6
    expected = (f(symgrad.tensor(x + h * v)).numpy() - f(symgrad.tensor(x - h * v)).numpy()) / (2 * h)
    np.testing.assert_allclose(np.asarray(tangent), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(value), f(symgrad.tensor(x)).numpy(), rtol=1e-12)
