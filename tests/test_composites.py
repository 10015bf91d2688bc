"""The composite ops (``symgrad/tape/composites.py``), one row each, on every path.

Each row is a function written once for a library ``L`` (``symgrad`` or ``torch``), so the
same code runs on both. For every row, on random inputs from the session seed:

* the forward equals PyTorch's (float64; float32 within float32's rounding);
* the gradient of a random weighted sum of the outputs equals PyTorch's, on the tape
  engine and on the symbolic engine;
* the traced transform ``symgrad.grad`` agrees with a fresh eager tape run, at two
  different inputs of the same shapes (so a value frozen at the first call would show);
* central finite differences agree (``symgrad.gradcheck``).

Then the bad inputs: each raises naming the problem.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

torch = pytest.importorskip("torch")
import torch.nn.functional as torch_F  # noqa: E402  (after the skip)

import symgrad.nn.functional as F  # noqa: E402


def _functional(L):
    return F if L is symgrad else torch_F


def _long(L, values):
    return L.tensor(np.asarray(values, dtype=np.int64))


ROWS = {
    "flip": ((3, 4, 2), lambda L, x: L.flip(x, (0, 2))),
    "flip_method": ((5,), lambda L, x: x.flip(0)),
    "fliplr": ((3, 4), lambda L, x: L.fliplr(x)),
    "flipud": ((3, 4), lambda L, x: L.flipud(x)),
    "roll": ((3, 4), lambda L, x: L.roll(x, (1, -3), (0, 1))),
    "roll_flat": ((3, 4), lambda L, x: L.roll(x, 5)),
    "movedim": ((2, 3, 4), lambda L, x: L.movedim(x, (0, 1), (2, 0))),
    "moveaxis": ((2, 3, 4), lambda L, x: L.moveaxis(x, -1, 0)),
    "ravel": ((2, 3), lambda L, x: L.ravel(x)),
    "unbind": ((3, 2), lambda L, x: L.unbind(x, 1)),
    "chunk": ((7, 2), lambda L, x: L.chunk(x, 3, 0)),
    "split_size": ((7, 2), lambda L, x: L.split(x, 3)),
    "split_sections": ((2, 6), lambda L, x: L.split(x, [1, 0, 5], dim=1)),
    "select": ((3, 4), lambda L, x: L.select(x, 1, -1)),
    "narrow": ((3, 5), lambda L, x: L.narrow(x, 1, 1, 3)),
    "masked_fill": ((3, 4), lambda L, x: x.masked_fill(L.tensor(np.arange(12).reshape(3, 4) % 3 == 0), -2.5)),
    "masked_fill_broadcast": ((3, 4), lambda L, x: L.masked_fill(x, L.tensor(np.array([True, False, True, False])),
                                                                 0.0)),
    "index_select": ((4, 3), lambda L, x: L.index_select(x, 0, _long(L, [3, 0, 3, 1]))),
    "gather": ((3, 4), lambda L, x: L.gather(x, 1, _long(L, [[0, 3], [2, 2], [1, 0]]))),
    "gather_dim0": ((3, 4), lambda L, x: x.gather(0, _long(L, [[2, 0, 1, 1]]))),
    "scatter_add": ((3, 4), lambda L, x: (x[:, :3] * 0.5).scatter_add(
        1, _long(L, [[0, 2, 0], [1, 1, 1], [2, 0, 1]]), x[:, 1:] ** 2)),
    "scatter_add_dim0": ((4, 3), lambda L, x: L.scatter_add(x, 0, _long(L, [[3, 0, 3], [3, 1, 0]]), x[1:3].flip(0))),
    "take_along_dim": ((3, 4), lambda L, x: L.take_along_dim(x, _long(L, [[3], [0], [1]]), dim=1)),
    "take_along_dim_flat": ((3, 4), lambda L, x: L.take_along_dim(x, _long(L, [11, 0, 5]))),
    "atleast_1d": ((), lambda L, x: L.atleast_1d(x)),
    "atleast_2d": ((3,), lambda L, x: L.atleast_2d(x)),
    "atleast_3d": ((3, 2), lambda L, x: L.atleast_3d(x)),
    "outer": ((4,), lambda L, x: L.outer(x, x[:3] * 2)),
    "inner": ((2, 3), lambda L, x: L.inner(x, x.flip(0) + 1)),
    "kron": ((2, 3), lambda L, x: L.kron(x, x[:, :2] - 1)),
    "trace": ((3, 3), lambda L, x: L.trace(x)),
    "diagonal": ((3, 4), lambda L, x: L.diagonal(x)),
    "diagonal_offset": ((2, 3, 4), lambda L, x: L.diagonal(x, -1, 2, 1)),
    "diag_of_vector": ((3,), lambda L, x: L.diag(x, 1)),
    "diag_of_matrix": ((3, 4), lambda L, x: L.diag(x, -1)),
    "triu": ((2, 3, 4), lambda L, x: L.triu(x, 1)),
    "tril": ((4, 3), lambda L, x: L.tril(x)),
    "var": ((3, 4), lambda L, x: L.var(x, 1)),
    "var_all_biased": ((3, 4), lambda L, x: L.var(x, correction=0)),
    "var_keepdim": ((3, 4, 2), lambda L, x: x.var((0, 2), keepdim=True)),
    "std": ((5, 2), lambda L, x: L.std(x, 0)),
    "std_unbiased_false": ((5, 2), lambda L, x: x.std(unbiased=False)),
    "tile": ((2, 3), lambda L, x: L.tile(x, (2, 1, 2))),
    "repeat": ((2, 3), lambda L, x: x.repeat(3, 1)),
    "repeat_interleave": ((2, 3), lambda L, x: L.repeat_interleave(x, 2, dim=1)),
    "repeat_interleave_counts": ((3, 2), lambda L, x: L.repeat_interleave(x, _long(L, [1, 0, 3]), dim=0)),
    "repeat_interleave_flat": ((2, 2), lambda L, x: L.repeat_interleave(x, 2)),
    "einsum_matmul": ((3, 4), lambda L, x: L.einsum("ij,jk->ik", x.transpose(0, 1), x)),
    "einsum_batch_dot": ((4, 3), lambda L, x: L.einsum("bi,bi->b", x, x.flip(0))),
    "einsum_three": ((3, 3), lambda L, x: L.einsum("ij,jk,kl->li", x, x * 2, x + 1)),
    "einsum_implicit_summed": ((2, 3, 4), lambda L, x: L.einsum("ijk,kj", x, x[0].transpose(0, 1))),
    "einsum_outer_and_total": ((3,), lambda L, x: L.einsum("i,j->", x, x ** 2)),
    "tensordot": ((3, 4), lambda L, x: L.tensordot(x, x.transpose(0, 1), dims=1)),
    "tensordot_pairs": ((2, 3, 4), lambda L, x: L.tensordot(x, x * 3, dims=([2, 1], [2, 1]))),
    "vector_norm_1": ((3, 4), lambda L, x: L.linalg.vector_norm(x, 1)),
    "vector_norm_3_dim": ((3, 4), lambda L, x: L.linalg.vector_norm(x, 3, 1, True)),
    "vector_norm_inf": ((3, 4), lambda L, x: L.linalg.vector_norm(x, float("inf"))),
    "vector_norm_minus_inf_dim": ((3, 4), lambda L, x: L.linalg.vector_norm(x, float("-inf"), 0)),
    "norm_method_p": ((2, 5), lambda L, x: x.norm(1.5, dim=1)),
    "sort": ((3, 5), lambda L, x: L.sort(x, 1)),
    "sort_descending_dim0": ((4, 2), lambda L, x: x.sort(0, descending=True).values),
    "topk": ((3, 5), lambda L, x: L.topk(x, 2)),
    "topk_smallest": ((6,), lambda L, x: x.topk(3, largest=False).values),
    "sort_stable": ((3, 5), lambda L, x: L.sort(x, dim=0, stable=True).values),
    "topk_values": ((3, 5), lambda L, x: L.topk(x, 2, 1).values),
    "pad": ((2, 3), lambda L, x: _functional(L).pad(x, (1, 2, 0, 1), value=0.5)),
    "pad_crop": ((3, 4), lambda L, x: _functional(L).pad(x, (-1, 2))),
}
# Pure NumPy data for "repeat_interleave_counts" would be frozen by a trace; its counts
# are a tensor the traced function closes over, read with tolist() at each call.


def _outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _loss(L, outs, weights):
    total = 0
    for out, w in zip(outs, weights):
        total = total + (out * L.tensor(w)).sum()
    return total


def _weights(rng, outs) -> list:
    return [rng.standard_normal(tuple(o.shape)) for o in outs]


def _run(L, function, data, weights=None, rng=None):
    x = L.tensor(data, requires_grad=True)
    outs = _outputs(function(L, x))
    if weights is None:
        weights = _weights(rng, outs)
    _loss(L, outs, weights).backward()
    return [o.detach().numpy() for o in outs], x.grad.numpy() if x.grad is not None else np.zeros_like(data), weights


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("row", sorted(ROWS))
def test_forward_and_gradient_match_torch(row, engine, rng):
    shape, function = ROWS[row]
    data = rng.standard_normal(shape)
    expected, expected_grad, weights = _run(torch, function, data, rng=rng)
    with symgrad.backward_engine(engine):
        got, got_grad, _ = _run(symgrad, function, data, weights)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_grad, expected_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_float32_forward_matches_torch(row, rng):
    shape, function = ROWS[row]
    data = rng.standard_normal(shape).astype(np.float32)
    got = _outputs(function(symgrad, symgrad.tensor(data)))
    expected = _outputs(function(torch, torch.tensor(data)))
    for a, b in zip(got, expected):
        assert (a.dtype == symgrad.float32) == b.is_floating_point()
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=2e-6)


WITH_INDICES = {"sort", "topk"}
"""Rows whose outputs include the indices of an order, computed from the data: a transform
refuses to use them (below). The values of sort and topk are traced as any op's."""


@pytest.mark.parametrize("row", sorted(set(ROWS) - WITH_INDICES))
def test_traced_gradient_matches_a_fresh_eager_run(row, rng):
    shape, function = ROWS[row]
    outs = _outputs(function(symgrad, symgrad.tensor(rng.standard_normal(shape))))
    weights = _weights(rng, outs)

    def loss(x):
        return _loss(symgrad, _outputs(function(symgrad, x)), weights)

    traced = symgrad.value_and_grad(loss)
    for _ in range(2):  # the second call reuses the trace: a frozen value would show here
        data = rng.standard_normal(shape)
        value, gradient = traced(data)
        with symgrad.backward_engine("tape"):
            x = symgrad.tensor(data, requires_grad=True)
            eager = loss(x)
            eager.backward()
        np.testing.assert_allclose(value, eager.item(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gradient, x.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_gradient_matches_finite_differences(row, rng):
    shape, function = ROWS[row]
    x = symgrad.tensor(rng.standard_normal(shape), requires_grad=True)
    weights = _weights(rng, _outputs(function(symgrad, x)))
    assert symgrad.gradcheck(lambda t: _loss(symgrad, _outputs(function(symgrad, t)), weights), [x])


@pytest.mark.parametrize("row", sorted(WITH_INDICES))
def test_a_transform_refuses_indices_computed_from_its_input(row, rng):
    """Using the indices of a sort inside a traced function would freeze the first call's
    order: it raises (the values alone are traced, above)."""
    shape, function = ROWS[row]
    f = symgrad.grad(lambda x: _loss(symgrad, _outputs(function(symgrad, x)), [1.0, 1.0]))
    with pytest.raises(symgrad.UntraceableError, match="(sort|topk)"):
        f(rng.standard_normal(shape))


def test_gather_index_is_an_input_of_the_trace(rng):
    """The index tensor of ``gather`` is an argument: a new index at the second call is used."""
    data = rng.standard_normal((3, 4))
    f = symgrad.value_and_grad(lambda x, i: symgrad.gather(x, 1, i).sum())
    for index in ([[0], [1], [2]], [[3], [3], [0]]):
        value, gradient = f(data, np.array(index))
        expected = np.take_along_axis(data, np.array(index), 1).sum()
        np.testing.assert_allclose(value, expected)
        want = np.zeros_like(data)
        np.add.at(want, (np.arange(3)[:, None], np.array(index)), 1.0)
        np.testing.assert_array_equal(gradient, want)


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_count_nonzero_matches_torch(dim, rng):
    data = rng.integers(-1, 2, size=(4, 5)).astype(float)
    got = symgrad.count_nonzero(symgrad.tensor(data), dim=dim)
    expected = torch.count_nonzero(torch.tensor(data), dim=dim)
    assert got.dtype == symgrad.int64
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


BAD = [
    ("flip", lambda x: x.flip((0, 0)), ValueError, "same dimension"),
    ("flip dim", lambda x: x.flip(3), IndexError, "out of range"),
    ("roll lengths", lambda x: symgrad.roll(x, (1, 2), 0), ValueError, "same length"),
    ("movedim lengths", lambda x: symgrad.movedim(x, (0, 1), 0), ValueError, "same length"),
    ("select index", lambda x: x.select(0, 3), IndexError, "out of range"),
    ("narrow length", lambda x: x.narrow(1, 2, 3), IndexError, "exceeds"),
    ("split sections", lambda x: x.split([1, 1], 0), ValueError, "sum to"),
    ("chunk count", lambda x: x.chunk(0), ValueError, "positive"),
    ("masked_fill dtype", lambda x: x.masked_fill(symgrad.tensor([1.0, 0.0, 1.0, 0.0]), 0.0), TypeError, "bool"),
    ("masked_fill shape", lambda x: x.masked_fill(symgrad.tensor([True, False]), 0.0), RuntimeError, "broadcast"),
    ("gather dtype", lambda x: x.gather(1, symgrad.tensor([[0.0]])), TypeError, "integer"),
    ("gather ndim", lambda x: x.gather(1, _long(symgrad, [0])), RuntimeError, "dimensions"),
    ("gather size", lambda x: x.gather(1, _long(symgrad, [[0]] * 4)), RuntimeError, "exceeds"),
    ("scatter_add ndim", lambda x: x.scatter_add(1, _long(symgrad, [0]), x), RuntimeError, "number of dimensions"),
    ("scatter_add dtype", lambda x: x.scatter_add(1, _long(symgrad, [[0]]), x.float()), RuntimeError, "dtype"),
    ("scatter_add size", lambda x: x.scatter_add(1, _long(symgrad, [[0]] * 4), x), RuntimeError, "exceeds"),
    ("scatter_add value", lambda x: x.scatter_add(1, _long(symgrad, [[4]]), x), IndexError, r"\[0, 4\)"),
    ("index_select ndim", lambda x: x.index_select(0, _long(symgrad, [[0]])), IndexError, "1-D"),
    ("outer ndim", lambda x: symgrad.outer(x, x), RuntimeError, "1-D"),
    ("inner sizes", lambda x: symgrad.inner(x, x.transpose(0, 1)), RuntimeError, "last dimensions"),
    ("trace ndim", lambda x: symgrad.trace(x[0]), RuntimeError, "matrix"),
    ("diagonal dims", lambda x: x.diagonal(0, 1, 1), RuntimeError, "same dimension"),
    ("triu ndim", lambda x: symgrad.triu(x[0]), RuntimeError, "at least 2"),
    ("var both", lambda x: x.var(correction=1, unbiased=True), TypeError, "not both"),
    ("tile negative", lambda x: symgrad.tile(x, (-1,)), ValueError, "non-negative"),
    ("repeat count", lambda x: x.repeat(2), RuntimeError, "smaller"),
    ("repeat_interleave counts", lambda x: x.repeat_interleave([1, 2], dim=1), ValueError, "one per slice"),
    ("topk k", lambda x: x.topk(5, 1), RuntimeError, "out of range"),
    ("einsum operands", lambda x: symgrad.einsum("ij,jk->ik", x), ValueError, "2 operands"),
    ("einsum ellipsis", lambda x: symgrad.einsum("...j->j", x), NotImplementedError, "ellipses"),
    ("einsum diagonal", lambda x: symgrad.einsum("ii->i", x[:, :3]), NotImplementedError, "repeated"),
    ("einsum sizes", lambda x: symgrad.einsum("ij,ij->i", x, x.transpose(0, 1)), ValueError, "sizes"),
    ("einsum output", lambda x: symgrad.einsum("ij->k", x), ValueError, "distinct letters"),
    ("einsum dims", lambda x: symgrad.einsum("i->i", x), ValueError, "names 1 dimensions"),
    ("tensordot sizes", lambda x: symgrad.tensordot(x, x, dims=1), ValueError, "differ"),
    ("tensordot dims", lambda x: symgrad.tensordot(x, x, dims=3), ValueError, "exceeds"),
    ("vector_norm ord", lambda x: x.norm(0.5), ValueError, "ord must be"),
    ("pad odd", lambda x: F.pad(x, (1,)), ValueError, "even number"),
    ("pad mode", lambda x: F.pad(x, (1, 1), mode="reflect"), NotImplementedError, "'constant'"),
]


@pytest.mark.parametrize("name, call, error, words", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise_naming_the_problem(name, call, error, words):
    x = symgrad.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    with pytest.raises(error, match=words):
        call(x)
    assert x.grad is None


NAMED = ["flip", "fliplr", "flipud", "roll", "unbind", "chunk", "select", "narrow", "masked_fill", "index_select",
         "gather", "take_along_dim", "trace", "diagonal", "triu", "tril", "var", "std", "tile", "repeat", "pad",
         "sort", "sort_stable", "topk"]


@pytest.mark.parametrize("row", NAMED)
def test_grad_fn_names_are_pytorchs(row, rng):
    shape, function = ROWS[row]
    data = rng.standard_normal(shape)
    got = _outputs(function(symgrad, symgrad.tensor(data, requires_grad=True)))
    expected = _outputs(function(torch, torch.tensor(data, requires_grad=True)))
    assert [type(o.grad_fn).__name__ for o in expected] == [o.grad_fn.name() if o.grad_fn else "NoneType" for o in got]
