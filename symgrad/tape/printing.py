"""``repr`` of tensors in PyTorch's style: ``tensor([1., 2.], requires_grad=True)``.

Floats that are all whole numbers print as ``3.``, others with four decimals, and very
large or small magnitudes in scientific notation, all right-aligned in one width.
"""
from __future__ import annotations

import numpy as np

from . import dtypes

_PREFIX = "tensor("


def _float_formatter(values: np.ndarray):
    finite = values[np.isfinite(values)]
    magnitudes = np.abs(finite[finite != 0]).astype(np.float64)  # float16 cannot hold 1e8
    if finite.size and np.all(finite == np.round(finite)) and (magnitudes.size == 0 or magnitudes.max() < 1e8):
        fmt = lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)  # noqa: E731
    elif magnitudes.size and (magnitudes.max() >= 1e8 or magnitudes.min() < 1e-4):
        fmt = lambda v: f"{v:.4e}" if np.isfinite(v) else str(v)  # noqa: E731
    else:
        fmt = lambda v: f"{v:.4f}" if np.isfinite(v) else str(v)  # noqa: E731
    width = max((len(fmt(v)) for v in values.ravel()), default=0)
    return lambda v: fmt(v).rjust(width)


def format_values(array: np.ndarray) -> str:
    """The bracketed values, indented to follow ``tensor(``."""
    if array.dtype.kind == "f":
        formatter = {"float_kind": _float_formatter(array)}
    elif array.dtype.kind == "b":
        formatter = {"bool": lambda v: "True" if v else "False"}
    else:
        formatter = None
    return np.array2string(array, separator=", ", prefix=_PREFIX, formatter=formatter,
                           threshold=1000, edgeitems=3, max_line_width=80)


def tensor_repr(t) -> str:
    """``tensor(...)`` with the dtype when not the default and the autograd state.

    >>> import symgrad
    >>> symgrad.tensor(3.0, requires_grad=True)
    tensor(3., requires_grad=True)
    >>> symgrad.tensor([1, 2], dtype=symgrad.int32)
    tensor([1, 2], dtype=symgrad.int32)
    """
    extras = []
    dtype = t.dtype
    if (dtypes.is_floating(dtype) and dtype != dtypes.get_default_dtype()) or dtype.kind in "iu" and dtype != dtypes.int64:
        extras.append(f"dtype={dtypes.dtype_name(dtype)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    if t.name is not None:
        extras.append(f"name={t.name!r}")
    text = format_values(t._data)
    return _PREFIX + text + "".join(", " + e for e in extras) + ")"
