"""Empty arrays (a dimension of size 0), against PyTorch, on every evaluation path.

Programs meet empty values: a mask that selects nothing, a batch of no rows, a slice past
the end.  PyTorch gives each reduction over nothing a value (a sum 0, a mean NaN, a
variance with nothing left after its correction NaN) and each gradient of an empty input
an empty array.  Each row runs the eager tape, the eager symbolic engine and a transform
(``value_and_grad``) on the NumPy and the C backend, and demands PyTorch's value, the
gradients' shapes and values, NaN included.  Found this way: ``inner`` refused an empty
contracted dimension (a ``reshape(-1, 0)``); a mean over nothing was SymPy's ``zoo``,
which no backend printed (a ``KeyError``); the C backend cancelled ``-t + t`` to 0
where ``t`` was NaN (a variance of one element: gradient 0 where PyTorch's is NaN); and
the C backend indexed into an empty loop for a scalar output.  Skipped cleanly without
torch.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad

torch = pytest.importorskip("torch")


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else symgrad


def _ones(x, *shape):
    lib = _lib(x)
    return lib.ones(*shape, dtype=lib.float64)


def _labels(x):
    lib = _lib(x)
    return lib.zeros((0,), dtype=lib.int64)


# name -> (function of one float64 input, the input's shape); the function's sum is compared
EMPTY = {
    "sum of (2, 0)": (lambda x: x.sum(), (2, 0)),
    "sum(1) of (2, 0)": (lambda x: x.sum(1), (2, 0)),
    "mean of (2, 0)": (lambda x: x.mean(), (2, 0)),
    "mean(1) of (2, 0)": (lambda x: x.mean(1), (2, 0)),
    "mean(0) of (2, 0)": (lambda x: x.mean(0), (2, 0)),
    "mean of (0,), then exp": (lambda x: x.exp().mean(), (0,)),
    "prod(1) of (2, 0)": (lambda x: x.prod(1), (2, 0)),
    "logsumexp(1) of (2, 0)": (lambda x: x.logsumexp(1), (2, 0)),
    "norm of (2, 0)": (lambda x: x.norm(), (2, 0)),
    "var(1) of (2, 1)": (lambda x: x.var(1), (2, 1)),
    "var of one element": (lambda x: x.var(), (1,)),
    "std of one element": (lambda x: x.std(), (1,)),
    "std(1) of (2, 0)": (lambda x: x.std(1), (2, 0)),
    "cumsum(1) of (2, 0)": (lambda x: x.cumsum(1), (2, 0)),
    "softmax(1) of (2, 0)": (lambda x: x.softmax(1), (2, 0)),
    "x * x of (0, 3)": (lambda x: x * x, (0, 3)),
    "inner, empty contracted dim": (lambda x: _lib(x).inner(x, _ones(x, 3, 0)), (2, 0)),
    "inner, empty rows": (lambda x: _lib(x).inner(x, _ones(x, 2, 3)), (0, 3)),
    "matmul, empty contracted dim": (lambda x: x @ _ones(x, 0, 3), (2, 0)),
    "einsum, empty contracted dim": (lambda x: _lib(x).einsum("ij,jk->ik", x, _ones(x, 0, 3)), (2, 0)),
    "tensordot, empty contracted dim": (lambda x: _lib(x).tensordot(x, _ones(x, 0, 3), dims=1), (2, 0)),
    "outer with an empty vector": (lambda x: _lib(x).outer(x, _ones(x, 3)), (0,)),
    "cat with an empty piece": (lambda x: _lib(x).cat([x, _ones(x, 2, 3)]), (0, 3)),
    "det of a 0x0 matrix": (lambda x: _lib(x).linalg.det(x), (0, 0)),
    "mse_loss of nothing": (lambda x: _lib(x).nn.functional.mse_loss(x, 2 * x), (0,)),
    "cross_entropy of no rows": (lambda x: _lib(x).nn.functional.cross_entropy(x, _labels(x)), (0, 3)),
    "layer_norm of no rows": (lambda x: _lib(x).nn.functional.layer_norm(x, (3,)), (0, 3)),
}


def _input(shape):
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)


def _torch_run(f, shape):
    x = torch.tensor(_input(shape), dtype=torch.float64, requires_grad=True)
    out = f(x).sum()
    out.backward()
    return out.detach().numpy(), x.grad.numpy()


def _eager_run(f, shape, engine):
    x = symgrad.tensor(_input(shape), dtype=symgrad.float64, requires_grad=True)
    with symgrad.backward_engine(engine):
        out = f(x).sum()
        out.backward()
    return out.detach().numpy(), x.grad.numpy()


def _transform_run(f, shape, backend):
    value, grad = symgrad.value_and_grad(lambda x: f(x).sum(), backend=backend)(_input(shape))
    return np.asarray(value), np.asarray(grad)


def _compare(got, expected):
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, equal_nan=True)
    assert got[1].shape == expected[1].shape
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-15, equal_nan=True)


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("name", list(EMPTY))
def test_eager_values_and_gradients_of_empty_arrays_are_pytorchs(name, engine):
    f, shape = EMPTY[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare(_eager_run(f, shape, engine), _torch_run(f, shape))


C_REFUSES = {"mean of (0,), then exp", "mse_loss of nothing"}
"""Rows whose value is a scalar body summed over a loop the C backend fuses with the
empty gradient's: that loop has no point to compute it at, so the call raises (and
``backend="auto"``, the default, computes it with NumPy: checked here too)."""


@pytest.mark.parametrize("name", list(EMPTY))
def test_transformed_values_and_gradients_of_empty_arrays_are_pytorchs(name, backend, monkeypatch):
    from symgrad.symbolic.codegen.backends import BackendInputError

    f, shape = EMPTY[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _torch_run(f, shape)
        if backend == "c" and name in C_REFUSES:
            with pytest.raises(BackendInputError, match="empty at these inputs"):
                _transform_run(f, shape, backend)
            monkeypatch.setenv("SYMGRAD_AUTO", "c")  # the C tier, for functions compiled from now on
            symgrad.symbolic.compile_cache_clear()
            _compare(_transform_run(f, shape, "auto"), expected)
        else:
            _compare(_transform_run(f, shape, backend), expected)


def test_a_c_loop_with_no_point_refuses_a_non_empty_output(cc):
    """One fused C loop computes every output; an empty loop computes none of a non-empty
    output, which then raises (``backend="auto"`` computes that call with NumPy)."""
    from symgrad.symbolic import ArrayVar, compile_exprs
    from symgrad.symbolic.codegen.backends import BackendInputError

    x, c = ArrayVar("x", (2, 0)), ArrayVar("c", ())
    with pytest.raises(BackendInputError, match="empty at these inputs"):
        compile_exprs([x, c], [x * 2, c + 1], backend="c", cache=False)(np.ones((2, 0)), 1.0)
    out = compile_exprs([x, c], [x * 2, c + 1], backend="auto", cache=False)(np.ones((2, 0)), 1.0)
    assert out[0].shape == (2, 0) and out[1] == 2.0
