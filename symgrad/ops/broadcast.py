"""Broadcasting: the one unbroadcast helper (``sum_to``) and its adjoint (``broadcast_to``).

Every VJP of a broadcasting op ends with ``xp.sum_to(grad, input.shape)``; nothing else
in symgrad undoes broadcasting.  Both are ops, so a gradient computed with
``create_graph=True`` stays differentiable through them.
"""
from __future__ import annotations

import numpy as np

from .base import STRUCTURAL, Op, register


def sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` down to ``shape``, undoing NumPy broadcasting.

    >>> sum_to_shape(np.ones((2, 3)), (3,))
    array([2., 2., 2.])
    >>> sum_to_shape(np.ones((2, 3)), (2, 1))
    array([[3.],
           [3.]])
    """
    if type(g) is not np.ndarray:
        g = np.asarray(g)
    if type(shape) is not tuple:
        shape = tuple(shape)
    if g.shape == shape:
        return g.copy()  # an op's forward never returns (a view of) its input
    lead = g.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum a gradient of shape {g.shape} down to the larger shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(shape) if size == 1 and g.shape[lead + i] != 1
    )
    out = g.sum(axis=axes, keepdims=True) if axes else g
    return out.reshape(shape)


def broadcast_array(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast ``x`` to ``shape`` as a new, writable array.

    Filled by assignment (a tenth of the time of copying ``numpy.broadcast_to``'s view: the
    mean's gradient in every training step comes through here); where that fails, or
    where assignment would accept what ``broadcast_to`` refuses (more dimensions than
    ``shape``), ``numpy.broadcast_to`` says what is wrong.

    >>> broadcast_array(np.array([1.0, 2.0]), (2, 2))
    array([[1., 2.],
           [1., 2.]])
    """
    x = np.asarray(x)
    shape = tuple(shape)
    if x.ndim <= len(shape):
        try:
            out = np.empty(shape, dtype=x.dtype)
            out[...] = x
            return out
        except (ValueError, TypeError):
            pass
    return np.array(np.broadcast_to(x, shape))


sum_to = register(Op(
    name="sum_to",
    grad_fn_name="SumToBackward0",
    forward=sum_to_shape,
    vjp=lambda xp, g, ans, x, shape: (xp.broadcast_to(g, shape=np.shape(x)),),
    sympy=STRUCTURAL,
    kind="structural",
    saves=frozenset(),
))

broadcast_to = register(Op(
    name="broadcast_to",
    numpy="broadcast_to",
    grad_fn_name="ExpandBackward0",
    forward=broadcast_array,
    vjp=lambda xp, g, ans, x, shape: (xp.sum_to(g, shape=np.shape(x)),),
    sympy=STRUCTURAL,
    kind="structural",
    view=True,  # expand
    saves=frozenset(),
    public=True,
))
