"""Port of HIPS autograd's ``tests/test_numpy.py``: gradients of NumPy's array functions.

autograd runs ``check_grads`` (first and second order, against finite differences) on each
function of a random array. Here each row is the same function written with symgrad's
names (``symgrad.flip``, ``x.cumsum(0)``, ``symgrad.linalg.vector_norm`` ...; where autograd
calls ``np.<f>`` and NumPy and PyTorch spell it alike, the NumPy spelling on a tensor is
used too), and each is checked four ways on the session's random inputs: ``symgrad.grad``
against central differences of the function; eager ``.backward()`` on each engine against
``symgrad.grad``; and a Hessian-vector product (``grad`` of ``grad`` along a random
direction) against central differences of the gradient, autograd's second order.

Rows that autograd has and symgrad does not, each for a reason: ``rot90``, ``r_``/``c_``,
``append``, ``linspace`` and ``gradient`` (no such functions); ``prod`` (no ``prod`` op
yet); ``trace`` with ``offset`` or on more than two dims (``symgrad.trace`` is PyTorch's,
a matrix's sum of the diagonal, so the offset rows use ``diagonal(offset).sum()``);
``cast_to_int`` and ``astype`` (dtype changes, covered by the op table's ``cast`` rows);
the ``box`` and list-of-boxes rows (autograd's boxing of Python lists has no counterpart).
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

from .conftest import central_grad

ROWS = {  # name: (input shape, function of a tensor returning a scalar or an array)
    "dot": ((4,), lambda x: symgrad.dot(x, x * 2.0)),
    "dot_matrix_vector": ((3, 4), lambda x: x @ x[0]),
    "outer": ((4,), lambda x: symgrad.outer(x, x[:3])),
    "max": ((3, 4), lambda x: x.max()),
    "max_axis": ((3, 4), lambda x: x.max(1).values),
    "max_axis_keepdims": ((3, 4), lambda x: x.max(0, keepdim=True).values),
    "min": ((3, 4), lambda x: x.min()),
    "min_axis": ((3, 4), lambda x: np.min(x, axis=1)),
    "sum_1": ((3, 4), lambda x: x.sum()),
    "sum_2": ((3, 4), lambda x: x.sum(0)),
    "sum_3": ((3, 4), lambda x: np.sum(x, axis=1, keepdims=True)),
    "sum_with_axis_tuple": ((2, 3, 4), lambda x: x.sum((0, 2))),
    "flipud": ((3, 4), lambda x: symgrad.flipud(x)),
    "fliplr": ((3, 4), lambda x: symgrad.fliplr(x)),
    "cumsum_axis0": ((3, 4), lambda x: x.cumsum(0)),
    "cumsum_axis1": ((3, 4), lambda x: np.cumsum(x, axis=1)),
    "cumsum_1d": ((5,), lambda x: x.cumsum(0)),
    "cumsum_no_axis": ((3, 4), lambda x: np.cumsum(x)),
    "mean_1": ((3, 4), lambda x: x.mean()),
    "mean_2": ((3, 4), lambda x: x.mean(0)),
    "mean_3": ((3, 4), lambda x: np.mean(x, axis=1, keepdims=True)),
    "index_ints": ((3, 4, 5), lambda x: x[1, 2, 3]),
    "index_slice": ((5, 6), lambda x: x[::-1, 2:4]),
    "index_lists": ((5, 6), lambda x: x[[0, 1, 2], :]),
    "index_mixed": ((5, 6, 4), lambda x: x[2, :, [1, 0]]),
    "index_slice_fanout": ((5,), lambda x: x[:3] * x[1:4] + x[2:]),
    "reshape_method": ((4, 3), lambda x: x.reshape(2, 6)),
    "ravel": ((4, 3), lambda x: symgrad.ravel(x)),
    "flatten": ((4, 3), lambda x: x.flatten()),
    "concatenate_axis_0": ((2, 3), lambda x: symgrad.cat([x, x * 2, x ** 2], 0)),
    "concatenate_axis_1": ((2, 3), lambda x: np.concatenate([x, x * 2], axis=1)),
    "trace": ((4, 4), lambda x: symgrad.trace(x)),
    "trace_offset": ((4, 5), lambda x: symgrad.diagonal(x, 2).sum()),
    "trace_extradims": ((2, 3, 4, 4), lambda x: symgrad.diagonal(x, -1, 0, 1).sum(-1)),
    "diag": ((4, 4), lambda x: symgrad.diag(x)),
    "make_diagonal": ((4,), lambda x: symgrad.diag(x, 1)),
    "diagonal": ((3, 4, 5), lambda x: symgrad.diagonal(x, 1, 1, 2)),
    "transpose": ((3, 3), lambda x: x.T),
    "roll": ((4, 5), lambda x: symgrad.roll(x, 2, 1)),
    "roll_no_axis": ((4, 5), lambda x: symgrad.roll(x, 2)),
    "triu": ((5, 5), lambda x: symgrad.triu(x, 2)),
    "tril": ((5, 5), lambda x: symgrad.tril(x, 2)),
    "clip": ((5, 5), lambda x: np.clip(x, 0.1, 1.1)),
    "var_ddof": ((4, 3), lambda x: symgrad.var(x, 1, correction=2)),
    "std_ddof": ((4, 3), lambda x: symgrad.std(x, 0, correction=1)),
    "where": ((5,), lambda x: symgrad.where(x > 0, x ** 2, -x)),
    "squeeze": ((1, 4, 1), lambda x: np.squeeze(x)),
    "repeat": ((2, 3), lambda x: symgrad.repeat_interleave(x, 2)),
    "repeat_axis1_rep1": ((2, 3), lambda x: symgrad.repeat_interleave(x, 1, dim=1)),
    "repeat_axis0": ((2, 3), lambda x: symgrad.repeat_interleave(x, 3, dim=0)),
    "expand_dims": ((2, 3), lambda x: np.expand_dims(x, 1)),
    "tensordot": ((2, 3, 4), lambda x: symgrad.tensordot(x, x * 2, ([0, 1], [0, 1]))),
    "multi_index": ((5,), lambda x: x[[0, 0]]),
    "multi_index2": ((5, 4), lambda x: x[[0, 1, 0], :]),
    "index_dot_slices": ((6, 4), lambda x: x[:3] @ x[3:].T),
    "nan_to_num": ((5,), lambda x: symgrad.nan_to_num(x * 2.0)),
    "maximum": ((2, 3), lambda x: symgrad.maximum(x, x.flip(0))),
    "einsum": ((3, 4), lambda x: symgrad.einsum("ij,kj->ik", x, x ** 2)),
}


def _scalar(f):
    """``f`` with its output summed against fixed weights (autograd's check_grads does the
    same with a random vector), so every output element reaches the gradient."""
    def loss(x):
        out = f(x)
        weights = np.cos(np.arange(out.numel()).reshape(tuple(out.shape)) + 0.5)
        return (out * symgrad.tensor(weights)).sum()
    return loss


@pytest.mark.parametrize("row", sorted(ROWS))
def test_grad_matches_central_differences(row, rng):
    shape, f = ROWS[row]
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(symgrad.grad(_scalar(f))(x), central_grad(_scalar(f), [x]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_eager_backward_matches_grad(engine, row, rng):
    shape, f = ROWS[row]
    x = rng.standard_normal(shape)
    t = symgrad.tensor(x, requires_grad=True)
    _scalar(f)(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), symgrad.grad(_scalar(f))(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_second_order_matches_differences_of_the_gradient(row, rng):
    shape, f = ROWS[row]
    x, v = rng.standard_normal(shape), rng.standard_normal(shape)
    gradient = symgrad.grad(_scalar(f))
    hvp = symgrad.grad(lambda t: (symgrad.grad(_scalar(f))(t) * symgrad.tensor(v)).sum())(x)
    eps = 1e-5
    expected = (gradient(x + eps * v) - gradient(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hvp, expected, rtol=1e-5, atol=1e-6)
