"""Creating tensors: ``tensor``, ``ones``, ``randn``, the ``*_like`` forms and the seed.

Python floats become the default float dtype (float64 unless ``set_default_dtype`` says
otherwise); random numbers come from one seeded generator (``manual_seed``).
"""
from __future__ import annotations

import warnings

import numpy as np

from . import dtypes, tracing
from .tensor import Tensor, as_tensor

_rng = [np.random.default_rng()]


def manual_seed(seed: int) -> None:
    """Seed the generator behind ``rand``, ``randn`` and ``nn`` initialisation."""
    _rng[0] = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator ``manual_seed`` controls."""
    return _rng[0]


def tensor(data, dtype=None, requires_grad: bool = False, name: str | None = None, dims=None) -> Tensor:
    """A new tensor holding a copy of ``data``; ``dims`` names its axes (``("n", None)``:
    axis 0 is ``n`` long), so printed formulas show a size by its name (a mean over the
    rows divides by ``n``) while the engine computes with the number.

    >>> tensor([[1.0, 2.0]], name="X", dims=("n", None)).dims
    ('n', None)

    >>> tensor([[1.0, 2.0]], requires_grad=True)
    tensor([[1., 2.]], requires_grad=True)
    >>> tensor([1, 2], requires_grad=True)
    Traceback (most recent call last):
    ...
    RuntimeError: only tensors of floating point dtype can require gradients, got symgrad.int64; ...
    """
    if isinstance(data, Tensor):
        if tracing.ACTIVE_TRACES:
            tracing.refuse(data, "symgrad.tensor() (a copy outside the graph)",
                           "use the tensor itself, or x.clone() for a recorded copy")
        warnings.warn(
            "To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone() or "
            "sourceTensor.detach().clone().requires_grad_(True), rather than symgrad.tensor(sourceTensor).",
            UserWarning,
            stacklevel=2,
        )
        data = data._data
    out = Tensor(dtypes.as_array(data, dtype), requires_grad=requires_grad, name=name)
    out.dims = dim_names(dims, out.ndim, f"the tensor {name!r}" if name else "the tensor")
    return out


def dim_names(dims, ndim: int, what: str) -> tuple | None:
    """``dims`` checked: one name (an identifier) or None per axis of an ``ndim``-D array;
    None when no axis is named.  ``what`` names the array in the error.

    >>> dim_names(("n", None), 2, "X"), dim_names(None, 2, "X")
    (('n', None), None)
    """
    if dims is None:
        return None
    dims = tuple(dims)
    if len(dims) != ndim or not all(d is None or (isinstance(d, str) and d.isidentifier()) for d in dims):
        raise ValueError(f"dims of {what} must give one name (an identifier) or None per axis of its {ndim} axes, "
                         f"got {dims!r}")
    return dims if any(d is not None for d in dims) else None


def FloatTensor(data, name: str | None = None) -> Tensor:  # noqa: N802  (PyTorch's legacy constructor)
    """A float32 tensor, like ``torch.FloatTensor([[2, 4]])``."""
    return tensor(data, dtype=dtypes.float32, name=name)


def from_numpy(array: np.ndarray, name: str | None = None) -> Tensor:
    """A tensor sharing ``array``'s memory (changing one changes the other), like
    ``torch.from_numpy``; it keeps the array's dtype.

    >>> a = np.array([1.0, 2.0])
    >>> t = from_numpy(a); a[0] = 5.0; t
    tensor([5., 2.])
    >>> from_numpy([1.0])
    Traceback (most recent call last):
    ...
    TypeError: from_numpy: expected np.ndarray (got list); use symgrad.tensor(data) to copy other data
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"from_numpy: expected np.ndarray (got {type(array).__name__}); use symgrad.tensor(data) to copy other data"
        )
    return Tensor(dtypes.as_array(array, copy=False), name=name)


def _sizes(size) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def _float_dtype(dtype):
    return dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)


def _make(array: np.ndarray, requires_grad: bool, name: str | None) -> Tensor:
    return Tensor(array, requires_grad=requires_grad, name=name)


def zeros(*size, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _make(np.zeros(_sizes(size), _float_dtype(dtype)), requires_grad, name)


def ones(*size, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A tensor of ones."""
    return _make(np.ones(_sizes(size), _float_dtype(dtype)), requires_grad, name)


def full(size, fill_value, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``."""
    if dtype is None:
        dtype = dtypes.as_array(fill_value).dtype
    return _make(np.full(tuple(size), fill_value, dtypes.to_dtype(dtype)), requires_grad, name)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """The identity matrix."""
    return _make(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad, name)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """``start, start+step, ...`` below ``end``; integers stay integers, like PyTorch.

    >>> arange(3)
    tensor([0, 1, 2])
    """
    if end is None:
        start, end = 0, start
    array = np.arange(start, end, step)
    if array.dtype == np.float64:
        array = array.astype(dtypes.get_default_dtype())
    return _make(array.astype(dtypes.to_dtype(dtype)) if dtype is not None else array, requires_grad, name)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    return _make(np.linspace(start, end, steps).astype(_float_dtype(dtype)), requires_grad, name)


def rand(*size, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """Uniform random numbers in [0, 1)."""
    if tracing.ACTIVE_TRACES:
        tracing.refuse_random("symgrad.rand()")
    return _make(_rng[0].random(_sizes(size)).astype(_float_dtype(dtype)), requires_grad, name)


def randn(*size, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """Standard normal random numbers."""
    if tracing.ACTIVE_TRACES:
        tracing.refuse_random("symgrad.randn()")
    return _make(_rng[0].standard_normal(_sizes(size)).astype(_float_dtype(dtype)), requires_grad, name)


def _like(other, maker, dtype, requires_grad, name) -> Tensor:
    other = as_tensor(other)
    return maker(other.shape, dtype=other.dtype if dtype is None else dtype, requires_grad=requires_grad, name=name)


def zeros_like(other, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    return _like(other, zeros, dtype, requires_grad, name)


def ones_like(other, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    return _like(other, ones, dtype, requires_grad, name)


def full_like(other, fill_value, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    other = as_tensor(other)
    return full(other.shape, fill_value, dtype=other.dtype if dtype is None else dtype, requires_grad=requires_grad,
                name=name)


def rand_like(other, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    return _like(other, rand, dtype, requires_grad, name)


def randn_like(other, dtype=None, requires_grad: bool = False, name: str | None = None) -> Tensor:
    return _like(other, randn, dtype, requires_grad, name)
