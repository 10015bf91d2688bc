"""Evaluate closed forms with tensor ops, recording a graph (``create_graph=True``).

Compiled NumPy code is fast but opaque to autograd.  For ``backward(create_graph=True)``
the symbolic engine evaluates its closed-form gradients *with symgrad's tensor ops*
instead: every SymPy node maps to the op-table op it came from (``Add`` -> ``add``,
``Pow`` -> ``pow_scalar``/``pow``, ``Piecewise`` -> ``where``, a structural function -> its
op, and every SymPy function that is an op's whole form -- ``exp``, the stable
``sigmoid``/``softplus``, ``Maximum`` -- to that op, read from the op table by
:func:`~symgrad.symbolic.forms.selections.match_function_op`), so the gradients are tensors
whose own graph can be differentiated again, by either engine.

A node with no op-table counterpart raises :class:`NotTensorizable`; the caller then
hands the backward to the tape engine.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from ..forms.selections import (Cast, Equal, Greater, GreaterEqual, Less, LessEqual, LogicalAnd, LogicalNot,
                          LogicalOr, NotEqual, Select, TieStep, match_function_op)
from ..forms.structural import StructuralFunction, _Indexed, fill_index, is_equal
from ..core.symbols import Attrs

__all__ = ["NotTensorizable", "evaluate_as_tensors"]


class NotTensorizable(NotImplementedError):
    """A closed form contains a function with no op-table counterpart."""


_COMPARE = {
    sp.StrictGreaterThan: "__gt__", sp.StrictLessThan: "__lt__", sp.GreaterThan: "__ge__",
    sp.LessThan: "__le__", sp.Equality: "__eq__", sp.Unequality: "__ne__",
    Greater: "__gt__", Less: "__lt__", GreaterEqual: "__ge__", LessEqual: "__le__", Equal: "__eq__",
    NotEqual: "__ne__",
}


def evaluate_as_tensors(exprs: list, env: dict) -> list:
    """Evaluate ``exprs`` with tensor ops; ``env`` maps symbols to tensors.

    >>> import symgrad
    >>> x = sp.Symbol("x", real=True)
    >>> t = symgrad.tensor([1.0, 2.0], requires_grad=True)
    >>> (y,) = evaluate_as_tensors([sp.exp(x) * x ** 2], {x: t})
    >>> y.grad_fn.name()
    'MulBackward0'
    """
    from ...tape import apply_op
    from ...tape.tensor import Tensor

    values: dict = dict(env)
    stack = [(e, False) for e in reversed(exprs)]
    while stack:
        node, ready = stack.pop()
        if node in values:
            continue
        kids = _kids(node)
        if not ready:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if k not in values)
            continue
        values[node] = _apply(node, [values[k] for k in kids], apply_op, Tensor)
    return [values[e] for e in exprs]


def _quotient(node: sp.Mul) -> tuple[list, list]:
    """``(numerator factors, denominator factors)`` of a product, split as SymPy's code
    printers split it for the compiled code: a factor ``b**-e`` (``e`` a positive
    rational) divides by ``b**e``, a rational ``p/q`` multiplies by ``p`` and divides by
    ``q``.  Evaluated so, ``x/x`` is exactly 1 as in the compiled code, where a product with
    the reciprocal, ``x * (1/x)``, can be ``1 - 2**-53`` (and ``floor`` of it 0)."""
    numerator, denominator = [], []
    for factor in node.args:
        if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
            denominator.append(sp.Pow(factor.base, -factor.exp))
        elif factor.is_Rational and factor.q != 1:
            if factor.p != 1:
                numerator.append(sp.Integer(factor.p))
            denominator.append(sp.Integer(factor.q))
        else:
            numerator.append(factor)
    return numerator, denominator


def _kids(node: sp.Basic) -> tuple:
    if isinstance(node, sp.Mul):
        numerator, denominator = _quotient(node)
        return tuple(numerator + denominator)
    if isinstance(node, StructuralFunction):
        return node.arrays
    if isinstance(node, sp.Piecewise):
        out = []
        for expr, cond in node.args:
            out.append(expr)
            if cond is not sp.true:
                out.append(cond)
        return tuple(out)
    if isinstance(node, (sp.Expr, sp.logic.boolalg.Boolean)) and node.args:
        return tuple(a for a in node.args if not isinstance(a, Attrs))
    return ()


def _apply(node, args: list, apply_op, Tensor) -> Any:
    if node.is_Number or isinstance(node, sp.NumberSymbol):
        return int(node) if node.is_Integer else float(node)
    if node is sp.true or node is sp.false:
        return bool(node)
    if isinstance(node, sp.Symbol):
        raise NotTensorizable(f"the symbol {node} has no tensor value")
    if isinstance(node, _Indexed):  # index arrays fill the index's slots, they are not operands
        data = args[: node.n_data]
        return apply_op(node.op_name, *data, **{**node.attrs, "index": fill_index(node.attrs["index"],
                                                                                   args[node.n_data:])})
    if isinstance(node, StructuralFunction):
        return apply_op(node.op_name, *args, **node.attrs)
    if isinstance(node, sp.Add):
        out = args[0]
        for a in args[1:]:
            out = out + a
        return out
    if isinstance(node, sp.Mul):
        n_numerator = len(_quotient(node)[0])
        out = _product(args[:n_numerator])
        return out / _product(args[n_numerator:]) if len(args) > n_numerator else out
    if isinstance(node, sp.Pow):
        base, exponent = args
        if not isinstance(base, Tensor):
            return apply_op("pow", base, exponent) if isinstance(exponent, Tensor) else base ** exponent
        return base ** exponent
    matched = match_function_op(node)
    if matched is not None:
        name, positions = matched
        inputs = [args[k] for k in positions]
        if not any(isinstance(value, Tensor) for value in inputs):
            inputs[0] = _as_tensor(inputs[0], Tensor)
        return apply_op(name, *inputs)
    if isinstance(node, is_equal):
        return apply_op("where", _as_tensor(args[0], Tensor) == args[1], 1.0, 0.0)
    if isinstance(node, Cast):
        return apply_op("cast", _as_tensor(args[0], Tensor), dtype=node.dtype)
    if isinstance(node, Select):
        condition, a, b = args
        return apply_op("where", _as_tensor(condition, Tensor), a, b)
    if isinstance(node, TieStep):
        a, b = (_as_tensor(v, Tensor) for v in args)
        return apply_op("where", a < b, 0.0, apply_op("where", a == b, 0.5, 1.0))
    if isinstance(node, LogicalAnd):
        return _fold(args, lambda a, b: a & b, Tensor)
    if isinstance(node, LogicalOr):
        return _fold(args, lambda a, b: a | b, Tensor)
    if isinstance(node, LogicalNot):
        return ~_as_tensor(args[0], Tensor)
    if node.func in _COMPARE:
        left, right = args
        if not isinstance(left, Tensor):
            left = _as_tensor(left, Tensor)
        return getattr(left, _COMPARE[node.func])(right)
    if isinstance(node, sp.And):
        return _fold(args, lambda a, b: a & b, Tensor)
    if isinstance(node, sp.Or):
        return _fold(args, lambda a, b: a | b, Tensor)
    if isinstance(node, sp.Not):
        return ~_as_tensor(args[0], Tensor)
    if isinstance(node, sp.Piecewise):
        return _piecewise(node, args, apply_op, Tensor)
    if isinstance(node, sp.DiracDelta):
        return 0.0
    raise NotTensorizable(f"{node.func.__name__} (in {node}) has no op-table counterpart")


def _product(factors: list) -> Any:
    out = factors[0] if factors else 1
    for factor in factors[1:]:
        out = out * factor
    return out


def _as_tensor(value, Tensor):
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))


def _fold(args, op, Tensor):
    out = _as_tensor(args[0], Tensor)
    for a in args[1:]:
        out = op(out, _as_tensor(a, Tensor))
    return out


def _piecewise(node, args: list, apply_op, Tensor):
    pairs = []
    position = 0
    for expr, cond in node.args:
        value = args[position]
        position += 1
        if cond is sp.true:
            pairs.append((value, None))
            break
        pairs.append((value, args[position]))
        position += 1
    out = pairs[-1][0] if pairs[-1][1] is None else 0.0
    for value, cond in reversed(pairs[:-1] if pairs[-1][1] is None else pairs):
        out = apply_op("where", _as_tensor(cond, Tensor), value, out)
    return out
