"""Mask ops: comparisons and the logical combinations of masks, the table's non-differentiable kind.

``a < b``, ``a <= b``, ``a > b``, ``a >= b``, ``a == b``, ``a != b`` (ops ``lt``, ``le``,
``gt``, ``ge``, ``eq``, ``ne``) and ``m & n``, ``m | n``, ``~m`` (``logical_and``,
``logical_or``, ``logical_not``) broadcast like elementwise ops and give a boolean mask.
They have no derivative: ``differentiable`` is False for every input and the VJP returns
:data:`~symgrad.ops.base.UNDEFINED` for each, so a gradient never flows through a mask
(``where``'s condition is not differentiable either).

Eager code never records them, as PyTorch never does (a mask never requires grad).  While
a transform traces a function (``symgrad.grad(f)``), the tape records one when an operand
is part of the trace, so the compiled function recomputes the mask from each call's
values (``symgrad/tape/tracing.py``).  PyTorch has no node for them; ``grad_fn_name``
follows its naming scheme and only shows in a traced graph.

Their SymPy forms are SymPy relationals and ``And``/``Or`` of ``x != 0`` (a mask is a
number, true when non-zero, as NumPy's ``logical_and`` reads it); the symbolic engine
lowers them to its elementwise ``Greater``, ``LogicalAnd``, ... functions.

>>> from symgrad.ops import OPS, numpy_ops
>>> numpy_ops.gt(np.array([1.0, -1.0]), 0.0), OPS["gt"].vjp(numpy_ops, None, None, 1.0, 0.0)
(array([ True, False]), (UNDEFINED, UNDEFINED))
"""
from __future__ import annotations

import numpy as np

from .base import UNDEFINED, Domain, Op, register

COMPARED = Domain(-2.0, 2.0, integer=True)
"""Comparison operands in tests: small integers, so ``==`` and ``!=`` meet ties."""

MASK = Domain(boolean=True)
"""Operands of the logical ops in tests: boolean masks."""


def _no_derivative(xp, g, ans, *inputs):
    return (UNDEFINED,) * len(inputs)


def _mask_op(name: str, grad_fn_name: str, forward, sympy, arity: int, domain: Domain) -> Op:
    return register(Op(
        name=name,
        grad_fn_name=grad_fn_name,
        forward=lambda *arrays: np.asarray(forward(*arrays)),
        vjp=_no_derivative,
        sympy=sympy,
        kind="mask",
        arity=arity,
        saves=frozenset(),
        domains=(domain,) * arity,
        differentiable=(False,) * arity,
        public=True,
        numpy=forward.__name__,  # np.less(t, 0) is t < 0
    ))


lt = _mask_op("lt", "LtBackward0", np.less, lambda sp, a, b: sp.StrictLessThan(a, b), 2, COMPARED)
le = _mask_op("le", "LeBackward0", np.less_equal, lambda sp, a, b: sp.LessThan(a, b), 2, COMPARED)
gt = _mask_op("gt", "GtBackward0", np.greater, lambda sp, a, b: sp.StrictGreaterThan(a, b), 2, COMPARED)
ge = _mask_op("ge", "GeBackward0", np.greater_equal, lambda sp, a, b: sp.GreaterThan(a, b), 2, COMPARED)
eq = _mask_op("eq", "EqBackward0", np.equal, lambda sp, a, b: sp.Eq(a, b), 2, COMPARED)
ne = _mask_op("ne", "NeBackward0", np.not_equal, lambda sp, a, b: sp.Ne(a, b), 2, COMPARED)

logical_and = _mask_op("logical_and", "LogicalAndBackward0", np.logical_and,
                       lambda sp, a, b: sp.And(sp.Ne(a, 0), sp.Ne(b, 0)), 2, MASK)
logical_or = _mask_op("logical_or", "LogicalOrBackward0", np.logical_or,
                      lambda sp, a, b: sp.Or(sp.Ne(a, 0), sp.Ne(b, 0)), 2, MASK)
logical_not = _mask_op("logical_not", "LogicalNotBackward0", np.logical_not, lambda sp, a: sp.Eq(a, 0), 1, MASK)
