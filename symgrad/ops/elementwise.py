"""Elementwise ops: NumPy forward, SymPy form, hand-written VJP and test domain, side by side.

Binary ops broadcast like NumPy; their VJPs sum the gradient back to each input's shape
with ``xp.sum_to`` (the one unbroadcast helper, see ``broadcast.py``).
"""
from __future__ import annotations

import numpy as np

from .base import Domain, Op, register


def _shape(a) -> tuple[int, ...]:
    return np.shape(a)


add = register(Op(
    name="add",
    grad_fn_name="AddBackward0",
    forward=np.add,
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g, _shape(a)), xp.sum_to(g, _shape(b))),
    sympy=lambda sp, a, b: a + b,
    arity=2,
    saves=frozenset(),
    domains=(Domain(), Domain()),
))

mul = register(Op(
    name="mul",
    grad_fn_name="MulBackward0",
    forward=np.multiply,
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g * b, _shape(a)), xp.sum_to(g * a, _shape(b))),
    sympy=lambda sp, a, b: a * b,
    arity=2,
    domains=(Domain(), Domain()),
))

exp = register(Op(
    name="exp",
    grad_fn_name="ExpBackward0",
    forward=np.exp,
    vjp=lambda xp, g, ans, x: (g * ans,),
    sympy=lambda sp, x: sp.exp(x),
    saves=frozenset({"output"}),
))
