"""Slices and their adjoints inside one fused C loop: closed forms read at shifted points.

A fused loop evaluates its outputs point by point.  Over 1-D arrays, a basic slice moves
the point: ``v[1:]`` at point ``j`` is ``v`` at ``j + 1``, ``v[::2]`` at ``j`` is ``v`` at
``2j``, ``v[3]`` is ``v`` at 3 wherever it is read.  The adjoint of a slice, ``index_put``
(zeros with ``g`` at ``start:stop``), at point ``i`` is ``g`` at ``i - start`` inside
``start:stop`` and 0 outside.  Over n-D arrays (C order, points numbered by their flat
index) the same holds for a slice of step 1 or an integer along the first axis
(``m[1:] - m[:-1]`` at point ``j`` reads ``m`` at ``j + row`` and ``j``, ``row`` the size of
one element of the first axis), as long as every operation's operands have its shape or
one element (no other broadcasting).  :func:`pointwise` rewrites such closed forms into
elementwise ones over the loop's index ``i``: every read of an input becomes an atom
naming the input and the affine index ``k*i + c`` it reads (:class:`Read`), and every
``index_put`` a :class:`Guard` (its value inside a range of ``i``, 0 outside).  So the
vectorised Rosenbrock value and gradient, ``sum(100*(v[1:] - v[:-1]**2)**2 + ...)`` and
``index_put(..., 1:) + index_put(..., :-1)``, is one stencil loop over ``v``.

:func:`segments` cuts the loop's range where a guard or an output's length changes, so
each piece of the range is a loop without conditions (GCC vectorises it): inside each
piece every guard is its value or 0.  Sums are evaluated in the NumPy backend's order; a
sum of ``index_put`` terms, which the NumPy backend accumulates into zeros in place
(``out[1:] += a``), adds each term to 0.0 first, as it does (so ``-0.0`` becomes ``0.0``
where it would).
"""
from __future__ import annotations

from typing import Any

import sympy as sp

from ...core.symbols import shape_of, size_of, unevaluated
from ...forms.structural import Getitem, IndexPut, is_basic_index, is_basic_index_put
from . import UnsupportedExpressionError

__all__ = ["Read", "Guard", "has_shifts", "shift_supported", "pointwise", "segments", "resolve"]


class Read(sp.Symbol):
    """Input number ``position`` read at index ``k*i + c`` of the loop (``k`` 0 for a fixed
    element)."""

    def __new__(cls, position: int, k: int, c: int) -> "Read":
        obj = super().__new__(cls, f"_read{position}_{k}_{c}".replace("-", "m"), real=True)
        obj.position, obj.k, obj.c = position, k, c
        return obj


class Guard(sp.Function):
    """``Guard(lo, hi, value)``: ``value`` where ``lo <= i < hi``, 0 elsewhere (removed by
    :func:`resolve` before printing)."""

    nargs = 3

    @classmethod
    def eval(cls, lo, hi, value):  # noqa: D102  (never simplified: resolved per segment)
        return None


def _refusal(node: sp.Basic, why: str) -> UnsupportedExpressionError:
    from .c_code import op_name

    text = str(node)
    return UnsupportedExpressionError(
        f"a fused C loop cannot translate {op_name(node)}{why}: {text if len(text) <= 80 else text[:77] + '...'}; "
        "backend='c' computes it with NumPy, backend='numpy' compiles every operation")


def _first_axis(index: Any):
    """The slice or integer ``index`` applies to the first axis, when it takes every
    element of the other axes (``x[1:]``, ``x[:-1, :]``, ``x[3, ...]``); else None."""
    parts = index if isinstance(index, tuple) else (index,)
    if not parts or not (type(parts[0]) is int or type(parts[0]) is slice):
        return None
    if any(not (p is Ellipsis or (type(p) is slice and p == slice(None))) for p in parts[1:]):
        return None
    return parts[0]


def shift_supported(node: sp.Basic) -> bool:
    """Whether ``node`` is a ``getitem`` at a slice or an integer of the first axis (any
    step for a 1-D array, step 1 otherwise), or an ``index_put`` into such a slice of
    step 1 or an integer -- what :func:`pointwise` translates: over C-ordered arrays these
    move the flat index by a constant.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> v, m = ArrayVar("v", (5,)), ArrayVar("m", (4, 3))
    >>> [shift_supported(Getitem.of(x, index=i)) for x, i in ((v, (slice(1, None),)), (v, (slice(None), None)),
    ...                                                        (m, (slice(None, -1), slice(None))), (m, (slice(None), 0)))]
    [True, False, True, False]
    """
    if isinstance(node, Getitem):
        index, shape = node.attrs["index"], shape_of(node.data[0])
        if node.index_arrays or not is_basic_index(index) or not shape:
            return False
        item = _first_axis(index)
        return item is not None and (type(item) is int or len(shape) == 1 or item.step in (None, 1))
    if is_basic_index_put(node):
        item = _first_axis(node.attrs["index"])
        if item is None or not tuple(node.attrs["shape"]):
            return False
        return type(item) is int or item.step in (None, 1)
    return False


def has_shifts(bodies: list) -> bool:
    """Whether any of ``bodies`` contains a ``getitem`` or an ``index_put``."""
    from ...core.symbols import postorder

    return any(isinstance(node, (Getitem, IndexPut)) for node in postorder(bodies))


def _length(node: sp.Basic) -> int:
    """The number of points of ``node`` (1 for a scalar)."""
    return size_of(tuple(shape_of(node))) if isinstance(node, sp.Expr) else 1


def _accumulated_puts(roots: list) -> set:
    """The ``index_put`` terms the NumPy backend adds into one zeros array in place (two or
    more basic ones of their sum's shape: ``compile._index_put_terms``)."""
    from ...core.symbols import postorder

    found: set = set()
    for node in postorder(roots):
        if isinstance(node, sp.Add):
            puts = [t for t in node.args if is_basic_index_put(t) and tuple(t.attrs["shape"]) == shape_of(node)]
            if len(puts) >= 2:
                found.update(puts)
    return found


def pointwise(bodies: list, positions: dict) -> tuple[list, list[int], set]:
    """``(forms, lengths, grouped)``: each body as an elementwise form over the loop index
    ``i`` (reads of the inputs ``positions`` maps to their argument numbers as :class:`Read`
    atoms, ``index_put`` as :class:`Guard`), the number of points it has (1 for a scalar),
    and the values of the accumulated ``index_put`` terms, which the NumPy backend adds
    whole (``out[1:] += a - b``): a sum among them is computed first, as a temporary.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> v = ArrayVar("v", (5,))
    >>> forms, lengths, grouped = pointwise([Getitem.of(v, index=(slice(1, None),)) - Getitem.of(v, index=(slice(None, -1),))],
    ...                                     {v: 0})
    >>> forms, lengths, grouped
    ([-_read0_1_0 + _read0_1_1], [4], set())
    """
    accumulated = _accumulated_puts(bodies)
    grouped: set = set()
    memo: dict = {}

    def at(node: sp.Basic, k: int, c: int) -> sp.Basic:
        if isinstance(node, sp.Expr) and _length(node) == 1:
            k, c = 0, 0  # a scalar, or one element broadcast: the same at every point
        key = (node, k, c)
        done = memo.get(key)
        if done is not None:
            return done
        memo[key] = out = _at(node, k, c)
        return out

    def _at(node: sp.Basic, k: int, c: int) -> sp.Basic:
        if not node.args:
            if node in positions and shape_of(node) != ():
                return Read(positions[node], k, c)
            return node
        if isinstance(node, Getitem):
            if not shift_supported(node):
                raise _refusal(node, "")
            x = node.data[0]
            item = _first_axis(node.attrs["index"])
            shape = shape_of(x)
            n, row = shape[0], size_of(shape[1:])  # row: the points of one element of the first axis
            if type(item) is int:
                first = item + n if item < 0 else item
                return at(x, 0, first) if len(shape) == 1 else at(x, k, c + first * row)
            start, _, step = item.indices(n)
            return at(x, step * k, start + step * c) if len(shape) == 1 else at(x, k, c + start * row)
        if isinstance(node, IndexPut):
            if not shift_supported(node):
                raise _refusal(node, "")
            g = node.data[0]
            shape = tuple(node.attrs["shape"])
            n, row = shape[0], size_of(shape[1:])
            item = _first_axis(node.attrs["index"])
            start, stop = (item + n if item < 0 else item, None) if type(item) is int else item.indices(n)[:2]
            stop = start + 1 if stop is None else stop
            lo, hi = start * row, stop * row
            value = at(g, k, c - lo)
            if node in accumulated:
                grouped.add(value)
                value = sp.Add(sp.Float(0.0), value, evaluate=False)
            if k == 0:  # a fixed point: inside or outside, known now
                return value if lo <= c < hi else sp.Float(0.0)
            if k != 1:
                raise _refusal(node, " at a strided point (a strided slice of it)")
            return Guard(sp.Integer(lo - c), sp.Integer(hi - c), value)
        # elementwise: every operand at the same point (of one shape), or one element
        shapes = {shape_of(a) for a in node.args if isinstance(a, sp.Expr) and _length(a) > 1}
        if len(shapes) > 1 or (isinstance(node, sp.Expr) and shapes and shapes != {shape_of(node)}):
            raise _refusal(node, f" broadcasting {sorted(shapes)} (a loop with slices reads operands of one shape)")
        args = [at(a, k, c) for a in node.args]
        return node if all(a is b for a, b in zip(args, node.args)) else unevaluated(node, args)

    forms = [at(b, 1, 0) for b in bodies]
    return forms, [_length(b) for b in bodies], grouped


def segments(forms: list, lengths: list[int]) -> list[tuple[int, int]]:
    """The pieces ``[lo, hi)`` of the loop's range ``[0, max(lengths))`` inside which no
    guard of ``forms`` and no output changes whether it applies.

    >>> segments([Guard(sp.Integer(1), sp.Integer(5), sp.Symbol("a"))], [5])
    [(0, 1), (1, 5)]
    """
    from ...core.symbols import postorder

    n = max(lengths, default=1)
    cuts = {0, n, *lengths}
    for node in postorder(forms):
        if isinstance(node, Guard):
            cuts.update(min(max(int(b), 0), n) for b in node.args[:2])
    points = sorted(cuts)
    return [(lo, hi) for lo, hi in zip(points, points[1:]) if lo < hi]


def resolve(forms: list, lo: int, hi: int) -> list:
    """``forms`` on the segment ``[lo, hi)``: each guard its value where it applies there,
    else 0.0.

    >>> a = sp.Symbol("a")
    >>> resolve([Guard(sp.Integer(1), sp.Integer(5), a) + 1], 0, 1), resolve([Guard(sp.Integer(1), sp.Integer(5), a)], 1, 5)
    ([0.0 + 1], [a])
    """
    built: dict = {}

    def walk(node: sp.Basic) -> sp.Basic:
        done = built.get(node)
        if done is not None:
            return done
        if isinstance(node, Guard):
            inside = int(node.args[0]) <= lo and hi <= int(node.args[1])
            out = walk(node.args[2]) if inside else sp.Float(0.0)
        elif not node.args:
            out = node
        else:
            args = [walk(a) for a in node.args]
            out = node if all(a is b for a, b in zip(args, node.args)) else unevaluated(node, args)
        built[node] = out
        return out

    return [walk(f) for f in forms]
