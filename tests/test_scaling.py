"""Chunked evaluation (``symgrad.chunked``), pickled compiled functions, and Dask.

Results are checked against hand-written NumPy formulas on the whole batch, for chunk
sizes with and without a remainder, one row per chunk, and one chunk for everything.
Misuse (a mean over the batch, a function that mixes rows, wrong arguments) must raise a
clear error.  Peak memory is counted by ``tracemalloc`` (NumPy reports its allocations to
it): it must follow the chunk size, not the number of rows.  The Dask tests run on a
``distributed.LocalCluster`` of two worker processes on 127.0.0.1 and skip when Dask is
not installed.
"""
from __future__ import annotations

import functools
import pickle
import sys
import tracemalloc

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import NotAdditiveError, chunked


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ============================================================================ cases
# name -> (function, make args from (rng, n, dtype), batch_argnums, hand-written reference
#          on the whole batch returning the same structure)
def _least_squares():
    f = symgrad.value_and_grad(lambda w, X, y: ((X @ w - y) ** 2).sum(), argnums=(0, 1))

    def args(rng, n, dtype):
        return [rng.normal(size=3).astype(dtype), rng.normal(size=(n, 3)).astype(dtype),
                rng.normal(size=n).astype(dtype)]

    def reference(w, X, y):
        r = X @ w - y
        return (r ** 2).sum(), (2 * X.T @ r, 2 * np.outer(r, w))

    return f, args, (1, 2), reference


def _logistic():
    f = symgrad.grad(lambda W, b, X, Y: symgrad.nn.functional.binary_cross_entropy_with_logits(
        X @ W + b, Y, reduction="sum"), argnums=(0, 1))

    def args(rng, n, dtype):
        return [rng.normal(size=(4, 2)).astype(dtype), rng.normal(size=2).astype(dtype),
                rng.normal(size=(n, 4)).astype(dtype), (rng.random(size=(n, 2)) > 0.5).astype(dtype)]

    def reference(W, b, X, Y):
        g = _sigmoid(X @ W + b) - Y
        return X.T @ g, g.sum(0)

    return f, args, (2, 3), reference


def _per_row_numpy():
    """A plain NumPy function (no symgrad): per-row values and a summed statistic."""
    def f(X, scale):
        return np.tanh(X) * scale, (X ** 2).sum(0)

    def args(rng, n, dtype):
        return [rng.normal(size=(n, 2, 2)).astype(dtype), dtype(1.5)]

    return f, args, 0, f


def _sympy_elementwise():
    """A SymPy expression of plain symbols, evaluated elementwise over the rows."""
    x, y = sp.symbols("x y", real=True)
    f = symgrad.value_and_grad(sp.sin(x) * y ** 2, (0, 1), args=(x, y))

    def args(rng, n, dtype):
        return [rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)]

    def reference(x, y):
        return np.sin(x) * y ** 2, (np.cos(x) * y ** 2, 2 * y * np.sin(x))

    return f, args, (0, 1), reference


CASES = {"least squares": _least_squares, "logistic regression": _logistic, "plain NumPy": _per_row_numpy,
         "SymPy elementwise": _sympy_elementwise}
# (rows, chunk_size): remainder, no remainder, one row per chunk, one chunk, chunk = rows - 1
SIZES = [(103, 10), (100, 25), (7, 1), (50, 64), (9, 8)]


def _leaves(tree):
    if isinstance(tree, tuple):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [np.asarray(tree)]


def _assert_same(got, expected, dtype):
    got_leaves, expected_leaves = _leaves(got), _leaves(expected)
    assert len(got_leaves) == len(expected_leaves)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    for g, e in zip(got_leaves, expected_leaves):
        assert g.shape == np.shape(e)
        assert g.dtype == dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows,chunk_size", SIZES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_chunked_matches_the_whole_batch_formula(case, rows, chunk_size, dtype):
    f, make_args, batch, reference = CASES[case]()
    args = make_args(np.random.default_rng(rows * 100 + chunk_size), rows, dtype)
    out = chunked(f, chunk_size=chunk_size, batch_argnums=batch)(*args)
    _assert_same(out, reference(*[np.asarray(a, dtype=np.float64) for a in args]), dtype)


def test_named_outputs_stay_a_named_tuple():
    a = sp.Symbol("a", real=True)
    compiled = symgrad.symbolic.compile_exprs([a], [2 * a, a ** 2], output_names=["twice", "square"],
                                              output_shapes=[None, None], cache=False)
    out = chunked(compiled, chunk_size=2, batch_argnums=0)(np.arange(5.0))
    assert out._fields == ("twice", "square")
    assert out.twice.tolist() == [0, 2, 4, 6, 8] and out.square.tolist() == [0, 1, 4, 9, 16]


def test_integer_and_boolean_outputs_are_combined_exactly():
    X = np.random.default_rng(10).normal(size=(23, 3))
    counts, positive = chunked(lambda X: ((X > 0).sum(0), X > 0), chunk_size=5, batch_argnums=0)(X)
    assert counts.dtype.kind == "i" and positive.dtype == bool
    np.testing.assert_array_equal(counts, (X > 0).sum(0))
    np.testing.assert_array_equal(positive, X > 0)


def test_a_memory_map_is_read_chunk_by_chunk(tmp_path):
    rng = np.random.default_rng(2)
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=(1000, 3))
    X[:] = rng.normal(size=(1000, 3))
    w = rng.normal(size=3)
    g = chunked(symgrad.grad(lambda w, X: ((X @ w) ** 2).sum()), chunk_size=128, batch_argnums=1)(w, X)
    np.testing.assert_allclose(g, 2 * np.asarray(X).T @ (np.asarray(X) @ w), rtol=1e-12)


def test_one_compilation_per_chunk_shape():
    """The full chunk and the remainder, plus the probe's two rows and one row."""
    f = symgrad.value_and_grad(lambda w, X: (X @ w).cos().sum() * 0.625)  # a structure no other test uses
    c = chunked(f, chunk_size=16, batch_argnums=1)
    rng = np.random.default_rng(3)
    w = rng.normal(size=2)
    before = symgrad.compile_cache_info().misses
    c(w, rng.normal(size=(16 * 5 + 3, 2)))
    assert symgrad.compile_cache_info().misses - before == 4
    c(w, rng.normal(size=(16 * 9 + 3, 2)))  # same chunk shapes: nothing new
    assert symgrad.compile_cache_info().misses - before == 4


# ============================================================================ misuse
def _mean_loss():
    return symgrad.value_and_grad(lambda w, X: ((X @ w) ** 2).mean()), 1, "is not a sum over the batch"


def _divided_by_rows():
    return symgrad.grad(lambda w, X: (X @ w).exp().sum() / X.shape[0]), 1, "is not a sum over the batch"


def _centred_rows():
    return (lambda X: X - X.mean(0)), 0, "mixes the rows of the batch"


def _gram_matrix():
    return (lambda X: X @ X.T), 0, "its shape depends on the number of rows"


def _batch_max():
    return (lambda X: X.max(0)), 0, "is not a sum over the batch"


MISUSES = {"mean": _mean_loss, "divided by the number of rows": _divided_by_rows, "centred by the batch mean":
           _centred_rows, "Gram matrix": _gram_matrix, "maximum over the batch": _batch_max}


@pytest.mark.parametrize("case", sorted(MISUSES))
def test_a_function_that_is_not_a_sum_over_the_batch_raises(case):
    f, batch, message = MISUSES[case]()
    rng = np.random.default_rng(4)
    args = [rng.normal(size=2), rng.normal(size=(20, 2))] if batch == 1 else [rng.normal(size=(20, 2))]
    with pytest.raises(NotAdditiveError, match=message):
        chunked(f, chunk_size=8, batch_argnums=batch)(*args)


def test_a_chunk_whose_outputs_do_not_fit_the_probe_raises():
    """``X[:3]`` looks per-row on two rows, but a 10-row chunk gives 3 rows back."""
    with pytest.raises(NotAdditiveError, match=r"output 0 of the chunk at row 0 \(10 rows\) has shape \(3, 2\), "
                                               r"expected \(10, 2\)"):
        chunked(lambda X: X[:3] * 2, chunk_size=10, batch_argnums=0)(np.ones((25, 2)))


def test_the_mean_error_says_what_to_do():
    f, batch, _ = _mean_loss()
    with pytest.raises(NotAdditiveError) as info:
        chunked(f, chunk_size=3, batch_argnums=batch)(np.ones(2), np.arange(10.0).reshape(5, 2))
    assert "output 0 (value)" in str(info.value) and ".sum() instead of .mean()" in str(info.value)


BAD_OPTIONS = [
    (dict(chunk_size=0, batch_argnums=0), ValueError, "chunk_size must be at least 1 row, got 0"),
    (dict(chunk_size=-5, batch_argnums=0), ValueError, "got -5"),
    (dict(chunk_size=2.5, batch_argnums=0), TypeError, "whole number of rows, got 2.5"),
    (dict(chunk_size=True, batch_argnums=0), TypeError, "got True"),
    (dict(chunk_size=4, batch_argnums=()), ValueError, "batch_argnums is empty"),
    (dict(chunk_size=4, batch_argnums=(1, 1)), ValueError, "lists an argument twice"),
    (dict(chunk_size=4, batch_argnums=-1), ValueError, "whole numbers >= 0"),
    (dict(chunk_size=4, batch_argnums="X"), ValueError, "whole numbers >= 0"),
]


@pytest.mark.parametrize("options,error,message", BAD_OPTIONS)
def test_bad_options_raise(options, error, message):
    with pytest.raises(error, match=message):
        chunked(np.sin, **options)


def _pair(X, y):
    return X.sum(0) + y.sum()


BAD_CALLS = [
    ((np.ones((5, 2)), np.ones(4)), ValueError, r"different numbers of rows \(argument 0: 5, argument 1: 4\)"),
    ((np.ones((5, 2)),), TypeError, "names argument 1, but the function was called with 1 positional"),
    ((np.ones((5, 2)), np.float64(3.0)), ValueError, r"batch argument 1 is a scalar \(shape \(\)\)"),
    ((np.ones((0, 2)), np.ones(0)), ValueError, "no rows"),
]


@pytest.mark.parametrize("args,error,message", BAD_CALLS)
def test_bad_calls_raise(args, error, message):
    with pytest.raises(error, match=message):
        chunked(_pair, chunk_size=2, batch_argnums=(0, 1))(*args)


def test_an_expression_over_a_fixed_shape_array_symbol_is_refused():
    a, X = sp.Symbol("a", real=True), symgrad.symbolic.ArrayVar("X", (100, 3))
    with pytest.raises(ValueError, match=r"array symbol X of fixed shape \(100, 3\)"):
        chunked(symgrad.grad(a * X, args=(a, X)), chunk_size=10, batch_argnums=1)


def test_outputs_that_are_zero_on_the_probe_rows_warn():
    X = np.zeros((10, 2))
    X[5:] = 1.0
    with pytest.warns(RuntimeWarning, match="could not verify"):
        out = chunked(lambda X: (X ** 2).sum(0), chunk_size=3, batch_argnums=0)(X)
    np.testing.assert_array_equal(out, [5.0, 5.0])


# ============================================================================ memory
def _peak(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_follows_the_chunk_size_not_the_rows():
    rng = np.random.default_rng(5)
    features = 8
    f = symgrad.value_and_grad(lambda w, X, y: ((X @ w - y).tanh() ** 2).sum())
    w = rng.normal(size=features)
    data = {n: (rng.normal(size=(n, features)), rng.normal(size=n)) for n in (20_000, 80_000)}
    small, large = chunked(f, chunk_size=500, batch_argnums=(1, 2)), chunked(f, chunk_size=2_000, batch_argnums=(1, 2))
    for c in (small, large):  # trace, compile and probe before measuring
        c(w, *data[20_000])
    f(w, *data[20_000]), f(w, *data[80_000])
    peaks = {(c.chunk_size, n): _peak(lambda: c(w, *data[n])) for c in (small, large) for n in data}
    whole = {n: _peak(lambda: f(w, *data[n])) for n in data}
    row_bytes = features * 8
    # 4x the rows: the peak grows by less than one chunk of X; 4x the chunk: it more than doubles
    assert peaks[500, 80_000] - peaks[500, 20_000] < 500 * row_bytes
    assert peaks[2_000, 80_000] - peaks[2_000, 20_000] < 500 * row_bytes
    # the chunk's temporaries (freed after their last use, so the fixed part weighs more: 1.9x measured)
    assert peaks[2_000, 80_000] > 1.5 * peaks[500, 80_000]
    assert peaks[500, 80_000] < 20 * 500 * row_bytes
    # without chunks the peak grows with the rows (so this test can fail)
    assert whole[80_000] - whole[20_000] > 60_000 * 8  # at least one float64 temporary per row


# ============================================================================ pickling
def _compiled_cases():
    rng = np.random.default_rng(6)
    deep = symgrad.grad(lambda x: functools.reduce(lambda t, _: t.sin() * 1.01, range(300), x).sum())
    gather = symgrad.value_and_grad(lambda a, b: (a[0:3:2] * 3).sum() + symgrad.cat([a[1:], b * 2]).exp().sum()
                                    + (a.relu() * b[:3]).sum(), argnums=(0, 1))
    least = symgrad.value_and_grad(lambda w, X: ((X @ w).sigmoid() + (X @ w).softplus()).sum())
    return {
        "a chain of 300 sines": (deep, [rng.normal(size=3)]),
        "relu, slices, cat": (gather, [rng.normal(size=3), rng.normal(size=4)]),
        "matmul and the stable functions": (least, [rng.normal(size=2), rng.normal(size=(5, 2))]),
    }


@pytest.mark.parametrize("case", ["a chain of 300 sines", "relu, slices, cat",
                                  "matmul and the stable functions"])
def test_a_compiled_function_pickles_as_its_closed_forms(case):
    transform, args = _compiled_cases()[case]
    transform(*args)
    compiled = transform.compiled
    inputs = [np.asarray(a) for a in args]
    assert len(compiled.inputs) == len(args)  # nothing captured: the arguments are all its inputs
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy is not compiled and copy.source == compiled.source
    assert copy.inputs == compiled.inputs and copy.outputs == compiled.outputs
    for got, expected in zip(copy(*inputs), compiled(*inputs)):
        np.testing.assert_array_equal(got, expected)


# ============================================================================ Dask
@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test file
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.parametrize("case", ["least squares", "logistic regression", "plain NumPy"])
def test_dask_arrays_run_on_a_local_cluster(dask_client, case):
    import dask
    import dask.array as da

    f, make_args, batch, reference = CASES[case]()
    batch = (batch,) if isinstance(batch, int) else batch
    rows = 203
    args = make_args(np.random.default_rng(7), rows, np.float64)
    lazy_args = [da.from_array(a, chunks=(37,) + a.shape[1:]) if i in batch else a for i, a in enumerate(args)]
    out = chunked(f, chunk_size=50, batch_argnums=batch)(*lazy_args)
    assert all(isinstance(leaf, da.Array) for leaf in _leaves_lazy(out))
    (computed,) = dask.compute(out)
    _assert_same(computed, reference(*args), np.float64)
    if case != "plain NumPy":  # the worker processes traced and compiled the blocks themselves
        assert sum(dask_client.run(lambda: symgrad.compile_cache_info().misses).values()) > 0


def _leaves_lazy(tree):
    return [leaf for item in tree for leaf in _leaves_lazy(item)] if isinstance(tree, tuple) else [tree]


def test_dask_blocks_mixed_with_numpy_batch_arguments(dask_client):
    import dask.array as da

    rng = np.random.default_rng(8)
    X, y, w = rng.normal(size=(120, 3)), rng.normal(size=120), rng.normal(size=3)
    g = chunked(symgrad.grad(lambda w, X, y: ((X @ w - y) ** 2).sum()), chunk_size=32, batch_argnums=(1, 2))
    lazy = g(w, da.from_array(X, chunks=(50, 3)), y)
    assert lazy.shape == (3,)
    np.testing.assert_allclose(lazy.compute(), 2 * X.T @ (X @ w - y), rtol=1e-12)


def test_dask_refuses_what_numpy_refuses(dask_client):
    import dask.array as da

    X = da.from_array(np.random.default_rng(9).normal(size=(40, 2)), chunks=10)
    with pytest.raises(NotAdditiveError, match="is not a sum over the batch"):
        chunked(symgrad.grad(lambda w, X: (X @ w).mean()), chunk_size=10, batch_argnums=1)(np.ones(2), X)
    with pytest.raises(TypeError, match="argument 0 is a Dask array but not a batch argument"):
        chunked(symgrad.grad(lambda w, X: (X @ w).sum()), chunk_size=10, batch_argnums=1)(
            da.ones(2, chunks=2), X)
    with pytest.raises(NotAdditiveError, match=r"has shape \(3, 2\), expected \(10, 2\)"):
        chunked(lambda X: X[:3] * 2, chunk_size=10, batch_argnums=0)(X).compute()


# ============================================================================ the docs page
def test_the_scaling_page_runs_and_prints_what_it_shows():
    """``docs/scaling.md``'s python blocks, run like the tutorials (``tests/test_docs.py``)."""
    pytest.importorskip("dask.array")
    from pathlib import Path

    from .test_docs import matches, run_page

    before = symgrad.get_progress()
    try:
        results = run_page(Path(__file__).resolve().parent.parent / "docs" / "scaling.md")
    finally:
        symgrad.set_progress(before)
    assert len(results) == 4
    for code, expected, printed, line in results:
        assert expected is not None and matches(expected, printed), f"scaling.md:{line}\n{code}\n---\n{printed}"
