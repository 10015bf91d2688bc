"""NumPy functions on tensors: ``np.log(t)``, ``np.sum(t, axis=0)``, ``np.where(c, t, 0.0)``.

``Tensor.__array_ufunc__`` and ``Tensor.__array_function__`` (NumPy's protocols, NEP 13 and
NEP 18) send every NumPy function called on a tensor here, so a loss written for NumPy runs
on tensors unchanged.  A NumPy function that *is* an op -- the op record's ``numpy`` field
names it (``exp``, ``add``, ``arctan2``, ``sum``, ``matmul``, ``where``...) -- runs that op
exactly as the Tensor method or operator does (``np.exp(t)`` is ``t.exp()``, ``np.add(a, t)``
is ``a + t``): recorded with its ``grad_fn``, in the closed form, and traced inside
transforms.  NumPy's keyword names become the method's (``axis=`` is ``dim=``,
``keepdims=`` is ``keepdim=``, ``a_min=``/``a_max=`` are ``min=``/``max=``).  A few NumPy
functions whose arguments differ from any op's (``np.transpose``, ``np.concatenate``,
``np.expand_dims``, ``np.dot``, ``np.max``, ``np.prod`` over a tuple of axes, ``np.cumprod``,
NumPy 2's ``np.cumulative_sum``...) and the functions that are compositions of ops
(``np.var``, ``np.flip``, ``np.einsum``, ``np.kron``...: the composites of
``tape/composites.py``, with NumPy's arguments: ``np.var``'s ``ddof`` is ``correction``,
``np.repeat`` is ``repeat_interleave``, ``np.outer`` flattens its arguments) are adapted in :data:`ADAPTED`; ``np.linalg``'s functions (``det``, ``inv``,
``solve``, ``cholesky``, ``slogdet``, ``svdvals``, ``norm``, ``matrix_norm``,
``vector_norm``) in :data:`LINALG`.

``np.max`` and its alias ``np.amax`` (``np.min``, ``np.amin``) are symgrad's ``amax``
(``amin``): the values over any axes, and the tied extremes of each slice share the
gradient evenly, as JAX's ``jnp.max``, HIPS autograd's ``np.max`` and ``torch.amax`` do.
NumPy has no gradient to follow; ``Tensor.max(dim)`` is PyTorch's ``torch.max``, which gives
all of it to the first extreme index it returns.

Everything else raises ``TypeError`` naming the function: converting the tensor to an
array would silently make a constant of it (no gradient; frozen into a trace).  So do
``out=`` (it would write outside the graph), ufunc methods (``np.add.reduce``) and NumPy
keywords with no tensor meaning (``dtype=``, ``where=``...).  ``np.asarray(t)`` is not one
of these: it is ``Tensor.__array__``, the tensor's values, as in PyTorch (and refused with
``UntraceableError`` while a transform traces).

>>> import numpy as np, symgrad
>>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
>>> np.sum(np.log(x) * 2, axis=0)
tensor(1.3863, grad_fn=<SumBackward1>)
>>> t = symgrad.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
>>> np.max(t, axis=1).sum().backward()
>>> t.grad
tensor([[0.0000, 0.5000, 0.5000]])
>>> np.median(x)
Traceback (most recent call last):
    ...
TypeError: np.median has no op in symgrad's op table, so it cannot run on tensors; ...
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..ops import OPS
from ..ops.reductions import normalize_dims
from .tensor import Tensor, _dims, apply_op

__all__ = ["array_ufunc", "array_function", "ADAPTED", "LINALG", "numpy_functions"]

KEYWORDS = {"axis": "dim", "keepdims": "keepdim", "a_min": "min", "a_max": "max", "axes": "dims"}
"""NumPy's keyword names -> the Tensor methods' names."""

POSITIONAL = ("shape", "newshape")
"""NumPy keywords that the Tensor methods take positionally (``np.reshape(t, shape=...)``)."""

OPTIONS = frozenset({"min", "max", "dim", "keepdim", "shape", "ddof", "shift", "source", "destination", "offset",
                     "axis1", "axis2", "k", "reps", "repeats", "indices", "ord"})
"""Keywords of the adapted NumPy functions that are neither renamed nor refused."""

_HELP = "use the symgrad function, or call it on t.detach().numpy() for the values alone (no gradient)"


def _op_call(op) -> Callable[..., Any]:
    """``np.<op.numpy>(*args, **kwargs)`` as the op's Tensor method, or as the op itself
    when the first argument is not a tensor (``np.add(2.0, t)`` is ``2.0 + t``)."""
    def call(*args, **kwargs):
        args = list(args) + [kwargs.pop(key) for key in POSITIONAL if key in kwargs]
        kwargs = {KEYWORDS.get(key, key): value for key, value in kwargs.items()}
        if op.public and isinstance(args[0], Tensor):
            return getattr(args[0], op.name)(*args[1:], **kwargs)
        return apply_op(op.name, *args, **kwargs)

    return call


def _extremum(name: str) -> Callable[..., Any]:
    """``np.max``/``np.amax`` as ``amax`` (``np.min``/``np.amin`` as ``amin``): the values
    over any axes, ties of a slice sharing the gradient evenly (see the module's docstring).
    ``axis=()`` raises (NumPy reduces no axis there, ``Tensor.amax(())`` all of them)."""
    def call(a, axis=None, keepdims=False):
        return apply_op(name, a, dim=_dims(axis), keepdim=bool(keepdims))

    return call


def _running(name: str) -> Callable[..., Any]:
    """``np.cumsum``/``np.cumprod``: along ``axis``, or along the flattened array without one."""
    def call(a, axis=None):
        return apply_op(name, a if axis is not None else a.reshape(-1), dim=0 if axis is None else int(axis))

    return call


def _cumulative(name: str) -> Callable[..., Any]:
    """NumPy 2's ``np.cumulative_sum``/``np.cumulative_prod``: along ``axis``, which a
    vector may leave out (NumPy refuses that for more dimensions, and so does symgrad)."""
    def call(x, axis=None):
        if axis is None:
            if x.ndim != 1:
                raise ValueError(f"np.cumulative_{name[3:]}: axis must be given for an array of {x.ndim} dimensions "
                                 "(NumPy's rule)")
            axis = 0
        return apply_op(name, x, dim=int(axis))

    return call


def _product(a, axis=None, keepdims=False):
    """``np.prod``: over all elements, one axis or a tuple of axes (one ``prod`` op per axis,
    the highest first, so the others keep their numbers; ``Tensor.prod`` takes one dim, as
    PyTorch's)."""
    if not isinstance(axis, (tuple, list)):
        return apply_op("prod", a, dim=_dims(axis), keepdim=bool(keepdims))
    for d in sorted(normalize_dims(tuple(axis), a.ndim), reverse=True):
        a = apply_op("prod", a, dim=d, keepdim=bool(keepdims))
    return a


def _spread(name: str) -> Callable[..., Any]:
    """``np.var``/``np.std``: ``ddof`` (NumPy's default 0) is PyTorch's ``correction``."""
    def call(a, axis=None, ddof=0, keepdims=False):
        from . import composites

        return getattr(composites, name)(a, _dims(axis), correction=ddof, keepdim=bool(keepdims))

    return call


def _composite(name: str, **renamed: str) -> Callable[..., Any]:
    """A composite of ``tape/composites.py`` called with NumPy's keyword names (``renamed``
    maps NumPy's to the composite's: ``axis`` to ``dims``)."""
    def call(*args, **kwargs):
        from . import composites

        return getattr(composites, name)(*args, **{renamed.get(key, key): value for key, value in kwargs.items()})

    return call


def _flip(m, axis=None):
    from .composites import flip

    return flip(m, tuple(range(m.ndim)) if axis is None else axis)


def _outer(a, b):
    """``np.outer`` flattens its arguments (``torch.outer`` takes vectors only)."""
    from .composites import outer

    return outer(a.reshape(-1), b.reshape(-1))


def _trace(a, offset=0, axis1=0, axis2=1):
    """The sums of the diagonals, as ``np.trace``: the diagonal's dim summed."""
    from .composites import diagonal

    return diagonal(a, offset, axis1, axis2).sum(dim=-1)


def _sort(a, axis=-1):
    """``np.sort``'s values (``axis=None`` sorts the flattened array)."""
    from .composites import sort

    return sort(a.reshape(-1) if axis is None else a, -1 if axis is None else axis).values


def _dot(a, b):
    """``np.dot`` is ``matmul`` for vectors and matrices (and a product for scalars); it
    means something else for more dimensions, which symgrad refuses."""
    shapes = [np.shape(v._data if isinstance(v, Tensor) else v) for v in (a, b)]
    if any(len(shape) > 2 for shape in shapes):
        raise TypeError(f"np.dot of arrays of shapes {shapes[0]} and {shapes[1]} (more than 2 dimensions) is not "
                        "matmul and has no op; use np.matmul or symgrad.matmul")
    if any(len(shape) == 0 for shape in shapes):
        return apply_op("mul", a, b)
    return apply_op("matmul", a, b)


def _expand_dims(a, axis):
    """``np.expand_dims``: ``axis`` an int or a tuple of positions in the result."""
    if not isinstance(axis, (tuple, list)):
        return apply_op("unsqueeze", a, dim=int(axis))
    for d in sorted(normalize_dims(tuple(axis), a.ndim + len(axis))):
        a = apply_op("unsqueeze", a, dim=d)
    return a


def _transpose(a, axes=None):
    dims = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
    return a.permute(*dims)


def _joined(op_name: str) -> Callable[..., Any]:
    """``np.concatenate`` (``axis=None`` joins the flattened arrays) and ``np.stack``."""
    def call(arrays, axis=0):
        arrays = list(arrays)
        if not arrays:
            raise ValueError(f"np.{'concatenate' if op_name == 'cat' else 'stack'} needs at least one array")
        if axis is None and op_name == "cat":
            return apply_op("cat", *[apply_op("reshape", a, shape=(-1,)) for a in arrays], dim=0)
        return apply_op(op_name, *arrays, dim=axis)

    return call


ADAPTED: dict[str, Callable[..., Any]] = {
    "max": _extremum("amax"),
    "min": _extremum("amin"),
    "amax": _extremum("amax"),
    "amin": _extremum("amin"),
    "dot": _dot,
    "transpose": _transpose,
    "expand_dims": _expand_dims,
    "concatenate": _joined("cat"),
    "stack": _joined("stack"),
    "prod": _product,
    "cumsum": _running("cumsum"),
    "cumprod": _running("cumprod"),
    "cumulative_sum": _cumulative("cumsum"),
    "cumulative_prod": _cumulative("cumprod"),
    "var": _spread("var"),
    "std": _spread("std"),
    "flip": _flip,
    "roll": _composite("roll", shift="shifts", axis="dims"),
    "moveaxis": _composite("moveaxis"),
    "ravel": _composite("ravel"),
    "outer": _outer,
    "inner": _composite("inner"),
    "kron": _composite("kron"),
    "einsum": _composite("einsum"),
    "tensordot": _composite("tensordot", axes="dims"),
    "trace": _trace,
    "diagonal": _composite("diagonal", axis1="dim1", axis2="dim2"),
    "diag": _composite("diag", k="diagonal"),
    "triu": _composite("triu", k="diagonal"),
    "tril": _composite("tril", k="diagonal"),
    "tile": _composite("tile", reps="dims"),
    "repeat": _composite("repeat_interleave", axis="dim"),
    "take_along_axis": _composite("take_along_dim", axis="dim"),
    "atleast_1d": _composite("atleast_1d"),
    "atleast_2d": _composite("atleast_2d"),
    "atleast_3d": _composite("atleast_3d"),
    "sort": _sort,
    "count_nonzero": _composite("count_nonzero", axis="dim"),
    "shape": lambda a: tuple(a.shape),
    "ndim": lambda a: a.ndim,
    "size": lambda a: a.numel(),
}
"""NumPy functions whose arguments differ from their op's method (or that only read a
tensor's shape), written out."""


def _linalg(name: str, **renamed: str) -> Callable[..., Any]:
    def call(*args, **kwargs):
        from .. import linalg

        return getattr(linalg, name)(*args, **{renamed.get(key, key): value for key, value in kwargs.items()})

    return call


LINALG: dict[str, Callable[..., Any]] = {
    "det": _linalg("det"), "inv": _linalg("inv"), "solve": _linalg("solve"), "cholesky": _linalg("cholesky"),
    "slogdet": _linalg("slogdet"), "svdvals": _linalg("svdvals"),
    **{name: _linalg(name, axis="dim", keepdims="keepdim") for name in ["norm", "matrix_norm", "vector_norm"]},
}
"""``np.linalg.<name>`` on tensors: ``symgrad.linalg``'s function of the same name (``inv``:
the op ``inverse``), with NumPy's keywords (``axis=``, ``keepdims=``)."""


def _routes() -> dict[str, Callable[..., Any]]:
    routes = {op.numpy: _op_call(op) for op in OPS.values() if op.numpy is not None}
    routes.update(ADAPTED)
    return routes


ROUTES = _routes()


def numpy_functions() -> list[str]:
    """The NumPy functions that run on tensors, sorted (what ``docs/api.md`` lists).

    >>> "exp" in numpy_functions() and "cbrt" not in numpy_functions()
    True
    >>> "linalg.det" in numpy_functions()
    True
    """
    return sorted(ROUTES) + sorted(f"linalg.{name}" for name in LINALG)


def _refuse(name: str, why: str, fix: str = _HELP) -> TypeError:
    return TypeError(f"np.{name} {why}; {fix}")


def _checked_kwargs(name: str, kwargs: dict) -> dict:
    if kwargs.get("out") is not None:
        raise _refuse(name, "with out= would write into an array outside the graph", "use the tensor it returns")
    kwargs = {key: value for key, value in kwargs.items() if key != "out"}
    unknown = sorted(set(kwargs) - set(KEYWORDS) - set(POSITIONAL) - OPTIONS)
    if unknown:
        raise _refuse(name, f"got the keyword{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}=, "
                            "which symgrad's tensors do not support")
    return kwargs


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_ufunc__``: run the op that ``ufunc`` is, or refuse."""
    name = ufunc.__name__
    if method != "__call__":
        raise _refuse(f"{name}.{method}", "is a ufunc method, which has no op in symgrad's op table")
    route = ROUTES.get(name)
    if route is None:
        raise _refuse(name, "has no op in symgrad's op table, so it cannot run on tensors")
    return route(*inputs, **_checked_kwargs(name, kwargs))


def array_function(func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_function__``: run the op that ``func`` is, or refuse."""
    name = func.__name__
    if getattr(func, "__module__", None) == "numpy.linalg" and getattr(np.linalg, name, None) is func:
        name = f"linalg.{name}"
        route = LINALG.get(name[len("linalg."):])
    else:
        route = ROUTES.get(name) if getattr(np, name, None) is func else None
    if route is None:
        raise _refuse(name, "has no op in symgrad's op table, so it cannot run on tensors")
    if name == "where" and len(args) + len(kwargs) != 3:
        raise _refuse(name, "with one argument gives positions, which have no derivative",
                      "use np.where(condition, a, b), or np.nonzero(t.detach().numpy())")
    return route(*args, **_checked_kwargs(name, kwargs))
