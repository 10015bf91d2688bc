"""Structural ops: matmul, transposes, reshapes, indexing, concatenation.

They move, select or combine elements without an elementwise formula, so their SymPy
form is :data:`~symgrad.ops.base.STRUCTURAL`: the symbolic engine defines a SymPy
``Function`` subclass with the op's name, shape rule, NumPy printer and symbolic adjoint.
This module also owns :func:`normalize_index`, the one normal form of an indexing key.

Every op with ``sympy=STRUCTURAL``, its attributes (always passed by keyword) and the
module that declares it:

============= ======================= ==================================================
op            attrs                   meaning
============= ======================= ==================================================
sum           dim=None, keepdim=False sum over ``dim``: None = all dims, an int, or a
                                      tuple; negative dims count from the end; keepdim
                                      keeps reduced dims as size 1 (reductions.py)
mean          dim=None, keepdim=False mean over ``dim``, attrs as sum (reductions.py)
max, min      dim=None, keepdim=False values of the max/min over all elements (dim None)
                                      or over one int dim; indices are not an output
                                      (reductions.py)
argmax        dim=None, keepdim=False int64 position of the first max (a NaN counts as
                                      the max) of the flattened x (dim None; keepdim:
                                      all dims kept as 1) or along one int dim; no
                                      derivative (reductions.py)
argmin        dim=None, keepdim=False the same for the first min (reductions.py)
extremum_mask dim=None, mode='max'    where max/min (mode) send their gradient, shaped
                                      like x: 1/k on each of k ties (dim None), one-hot
                                      at the first extreme index along an int dim
                                      (reductions.py)
logsumexp     dim=None, keepdim=False log(sum(exp(x))) over dim, None = all dims
                                      (reductions.py)
softmax       dim                     exp(x) / sum(exp(x)) along the int dim
                                      (reductions.py)
log_softmax   dim                     x - logsumexp(x) along the int dim (reductions.py)
norm          dim=None, keepdim=False 2-norm sqrt(sum(x * x)) over dim (reductions.py)
cumsum        dim                     running sums along the int dim (reductions.py)
prod          dim=None, keepdim=False product over dim, attrs as sum; zeros as PyTorch
                                      (reductions.py)
cumprod       dim                     running products along the int dim; zeros as
                                      PyTorch (reductions.py)
logcumsumexp  dim                     log(cumsum(exp(x))) along the int dim, stable
                                      (reductions.py)
amax, amin    dim=None, keepdim=False max/min over dim, attrs as sum; ties share the
                                      gradient evenly (reductions.py)
sort_values   dim, descending=False   x sorted along the int dim, ties in their order
                                      (stable; descending sorts -x) (reductions.py)
sort_by       dim, descending=False,  x's slices along dim gathered in the stable order
              inverse=False           of key (input 2, no derivative), or (inverse)
                                      put back where that order took them: each is the
                                      other's adjoint (reductions.py)
sum_to        shape                   sum a broadcast array down to ``shape``
                                      (broadcast.py)
broadcast_to  shape                   NumPy-broadcast to ``shape`` (broadcast.py)
matmul                                ``a @ b`` with NumPy rules: a 1-D operand is
                                      promoted to a matrix and the added dim removed;
                                      batch dims broadcast
transpose     dim0, dim1              swap two dims (negative dims allowed)
permute       dims                    ``np.transpose(x, dims)``: output dim i is input
                                      dim ``dims[i]``
reshape       shape                   ``np.reshape(x, shape)``; one entry may be -1
unsqueeze     dim                     insert a size-1 dim at position ``dim`` of the
                                      output (-1 appends)
squeeze       dim=None                drop size-1 dims: all (None), or those named by an
                                      int or tuple; a named dim whose size is not 1
                                      stays, as in PyTorch
getitem       index                   ``x[index]``; ``index`` is
                                      :func:`normalize_index`'s tuple of int, slice,
                                      None, Ellipsis, integer ndarray (intp) and boolean
                                      ndarray (mask) items
index_put     shape, index            ``zeros(shape)`` with ``g`` added at ``index``
                                      (repeated indices accumulate, like ``np.add.at``):
                                      the adjoint of getitem
cat           dim=0                   concatenate the (variadic) inputs along ``dim``;
                                      inputs of shape (0,) are skipped, as in PyTorch
stack         dim=0                   stack the (variadic) inputs along a new ``dim``
setitem       index                   x with ``x[index]`` replaced by ``value`` (inputs x,
                                      value; ``t[i] = v`` in the tape) (assign.py)
det, logdet                           determinant (its log) of each matrix of a
                                      (..., n, n) batch (linalg.py)
inverse                               inverse of each matrix (linalg.py)
solve                                 X with A X = B, B a vector or a batch of
                                      matrices (linalg.py)
cholesky                              L lower triangular with L L^T = (A + A^T)/2
                                      (linalg.py)
tril          diagonal=0              lower triangle of each matrix, on and below the
                                      diagonal (symgrad.tril; linalg.py)
det_sign                              sign of each matrix's determinant, derivative 0
                                      (slogdet's sign, linalg.py)
logabsdet                             log of the absolute value of each matrix's
                                      determinant (slogdet's logabsdet, linalg.py)
svdvals                               singular values of each matrix, descending
                                      (linalg.py)
svd_u, svd_v                          left/right singular vectors of each matrix's thin
                                      SVD, signs fixed (linalg.py)
============= ======================= ==================================================

Forwards always return a new array (never a view of an input), so a tensor's data can
be modified in place without changing another tensor's.
"""
from __future__ import annotations

import operator

import numpy as np

from .base import STRUCTURAL, Domain, Op, register
from .reductions import normalize_dims


def _structural(name, grad_fn_name, forward, vjp, saves=(), arity=1, name_rule=None, needed_by=None,
                public=False, numpy=None, view=False):
    """A structural op; ``public``: ``Tensor.<name>`` (written out in ``tape/tensor.py``)
    and ``symgrad.<name>`` exist."""
    return register(Op(
        name=name,
        grad_fn_name=grad_fn_name,
        forward=forward,
        vjp=vjp,
        sympy=STRUCTURAL,
        kind="structural",
        arity=arity,
        saves=frozenset(saves),
        domains=(Domain(),) * (arity or 1),
        name_rule=name_rule,
        needed_by=needed_by or {},
        public=public,
        numpy=numpy,
        view=view,
    ))


# ----------------------------------------------------------------------------- matmul

_MATMUL_NAMES = {(1, 1): "DotBackward0", (2, 1): "MvBackward0",
                 (1, 2): "SqueezeBackward4", (2, 2): "MmBackward0"}


def _matmul_name(a_shape, b_shape) -> str:
    # PyTorch's node depends on how it dispatches: dot, mv, mm, or a folded/batched mm
    # whose last step is a copy (matrix @ batch) or an unsafe view (everything else).
    ranks = (len(a_shape), len(b_shape))
    if ranks in _MATMUL_NAMES:
        return _MATMUL_NAMES[ranks]
    return "CloneBackward0" if ranks[0] == 2 else "UnsafeViewBackward0"


def _matmul_vjp(xp, g, ans, a, b):
    a_rank, b_rank = np.ndim(a), np.ndim(b)
    if a_rank == 1 and b_rank == 1:  # dot product: g is a scalar
        return g * b, g * a
    # promote 1-D operands to matrices the way matmul does, and g with them
    a2 = xp.unsqueeze(a, dim=0) if a_rank == 1 else a
    b2 = xp.unsqueeze(b, dim=1) if b_rank == 1 else b
    g2 = xp.unsqueeze(g, dim=-1) if b_rank == 1 else g
    g2 = xp.unsqueeze(g2, dim=-2) if a_rank == 1 else g2
    grad_a = xp.sum_to(xp.matmul(g2, xp.transpose(b2, dim0=-1, dim1=-2)), shape=np.shape(a2))
    grad_b = xp.sum_to(xp.matmul(xp.transpose(a2, dim0=-1, dim1=-2), g2), shape=np.shape(b2))
    if a_rank == 1:
        grad_a = xp.reshape(grad_a, shape=np.shape(a))
    if b_rank == 1:
        grad_b = xp.reshape(grad_b, shape=np.shape(b))
    return grad_a, grad_b


matmul = _structural(
    "matmul", "MmBackward0",
    forward=lambda a, b: np.asarray(np.matmul(a, b)),
    vjp=_matmul_vjp,
    saves=("inputs",),
    arity=2,
    name_rule=_matmul_name,
    needed_by={0: (1,), 1: (0,)},
    public=True,
    numpy="matmul",
)

# ----------------------------------------------------------------------------- dims and shapes

transpose = _structural(
    "transpose", "TransposeBackward0",
    forward=lambda x, *, dim0, dim1: np.swapaxes(x, dim0, dim1).copy(),
    vjp=lambda xp, g, ans, x, *, dim0, dim1: (xp.transpose(g, dim0=dim0, dim1=dim1),),
    public=True,
    view=True,
)


def inverse_permutation(dims, ndim: int) -> tuple[int, ...]:
    """The dims that undo ``permute(x, dims)`` for an ``x`` of ``ndim`` dimensions
    (``permute``'s VJP, and writing a permuted view back, ``tape/views.py``)."""
    return tuple(int(i) for i in np.argsort([d % ndim for d in dims]))


permute = _structural(
    "permute", "PermuteBackward0",
    forward=lambda x, *, dims: np.transpose(x, dims).copy(),
    vjp=lambda xp, g, ans, x, *, dims: (xp.permute(g, dims=inverse_permutation(dims, np.ndim(x))),),
    public=True,
    view=True,
)

reshape = _structural(
    "reshape", "ViewBackward0",
    forward=lambda x, *, shape: np.reshape(x, shape).copy(),
    vjp=lambda xp, g, ans, x, *, shape: (xp.reshape(g, shape=np.shape(x)),),
    public=True,
    numpy="reshape",
    view=True,  # PyTorch copies a reshape it cannot view (of a transposed tensor): marked all the same
)

unsqueeze = _structural(
    "unsqueeze", "UnsqueezeBackward0",
    forward=lambda x, *, dim: np.expand_dims(x, dim).copy(),
    vjp=lambda xp, g, ans, x, *, dim: (xp.squeeze(g, dim=dim),),
    public=True,
    numpy="expand_dims",
    view=True,
)


def _squeeze_forward(x, *, dim=None):
    x = np.asarray(x)
    dims = normalize_dims(dim, x.ndim)
    axes = tuple(d for d in (range(x.ndim) if dims is None else dims) if x.shape[d] == 1)
    return np.squeeze(x, axis=axes).copy()


def _squeeze_name(shape, *, dim=None) -> str:
    if dim is None:
        return "SqueezeBackward0"
    return "SqueezeBackward1" if isinstance(dim, (int, np.integer)) else "SqueezeBackward2"


squeeze = _structural(
    "squeeze", "SqueezeBackward0",
    forward=_squeeze_forward,
    vjp=lambda xp, g, ans, x, *, dim=None: (xp.reshape(g, shape=np.shape(x)),),
    name_rule=_squeeze_name,
    public=True,
    numpy="squeeze",
    view=True,
)

# ----------------------------------------------------------------------------- indexing


def normalize_index(index) -> tuple:
    """The normal form of an indexing key, as the ``index`` attr of getitem/index_put.

    A tuple whose items are ``int``, ``slice`` (of ints or None), ``None``, ``Ellipsis``,
    integer ``ndarray`` (dtype ``intp``) or boolean ``ndarray`` (a mask).  Lists and
    array-likes become arrays; NumPy integers become ints.

    >>> normalize_index(1)
    (1,)
    >>> normalize_index((slice(None, 2), None, [0, 0]))
    (slice(None, 2, None), None, array([0, 0]))
    """
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for item in items:
        if item is None or item is Ellipsis:
            out.append(item)
        elif isinstance(item, (bool, np.bool_)):
            out.append(np.asarray(item, dtype=bool))
        elif isinstance(item, (int, np.integer)):
            out.append(int(item))
        elif isinstance(item, slice):
            out.append(slice(*(None if v is None else _index_int(v, item) for v in
                               (item.start, item.stop, item.step))))
        else:
            array = np.asarray(item)
            if array.dtype == bool:
                out.append(array)
            elif np.issubdtype(array.dtype, np.integer) or array.size == 0:
                out.append(array.astype(np.intp))
            else:
                raise TypeError(f"cannot index with {item!r} (dtype {array.dtype}): use ints, slices, "
                                "None, Ellipsis, integer arrays or boolean masks")
    if sum(item is Ellipsis for item in out) > 1:
        raise IndexError(f"an index can only have a single Ellipsis (...), got {index!r}")
    return tuple(out)


def _index_int(value, item) -> int:
    """A slice bound as an int: ints, NumPy integers and anything else with ``__index__``
    (a one-element integer tensor, as in PyTorch)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if hasattr(type(value), "__index__"):
        return operator.index(value)
    raise TypeError(f"slice {item!r} has a non-integer bound {value!r}")


def index_key(index) -> tuple:
    """A hashable key for an index (arrays by dtype, shape and bytes), e.g. for caches.

    >>> index_key((slice(1, None), [0, 2]))[0]
    ('slice', 1, None, None)
    """
    key = []
    for item in normalize_index(index):
        if isinstance(item, slice):
            key.append(("slice", item.start, item.stop, item.step))
        elif isinstance(item, np.ndarray):
            key.append(("array", item.dtype.str, item.shape, item.tobytes()))
        else:
            key.append(item)
    return tuple(key)


def _has_array(index) -> bool:
    return any(isinstance(item, np.ndarray) for item in index)


def _getitem_name(shape, *, index) -> str:
    # PyTorch applies the items left to right as views (select, slice, unsqueeze; full
    # slices inside a tuple are skipped) and names the node after the last one; any
    # array makes it one advanced-indexing node.
    index = normalize_index(index)
    if _has_array(index):
        return "IndexBackward0"
    name, dim = "AliasBackward0", 0
    consumed = sum(isinstance(item, (int, slice)) for item in index)
    for item in index:
        if item is Ellipsis:
            dim += len(shape) - consumed
        elif item is None:
            name = "UnsqueezeBackward0"
        elif isinstance(item, int):
            name, dim = "SelectBackward0", dim + 1
        else:
            if len(index) == 1 or item.indices(shape[dim]) != (0, shape[dim], 1):
                name = "SliceBackward0"
            dim += 1
    return name


getitem = _structural(
    "getitem", "SelectBackward0",
    forward=lambda x, *, index: np.array(np.asarray(x)[normalize_index(index)]),
    vjp=lambda xp, g, ans, x, *, index: (xp.index_put(g, shape=np.shape(x), index=index),),
    name_rule=_getitem_name,
    view=lambda *, index: not any(isinstance(item, np.ndarray) for item in normalize_index(index)),  # basic indexing
)


def _index_put_forward(values, *, shape, index):
    values = np.asarray(values)
    index = normalize_index(index)
    out = np.zeros(shape, dtype=values.dtype)
    if _has_array(index):
        np.add.at(out, index, values)  # repeated indices accumulate
    else:
        out[index] = values  # basic indexing selects each element at most once
    return out


index_put = _structural(
    "index_put", "IndexPutBackward0",
    forward=_index_put_forward,
    vjp=lambda xp, g, ans, values, *, shape, index: (xp.getitem(g, index=index),),
)

# ----------------------------------------------------------------------------- cat, stack


def cat_skipped(shapes) -> list[bool]:
    """Per input of a cat, whether PyTorch's legacy rule leaves it out: 1-D empty inputs
    (shape ``(0,)``) are skipped, unless every input is one (the tape's forward and VJP
    and the symbolic engine's ``Cat`` all follow this).

    >>> cat_skipped([(0,), (2, 3), (0,)]), cat_skipped([(0,), (0,)])
    ([True, False, True], [False, False])
    """
    empty = [tuple(shape) == (0,) for shape in shapes]
    return empty if not all(empty) else [False] * len(shapes)


def _cat_forward(*arrays, dim=0):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"cat: dim must be an int, got {dim!r} (NumPy's axis=None, joining the flattened arrays, "
                        "is cat of each one's reshape(-1))")
    arrays = [np.asarray(a) for a in arrays]
    kept = [a for a, skip in zip(arrays, cat_skipped([a.shape for a in arrays])) if not skip]
    return np.concatenate(kept, axis=dim)


def _cat_vjp(xp, g, ans, *inputs, dim=0):
    axis = normalize_dims(dim, np.ndim(ans))[0]
    grads, start = [], 0
    for x, skip in zip(inputs, cat_skipped([np.shape(x) for x in inputs])):
        if skip:  # an empty slice of g, reshaped to the input's (0,)
            grads.append(xp.reshape(xp.getitem(g, index=(slice(0, 0),)), shape=(0,)))
            continue
        stop = start + np.shape(x)[axis]
        grads.append(xp.getitem(g, index=(slice(None),) * axis + (slice(start, stop),)))
        start = stop
    return tuple(grads)


cat = _structural(
    "cat", "CatBackward0",
    forward=_cat_forward,
    vjp=_cat_vjp,
    arity=None,
)


def _stack_vjp(xp, g, ans, *inputs, dim=0):
    axis = normalize_dims(dim, np.ndim(ans))[0]
    return tuple(xp.getitem(g, index=(slice(None),) * axis + (i,)) for i in range(len(inputs)))


stack = _structural(
    "stack", "StackBackward0",
    forward=lambda *arrays, dim=0: np.stack(arrays, axis=dim),
    vjp=_stack_vjp,
    arity=None,
)
