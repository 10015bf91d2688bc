"""Dtypes: the names symgrad exports, the default float dtype, and how data becomes an array.

Floats default to float64 (NumPy's habit); ``set_default_dtype(symgrad.float32)`` changes
that.  Strings, objects and ragged lists are refused here, at creation.
"""
from __future__ import annotations

import numpy as np

float16 = half = np.dtype(np.float16)
float32 = float = np.dtype(np.float32)  # noqa: A001  (PyTorch's alias: torch.float is float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = int = np.dtype(np.int32)  # noqa: A001
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)  # noqa: A001

_FLOATS = (float16, float32, float64)
_default_float = [float64]


def get_default_dtype() -> np.dtype:
    """The dtype given to Python floats: float64 unless changed.

    >>> get_default_dtype()
    dtype('float64')
    """
    return _default_float[0]


def set_default_dtype(dtype) -> None:
    """Set the dtype given to Python floats; only float16, float32 and float64 are allowed."""
    dtype = to_dtype(dtype)
    if dtype not in _FLOATS:
        raise TypeError(f"set_default_dtype takes a floating dtype (float16, float32, float64), got {dtype}")
    _default_float[0] = dtype


def to_dtype(dtype) -> np.dtype:
    """Turn ``symgrad.float32``, ``np.float32``, ``"float32"`` or ``float`` into a NumPy dtype.

    Only numbers and booleans: ``dtype=str`` (or object, complex, datetime) is refused here,
    so no creation path or ``.to()`` can make a tensor that the refusal in
    :func:`as_array` would have stopped.

    >>> to_dtype(str)
    Traceback (most recent call last):
    ...
    TypeError: dtype <U0 (from <class 'str'>) is not supported: symgrad tensors hold numbers or booleans only ...
    """
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype symgrad understands (try symgrad.float32 or 'float64')") from None
    if result.kind not in "biuf":
        raise TypeError(
            f"dtype {result} (from {dtype!r}) is not supported: symgrad tensors hold numbers or booleans only "
            "(bool, int8..int64, uint8, float16, float32, float64)"
        )
    return result


def is_floating(dtype) -> bool:
    """True for the floating dtypes, the only ones that can require grad.

    >>> is_floating(float32), is_floating(np.float16), is_floating("int64")
    (True, True, False)
    """
    kind = getattr(dtype, "kind", None)
    if kind is None or not isinstance(dtype, np.dtype):
        kind = np.dtype(dtype).kind
    return kind == "f"


def dtype_name(dtype) -> str:
    """``symgrad.float32``-style name used in reprs and error messages."""
    return f"symgrad.{np.dtype(dtype).name}"


def as_array(data, dtype=None, copy: bool = True) -> np.ndarray:
    """Convert user data to an ndarray: Python floats get the default dtype, numbers only.

    >>> as_array([1, 2]).dtype, as_array([1.0]).dtype
    (dtype('int64'), dtype('float64'))
    """
    if isinstance(data, np.ndarray):
        array = np.array(data, copy=True) if copy else data
    else:
        try:
            array = np.array(data)
        except ValueError as err:
            raise ValueError(f"cannot build a tensor from {_short(data)}: the nested lists are ragged ({err})") from None
        if array.dtype == np.float64 and dtype is None:
            array = array.astype(get_default_dtype())
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"cannot build a tensor from {_short(data)}: elements have dtype {array.dtype}; "
            "symgrad tensors hold numbers or booleans only"
        )
    if dtype is not None:
        array = array.astype(to_dtype(dtype), copy=False)
    return array


def _short(data) -> str:
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."
