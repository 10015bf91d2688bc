"""Ops behind assignment and conversion: ``setitem`` (``t[i] = v``, ``fill_``) and ``cast``.

``setitem`` is what PyTorch calls CopySlices: the result equals ``x`` with ``x[index]``
replaced by ``value``; the gradient of ``x`` is ``g`` with the assigned part zeroed, the
gradient of ``value`` is ``g[index]`` summed back to the value's shape.
"""
from __future__ import annotations

import numpy as np

from .base import STRUCTURAL, UNDEFINED, Domain, Op, register, sympy_function


def _setitem_forward(x: np.ndarray, value: np.ndarray, index: tuple) -> np.ndarray:
    out = np.array(x, copy=True)
    out[index] = value
    return out


def _setitem_vjp(xp, g, ans, x, value, index):
    grad_x = xp.setitem(g, 0, index=index)
    grad_value = xp.sum_to(xp.getitem(g, index=index), shape=np.shape(value))
    return grad_x, grad_value


def _setitem_name(x_shape, value_shape, *, index) -> str:
    """PyTorch calls assignment through an integer array or mask IndexPutBackward0."""
    return "IndexPutBackward0" if any(isinstance(item, np.ndarray) for item in index) else "CopySlices"


setitem = register(Op(
    name="setitem",
    grad_fn_name="CopySlices",
    forward=_setitem_forward,
    vjp=_setitem_vjp,
    sympy=STRUCTURAL,
    kind="structural",
    arity=2,
    saves=frozenset(),
    domains=(Domain(), Domain()),
    name_rule=_setitem_name,
))


def _cast_vjp(xp, g, ans, x, dtype):
    # only float inputs can carry a gradient, so the gradient goes back to x's float dtype;
    # a mask or integer input (cast while a trace follows it, ``mask.float()``) gets none
    if x.dtype.kind != "f":
        return (UNDEFINED,)
    return (xp.cast(g, dtype=x.dtype),)


cast = register(Op(
    name="cast",
    grad_fn_name="ToCopyBackward0",
    forward=lambda x, dtype: np.asarray(x).astype(dtype),
    vjp=_cast_vjp,
    # the engine's Cast, which rounds values as the tape does (x itself would compute in the wider dtype)
    sympy=sympy_function("symgrad.symbolic.forms.selections.cast_form"),
    saves=frozenset(),
))
