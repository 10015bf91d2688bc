"""Composite ops: PyTorch functions written with the op table's primitives.

``flip``, ``roll``, ``narrow``, ``gather``, ``diagonal``, ``triu``, ``var``, ``kron``, ...
need no record of their own: each is a short composition of primitives (``getitem`` with
slices and integer arrays, ``cat``, ``reshape``, ``broadcast_to``, ``permute``, ``where``,
``setitem``, reductions), as PyTorch's own ``CompositeImplicitAutograd`` functions are. So
every face comes from the primitives: the NumPy forward, the SymPy closed form, the
hand-written VJPs of the tape engine, the C backend where the primitives compile, and
traced transforms, with nothing new to keep in step. What differs from PyTorch is only
the name of the node a result hangs from (``flip`` ends in a ``getitem``, so its
``grad_fn`` is that op's node, not PyTorch's ``FlipBackward0``).

Every integer array a composite indexes with is made from shapes and Python ints alone,
never from a tensor's values, so a traced function computes the same thing at every call.
A tensor of indices (``gather``, ``index_select``, ``take_along_dim``) goes into the
index as itself, so the trace records it as an input.

Each function is a ``symgrad.<name>`` free function (``tape/functions.py`` exports
``__all__``) and, where PyTorch has one, a ``Tensor`` method (the table :data:`METHODS`);
``pad`` is ``symgrad.nn.functional.pad``.
"""
from __future__ import annotations

import builtins
import functools
import math
import numbers
from typing import Callable, Sequence

import numpy as np

from ..ops.reductions import normalize_dims, stable_order
from . import tracing, views
from .tensor import MinMaxResult, Tensor, _dim_keywords, _index, apply_op, as_tensor

__all__ = ["flip", "fliplr", "flipud", "roll", "movedim", "moveaxis", "ravel", "unbind", "chunk", "split", "select",
           "narrow", "masked_fill", "index_select", "gather", "take_along_dim", "atleast_1d", "atleast_2d",
           "atleast_3d", "outer", "inner", "trace", "diagonal", "diag", "triu", "tril", "var", "std", "tile", "repeat",
           "repeat_interleave", "kron", "sort", "topk", "count_nonzero", "einsum", "tensordot",
           "scatter_add"]
# vector_norm is symgrad.linalg.vector_norm (and Tensor.norm for p other than 2)


def _shown_as(grad_fn_name: str) -> Callable:
    """Name the nodes a composite's outputs hang from as PyTorch names its one node
    (display only: ``Node.rename``; no engine reads the name)."""
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            for out in result if isinstance(result, tuple) else (result,):
                if out.grad_fn is not None:
                    out.grad_fn.rename(grad_fn_name)
            return result
        return call
    return decorate


def _dim(dim, ndim: int, what: str = "dim") -> int:
    """One dimension as a non-negative int, PyTorch's range rule (a 0-d tensor takes 0 and -1)."""
    if isinstance(dim, builtins.bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(dim).__name__}")
    size = builtins.max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"{what} {dim} is out of range for a tensor with {ndim} dimensions "
                         f"(expected an int in [{-size}, {size - 1}])")
    return builtins.int(dim) % size


def _int(value, what: str) -> int:
    if isinstance(value, builtins.bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return builtins.int(value)


def _along(dim: int, part) -> tuple:
    """An index that applies ``part`` to dimension ``dim`` and keeps the others whole."""
    return (slice(None),) * dim + (part,)


# ----------------------------------------------------------------------------- reordering
@_shown_as("FlipBackward0")
def flip(x: Tensor, dims) -> Tensor:
    """Reverse the order of elements along ``dims`` (an int or a sequence)."""
    x = as_tensor(x)
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    chosen = {_dim(d, x.ndim, "dims") for d in dims}
    if len(chosen) != len(dims):
        raise ValueError(f"flip: dims {dims!r} names the same dimension twice")
    if x.ndim == 0 or not chosen:
        return x.clone()
    return views.a_copy(x[tuple(slice(None, None, -1) if d in chosen else slice(None) for d in range(x.ndim))])


@_shown_as("FlipBackward0")
def fliplr(x: Tensor) -> Tensor:
    """``flip(x, 1)`` for a tensor of at least two dimensions."""
    if as_tensor(x).ndim < 2:
        raise RuntimeError("fliplr needs a tensor with at least 2 dimensions")
    return flip(x, 1)


@_shown_as("FlipBackward0")
def flipud(x: Tensor) -> Tensor:
    """``flip(x, 0)`` for a tensor of at least one dimension."""
    if as_tensor(x).ndim < 1:
        raise RuntimeError("flipud needs a tensor with at least 1 dimension")
    return flip(x, 0)


@_shown_as("RollBackward0")
def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """Shift elements cyclically by ``shifts`` along ``dims`` (all elements, flattened, when
    ``dims`` is None), as ``torch.roll``."""
    x = as_tensor(x)
    if dims is None:
        if not isinstance(shifts, (int, np.integer)):
            shifts = tuple(shifts)
            if len(shifts) != 1:
                raise ValueError("roll: without dims, shifts must be one int")
            shifts = shifts[0]
        return roll(x.reshape(-1), _int(shifts, "shifts"), 0).reshape(*x.shape)
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts and dims must have the same length, got {len(shifts)} and {len(dims)}")
    out = x
    for shift, dim in zip(shifts, dims):
        d = _dim(dim, x.ndim, "dims")
        n = x.shape[d] if x.ndim else 1
        s = _int(shift, "shifts") % n if n else 0
        if s:
            out = apply_op("cat", out[_along(d, slice(n - s, None))], out[_along(d, slice(0, n - s))], dim=d)
    return out if out is not x else x.clone()


def movedim(x: Tensor, source, destination) -> Tensor:
    """Move dimensions ``source`` to positions ``destination``; the others keep their order."""
    x = as_tensor(x)
    source = (source,) if isinstance(source, (int, np.integer)) else tuple(source)
    destination = (destination,) if isinstance(destination, (int, np.integer)) else tuple(destination)
    if len(source) != len(destination):
        raise ValueError(f"movedim: source and destination must have the same length, "
                         f"got {len(source)} and {len(destination)}")
    src = [_dim(d, x.ndim, "source") for d in source]
    dst = [_dim(d, x.ndim, "destination") for d in destination]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("movedim: repeated dim in source or destination")
    order = [d for d in range(x.ndim) if d not in src]
    for position, d in sorted(zip(dst, src)):
        order.insert(position, d)
    return x.permute(*order) if x.ndim else x.clone()


moveaxis = movedim


def ravel(x: Tensor) -> Tensor:
    """All elements in one dimension."""
    return as_tensor(x).reshape(-1)


# ----------------------------------------------------------------------------- pieces
@_shown_as("SelectBackward0")
def select(x: Tensor, dim: int, index: int) -> Tensor:
    """The slice at ``index`` of dimension ``dim`` (that dimension removed)."""
    x = as_tensor(x)
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    i = _int(index, "index")
    if not -n <= i < n:
        raise IndexError(f"select: index {i} is out of range for dimension {d} of size {n}")
    return x[_along(d, i % n)]


@_shown_as("SliceBackward0")
def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """Elements ``start .. start+length-1`` of dimension ``dim``."""
    x = as_tensor(x)
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    start, length = _int(start, "start"), _int(length, "length")
    if not -n <= start <= n:
        raise IndexError(f"narrow: start {start} is out of range for dimension {d} of size {n}")
    if start < 0:
        start += n
    if length < 0 or start + length > n:
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension {d} of size {n}")
    return x[_along(d, slice(start, start + length))]


@_shown_as("UnbindBackward0")
def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, each without that dimension."""
    x = as_tensor(x)
    d = _dim(dim, x.ndim)
    return tuple(x[_along(d, i)] for i in range(x.shape[d]))


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes."""
    x = as_tensor(x)
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = _int(split_size_or_sections, "split_size")
        if size <= 0 and n:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [builtins.min(size, n - start) for start in range(0, n, size)] if n else [0]
    else:
        sizes = [_int(s, "a section size") for s in split_size_or_sections]
        if builtins.any(s < 0 for s in sizes) or builtins.sum(sizes) != n:
            raise ValueError(f"split: section sizes {sizes} must be non-negative and sum to dimension {d}'s size {n}")
    starts = np.cumsum([0] + sizes[:-1])
    return tuple(x[_along(d, slice(builtins.int(s), builtins.int(s) + size))] for s, size in zip(starts, sizes))


@_shown_as("SplitBackward0")
def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """At most ``chunks`` pieces along ``dim``, each ``ceil(size / chunks)`` long but the last."""
    x = as_tensor(x)
    chunks = _int(chunks, "chunks")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = x.shape[_dim(dim, x.ndim)]
    return split(x, builtins.max(-(-n // chunks), 1), dim)


# ----------------------------------------------------------------------------- indexing
def _index_tensor(index, what: str) -> Tensor:
    index = as_tensor(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{what}: the index must be an integer tensor, got dtype {index.dtype}")
    return index


@_shown_as("IndexSelectBackward0")
def index_select(x: Tensor, dim: int, index) -> Tensor:
    """The slices of dimension ``dim`` at the positions of the 1-D integer tensor ``index``."""
    x = as_tensor(x)
    index = _index_tensor(index, "index_select")
    if index.ndim > 1:
        raise IndexError(f"index_select: the index must be 0-D or 1-D, got {index.ndim} dimensions")
    return x[_along(_dim(dim, x.ndim), index.reshape(-1))]


def _grids(shape: Sequence[int], skip: int) -> list:
    """Broadcastable ``arange`` grids over ``shape``, one per dimension, but ``skip``."""
    parts = []
    for d, n in enumerate(shape):
        if d != skip:
            parts.append(np.arange(n).reshape([n if k == d else 1 for k in range(len(shape))]))
        else:
            parts.append(None)
    return parts


@_shown_as("GatherBackward0")
def gather(x: Tensor, dim: int, index) -> Tensor:
    """``out[i][j][k] = x[i][index[i][j][k]][k]`` for ``dim = 1`` (and so on), as
    ``torch.gather``: ``index`` has ``x``'s number of dimensions, no larger than ``x`` but
    along ``dim``."""
    x = as_tensor(x)
    index = _index_tensor(index, "gather")
    d = _dim(dim, x.ndim)
    if index.ndim != x.ndim:
        raise RuntimeError(f"gather: index has {index.ndim} dimensions, the input {x.ndim}; they must be equal")
    for k, (m, n) in enumerate(zip(index.shape, x.shape)):
        if k != d and m > n:
            raise RuntimeError(f"gather: index size {m} exceeds the input's size {n} in dimension {k}")
    if x.ndim == 0:
        return x.clone()
    parts = _grids(index.shape, d)
    parts[d] = index
    return x[tuple(parts)]


@_shown_as("ScatterAddBackward0")
def scatter_add(x: Tensor, dim: int, index, src: Tensor) -> Tensor:
    """``x`` with ``src[i][j][k]`` added at ``[i][index[i][j][k]][k]`` for ``dim = 1`` (and so
    on), repeated indices accumulating, as ``torch.scatter_add``: ``index`` has ``x``'s number
    of dimensions, no larger than ``src`` in any and than ``x`` but along ``dim``. It is
    ``x + index_put(src, ...)``, so the gradient is ``g`` for ``x`` and ``g`` gathered at
    ``index`` for ``src``."""
    x, src = as_tensor(x), as_tensor(src)
    index = _index_tensor(index, "scatter_add")
    d = _dim(dim, x.ndim)
    if not index.ndim == x.ndim == src.ndim:
        raise RuntimeError(f"scatter_add: index ({index.ndim} dimensions), the input ({x.ndim}) and src ({src.ndim}) "
                           "must have the same number of dimensions")
    if x.dtype != src.dtype:
        raise RuntimeError(f"scatter_add: src has dtype {src.dtype}, the input {x.dtype}; they must be equal")
    for k, (m, n, s) in enumerate(zip(index.shape, x.shape, src.shape)):
        if m > s or (k != d and m > n):
            raise RuntimeError(f"scatter_add: index size {m} exceeds the size of src ({s}) or of the input ({n}) "
                               f"in dimension {k}")
    size = x.shape[d] if x.ndim else 1
    if index.numel() and (index._data.min() < 0 or index._data.max() >= size):
        raise IndexError(f"scatter_add: index values must be in [0, {size}) along dimension {d}, got values "
                         f"from {index._data.min()} to {index._data.max()}")
    if x.ndim == 0:  # torch: a 0-d index and src add src to x
        return x + src
    if tuple(src.shape) != tuple(index.shape):
        src = src[tuple(slice(0, m) for m in index.shape)]
    parts = _grids(index.shape, d)
    parts[d] = index
    return x + apply_op("index_put", src, shape=tuple(x.shape), index=_index(tuple(parts)))


@_shown_as("GatherBackward0")
def take_along_dim(x: Tensor, indices, dim: int | None = None) -> Tensor:
    """``gather`` after broadcasting ``x`` and ``indices`` against each other (but along
    ``dim``); with ``dim=None``, indexing of the flattened ``x``."""
    x = as_tensor(x)
    indices = _index_tensor(indices, "take_along_dim")
    if dim is None:
        return x.reshape(-1)[indices.reshape(-1)]
    d = _dim(dim, x.ndim)
    if indices.ndim != x.ndim:
        raise RuntimeError(f"take_along_dim: indices have {indices.ndim} dimensions, the input {x.ndim}; "
                           "they must be equal")
    shape_x, shape_i = list(x.shape), list(indices.shape)
    try:
        common = np.broadcast_shapes(tuple(shape_x[:d] + [1] + shape_x[d + 1:]),
                                     tuple(shape_i[:d] + [1] + shape_i[d + 1:]))
    except ValueError:
        raise RuntimeError(f"take_along_dim: shapes {tuple(x.shape)} and {tuple(indices.shape)} do not broadcast "
                           f"outside dim {d}") from None
    x = x.broadcast_to(common[:d] + (x.shape[d],) + common[d + 1:])
    indices = indices.broadcast_to(common[:d] + (indices.shape[d],) + common[d + 1:])
    return gather(x, d, indices)


@_shown_as("MaskedFillBackward0")
def masked_fill(x: Tensor, mask, value) -> Tensor:
    """``value`` where the boolean ``mask`` is true, ``x`` elsewhere."""
    x = as_tensor(x)
    mask = as_tensor(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: the mask must be a bool tensor, got dtype {mask.dtype}")
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"masked_fill: value must be a number or a 0-dim tensor, got shape {tuple(value.shape)}")
    try:
        fits = np.broadcast_shapes(tuple(mask.shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"masked_fill: the mask of shape {tuple(mask.shape)} does not broadcast to the "
                           f"input's shape {tuple(x.shape)}")
    filled = apply_op("where", mask, value, x)
    return filled if tuple(filled.shape) == tuple(x.shape) else filled.broadcast_to(x.shape)


# ----------------------------------------------------------------------------- shapes
def atleast_1d(x: Tensor) -> Tensor:
    """``x`` with at least one dimension."""
    x = as_tensor(x)
    return x.reshape(1) if x.ndim == 0 else x


def atleast_2d(x: Tensor) -> Tensor:
    """``x`` with at least two dimensions (a vector becomes one row)."""
    x = as_tensor(x)
    return x.reshape(1, -1) if x.ndim < 2 else x


def atleast_3d(x: Tensor) -> Tensor:
    """``x`` with at least three dimensions, as ``torch.atleast_3d``."""
    x = as_tensor(x)
    if x.ndim == 0:
        return x.reshape(1, 1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1, 1)
    if x.ndim == 2:
        return x.unsqueeze(-1)
    return x


def _interleaved_repeat(x: Tensor, reps: Sequence[int], inner: bool) -> Tensor:
    """Repeat ``x`` ``reps[d]`` times along each dimension ``d``: whole blocks (``tile``)
    when ``inner`` is false, each element in place (``kron``'s right factor) when true."""
    shape = list(x.shape)
    spread, target, final = [], [], []
    for r, n in zip(reps, shape):
        if inner:
            spread += [n, 1]
            target += [n, r]
        else:
            spread += [1, n]
            target += [r, n]
        final.append(r * n)
    return views.a_copy(x.reshape(*spread).broadcast_to(tuple(target)).reshape(*final))  # a copy in PyTorch


@_shown_as("RepeatBackward0")
def tile(x: Tensor, dims) -> Tensor:
    """Repeat the whole tensor ``dims[d]`` times along each dimension, as ``torch.tile``
    (fewer reps than dimensions are padded with ones in front)."""
    x = as_tensor(x)
    reps = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    reps = tuple(_int(r, "a repetition count") for r in reps)
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"tile: repetition counts must be non-negative, got {reps}")
    reps = (1,) * (x.ndim - len(reps)) + reps
    x = x.reshape(*((1,) * (len(reps) - x.ndim) + tuple(x.shape)))
    return _interleaved_repeat(x, reps, inner=False)


def repeat(x: Tensor, *sizes) -> Tensor:
    """PyTorch's ``Tensor.repeat``: ``tile`` with at least as many counts as dimensions."""
    x = as_tensor(x)
    sizes = tuple(sizes[0]) if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)) else sizes
    if len(sizes) < x.ndim:
        raise RuntimeError(f"repeat: the number of repeat counts ({len(sizes)}) can not be smaller than the "
                           f"number of dimensions ({x.ndim})")
    return tile(x, sizes)


def repeat_interleave(x: Tensor, repeats, dim: int | None = None) -> Tensor:
    """Each element (each slice along ``dim``) repeated ``repeats`` times in place; ``repeats``
    an int or a sequence with one count per slice (a tensor of counts is read with
    ``tolist()``, so a traced function refuses a traced one instead of freezing it)."""
    x = as_tensor(x)
    if dim is None:
        x, d = x.reshape(-1), 0
    else:
        d = _dim(dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    if isinstance(repeats, Tensor):
        repeats = repeats.tolist()
    if isinstance(repeats, (int, np.integer)):
        counts = [_int(repeats, "repeats")] * n
    else:
        counts = [_int(r, "a repeat count") for r in np.ravel(repeats)]
        if len(counts) == 1:
            counts = counts * n
    if len(counts) != n or builtins.any(c < 0 for c in counts):
        raise ValueError(f"repeat_interleave: repeats must be non-negative, one per slice ({n}), got {len(counts)}")
    return x[_along(d, np.repeat(np.arange(n), counts))]


# ----------------------------------------------------------------------------- linear algebra
def outer(a: Tensor, b: Tensor) -> Tensor:
    """The outer product of two vectors."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: expects two 1-D tensors, got {a.ndim}-D and {b.ndim}-D")
    return a.unsqueeze(1) * b.unsqueeze(0)


def inner(a: Tensor, b: Tensor) -> Tensor:
    """Sums of products over the last dimension: shape ``a.shape[:-1] + b.shape[:-1]``
    (a scalar operand multiplies)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(f"inner: the last dimensions must match, got {tuple(a.shape)} and {tuple(b.shape)}")
    k = a.shape[-1]  # rows counted, not -1: with k = 0 a -1 could be any number
    out = a.reshape(math.prod(a.shape[:-1]), k) @ b.reshape(math.prod(b.shape[:-1]), k).transpose(0, 1)
    return out.reshape(*(tuple(a.shape[:-1]) + tuple(b.shape[:-1])))


def kron(a: Tensor, b: Tensor) -> Tensor:
    """The Kronecker product (each element of ``a`` times the whole of ``b``)."""
    a, b = as_tensor(a), as_tensor(b)
    ndim = builtins.max(a.ndim, b.ndim)
    a = a.reshape(*((1,) * (ndim - a.ndim) + tuple(a.shape)))
    b = b.reshape(*((1,) * (ndim - b.ndim) + tuple(b.shape)))
    return _interleaved_repeat(a, b.shape, inner=True) * tile(b, a.shape)


def _parse_einsum(equation: str, operands: Sequence[Tensor]) -> tuple[list[str], str]:
    """The letters of each operand and of the output (implicit output: the letters used
    once, sorted, as NumPy and PyTorch do)."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operands, {len(operands)} were given")
    if "..." in equation:
        raise NotImplementedError("einsum: ellipses ('...') are not implemented; name every dimension")
    for term, operand in zip(terms, operands):
        if not term.isalpha() and term:
            raise ValueError(f"einsum: {term!r} in {equation!r} must be letters")
        if len(term) != operand.ndim:
            raise ValueError(f"einsum: {term!r} names {len(term)} dimensions, its operand has {operand.ndim} "
                             f"(shape {tuple(operand.shape)})")
        if len(set(term)) != len(term):
            raise NotImplementedError(f"einsum: a letter repeated within one operand ({term!r}, a diagonal) is "
                                      "not implemented; take symgrad.diagonal first")
    letters = "".join(terms)
    if not arrow:
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if not (output.isalpha() or output == "") or len(set(output)) != len(output) or set(output) - set(letters):
        raise ValueError(f"einsum: the output {output!r} must name distinct letters of the inputs")
    sizes: dict = {}
    for term, operand in zip(terms, operands):
        for c, n in zip(term, operand.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: letter {c!r} has sizes {sizes[c]} and {n}")
    return terms, output


def _summed_out(x: Tensor, term: str, keep: set) -> tuple[Tensor, str]:
    """``x`` with the letters of ``term`` that are not in ``keep`` summed away."""
    gone = [k for k, c in enumerate(term) if c not in keep]
    if not gone:
        return x, term
    return x.sum(dim=tuple(gone)), "".join(c for c in term if c in keep)


def _contract(a: Tensor, ta: str, b: Tensor, tb: str, keep: str) -> tuple[Tensor, str]:
    """``a`` and ``b`` multiplied and summed over the letters they share that ``keep`` lacks,
    as one batched ``matmul``: the result's letters are batch, then a's, then b's."""
    batch = [c for c in ta if c in tb and c in keep]
    summed = [c for c in ta if c in tb and c not in keep]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    size = dict(zip(ta, a.shape)) | dict(zip(tb, b.shape))
    count = lambda cs: int(np.prod([size[c] for c in cs]))  # noqa: E731
    a3 = a.permute(*[ta.index(c) for c in batch + left + summed]).reshape(count(batch), count(left), count(summed))
    b3 = b.permute(*[tb.index(c) for c in batch + summed + right]).reshape(count(batch), count(summed), count(right))
    out = (a3 @ b3).reshape(*[size[c] for c in batch + left + right])
    return out, "".join(batch + left + right)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, as ``torch.einsum`` (``"ij,jk->ik"``, ``"bi,bi->b"``, ...): the
    operands are contracted pairwise, left to right, each pair as one batched ``matmul``
    (letters only in one operand and not wanted later are summed first), so the closed
    form stays array-level. Not implemented: ``...``, a letter repeated in one operand, and
    NumPy's sublist form (``einsum(a, [0, 1], b, [1, 2])``)."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument must be the equation (a str such as 'ij,jk->ik'), got "
                        f"{type(equation).__name__}; NumPy's sublist form einsum(a, [0, 1], ...) is not supported")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [as_tensor(o) for o in operands]
    if not operands:
        raise ValueError("einsum needs at least one operand")
    terms, output = _parse_einsum(equation, operands)
    needed_later = [set(output).union(*terms[k + 1:]) for k in range(len(terms))]
    result, letters = _summed_out(operands[0], terms[0], needed_later[0] | set("".join(terms[1:])))
    for k in range(1, len(operands)):
        keep = needed_later[k]
        other, other_letters = _summed_out(operands[k], terms[k], keep | set(letters))
        result, letters = _contract(result, letters, other, other_letters, "".join(keep))
    result, letters = _summed_out(result, letters, set(output))
    if not output:
        return result.reshape(()) if result.ndim else result
    return result.permute(*[letters.index(c) for c in output]) if letters != output else result


def tensordot(a: Tensor, b: Tensor, dims=2) -> Tensor:
    """Sums of products over the last ``dims`` dimensions of ``a`` and the first of ``b``, or
    over the pairs ``dims = ([a's dims], [b's dims])``, as ``torch.tensordot``."""
    a, b = as_tensor(a), as_tensor(b)
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ta = [next(letters) for _ in range(a.ndim)]
    tb = [next(letters) for _ in range(b.ndim)]
    if isinstance(dims, (int, np.integer)):
        n = _int(dims, "dims")
        if not 0 <= n <= builtins.min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: dims={n} exceeds the operands' dimensions ({a.ndim} and {b.ndim})")
        pairs = list(zip(range(a.ndim - n, a.ndim), range(n)))
    else:
        first, second = dims
        first = [first] if isinstance(first, (int, np.integer)) else list(first)
        second = [second] if isinstance(second, (int, np.integer)) else list(second)
        if len(first) != len(second):
            raise ValueError(f"tensordot: dims pairs {len(first)} dimensions of a with {len(second)} of b")
        pairs = [(_dim(i, a.ndim, "dims"), _dim(j, b.ndim, "dims")) for i, j in zip(first, second)]
    for i, j in pairs:
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: dimension {i} of a (size {a.shape[i]}) and dimension {j} of b "
                             f"(size {b.shape[j]}) differ")
        tb[j] = ta[i]
    contracted = {ta[i] for i, _ in pairs}
    output = [c for c in ta if c not in contracted] + [c for c in tb if c not in contracted]
    return einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(output)}", a, b)


@_shown_as("DiagonalBackward0")
def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of dimensions ``dim1`` and ``dim2`` (shifted by ``offset``), as the last
    dimension of the result, as ``torch.diagonal``."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise RuntimeError(f"diagonal: expects a tensor with at least 2 dimensions, got {x.ndim}")
    d1, d2 = _dim(dim1, x.ndim, "dim1"), _dim(dim2, x.ndim, "dim2")
    if d1 == d2:
        raise RuntimeError(f"diagonal: dim1 and dim2 name the same dimension {d1}")
    offset = _int(offset, "offset")
    moved = movedim(x, (d1, d2), (-2, -1))
    rows, cols = moved.shape[-2], moved.shape[-1]
    start_row, start_col = builtins.max(-offset, 0), builtins.max(offset, 0)
    length = builtins.max(builtins.min(rows - start_row, cols - start_col), 0)
    steps = np.arange(length)
    index = (Ellipsis, steps + start_row, steps + start_col)
    out = moved[index]
    views.note(out, moved, "getitem", {"index": index})  # a view in PyTorch, although an integer-array index
    return out


@_shown_as("TraceBackward0")
def trace(x: Tensor) -> Tensor:
    """The sum of the diagonal of a matrix."""
    x = as_tensor(x)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expects a matrix, got {x.ndim} dimensions")
    return diagonal(x).sum()


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """A vector's square matrix with the vector on diagonal ``diagonal``, or a matrix's diagonal."""
    x = as_tensor(x)
    offset = _int(diagonal, "diagonal")
    if x.ndim == 2:
        return views.a_copy(x.diagonal(offset))  # a copy in PyTorch, unlike diagonal()
    if x.ndim != 1:
        raise RuntimeError(f"diag: expects a 1-D or 2-D tensor, got {x.ndim} dimensions")
    steps = np.arange(x.shape[0])
    size = x.shape[0] + abs(offset)
    out = as_tensor(np.zeros((size, size), dtype=x.dtype))
    out[steps + builtins.max(-offset, 0), steps + builtins.max(offset, 0)] = x
    return out


@_shown_as("TriuBackward0")
def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dimensions (on and above ``diagonal``), zeros below."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise RuntimeError(f"triu: expects a tensor with at least 2 dimensions, got {x.ndim}")
    k = _int(diagonal, "diagonal")
    keep = np.triu(np.ones((x.shape[-2], x.shape[-1]), dtype=bool), k)
    return apply_op("where", as_tensor(keep), x, 0)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dimensions (on and below ``diagonal``), zeros above:
    the op ``tril`` (``cholesky``'s closed form names it)."""
    x = as_tensor(x)
    if x.ndim < 2:
        raise RuntimeError(f"tril: expects a tensor with at least 2 dimensions, got {x.ndim}")
    return apply_op("tril", x, diagonal=_int(diagonal, "diagonal"))


# ----------------------------------------------------------------------------- statistics
@_shown_as("VarBackward0")
def var(x: Tensor, dim=None, *, correction=None, unbiased=None, keepdim: builtins.bool = False, axis=None,
        keepdims=None) -> Tensor:
    """Variance over ``dim``, dividing by ``N - correction`` (``correction=1`` by default;
    ``unbiased=False`` is ``correction=0``), as ``torch.var`` (``axis``/``keepdims`` too)."""
    x = as_tensor(x)
    dim, keepdim = _dim_keywords("var", dim, axis, keepdim, keepdims)
    if correction is not None and unbiased is not None:
        raise TypeError("var: give correction or unbiased, not both")
    if isinstance(dim, builtins.bool):  # torch.var(x, False): the old positional `unbiased`
        dim, unbiased = None, dim
    correction = (1 if unbiased is None or unbiased else 0) if correction is None else correction
    if not isinstance(correction, numbers.Real) or isinstance(correction, builtins.bool):
        raise TypeError(f"var: correction must be a number, got {type(correction).__name__}")
    dims = normalize_dims(dim if not isinstance(dim, list) else tuple(dim), x.ndim)
    count = x.numel() if dims is None else builtins.int(np.prod([x.shape[d] for d in dims]))
    centred = x - x.mean(dim=dims, keepdim=True)
    return (centred * centred).sum(dim=dims, keepdim=keepdim) / builtins.max(count - correction, 0)


def _root(total: Tensor, power: float) -> Tensor:
    """``total ** power`` (``0 < power < 1``) of a nonnegative ``total`` (a variance, a sum of
    ``|x|^p``), with gradient 0 where ``total`` is 0, as PyTorch's ``std`` and ``vector_norm``
    give: there the root's derivative is infinite and the chain rule's ``0 * inf`` would be
    NaN, though the function is constant along every direction (one element's spread) or
    has 0 as a subgradient (the tip of the cone ``||x||``). The inner ``where`` keeps the
    root's derivative finite, so the gradient (and the second derivative) is exactly 0.
    A NaN ``total`` (the variance of one element with ``correction=1``) stays NaN."""
    nonzero = total != 0
    return apply_op("where", nonzero, apply_op("where", nonzero, total, 1.0) ** power, 0.0)


@_shown_as("StdBackward0")
def std(x: Tensor, dim=None, *, correction=None, unbiased=None, keepdim: builtins.bool = False, axis=None,
        keepdims=None) -> Tensor:
    """Standard deviation: the square root of :func:`var`; where the variance is 0 (one
    element, or all equal) the gradient is 0, as PyTorch's (see :func:`_root`)."""
    dim, keepdim = _dim_keywords("std", dim, axis, keepdim, keepdims)
    return _root(var(x, dim, correction=correction, unbiased=unbiased, keepdim=keepdim), 0.5)


# ----------------------------------------------------------------------------- order
def _order_indices(x: Tensor, order: np.ndarray, how: str) -> Tensor:
    """The int64 indices of a sort, computed from ``x``'s data (so marked: a traced function
    that uses them raises instead of freezing them); they carry no gradient."""
    return tracing.mark(Tensor(np.ascontiguousarray(order, dtype=np.int64)), how, x)


def _sorted_values(x: Tensor, d: int, descending: builtins.bool) -> Tensor:
    """``x`` sorted along ``d`` by the op ``sort_values``, which sorts at every call (so inside
    transforms and on the symbolic engine too)."""
    return apply_op("sort_values", x, dim=d, descending=builtins.bool(descending))


def sort(x: Tensor, dim: int = -1, descending: builtins.bool = False, stable: builtins.bool = False) -> MinMaxResult:
    """``(values, indices)``: ``x`` sorted along ``dim``; ties keep their order (always stable,
    so ``stable`` changes only the node's name, as PyTorch's). The values are differentiable,
    also inside transforms; the indices carry no gradient."""
    x = as_tensor(x)
    d = _dim(dim, x.ndim)
    if x.ndim == 0:
        return MinMaxResult(x.clone(), _order_indices(x, np.zeros((), dtype=np.int64), "sort()"))
    order = stable_order(x._data, d, descending)
    values = _sorted_values(x, d, descending)
    if values.grad_fn is not None:
        values.grad_fn.rename("SortBackward1" if stable else "SortBackward0")
    return MinMaxResult(values, _order_indices(x, order, "sort()"))


def topk(x: Tensor, k: int, dim: int = -1, largest: builtins.bool = True,
         sorted: builtins.bool = True) -> MinMaxResult:
    """``(values, indices)`` of the ``k`` largest (or smallest) elements along ``dim``, in
    order; ties keep their order. The values are the first ``k`` of the stable sort
    (differentiable, also inside transforms); the indices carry no gradient."""
    x = as_tensor(x)
    d = _dim(dim, x.ndim)
    k = _int(k, "k")
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {d} of size {n}")
    if x.ndim == 0:
        return MinMaxResult(x.clone(), _order_indices(x, np.zeros((), dtype=np.int64), "topk()"))
    first_k = (slice(None),) * d + (slice(0, k),)
    order = stable_order(x._data, d, largest)[first_k]
    values = _sorted_values(x, d, largest)[first_k]
    if values.grad_fn is not None:
        values.grad_fn.rename("TopkBackward0")
    return MinMaxResult(values, _order_indices(x, order, "topk()"))


def count_nonzero(x: Tensor, dim=None) -> Tensor:
    """The number of non-zero elements (over ``dim``), an int64 tensor without gradient."""
    x = as_tensor(x)
    return (x != 0).long().sum(dim=dim)


def vector_norm(x: Tensor, ord=2, dim=None, keepdim: builtins.bool = False) -> Tensor:
    """``(sum |x|^ord)^(1/ord)`` over ``dim`` (all elements when None), as
    ``torch.linalg.vector_norm``: ``ord`` a number >= 1, ``inf`` (the largest ``|x|``) or
    ``-inf`` (the smallest; tied extremes share the gradient evenly, as PyTorch's).
    ``ord=2`` is the op ``norm``. At a zero vector the gradient is 0 for every ``ord``, as
    PyTorch's (see :func:`_root`)."""
    x = as_tensor(x)
    if isinstance(ord, builtins.bool) or not isinstance(ord, numbers.Real) or not (ord >= 1 or ord == -math.inf):
        raise ValueError(f"vector_norm: ord must be a number >= 1, inf or -inf, got {ord!r}")
    dims = normalize_dims(tuple(dim) if isinstance(dim, list) else dim, x.ndim)
    if ord == 2:
        return apply_op("norm", x, dim=dims, keepdim=keepdim)
    size = builtins.abs(x)
    if ord == 1:
        return size.sum(dim=dims, keepdim=keepdim)
    if math.isinf(ord):  # amax/amin: tied extremes share the gradient evenly, as PyTorch's
        return apply_op("amax" if ord > 0 else "amin", size, dim=dims, keepdim=keepdim)
    return _root((size ** ord).sum(dim=dims, keepdim=keepdim), 1.0 / ord)


# ----------------------------------------------------------------------------- padding
@_shown_as("ConstantPadNdBackward0")
def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """``torch.nn.functional.pad`` in ``"constant"`` mode: ``pad`` lists (before, after)
    amounts from the last dimension backwards; negative amounts crop."""
    x = as_tensor(x)
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not implemented; only 'constant' is")
    amounts = [_int(p, "a pad amount") for p in pad]
    if len(amounts) % 2 or len(amounts) // 2 > x.ndim:
        raise ValueError(f"pad: needs an even number of amounts, at most two per dimension ({2 * x.ndim}), "
                         f"got {len(amounts)}")
    crop, grow, shape = [slice(None)] * x.ndim, [slice(None)] * x.ndim, list(x.shape)
    for k in range(len(amounts) // 2):
        d = x.ndim - 1 - k
        before, after = amounts[2 * k], amounts[2 * k + 1]
        n = x.shape[d]
        crop[d] = slice(builtins.max(-before, 0), n - builtins.max(-after, 0))
        kept = n - builtins.max(-before, 0) - builtins.max(-after, 0)
        if kept < 0:
            raise ValueError(f"pad: cropping {-before} and {-after} leaves a negative size in dimension {d}")
        shape[d] = kept + builtins.max(before, 0) + builtins.max(after, 0)
        grow[d] = slice(builtins.max(before, 0), builtins.max(before, 0) + kept)
    inside = x[tuple(crop)]
    out = as_tensor(np.full(shape, value, dtype=x.dtype))
    out[tuple(grow)] = inside
    return out


METHODS = {
    "flip": flip, "fliplr": fliplr, "flipud": flipud, "roll": roll, "movedim": movedim, "moveaxis": movedim,
    "ravel": ravel, "unbind": unbind, "chunk": chunk, "split": split, "select": select, "narrow": narrow,
    "masked_fill": masked_fill, "index_select": index_select, "gather": gather, "take_along_dim": take_along_dim,
    "scatter_add": scatter_add,
    "outer": outer, "ger": outer, "inner": inner, "kron": kron, "trace": trace, "diagonal": diagonal, "diag": diag,
    "triu": triu, "tril": tril, "var": var, "std": std, "tile": tile, "repeat": repeat,
    "repeat_interleave": repeat_interleave, "sort": sort, "topk": topk, "count_nonzero": count_nonzero,
}
"""The composites that are also ``Tensor`` methods (``x.flip(0)``); ``pad`` and ``atleast_*``
are free functions only, as in PyTorch."""

for _name, _function in METHODS.items():
    setattr(Tensor, _name, _function)
