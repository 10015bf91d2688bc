"""Reductions and the softmax family: ops that combine elements along dimensions.

Every op here has ``sympy=STRUCTURAL`` (the symbolic engine defines a SymPy ``Function``
of the same name; the attribute table is in ``structural.py``).  Dimensions follow
PyTorch: the attribute is ``dim`` (``None`` for all dimensions, an int, or a tuple of
ints; negative values count from the end) and ``keepdim`` keeps reduced dimensions with
size 1.  ``dim=()`` is refused, because PyTorch reads it as "all dimensions" and NumPy as
"none".

Choices at non-differentiable points, checked against PyTorch 2.13:

* ``max``/``min`` over all elements split the gradient evenly between tied elements;
  over one ``dim`` they give all of it to the first extreme index (what ``torch.max``
  returns as ``indices`` on CPU).  ``amax``/``amin`` split it evenly between the ties of
  each slice, over any dims (``x == amax(x)`` divided by the number of ties); NumPy's
  ``np.max``/``np.amax`` run ``amax`` (their ``numpy`` field).  ``max`` and ``min`` use the
  helper op ``extremum_mask``.
* ``argmax``/``argmin`` give the int64 position of the first of tied extremes, a NaN's
  (the first NaN) where there is one, as PyTorch; ``keepdim=True`` without ``dim`` keeps
  every dim with size 1 (PyTorch 2.13).  They have no derivative (``differentiable`` False,
  VJP ``UNDEFINED``): a running trace records them as it records masks
  (``tape/tracing.py``), so a transform recomputes them at every call.
* ``cumprod`` at zeros: PyTorch's gradient (see ``_cumprod_vjp``).
* ``norm`` (the 2-norm) has gradient 0 where the norm is 0.
* ``sort_values`` (the values of ``symgrad.sort``/``topk``) orders ties stably, as
  ``torch.sort(stable=True)``: each tied element's gradient is the one of the position
  its stable order sends it to. Its VJP is the op ``sort_by`` (the gradient put back where
  the input's stable order took it), recomputed from the input at every call, so sorting
  works inside transforms and on the symbolic engine.

The softmax family and ``logsumexp`` are derived, but are their own entries: their
forwards subtract the maximum first so that they do not overflow, and their VJPs are
written from the output, which is both cheaper and stable.
"""
from __future__ import annotations

import math

import numpy as np

from .base import STRUCTURAL, UNDEFINED, Domain, Op, register, shape_of


def normalize_dims(dim, ndim: int) -> tuple[int, ...] | None:
    """Normalize a PyTorch ``dim`` attribute to a sorted tuple of non-negative dims.

    ``None`` (all dimensions) stays ``None``.  A 0-d array accepts ``dim`` 0 and -1, as
    PyTorch does, and has nothing to reduce.

    >>> normalize_dims(-1, 3), normalize_dims((2, 0), 3), normalize_dims(None, 3)
    ((2,), (0, 2), None)
    """
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    if not dims:
        raise ValueError("dim=() is ambiguous (PyTorch reduces all dims, NumPy none): "
                         "pass dim=None to reduce over all dimensions")
    size = max(ndim, 1)
    out = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or not -size <= d < size:
            raise IndexError(f"dim {d!r} is out of range for an array with {ndim} dimensions "
                             f"(expected an int in [{-size}, {size - 1}])")
        out.append(int(d) % size)
    if len(set(out)) != len(out):
        raise ValueError(f"dim {dim!r} names the same dimension twice")
    return tuple(sorted(out)) if ndim else ()


def kept_shape(shape: tuple[int, ...], dim) -> tuple[int, ...]:
    """The shape of a reduction over ``dim`` with ``keepdim=True``.

    >>> kept_shape((2, 3, 4), (0, -1))
    (1, 3, 1)
    """
    dims = normalize_dims(dim, len(shape))
    return tuple(1 if dims is None or i in dims else n for i, n in enumerate(shape))


def _keep(xp, g, x, dim, keepdim):
    """``g`` (the gradient of a reduction's output) reshaped to the keepdim shape."""
    return g if keepdim else xp.reshape(g, shape=kept_shape(shape_of(x), dim))


def _reduction(name, grad_fn_name, forward, vjp, saves, name_rule=None, public=True, numpy=None):
    """A reduction; ``public``: ``Tensor.<name>`` (written out in ``tape/tensor.py``, for
    its ``dim``/``keepdim`` handling) and ``symgrad.<name>`` exist."""
    return register(Op(
        name=name,
        grad_fn_name=grad_fn_name,
        forward=forward,
        vjp=vjp,
        sympy=STRUCTURAL,
        kind="reduction",
        saves=frozenset(saves),
        name_rule=name_rule,
        public=public,
        numpy=numpy,
    ))


def _all_or_dim(all_name, dim_name):
    """Name rule: PyTorch's node for a full reduction differs from one over ``dim``."""
    return lambda shape, *, dim=None, keepdim=False: all_name if dim is None and not keepdim else dim_name


# ----------------------------------------------------------------------------- sum, mean


def _sum_forward(x, *, dim=None, keepdim=False):
    x = np.asarray(x)
    return np.asarray(np.sum(x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim))


sum_ = _reduction(
    "sum", "SumBackward0", _sum_forward,
    vjp=lambda xp, g, ans, x, *, dim=None, keepdim=False: (
        xp.broadcast_to(_keep(xp, g, x, dim, keepdim), shape=shape_of(x)),
    ),
    saves=(),
    name_rule=_all_or_dim("SumBackward0", "SumBackward1"),
    numpy="sum",
)


def _count(shape, dim) -> int:
    dims = normalize_dims(dim, len(shape))
    return math.prod(shape if dims is None else (shape[d] for d in dims))


def _mean_forward(x, *, dim=None, keepdim=False):
    x = np.asarray(x)
    axis = normalize_dims(dim, x.ndim)
    if x.dtype.kind == "f" and x.dtype.itemsize >= 4 and x.size:
        # numpy.mean's own sum and division (bit for bit), without its checks: the mean
        # of a training loop's loss is a hot path (float16 sums in float32 there: below)
        count = x.size
        if axis is not None:
            count = 1
            for d in axis:
                count *= x.shape[d]
        return np.asarray(np.add.reduce(x, axis=axis, keepdims=keepdim) / count)
    return np.asarray(np.mean(x, axis=axis, keepdims=keepdim))


# mean is sum / count; it has its own entry because PyTorch records one MeanBackward node.
mean = _reduction(
    "mean", "MeanBackward0", _mean_forward,
    vjp=lambda xp, g, ans, x, *, dim=None, keepdim=False: (
        xp.broadcast_to(_keep(xp, g, x, dim, keepdim) / _count(shape_of(x), dim), shape=shape_of(x)),
    ),
    saves=(),
    name_rule=_all_or_dim("MeanBackward0", "MeanBackward1"),
    numpy="mean",
)

# ----------------------------------------------------------------------------- max, min


def _single_dim(dim, op_name):
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op_name} reduces over all dims (dim=None) or one int dim, got dim={dim!r}")


def _extremum_forward(reduce, op_name):
    def forward(x, *, dim=None, keepdim=False):
        _single_dim(dim, op_name)
        x = np.asarray(x)
        return np.asarray(reduce(x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim))
    return forward


def _extremum_mask_forward(x, *, dim=None, mode="max"):
    x = np.asarray(x)
    if mode not in ("max", "min"):
        raise ValueError(f"extremum_mask mode must be 'max' or 'min', got {mode!r}")
    _single_dim(dim, "extremum_mask")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    if dim is None:  # ties share the gradient evenly (NaN, if any, is the extremum)
        value = x.max() if mode == "max" else x.min()
        hit = np.isnan(x) if np.isnan(value) else x == value
        return hit.astype(dtype) / dtype.type(hit.sum())
    if x.ndim == 0:
        return np.ones(x.shape, dtype=dtype)
    (axis,) = normalize_dims(dim, x.ndim)
    out = np.zeros(x.shape, dtype=dtype)
    pick = np.argmax if mode == "max" else np.argmin  # the first extreme index, as torch
    np.put_along_axis(out, pick(x, axis=axis, keepdims=True), 1, axis=axis)
    return out


# Helper for the VJPs of max/min: where their gradient goes, in x's shape and dtype.
# dim=None: 1/k at each of the k tied extreme elements; dim an int: 1 at the first
# extreme index along dim.  Not a PyTorch op (PyTorch saves the indices instead), so its
# node name only shows up in graphs built with create_graph=True.
extremum_mask = _reduction(
    "extremum_mask", "ExtremumMaskBackward0", _extremum_mask_forward,
    # piecewise constant in x: its derivative is zero wherever it exists
    vjp=lambda xp, g, ans, x, *, dim=None, mode="max": (g * 0,),
    saves=(),
    public=False,  # the engine's own helper of max/min
)

max_ = _reduction(
    "max", "MaxBackward1", _extremum_forward(np.max, "max"),
    vjp=lambda xp, g, ans, x, *, dim=None, keepdim=False: (
        _keep(xp, g, x, dim, keepdim) * xp.extremum_mask(x, dim=dim, mode="max"),
    ),
    saves=("inputs",),
    name_rule=_all_or_dim("MaxBackward1", "MaxBackward0"),
)

min_ = _reduction(
    "min", "MinBackward1", _extremum_forward(np.min, "min"),
    vjp=lambda xp, g, ans, x, *, dim=None, keepdim=False: (
        _keep(xp, g, x, dim, keepdim) * xp.extremum_mask(x, dim=dim, mode="min"),
    ),
    saves=("inputs",),
    name_rule=_all_or_dim("MinBackward1", "MinBackward0"),
)

# ----------------------------------------------------------------------------- argmax, argmin


def _position_forward(pick, op_name):
    """The forward of ``argmax``/``argmin``: the first extreme index (``pick``) of the
    flattened ``x`` (``dim=None``; ``keepdim`` keeps every dim with size 1, as PyTorch
    2.13), or along one int dim, as int64.  A NaN is the extremum (its first index), as in
    PyTorch and NumPy."""
    def forward(x, *, dim=None, keepdim=False):
        _single_dim(dim, op_name)
        x = np.asarray(x)
        if x.dtype == bool:
            raise TypeError(f"{op_name} does not take a boolean tensor (as torch.{op_name}): convert it with .long()")
        if dim is None:
            if x.size == 0:
                raise ValueError(f"{op_name} of an empty tensor (shape {x.shape}) has no position: pass a dim")
            out = np.asarray(pick(x), dtype=np.int64)
            return out.reshape((1,) * x.ndim) if keepdim else out
        (axis,) = normalize_dims(dim, x.ndim) or (0,)
        if x.ndim == 0:
            return np.zeros((), dtype=np.int64)
        if x.shape[axis] == 0:
            raise ValueError(f"{op_name} along dim {dim} of size 0 (shape {x.shape}) has no position")
        return np.asarray(pick(x, axis=axis, keepdims=keepdim), dtype=np.int64)
    return forward


def _position_op(name, pick):
    """``argmax``/``argmin``: an int64 position, piecewise constant in ``x``, so without
    derivative (PyTorch's ``argmax`` is not differentiable); its VJP is UNDEFINED."""
    return register(Op(
        name=name,
        grad_fn_name=f"{name.capitalize()}Backward0",  # no PyTorch node: shows in a traced graph only
        forward=_position_forward(pick, name),
        vjp=lambda xp, g, ans, x, *, dim=None, keepdim=False: (UNDEFINED,),
        sympy=STRUCTURAL,
        kind="reduction",
        saves=frozenset(),
        differentiable=(False,),
        public=True,  # the Tensor method is written out (axis=, keepdims=)
        numpy=name,
    ))


argmax = _position_op("argmax", np.argmax)
argmin = _position_op("argmin", np.argmin)

# ----------------------------------------------------------------------------- logsumexp, softmax


def _shifted(x, dims):
    """``x - m`` with ``m`` the max over ``dims`` (kept), and ``m``; infinite maxima shift by 0."""
    m = np.max(x, axis=dims, keepdims=True) if x.size else np.zeros(kept_shape(x.shape, dims), x.dtype)
    m = np.where(np.isfinite(m), m, 0)
    return x - m, m


def _logsumexp_forward(x, *, dim=None, keepdim=False):
    x = np.asarray(x)
    dims = normalize_dims(dim, x.ndim)
    shifted, m = _shifted(x, dims)
    out = np.log(np.sum(np.exp(shifted), axis=dims, keepdims=True)) + m
    if keepdim:
        return out
    return out.reshape(()) if dims is None else np.squeeze(out, axis=dims)


logsumexp = _reduction(
    "logsumexp", "LogsumexpBackward0", _logsumexp_forward,
    vjp=lambda xp, g, ans, x, *, dim=None, keepdim=False: (
        _keep(xp, g, x, dim, keepdim) * xp.exp(x - _keep(xp, ans, x, dim, keepdim)),
    ),
    saves=("inputs", "output"),
)


def _softmax_forward(x, *, dim):
    x = np.asarray(x)
    dims = normalize_dims(dim, x.ndim)
    e = np.exp(_shifted(x, dims)[0])
    return e / np.sum(e, axis=dims, keepdims=True)


softmax = _reduction(
    "softmax", "SoftmaxBackward0", _softmax_forward,
    vjp=lambda xp, g, ans, x, *, dim: (ans * (g - xp.sum(g * ans, dim=dim, keepdim=True)),),
    saves=("output",),
)


def _log_softmax_forward(x, *, dim):
    x = np.asarray(x)
    dims = normalize_dims(dim, x.ndim)
    shifted = _shifted(x, dims)[0]
    return shifted - np.log(np.sum(np.exp(shifted), axis=dims, keepdims=True))


log_softmax = _reduction(
    "log_softmax", "LogSoftmaxBackward0", _log_softmax_forward,
    vjp=lambda xp, g, ans, x, *, dim: (g - xp.exp(ans) * xp.sum(g, dim=dim, keepdim=True),),
    saves=("output",),
)

# ----------------------------------------------------------------------------- norm


def _norm_forward(x, *, dim=None, keepdim=False):
    x = np.asarray(x)
    return np.asarray(np.sqrt(np.sum(x * x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim)))


def _norm_vjp(xp, g, ans, x, *, dim=None, keepdim=False):
    # x * g / |x|, and 0 where |x| = 0 (PyTorch): there x is all zeros, so dividing by
    # |x| + 1 instead gives the same 0 without a division by zero.
    norm = _keep(xp, ans, x, dim, keepdim)
    return (x * (_keep(xp, g, x, dim, keepdim) / (norm + (norm == 0))),)


norm = _reduction(
    "norm", "LinalgVectorNormBackward0", _norm_forward,
    vjp=_norm_vjp,
    saves=("inputs", "output"),
)

# ----------------------------------------------------------------------------- cumsum, cumprod, logcumsumexp


def reversed_along(dim: int, ndim: int) -> tuple:
    """The getitem index that reverses dimension ``dim`` (normal form)."""
    return (slice(None),) * (dim % ndim) + (slice(None, None, -1),)


def _running(numpy_accumulate):
    """The forward of a running reduction along the int ``dim`` (a 0-d array is its own)."""
    def forward(x, *, dim):
        x = np.asarray(x)
        (d,) = normalize_dims(dim, x.ndim) or (0,)
        return np.asarray(numpy_accumulate(x, axis=d)) if x.ndim else x.copy()
    return forward


def _from_end(xp, running, y, dim):
    """``running`` (an op name: ``cumsum``, ``logcumsumexp``) of ``y`` from the end of ``dim``:
    reversed, accumulated, reversed back."""
    flip = reversed_along(dim, np.ndim(y))
    return xp.getitem(getattr(xp, running)(xp.getitem(y, index=flip), dim=dim), index=flip)


def _cumsum_vjp(xp, g, ans, x, *, dim):
    # each input reaches every later output: the gradient is the cumulative sum from the
    # end, cumsum of g reversed along dim, reversed back (no cancellation, as PyTorch)
    return (g if np.ndim(x) == 0 else _from_end(xp, "cumsum", g, dim),)


cumsum = _reduction(
    "cumsum", "CumsumBackward0", _running(np.cumsum),
    vjp=_cumsum_vjp,
    saves=(),
)

# ----------------------------------------------------------------------------- prod


def _prod_forward(x, *, dim=None, keepdim=False):
    x = np.asarray(x)
    return np.asarray(np.prod(x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim))


def _prod_vjp(xp, g, ans, x, *, dim=None, keepdim=False):
    # ans/x where the slice has no zero (as PyTorch); where it has one, the product of the
    # others written without a division (exclusive running products from either end), so
    # the gradient is right at zeros to every order: at one zero, d grad_i / d x_zero (the
    # product of the rest) is not 0 although grad_i is
    g = _keep(xp, g, x, dim, keepdim)
    if np.ndim(x) == 0:
        return (g,)
    zero = x == 0
    nonzero = xp.where(zero, 1.0, x)
    zeros = xp.sum(xp.cast(zero, dtype=x.dtype), dim=dim, keepdim=True)
    others = xp.prod(nonzero, dim=dim, keepdim=True)
    return (xp.where(zeros == 0, g * others / nonzero, g * _product_of_the_others(xp, x, dim)),)


def _product_of_the_others(xp, x, dim):
    """For each element of ``x``, the product of the other elements of its slice along ``dim``
    (all of ``x`` when None): the running product before it times the one after it, so no
    division by the element (right where it is 0, and differentiable there)."""
    if dim is None:
        return xp.reshape(_product_of_the_others(xp, xp.reshape(x, shape=(-1,)), 0), shape=np.shape(x))
    axis = normalize_dims(dim, np.ndim(x))[0]
    if np.shape(x)[axis] <= 1:
        return _ones_like(xp, x)
    flip = reversed_along(axis, np.ndim(x))
    return _product_before(xp, x, axis) * xp.getitem(_product_before(xp, xp.getitem(x, index=flip), axis), index=flip)


def _ones_like(xp, x):
    """Ones shaped like ``x`` (whatever its values, NaN included), made with ``xp`` alone."""
    return xp.cast(xp.where(x == 0, 1.0, 1.0), dtype=x.dtype)


def _product_before(xp, x, axis):
    """The running product along ``axis`` of the elements strictly before each one (1 first)."""
    head = (slice(None),) * axis
    ones = _ones_like(xp, xp.getitem(x, index=head + (slice(None, 1),)))
    return xp.cat(ones, xp.getitem(xp.cumprod(x, dim=axis), index=head + (slice(None, -1),)), dim=axis)


prod = _reduction(
    "prod", "ProdBackward0", _prod_forward,
    vjp=_prod_vjp,
    saves=("inputs",),
    name_rule=_all_or_dim("ProdBackward0", "ProdBackward1"),
    numpy="prod",
)



def _cumprod_vjp(xp, g, ans, x, *, dim):
    # out_j = x_0 ... x_j. Before the first zero of a slice (k), d out_j / d x_i = out_j / x_i,
    # and out_j = 0 for j >= k, so the gradient is cumsum-from-the-end(g * out) / x_i. At the
    # first zero it is sum_{j>=k} g_j * prod_{m<=j, m != k} x_m: the same sum over the running
    # products of x with that zero replaced by 1 (PyTorch's rule). After it the gradient is
    # 0, but it is written x_k * (the same rule for x with x_k replaced by 1), so its
    # derivative in x_k -- not 0 -- is right: the gradient is right to second order.
    if np.ndim(x) == 0:
        return (g,)
    zero = xp.cast(x == 0, dtype=x.dtype)
    earlier_zeros = xp.cumsum(zero, dim=dim) - zero  # zeros strictly before each position
    first = xp.logical_and(x == 0, earlier_zeros == 0)  # the first zero of the slice
    first_as_one = xp.where(first, 1.0, x)
    at_the_first_zero = xp.sum(xp.where(first, x, 0.0), dim=dim, keepdim=True)
    after_first = at_the_first_zero * _cumprod_rule(xp, g, xp.cumprod(first_as_one, dim=dim), first_as_one, dim)
    return (xp.where(earlier_zeros > 0, after_first, _cumprod_rule(xp, g, ans, x, dim)),)


def _cumprod_rule(xp, g, ans, x, dim):
    """The gradient of ``cumprod`` up to and at the first zero of each slice (0 after it)."""
    zero = xp.cast(x == 0, dtype=x.dtype)
    seen = xp.cumsum(zero, dim=dim)
    before = seen == 0
    up_to_first = seen - zero == 0  # no zero strictly before
    first_as_one = xp.where(before, x, xp.where(up_to_first, 1.0, x))
    at_first = _from_end(xp, "cumsum", g * xp.cumprod(first_as_one, dim=dim), dim)
    earlier = _from_end(xp, "cumsum", g * ans, dim) / xp.where(before, x, 1.0)
    return xp.where(before, earlier, xp.where(up_to_first, at_first, 0.0))


cumprod = _reduction(
    "cumprod", "CumprodBackward0", _running(np.cumprod),
    vjp=_cumprod_vjp,
    saves=("inputs", "output"),
)


LOG_OF_ZERO = float(np.finfo(np.float32).min)
"""What ``logcumsumexp``'s gradient takes for ``log 0``: finite in both float dtypes (``-inf``
would make its second derivative NaN), and ``exp`` of it plus any finite value is 0."""


def _logcumsumexp_vjp(xp, g, ans, x, *, dim):
    # d out_j / d x_i = exp(x_i - out_j) for i <= j, so the gradient is
    # exp(x_i) * sum_{j>=i} g_j exp(-out_j). Computed stably, as PyTorch (and TensorFlow):
    # the positive and the negative parts of g separately, in log space, with
    # logcumsumexp from the end.
    if np.ndim(x) == 0:
        return (g,)
    log_positive = xp.where(g > 0, xp.log(xp.where(g > 0, g, 1.0)), LOG_OF_ZERO)
    log_negative = xp.where(g < 0, xp.log(xp.where(g < 0, -g, 1.0)), LOG_OF_ZERO)
    positive = xp.exp(_from_end(xp, "logcumsumexp", log_positive - ans, dim) + x)
    negative = xp.exp(_from_end(xp, "logcumsumexp", log_negative - ans, dim) + x)
    return (positive - negative,)


logcumsumexp = _reduction(
    "logcumsumexp", "LogcumsumexpBackward0", _running(np.logaddexp.accumulate),
    vjp=_logcumsumexp_vjp,
    saves=("inputs", "output"),
)

# ----------------------------------------------------------------------------- amax, amin


def _amax_forward(reduce):
    def forward(x, *, dim=None, keepdim=False):
        x = np.asarray(x)
        return np.asarray(reduce(x, axis=normalize_dims(dim, x.ndim), keepdims=keepdim))
    return forward


def _amax_vjp(xp, g, ans, x, *, dim=None, keepdim=False):
    # the gradient is shared evenly by the elements equal to the extreme value of their
    # slice, as PyTorch's amax/amin (max/min along one dim give it all to the first one)
    hit = xp.cast(x == _keep(xp, ans, x, dim, keepdim), dtype=x.dtype)
    return (_keep(xp, g, x, dim, keepdim) * hit / xp.sum(hit, dim=dim, keepdim=True),)


# np.max and np.min (and their aliases np.amax, np.amin) run these, not max/min: NumPy's
# reductions give values over any axes, as amax/amin (tape/numpy_protocol.py says why)
amax = _reduction("amax", "AmaxBackward0", _amax_forward(np.max), vjp=_amax_vjp, saves=("inputs", "output"),
                  numpy="max")
amin = _reduction("amin", "AminBackward0", _amax_forward(np.min), vjp=_amax_vjp, saves=("inputs", "output"),
                  numpy="min")

# ----------------------------------------------------------------------------- sort_values, sort_by


def _sort_dim(x, dim) -> int:
    (d,) = normalize_dims(dim, np.ndim(x)) or (0,)
    return d


def stable_order(key, dim: int, descending: bool) -> np.ndarray:
    """The stable argsort of ``key`` along ``dim``; ties keep their order also when
    ``descending`` (as ``torch.sort(stable=True, descending=True)``), which sorts the
    reversed slices ascending and reverses the result (no negation: booleans and unsigned
    integers sort too, and NaN comes first, as in PyTorch)."""
    key = np.asarray(key)
    if not descending:
        return np.argsort(key, axis=dim, kind="stable")
    flip = reversed_along(dim, key.ndim)
    return key.shape[dim] - 1 - np.argsort(key[flip], axis=dim, kind="stable")[flip]


def _sort_values_forward(x, *, dim, descending=False):
    x = np.asarray(x)
    if x.ndim == 0:
        return x.copy()
    d = _sort_dim(x, dim)
    return np.take_along_axis(x, stable_order(x, d, descending), axis=d)


def _sort_by_forward(x, key, *, dim, descending=False, inverse=False):
    x, key = np.asarray(x), np.asarray(key)
    if x.shape != key.shape:
        raise ValueError(f"sort_by: x of shape {x.shape} and key of shape {key.shape} must have the same shape")
    if x.ndim == 0:
        return x.copy()
    d = _sort_dim(x, dim)
    order = stable_order(key, d, descending)
    if not inverse:
        return np.take_along_axis(x, order, axis=d)
    out = np.empty_like(x)
    np.put_along_axis(out, order, x, axis=d)
    return out


sort_values = register(Op(
    name="sort_values",
    grad_fn_name="SortBackward1",
    forward=_sort_values_forward,
    vjp=lambda xp, g, ans, x, *, dim, descending=False: (
        xp.sort_by(g, x, dim=dim, descending=descending, inverse=True),),
    sympy=STRUCTURAL,
    kind="structural",
    saves=frozenset({"inputs"}),
))

sort_by = register(Op(
    name="sort_by",
    grad_fn_name="GatherBackward0",
    forward=_sort_by_forward,
    # a permutation (inverse: its inverse) fixed by key, which is piecewise constant in key
    vjp=lambda xp, g, ans, x, key, *, dim, descending=False, inverse=False: (
        xp.sort_by(g, key, dim=dim, descending=descending, inverse=not inverse), UNDEFINED),
    sympy=STRUCTURAL,
    kind="structural",
    arity=2,
    domains=(Domain(), Domain()),
    differentiable=(True, False),
    saves=frozenset({"inputs"}),
    needed_by={0: (), 1: (0,)},  # key is read for x's gradient, x for none
    name_rule=lambda x_shape, key_shape, *, dim, descending=False, inverse=False: (
        "ScatterBackward0" if inverse else "GatherBackward0"),
))
