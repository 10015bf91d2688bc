"""Data beyond one machine's memory: evaluate a function chunk by chunk over a batch axis,
in memory (bounded peak memory) or lazily on Dask arrays (a Dask cluster).

:func:`chunked` wraps a function of arrays -- typically a compiled transform such as
``symgrad.value_and_grad(loss)`` of a loss that is a *sum* over the rows of its data -- and
returns a :class:`Chunked` callable.  Calling it slices the batch arguments (axis 0) into
chunks of ``chunk_size`` rows, evaluates the function on each chunk and combines the
outputs:

* an output that carries the batch axis (the gradient of the data, per-row values) is
  **concatenated** into one preallocated array;
* an output that does not (the loss value, the gradients of the parameters) is **summed**,
  which is only right when the function is a sum over the batch.

Which output is which, and whether combining is right, is *measured* once per input
layout (shapes after the batch axis, dtypes, the other arguments' shapes) by a probe: the
first two rows evaluated whole and as two one-row halves.  An output whose shape does not
change is summed and must equal the sum of the halves -- a *mean* over the batch fails and
raises :class:`NotAdditiveError` saying what to write instead; an output whose first axis
follows the rows is concatenated and must equal the halves concatenated (a function that
mixes rows, such as centring by the batch mean, fails the same way).  A compiled transform
is traced and compiled once per distinct chunk shape: the full chunk, the remainder, and the
probe's two rows and one row.

Dask arrays as batch arguments make the call lazy: each block is one task evaluating the
function, concatenated outputs become Dask arrays over the blocks and summed outputs a tree
reduction; nothing is computed until ``dask.compute(...)``.  The function travels to the
workers with cloudpickle (a compiled function pickles as its closed forms and recompiles).

Progress (:mod:`symgrad.progress`) is reported per chunk.  This module imports neither
SymPy nor Dask until it needs them.
"""
from __future__ import annotations

import sys
import uuid
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from . import pytree
from .progress import progress

__all__ = ["chunked", "Chunked", "NotAdditiveError"]

_BATCH = "concatenated"
_SUMMED = "summed"


class NotAdditiveError(ValueError):
    """The function is not a sum over its batch (it takes a mean, or mixes rows), so its
    chunks cannot be combined into the result on the whole batch."""


# ============================================================================ output trees
def _flatten(out: Any) -> tuple[list, Any]:
    """The arrays of a pytree of outputs (tuples, lists, dicts, namedtuples:
    :mod:`symgrad.pytree`) and a description of its structure; a ``None`` leaf is part of
    the structure (it stays ``None``), not an output."""
    leaves, structure = pytree.flatten(out)
    arrays = []
    for leaf in leaves:
        if leaf is None:
            continue
        array = np.asarray(getattr(leaf, "_data", leaf))
        if array.dtype == object:
            raise TypeError(f"a chunked function must return arrays or tuples, lists, dicts or namedtuples of arrays, "
                            f"got {type(leaf).__name__}")
        arrays.append(array)
    return arrays, (structure, tuple(leaf is None for leaf in leaves))


def _unflatten(leaves: Sequence[Any], tree: Any) -> Any:
    structure, nones = tree
    pending = iter(leaves)
    return structure.unflatten([None if none else next(pending) for none in nones])


def _output_paths(tree: Any) -> list[str]:
    """Where each output of :func:`_flatten` sits in the tree (``['b'][0]``), for a message."""
    structure, nones = tree
    return [path for path, none in zip(pytree.leaf_paths(structure), nones) if not none]


def _same_structure(a: Any, b: Any) -> bool:
    """Equal trees, with ``None`` in the same places."""
    return a[1] == b[1] and _same_nodes(a[0], b[0])


def _same_nodes(a: pytree.TreeDef, b: pytree.TreeDef) -> bool:
    """Equal structures, comparing named-tuple classes by their fields (each compiled
    function has its own named-tuple class)."""
    same_kind = a.kind is b.kind or (hasattr(a.kind, "_fields") and hasattr(b.kind, "_fields"))
    return (same_kind and a.keys == b.keys and len(a.children) == len(b.children)
            and all(_same_nodes(x, y) for x, y in zip(a.children, b.children)))


# ============================================================================ the layout probe
class _Layout:
    """What the probe found: the output tree, and per output its kind, its shape (after
    the batch axis for concatenated outputs) and dtype."""

    def __init__(self, tree: Any, kinds: list, shapes: list, dtypes: list) -> None:
        self.tree = tree
        self.kinds = kinds
        self.shapes = shapes
        self.dtypes = dtypes

    def check(self, leaves: list, tree: Any, rows: int, start: int) -> None:
        """Raise unless a chunk's outputs fit the layout."""
        if not _same_structure(tree, self.tree) or len(leaves) != len(self.kinds):
            raise NotAdditiveError(f"the chunk at row {start} returned a different structure of outputs than the "
                                   "first rows did; a chunked function must return the same outputs for every chunk")
        for k, (leaf, kind, shape) in enumerate(zip(leaves, self.kinds, self.shapes)):
            expected = (rows,) + shape if kind == _BATCH else shape
            if leaf.shape != expected:
                raise NotAdditiveError(f"output {k} of the chunk at row {start} ({rows} rows) has shape {leaf.shape}, "
                                       f"expected {expected}")


def _tolerance(dtype: np.dtype) -> float:
    if dtype.kind in "fc":
        return float(np.finfo(dtype).eps) ** 0.5
    return 0.0


def _close(whole: np.ndarray, combined: np.ndarray, scale: np.ndarray, rtol: float) -> bool:
    """Equal up to ``rtol * scale`` (floats, NaN where both are NaN) or exactly (other dtypes)."""
    if whole.dtype.kind not in "fc" or combined.dtype.kind not in "fc":
        return bool(np.array_equal(whole, combined))
    with np.errstate(invalid="ignore"):
        ok = (whole == combined) | (np.abs(whole - combined) <= rtol * scale) | (np.isnan(whole) & np.isnan(combined))
    return bool(np.all(ok))


def _probe(evaluate: Callable[[int, int], tuple[list, Any]], fn: Callable) -> _Layout:
    """Evaluate rows 0..2 whole and as two halves; classify and verify every output."""
    whole, tree = evaluate(0, 2)
    first, tree1 = evaluate(0, 1)
    second, tree2 = evaluate(1, 2)
    if not (_same_structure(tree, tree1) and _same_structure(tree, tree2)) or not (
            len(whole) == len(first) == len(second)):
        raise NotAdditiveError("the function returns a different structure of outputs for one row than for two; "
                               "a chunked function must return the same outputs for any number of rows")
    names = _output_names(fn, tree, len(whole))
    kinds, shapes, dtypes = [], [], []
    verified = False
    for k, (w, a, b) in enumerate(zip(whole, first, second)):
        name = names[k]
        rtol = _tolerance(w.dtype)
        if w.shape == a.shape == b.shape:
            kinds.append(_SUMMED)
            shapes.append(w.shape)
            combined = a + b
            if not _close(w, combined, np.abs(a) + np.abs(b), rtol):
                raise NotAdditiveError(
                    f"{name} is not a sum over the batch: on the first two rows it is {_show(w)}, but the sum of its "
                    f"values on each row is {_show(combined)}. Chunks can only be combined when the function sums "
                    "over the rows: write .sum() instead of .mean() (divide by the number of rows afterwards), "
                    "or evaluate without chunked()")
            verified = verified or bool(np.any(a != 0) or np.any(b != 0))
        elif (w.ndim >= 1 and a.ndim >= 1 and w.shape[0] == 2 and a.shape[0] == b.shape[0] == 1
              and w.shape[1:] == a.shape[1:] == b.shape[1:]):
            kinds.append(_BATCH)
            shapes.append(w.shape[1:])
            combined = np.concatenate([a, b])
            if not _close(w, combined, np.abs(combined), rtol):
                raise NotAdditiveError(
                    f"{name} mixes the rows of the batch: on the first two rows it is {_show(w)}, but row by row "
                    f"it is {_show(combined)}. Chunks can only be concatenated when each row's output depends on "
                    "that row alone (no batch statistics such as x - x.mean(0)); evaluate without chunked()")
            verified = True
        else:
            raise NotAdditiveError(
                f"{name} has shape {w.shape} on two rows and {a.shape} on one: its shape depends on the number of "
                "rows other than through its first axis, so chunks can neither be summed nor concatenated")
        dtypes.append(w.dtype)
    if not verified:
        warnings.warn("chunked() could not verify that the function sums over the batch: every output is zero on "
                      "the first two rows", RuntimeWarning, stacklevel=4)
    return _Layout(tree, kinds, shapes, dtypes)


def _show(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=6, threshold=6)


# ============================================================================ the evaluator
class Chunked:
    """``fn`` evaluated chunk by chunk over the batch arguments; see :func:`chunked`."""

    def __init__(self, fn: Callable, chunk_size: int, batch_argnums: Sequence[int]) -> None:
        self.fn = fn
        self.chunk_size = chunk_size
        self.batch_argnums = tuple(batch_argnums)
        self._layouts: dict = {}
        self.__name__ = f"chunked_{getattr(fn, '__name__', 'function')}"

    def __repr__(self) -> str:
        return (f"<symgrad chunked {getattr(self.fn, '__name__', self.fn)!s}, chunk_size={self.chunk_size}, "
                f"batch_argnums={self.batch_argnums}>")

    # ------------------------------------------------------------------ arguments
    def _batch_args(self, args: Sequence[Any]) -> list:
        for i in self.batch_argnums:
            if i >= len(args):
                raise TypeError(f"batch_argnums={self.batch_argnums} names argument {i}, but the function was called "
                                f"with {len(args)} positional arguments")
        out = list(args)
        for i in self.batch_argnums:
            if not hasattr(out[i], "shape") or not hasattr(out[i], "__getitem__"):
                out[i] = np.asarray(out[i])
            if len(out[i].shape) == 0:
                raise ValueError(f"batch argument {i} is a scalar (shape ()); a batch argument needs its rows on axis 0")
        lengths = {i: out[i].shape[0] for i in self.batch_argnums}
        if len(set(lengths.values())) != 1:
            listed = ", ".join(f"argument {i}: {n}" for i, n in lengths.items())
            raise ValueError(f"the batch arguments have different numbers of rows ({listed}); every batch argument "
                             "needs the same length on axis 0")
        n = lengths[self.batch_argnums[0]]
        if not isinstance(n, (int, np.integer)) or n != n:
            raise ValueError(f"the batch arguments have an unknown number of rows ({n}); for Dask arrays call "
                             ".compute_chunk_sizes() first")
        if n == 0:
            raise ValueError("the batch arguments have no rows (length 0 on axis 0)")
        return out

    def _signature(self, args: Sequence[Any], kwargs: dict) -> tuple:
        parts = []
        for i, a in enumerate(args):
            if i in self.batch_argnums:
                parts.append((tuple(a.shape[1:]), str(a.dtype)))
            else:  # a pytree argument (a dict of parameters) by its structure and its leaves' shapes and dtypes
                leaves, structure = pytree.flatten(a)
                arrays = [np.asarray(getattr(leaf, "_data", leaf)) for leaf in leaves]
                parts.append((structure, tuple((array.shape, array.dtype.str) for array in arrays)))
        return tuple(parts), tuple(sorted((k, repr(v)) for k, v in kwargs.items()))

    def _evaluator(self, args: Sequence[Any], kwargs: dict) -> Callable[[int, int], tuple[list, Any]]:
        def evaluate(start: int, stop: int) -> tuple[list, Any]:
            call = [np.asarray(a[start:stop]) if i in self.batch_argnums else a for i, a in enumerate(args)]
            return _flatten(self.fn(*call, **kwargs))
        return evaluate

    def _layout(self, args: Sequence[Any], kwargs: dict, evaluate: Callable) -> _Layout:
        key = self._signature(args, kwargs)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = _probe(evaluate, self.fn)
        return layout

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = self._batch_args(args)
        for i, a in enumerate(args):
            if i not in self.batch_argnums and _is_dask(a):
                raise TypeError(f"argument {i} is a Dask array but not a batch argument; pass it computed "
                                "(.compute()) or list it in batch_argnums")
        if any(_is_dask(args[i]) for i in self.batch_argnums):
            return self._lazy(args, kwargs)
        n = args[self.batch_argnums[0]].shape[0]
        evaluate = self._evaluator(args, kwargs)
        if n <= self.chunk_size:  # one chunk: nothing is combined
            leaves, tree = evaluate(0, n)
            return _unflatten(leaves, tree)
        layout = self._layout(args, kwargs, evaluate)
        results: list = []
        for start in progress(range(0, n, self.chunk_size), desc="symgrad chunks", unit="chunk"):
            stop = min(start + self.chunk_size, n)
            leaves, tree = evaluate(start, stop)
            layout.check(leaves, tree, stop - start, start)
            if not results:
                results = [np.empty((n,) + shape, dtype) if kind == _BATCH else np.array(leaf, dtype=dtype)
                           for leaf, kind, shape, dtype in zip(leaves, layout.kinds, layout.shapes, layout.dtypes)]
            for result, leaf, kind in zip(results, leaves, layout.kinds):
                if kind == _BATCH:
                    result[start:stop] = leaf
                elif start:
                    np.add(result, leaf, out=result, casting="same_kind")
        return _unflatten(results, layout.tree)

    def _lazy(self, args: list, kwargs: dict) -> Any:
        """The Dask graph: one task per block, concatenated and tree-summed outputs."""
        import dask
        import dask.array as da

        n = int(args[self.batch_argnums[0]].shape[0])
        batch = {}
        for i in self.batch_argnums:
            a = args[i] if _is_dask(args[i]) else da.from_array(np.asarray(args[i]), chunks=self.chunk_size)
            batch[i] = a.rechunk({0: self.chunk_size, **{axis: -1 for axis in range(1, a.ndim)}})
        head = [batch[i][:2].compute() if i in batch else a for i, a in enumerate(args)]
        evaluate = self._evaluator(head, kwargs)
        if n == 1:
            leaves, tree = evaluate(0, 1)
            return _unflatten([da.from_array(leaf) for leaf in leaves], tree)
        layout = self._layout(args, kwargs, evaluate)
        block_fn = dask.delayed(_BlockFunction(self.fn, args, self.batch_argnums, kwargs, layout), traverse=False,
                                name=f"symgrad-chunked-function-{uuid.uuid4().hex}")
        blocks = {i: a.to_delayed().ravel() for i, a in batch.items()}
        lengths = batch[self.batch_argnums[0]].chunks[0]
        starts = np.cumsum((0,) + lengths[:-1]).tolist()
        tasks = [dask.delayed(_call_block, pure=True)(block_fn, start, *[blocks[i][b] for i in self.batch_argnums])
                 for b, start in enumerate(starts)]
        leaves = []
        for k, (kind, shape, dtype) in enumerate(zip(layout.kinds, layout.shapes, layout.dtypes)):
            if kind == _BATCH:
                parts = [da.from_delayed(t[k], shape=(rows,) + shape, dtype=dtype) for t, rows in zip(tasks, lengths)]
                leaves.append(da.concatenate(parts))
            else:
                parts = [da.from_delayed(t[k], shape=shape, dtype=dtype) for t in tasks]
                leaves.append(da.stack(parts).sum(axis=0, dtype=dtype))
        return _unflatten(leaves, layout.tree)


class _BlockFunction:
    """The function, its non-batch arguments and the probed layout, shipped once to each
    Dask worker; a call evaluates one block and checks its outputs against the layout."""

    def __init__(self, fn: Callable, args: Sequence[Any], batch_argnums: Sequence[int], kwargs: dict,
                 layout: _Layout) -> None:
        self.fn = fn
        self.args = [None if i in batch_argnums else a for i, a in enumerate(args)]
        self.batch_argnums = tuple(batch_argnums)
        self.kwargs = kwargs
        self.layout = layout

    def __call__(self, start: int, *blocks: np.ndarray) -> tuple:
        call = list(self.args)
        for i, block in zip(self.batch_argnums, blocks):
            call[i] = block
        leaves, tree = _flatten(self.fn(*call, **self.kwargs))
        self.layout.check(leaves, tree, len(blocks[0]), start)
        return tuple(leaves)


def _call_block(block_fn: _BlockFunction, start: int, *blocks: np.ndarray) -> tuple:
    return block_fn(start, *blocks)


def _is_dask(value: Any) -> bool:
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(value, array.Array)


def _output_names(fn: Callable, tree: Any, count: int) -> list[str]:
    """Readable names for ``count`` outputs: a symgrad transform's compiled output names
    when there is one per output, else where each sits in the returned tree."""
    compiled = getattr(fn, "compiled", None)
    names = list(getattr(compiled, "outputs", None) or [])
    if len(names) != count:
        names = [f"at {path}" if path else "" for path in _output_paths(tree)]
    return [f"output {k} ({name})" if name else f"output {k}" for k, name in enumerate(names)]


def _check_transform(fn: Callable, batch_argnums: Sequence[int]) -> None:
    """Reject a transformed SymPy expression whose batch inputs are fixed-shape arrays."""
    functional = sys.modules.get("symgrad.symbolic.transforms")
    if functional is None or not isinstance(fn, functional.Transformed) or not fn.is_expression:
        return
    for i in batch_argnums:
        if i < len(fn.args) and getattr(fn.args[i], "array_shape", ()):
            raise ValueError(
                f"argument {i} of {fn!r} is the array symbol {fn.args[i]} of fixed shape {fn.args[i].array_shape}, "
                "so its closed form cannot be evaluated on chunks; write the function in Python (traced per chunk "
                "shape), or use plain symbols, which are evaluated elementwise")


# ============================================================================ public
def chunked(fn: Callable, *, chunk_size: int, batch_argnums: int | Sequence[int]) -> Chunked:
    """``fn`` evaluated ``chunk_size`` rows at a time over the arguments ``batch_argnums``.

    ``fn`` returns an array or a pytree of arrays (tuples, lists, dicts, namedtuples;
    ``None`` leaves stay ``None``), e.g. a
    ``symgrad.value_and_grad(loss)`` where ``loss`` *sums* over the rows.  Outputs with the
    batch axis are concatenated, the others summed; a probe of the first two rows checks
    that this is right and raises :class:`NotAdditiveError` when it is not (a mean).  Batch
    arguments may be anything sliceable on axis 0 (NumPy arrays, memory maps, HDF5
    datasets) or Dask arrays, which make the call lazy.

    >>> import numpy as np, symgrad
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> loss = symgrad.value_and_grad(lambda w, X: ((X @ w) ** 2).sum())
    >>> f = symgrad.chunked(loss, chunk_size=4, batch_argnums=1)
    >>> value, grad_w = f(np.array([1.0, -1.0]), X)     # X @ w is -1 on every row
    >>> value, grad_w                                    # 6 * 1, -2 * X.sum(0)
    (array(6.), array([-60., -72.]))
    >>> mean_loss = symgrad.grad(lambda w, X: ((X @ w) ** 2).mean())
    >>> symgrad.chunked(mean_loss, chunk_size=4, batch_argnums=1)(np.array([1.0, 0.0]), X)
    Traceback (most recent call last):
    ...
    symgrad.scaling.NotAdditiveError: output 0 (grad_w) is not a sum over the batch: ...
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be a whole number of rows, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 row, got {chunk_size}")
    argnums = (batch_argnums,) if isinstance(batch_argnums, (int, np.integer)) else tuple(batch_argnums)
    if not argnums:
        raise ValueError("batch_argnums is empty: name the arguments whose axis 0 holds the rows, e.g. "
                         "batch_argnums=(1, 2)")
    for i in argnums:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
            raise ValueError(f"batch_argnums takes argument positions (whole numbers >= 0), got {batch_argnums!r}")
    if len(set(argnums)) != len(argnums):
        raise ValueError(f"batch_argnums lists an argument twice: {batch_argnums!r}")
    _check_transform(fn, argnums)
    return Chunked(fn, int(chunk_size), [int(i) for i in argnums])

