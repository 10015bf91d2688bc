"""C code for elementwise closed forms: the printer and the header every C backend shares.

:class:`CPrinter` prints one *point* of an elementwise expression as a C ``double``
expression: symbols as the names the backend gives them, shared subexpressions as the
temporaries of symgrad's own CSE and constant subexpressions as one literal each
(:func:`plan`, the NumPy backend's plan).  It keeps NumPy's IEEE semantics, because the
code is compiled without ``-ffast-math`` and with ``-ffp-contract=off`` (no fused
multiply-add that NumPy would not do):

* NaN propagates through ``maximum``/``minimum`` (C's ``fmax`` would drop it), ``sign``
  (``sign(nan)`` is nan), ``where`` (a NaN condition counts as true, as in NumPy); at a
  tie ``maximum``/``minimum`` return their second argument, as NumPy's do
  (``maximum(-0.0, 0.0)`` is ``0.0``), and ``sign(-0.0)`` is ``0.0``;
* sums, products and powers are printed by the NumPy backend's printer, which
  :class:`CPrinter` extends, so they are evaluated in the same order, grouping and form
  (floating-point arithmetic is not associative): ``b**2`` is ``b*b`` and ``b**0.5`` is
  ``sqrt(b)`` (NumPy's own shortcuts for arrays), ``b**-1`` is ``1/b``, a half-integer
  power is a square root times an integer power (``b**1.5`` is ``b*sqrt(b)``,
  ``b**-0.5`` is ``1/sqrt(b)``) where that is exact (see
  :func:`~symgrad.symbolic.codegen.compile.half_integer`); other powers call ``pow``;
* ``sigmoid`` and ``softplus`` are the stable forms (one ``exp(-|z|)``), like the NumPy
  backend's ``logaddexp`` forms;
* comparisons give 0 or 1, ``cast`` to ``float32``/``float16`` rounds as NumPy does;
* nothing branches, so GCC vectorises every loop (it vectorises none with a call inside a
  condition): ``where`` and ``Piecewise`` compute both values and choose one bit for bit
  (``sg_select``), as NumPy's ``where`` does, logic is ``&``/``|`` of 0/1 truths, and
  ``softplus`` computes its ``log1p`` unconditionally;
* ``broadcast_to(e)`` is ``e``: the loop runs over the broadcast shape, point by point.

Math functions are declared ``#pragma omp declare simd`` under ``asm`` aliases of their
glibc names (``sg_sin`` is ``sin``): GCC then calls glibc's vector math library
(libmvec) in vectorised loops, and does not merge ``sin``/``cos`` of one argument into a
``sincos`` call (which has no vector form and stopped all vectorisation in the
prototype).  :func:`check_translatable` names the first operation a backend cannot print.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from ..compile import SymgradNumPyPrinter, _plan, half_integer
from ...forms.selections import (Cast, Compare, LogicalAnd, LogicalNot, LogicalOr, Maximum, Minimum, Select, TieStep,
                           function_ops)
from ...forms.stable import sigmoid, sinc, softplus, xlog1py, xlogy
from ...forms.structural import BroadcastTo, Mean, Sum, StructuralFunction, SumTo
from ...core.symbols import postorder, shape_of, size_of, unevaluated
from . import UnsupportedExpressionError

__all__ = ["CPrinter", "C_HEADER", "check_translatable", "op_name", "plan", "split_reduction", "full_reduction",
           "cut_reductions"]

_MATH_WITHOUT_OP = {  # SymPy function -> (glibc name, arity), for functions that are no op's form
    # (they come from derivatives or from a user's SymPy expression)
    sp.sinh: ("sinh", 1), sp.cosh: ("cosh", 1), sp.asin: ("asin", 1), sp.acos: ("acos", 1),
    sp.atan: ("atan", 1), sp.asinh: ("asinh", 1), sp.acosh: ("acosh", 1), sp.atanh: ("atanh", 1),
    sp.erf: ("erf", 1), sp.erfc: ("erfc", 1), sp.atan2: ("atan2", 2),
}


def _math_functions() -> dict:
    """SymPy function -> (C library name, arity): each op's function whose record names its
    ``libm`` function (``sin``, ``atan2``, ``lgamma``...), and :data:`_MATH_WITHOUT_OP`."""
    from ....ops import OPS

    table = dict(_MATH_WITHOUT_OP)
    for function, forms in function_ops().items():
        for name, arguments in forms:
            if OPS[name].libm is not None:
                table[function] = (OPS[name].libm, len(arguments))
    return table


_MATH = _math_functions()

_SCALAR_ONLY = {"lgamma"}
"""libm functions without a libmvec vector variant: declared without ``declare simd``
(GCC would call a vector variant that does not exist), so a loop calling them is not
vectorised.  (``lgamma`` also sets the global ``signgam``, which symgrad never reads.)"""
_PLAIN = {sp.Abs: "fabs", sp.floor: "floor", sp.ceiling: "ceil"}  # inline instructions, no libm call
_RELATIONS = {sp.StrictGreaterThan: ">", sp.GreaterThan: ">=", sp.StrictLessThan: "<", sp.LessThan: "<=",
              sp.Equality: "==", sp.Unequality: "!="}
_COMPARE = {"greater": ">", "greater_equal": ">=", "less": "<", "less_equal": "<=", "equal": "==", "not_equal": "!="}
_CAST = {"float64": "{}", "float32": "(double)(float)({})", "float16": "(double)(_Float16)({})"}


def _header() -> str:
    lines = ["#include <math.h>", "#include <stddef.h>", "#include <stdint.h>", "#include <string.h>"]
    for c_name, arity in sorted(set(_MATH.values()) | {("pow", 2), ("log1p", 1)}):
        if c_name not in _SCALAR_ONLY:
            lines.append("#pragma omp declare simd notinbranch")
        lines.append(f"__attribute__((const, nothrow)) double sg_{c_name}({', '.join(['double'] * arity)}) "
                     f"__asm__(\"{c_name}\");")
    lines += [
        "static inline double sg_maximum(double a, double b) { return (a > b || a != a) ? a : b; }",
        "static inline double sg_minimum(double a, double b) { return (a < b || a != a) ? a : b; }",
        "static inline double sg_sign(double a) { return a > 0 ? 1.0 : (a < 0 ? -1.0 : (a == 0 ? 0.0 : a)); }",
        "static inline double sg_tie_step(double a, double b) { return a < b ? 0.0 : (a == b ? 0.5 : 1.0); }",
        # both values computed, then one chosen bit for bit, as NumPy's where does: GCC
        # vectorises no loop with a call inside a condition, and moves a call that only
        # one arm of `c ? a : b` uses into a branch
        "static inline double sg_select(int c, double a, double b) {",
        "    uint64_t x, y; memcpy(&x, &a, 8); memcpy(&y, &b, 8);",
        "    const uint64_t mask = -(uint64_t)(c != 0); x = (x & mask) | (y & ~mask);",
        "    double r; memcpy(&r, &x, 8); return r; }",
        "static inline double sg_sigmoid(double z) {",
        "    double e = sg_exp(-fabs(z)); return (z >= 0 ? 1.0 : e) / (1.0 + e); }",
        # (log1p computed unconditionally and no branch around it: GCC vectorises no loop
        # with a call inside a condition; maximum(z, 0) keeps a NaN z, as NumPy's does)
        "static inline double sg_softplus(double z) {",
        "    double l = sg_log1p(sg_exp(-fabs(z))); return ((z > 0 || z != z) ? z : 0.0) + l; }",
        # NumPy's sinc, xlogy and xlog1py (ops/special.py), operation for operation (the
        # logarithms computed everywhere, then chosen: no branch around a call)
        "static inline double sg_sinc(double x) {",
        "    double y = 3.141592653589793 * (x == 0 ? 1.0e-20 : x); return sg_sin(y) / y; }",
        "static inline double sg_xlogy(double x, double y) {",
        "    double l = x * sg_log(y); return sg_select((x == 0) & (y <= 0), 0.0 * x, l); }",
        "static inline double sg_xlog1py(double x, double y) {",
        "    double l = x * sg_log1p(y); return sg_select((x == 0) & (y <= -1), 0.0 * x, l); }",
    ]
    return "\n".join(lines)


C_HEADER = _header()
"""Includes and helper functions every generated C file starts with."""


def split_reduction(expr: sp.Expr) -> tuple[str, sp.Expr]:
    """``(kind, body)``: ``("sum", body)`` or ``("mean", body)`` for a full reduction at the
    root of an output (under any ``broadcast_to`` that only gives the output its exact
    shape), else ``("elementwise", expr)`` without those ``broadcast_to`` wrappers.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (3,))
    >>> split_reduction(Sum.of(sp.sin(x), dim=None, keepdim=False))
    ('sum', sin(x))
    >>> split_reduction(BroadcastTo.of(sp.Integer(2), shape=(3,)))
    ('elementwise', 2)
    """
    while isinstance(expr, BroadcastTo):
        expr = expr.arrays[0]
    kind = full_reduction(expr)
    return (kind, expr.arrays[0]) if kind else ("elementwise", expr)


def full_reduction(node: sp.Basic) -> str | None:
    """``"sum"`` or ``"mean"`` if ``node`` reduces its argument over every axis (``sum``,
    ``mean``, or ``sum_to`` a shape of one element), else None.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (2, 3))
    >>> full_reduction(Mean.of(x, dim=(0, 1), keepdim=True)), full_reduction(Sum.of(x, dim=(0,), keepdim=False))
    ('mean', None)
    """
    if isinstance(node, (Sum, Mean)) and len(node.dims()) == len(shape_of(node.arrays[0])):
        return "sum" if isinstance(node, Sum) else "mean"
    if isinstance(node, SumTo) and size_of(tuple(node.attrs["shape"])) == 1:
        return "sum"
    return None


def cut_reductions(bodies: list) -> tuple[list, dict]:
    """``(bodies, {reduction: symbol})``: the outermost full reductions inside ``bodies``
    replaced by scalar symbols, and those of a scalar (``sum(x)`` of a 0-d ``x``) by their
    argument; the expressions are rebuilt once per node, so shared subexpressions stay
    shared, and unevaluated, so SymPy cancels nothing NumPy computes (``-t + t`` is NaN
    where ``t`` is).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x, c = ArrayVar("x", (3,)), sp.Symbol("c")
    >>> cut_reductions([x / Sum.of(x, dim=None, keepdim=False) + Sum.of(c, dim=None, keepdim=False)])
    ([x/_sum0 + c], {sum(x): _sum0})
    """
    found: dict = {}
    rebuilt: dict = {}
    stack = [(b, False) for b in bodies]
    while stack:  # depth first, operands before their node, never into a cut reduction
        node, ready = stack.pop()
        if node in rebuilt:
            continue
        scalar = full_reduction(node) is not None and shape_of(node.arrays[0]) == ()
        if full_reduction(node) and not scalar:
            found[node] = rebuilt[node] = sp.Dummy(f"sum{len(found)}", real=True)
        elif not node.args:
            rebuilt[node] = node
        elif ready:
            args = tuple(rebuilt[a] for a in node.args)
            rebuilt[node] = args[0] if scalar else unevaluated(node, args) if args != node.args else node
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in rebuilt)
    return [rebuilt[b] for b in bodies], found


def op_name(node: sp.Basic) -> str:
    """The name of ``node``'s operation as users know it (``matmul``, ``getitem``, ``sin``).

    >>> op_name(sp.sin(sp.Symbol("x")))
    'sin'
    """
    if isinstance(node, StructuralFunction):
        return node.op_name or type(node).__name__
    if isinstance(node, Select):
        return "where"
    return type(node).__name__


def _translatable(node: sp.Basic) -> bool:
    if not node.args:
        return isinstance(node, sp.Symbol) or node.is_Number or node is sp.zoo or isinstance(
            node, (sp.NumberSymbol, sp.logic.boolalg.BooleanAtom))
    if isinstance(node, StructuralFunction):
        return isinstance(node, BroadcastTo)  # at one point of the loop, broadcast_to(e) is e
    if isinstance(node, (sp.Add, sp.Mul, sp.Pow, sp.Piecewise, ExprCondPair, sp.And, sp.Or, sp.Not,
                         sp.Max, sp.Min, Compare, LogicalAnd, LogicalOr, LogicalNot, Select, Maximum, Minimum,
                         TieStep, sigmoid, softplus, sinc, xlogy, xlog1py, sp.sign, sp.DiracDelta)) \
            or type(node) in _RELATIONS:
        return True
    if isinstance(node, Cast):
        return node.dtype in _CAST
    if type(node) in _MATH or type(node) in _PLAIN:
        return len(node.args) == _MATH.get(type(node), (None, 1))[1]
    return not node.free_symbols and _constant(node) is not None


def check_translatable(outputs: Sequence[sp.Basic], output_names: Sequence[str], backend: str,
                       hint: str = "") -> None:
    """Raise :class:`UnsupportedExpressionError` naming the first operation of ``outputs``
    that :class:`CPrinter` cannot print (and the output it is in).

    >>> x = sp.Symbol("x")
    >>> check_translatable([sp.sin(x) + x ** 2], ["out0"], "c_fused")
    >>> check_translatable([sp.besselj(0, x)], ["out0"], "c_fused")
    Traceback (most recent call last):
    ...
    symgrad.symbolic.codegen.backends.UnsupportedExpressionError: the c_fused backend cannot translate besselj ...
    """
    for node in postorder(list(outputs)):
        if not _translatable(node):
            name = next(n for out, n in zip(outputs, output_names) if node in postorder([out]))
            raise UnsupportedExpressionError(
                f"the {backend} backend cannot translate {op_name(node)} (in output {name!r}: {_short(node)}); "
                f"{hint}use backend='numpy', which compiles every operation")


def _short(node: sp.Basic) -> str:
    text = str(node)
    return text if len(text) <= 80 else text[:77] + "..."


def plan(bodies: Sequence[sp.Basic]) -> tuple[list, dict, dict]:
    """``(order, temps, constants)`` for printing ``bodies``: the temporaries of symgrad's
    CSE in the order to define them, their names, and the literals of the constant
    subexpressions -- the NumPy backend's plan (a constant like ``pi/3`` is one number,
    rounded once, not ``3.141592653589793/3``).

    >>> x = sp.Symbol("x")
    >>> plan([sp.exp(x) + sp.Mul(sp.Mul(sp.pi, sp.Rational(1, 3), evaluate=False), sp.exp(x), evaluate=False)])
    ([exp(x)], {exp(x): '_t0'}, {pi*(1/3): '1.0471975511965979'})
    """
    order, temps, constant_nodes, _, _ = _plan(list(bodies))
    constants = {node: text for node in constant_nodes if (text := _constant(node)) is not None}
    return order, temps, constants


def _literal(number: int) -> str:
    """A C double literal for a Python integer (C's own integers would divide as integers)."""
    return _constant(sp.Integer(number))


def _constant(node: sp.Basic) -> str | None:
    """A C literal for a number or a constant subexpression (``log(2)``), or None."""
    special = {sp.nan: "NAN", sp.zoo: "NAN", sp.oo: "INFINITY", -sp.oo: "(-INFINITY)"}  # zoo: see _print_ComplexInfinity
    if node in special:
        return special[node]
    if isinstance(node, (sp.Integer, sp.Float)):
        number = float(node)
        return repr(number) if number >= 0 else f"({number!r})"
    try:
        value = complex(node.evalf(17))
    except (TypeError, ValueError):
        return None
    if value.imag != 0:
        return None
    number = value.real
    if np.isnan(number):
        return "NAN"
    if np.isinf(number):
        return "INFINITY" if number > 0 else "(-INFINITY)"
    return repr(number) if number >= 0 else f"({number!r})"


class CPrinter(SymgradNumPyPrinter):
    """Prints elementwise SymPy expressions as C ``double`` expressions.

    ``names`` maps each symbol to the C expression reading it (``in0[i]``, ``x[3]``);
    ``temps`` maps CSE'd nodes to the names of their temporaries, ``constants`` constant
    subexpressions to their literals (both from :func:`plan`).

    Sums, products and powers are printed by the NumPy backend's own printer
    (:class:`~symgrad.symbolic.codegen.compile.SymgradNumPyPrinter`, which this class extends), so
    the C code evaluates them in exactly the order, grouping and form the NumPy backend
    does: C and Python parse ``+ - * /`` and unary minus alike, and floating-point
    arithmetic is not associative (``x*3/2/2`` overflows at 1e308 where ``x*0.75`` does
    not; ``(0.5*x)/y`` is 0/0 at x = 5e-324, y = 0 where ``x/y/2`` is inf).  Only what
    differs is printed here: names, numbers as ``double`` literals (a Rational ``3/2`` as
    ``3.0/2.0``, which C would otherwise divide as integers), math functions, powers
    without ``**`` (``b**2`` as ``b*b`` and ``b**0.5`` as ``sqrt(b)``, NumPy's own
    shortcuts for an array base), selections and logic.

    >>> x, y = sp.symbols("x y")
    >>> CPrinter({x: "x", y: "y"}, {}).print(sp.Max(x, 2) + sp.exp(-y) / x ** 2)
    'sg_exp(-y)/(x*x) + sg_maximum(2.0, x)'
    """

    printmethod = "_symgrad_c"  # no class has one: never the NumPy printer's ``_numpycode``

    def __init__(self, names: dict, temps: dict, constants: dict | None = None) -> None:
        super().__init__(names, temps, constants)

    def define(self, node: sp.Basic) -> str:
        """``node`` itself, not the name of its temporary."""
        return super().define(node, self._temps[node]) if node in self._temps else self.print(node)

    def print(self, expr: sp.Basic) -> str:
        """The C text of ``expr``."""
        return self._print(expr)

    def _print(self, expr, **kwargs) -> str:
        if not expr.args:
            return self._atom(expr)
        if self._is_named(expr):
            return super()._print(expr)  # its temporary or its literal
        if isinstance(expr, (sp.Add, sp.Mul, sp.Pow)):
            return getattr(self, f"_print_{type(expr).__name__}")(expr)  # the NumPy printer's arithmetic
        for cls in type(expr).__mro__:
            method: Callable | None = getattr(self, f"_c_{cls.__name__}", None)
            if method is not None:
                return method(expr)
        if type(expr) in _MATH:
            return f"sg_{_MATH[type(expr)][0]}({', '.join(self._print(a) for a in expr.args)})"
        if type(expr) in _PLAIN:
            return f"{_PLAIN[type(expr)]}({self._print(expr.args[0])})"
        if type(expr) in _RELATIONS:
            a, b = expr.args
            return f"({self._print(a)} {_RELATIONS[type(expr)]} {self._print(b)})"
        text = _constant(expr) if not expr.free_symbols else None
        if text is None:
            raise UnsupportedExpressionError(f"no C translation of {op_name(expr)} ({_short(expr)}); "
                                             "use backend='numpy'")
        return text

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return {"numpy.sqrt": "sqrt", "numpy.nan": "NAN"}[fqn]

    def _atom(self, expr: sp.Basic) -> str:
        if isinstance(expr, sp.Symbol):
            return self._print_Symbol(expr)
        if expr is sp.true:
            return "1"
        if expr is sp.false:
            return "0"
        if expr.is_Rational and not expr.is_Integer:  # as Python's p/q: two numbers, one division
            text = f"{_literal(abs(expr.p))}/{_literal(expr.q)}"
            return f"(-{text})" if expr.p < 0 else text
        text = _constant(expr)
        if text is None:
            raise UnsupportedExpressionError(f"no C translation of the constant {expr}; use backend='numpy'")
        return text

    # ------------------------------------------------------------------ powers
    def _power(self, base: sp.Basic, expo: sp.Basic) -> str:
        if half_integer(base, expo) is not None:  # b**(k + 1/2) = b**k * sqrt(b), as the NumPy printer has it
            return super()._power(base, expo)
        b = f"({self._print(base)})" if base.args else self._print(base)
        if expo.is_Number:
            value = float(expo)
            if value == 1:
                return b
            if value == 2:  # NumPy computes array**2 as a square ...
                return f"({b}*{b})"
            if value == 0.5:  # ... and array**0.5 as a square root (pow(-inf, 0.5) would be +inf)
                return f"sqrt({b})"
        return f"sg_pow({b}, {self._print(expo)})"

    # ------------------------------------------------------------------ functions
    def _whole(self, expr: sp.Basic) -> str:
        """``expr``'s text as one operand: in parentheses unless it is a name, a number or
        a temporary, for a node printed as its argument alone (``broadcast_to`` at one
        point, a cast to ``float64``) to keep its grouping: ``broadcast_to(a + b) * c``
        is ``(a + b)*c``, not ``a + b*c``."""
        text = self._print(expr)
        return text if not expr.args or self._is_named(expr) else f"({text})"

    def _c_BroadcastTo(self, expr) -> str:
        return self._whole(expr.arrays[0])

    def _c_sign(self, expr) -> str:
        return f"sg_sign({self._print(expr.args[0])})"

    def _c_DiracDelta(self, expr) -> str:
        return f"(0.0*{self._print(expr.args[0])})"

    def _c_sigmoid(self, expr) -> str:
        return f"sg_sigmoid({self._print(expr.args[0])})"

    def _c_softplus(self, expr) -> str:
        return f"sg_softplus({self._print(expr.args[0])})"

    def _c_sinc(self, expr) -> str:
        return f"sg_sinc({self._print(expr.args[0])})"

    def _c_xlogy(self, expr) -> str:
        return f"sg_xlogy({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _c_xlog1py(self, expr) -> str:
        return f"sg_xlog1py({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _c_Cast(self, expr) -> str:
        return _CAST[expr.dtype].format(self._whole(expr.args[0]))

    def _c_nested(self, func: str, args) -> str:
        out = self._print(args[0])
        for arg in args[1:]:
            out = f"{func}({out}, {self._print(arg)})"
        return out

    def _c_Maximum(self, expr) -> str:
        return self._c_nested("sg_maximum", expr.args)

    _c_Max = _c_Maximum

    def _c_Minimum(self, expr) -> str:
        return self._c_nested("sg_minimum", expr.args)

    _c_Min = _c_Minimum

    def _c_TieStep(self, expr) -> str:
        a, b = expr.args
        return f"sg_tie_step({self._print(a)}, {self._print(b)})"

    # ------------------------------------------------------------------ selections and logic
    def _truth(self, cond: sp.Basic) -> str:
        return f"({self._print(cond)} != 0)"

    def _c_Select(self, expr) -> str:
        c, a, b = expr.args
        return f"sg_select({self._truth(c)}, {self._print(a)}, {self._print(b)})"

    def _c_Compare(self, expr) -> str:
        a, b = expr.args
        return f"(double)({self._print(a)} {_COMPARE[expr.numpy_name]} {self._print(b)})"

    def _logical(self, op: str, args) -> str:
        # (`&` and `|` of the 0/1 truths, not the short-circuit `&&` and `||`: a branch
        # would stop the loop's vectorisation)
        return "(double)(" + f" {op} ".join(self._truth(a) for a in args) + ")"

    def _c_LogicalAnd(self, expr) -> str:
        return self._logical("&", expr.args)

    _c_And = _c_LogicalAnd

    def _c_LogicalOr(self, expr) -> str:
        return self._logical("|", expr.args)

    _c_Or = _c_LogicalOr

    def _c_LogicalNot(self, expr) -> str:
        return f"(double)(!{self._truth(expr.args[0])})"

    _c_Not = _c_LogicalNot

    def _c_Piecewise(self, expr) -> str:
        pieces = list(expr.args)
        out = self._print(pieces.pop().expr) if pieces[-1].cond is sp.true else "NAN"
        for value, cond in reversed(pieces):
            out = f"sg_select({self._truth(cond)}, {self._print(value)}, {out})"
        return out
