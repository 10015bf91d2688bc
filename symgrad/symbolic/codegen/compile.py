"""Compile closed forms into one NumPy function, and cache compiled functions by structure.

:func:`compile_exprs` turns SymPy expressions over array symbols into **one** Python
function of NumPy arrays that returns every requested output (typically the value and
all derivatives), like ``sympy.lambdify`` with ``cse``:

* **CSE** is a linear pass over the expression DAG (:func:`common_subexpressions`): every
  non-atomic node used more than once, and every node deeper than a bound, gets one
  temporary.  Because SymPy expressions are hash-consed, a subexpression shared by the
  value and the gradients is computed once.  (``sympy.cse`` also searches for common
  sub-products, which is superlinear; the derivation already shares what matters.)
* **Printing** uses SymPy's NumPy printer (``numpy.exp(x)``); structural ops print as
  function calls bound to the op table's NumPy forwards (``matmul(a, b)``), so no operator
  precedence can be lost -- except where a view does the job without a copy: basic
  indexing as a subscript of a name or a parenthesised operand (``(a - b)[1:]``),
  transposes and reshapes as ``numpy.swapaxes``/``transpose``/``reshape``.  Generated code
  never writes into a view, and a returned view of an input is copied.  Half-integer
  powers share one ``sqrt``, ``sigmoid(z)`` and ``softplus(z)`` one ``exp(-|z|)``, and a
  sum of ``index_put`` terms accumulates in one array.  Inputs and outputs keep readable
  names (``fc.weight`` becomes the argument ``fc_weight``).
* **As recorded**: a form built unevaluated (``Segment.build(as_recorded=True)``) is
  computed in the order the tape computed it -- a product or sum among a product's factors
  or a sum's terms keeps its parentheses, a factor ``y**-1`` divides by ``y`` (also ``x/3``,
  and also when ``1/y`` is shared), and only a power-of-two coefficient is factored out of a
  sum -- since one rounding apart is a whole step under ``floor`` or a comparison.
* The result is a :class:`CompiledFunction`: call it with arrays (positionally or by
  name); ``.source``, ``.exprs``, ``.inputs`` and ``.outputs`` are inspectable.

Compiled functions live in a bounded LRU cache keyed by graph *structure* -- the
expressions themselves, whose array symbols carry shape and dtype, whose constants are
SymPy numbers and whose attributes are atoms -- never by input values.  Two graphs that
differ in a constant, a dtype, a shape, an axis or a slice have different keys.
:func:`compile_cache_info` reports hits and misses.
"""
from __future__ import annotations

import ast
import itertools
import keyword
import linecache
import re
import threading
import weakref
from collections import Counter, OrderedDict, namedtuple
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from ..forms.stable import ExpNegAbs, sigmoid, softplus
from ..forms.structural import StructuralFunction, attr_code, is_basic_index_put, numpy_namespace, subscript_code
from ..derive.reverse import as_expr
from ..core._compat import evaluate, numpy_error_settings, numpy_error_state
from ..core.symbols import shape_of

__all__ = [
    "ClosedFormFunction", "CompiledFunction", "compile_exprs", "cached", "cache_transaction", "compile_cache_info", "compile_cache_clear",
    "set_compile_cache_size", "common_subexpressions", "operation_count", "CacheInfo",
]

MAX_DEPTH = 40
"""Nodes deeper than this get a temporary, so printing never recurses deeply."""


# ============================================================================ printer
class SymgradNumPyPrinter(NumPyPrinter):
    """SymPy's NumPy printer with symgrad's conventions: symbols print as their Python
    argument names, temporaries by name (once they are defined), constant subexpressions
    as Python numbers (``log(2)`` as ``0.6931471805599453``, which NumPy treats as a
    "weak" scalar, so ``float32`` arrays stay ``float32``), floats exactly, ``Piecewise``
    as nested ``numpy.where``, and n-ary ``Max``/``Min``/``And``/``Or`` as nested binary
    calls (which broadcast, unlike ``reduce``).

    Sums, products and powers are printed straight from their arguments: SymPy's own
    printers build new expressions while printing (``1/x**2`` from ``x**-2``), which costs
    assumption queries on deep operands and may name a temporary before it is defined.
    Half-integer powers go through one square root where that is exact (``b**1.5`` as
    ``b*sqrt(b)``, the root shared by every half-integer power of ``b``: NumPy's ``power``
    costs an ``exp`` and a ``log`` per element; see :func:`half_integer`), and a sum of ``index_put`` terms of one shape accumulates in place
    in one array (:meth:`define_index_put_sum`).  Inputs are arrays (``CompiledFunction``
    converts them), so basic indexing prints as a plain subscript.
    """

    array_inputs = True
    """Symbols stand for NumPy arrays, never lists (see ``structural.subscripted``)."""

    def __init__(self, names: dict | None = None, temps: dict | None = None,
                 constants: dict | None = None, shared: dict | None = None) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False, "order": "none"})
        self._names = names or {}
        self._temps = temps or {}
        self._constants = constants or {}
        self._shared = shared or {}
        self._available: set = set()
        self._check_available = False
        self._defining: Any = None

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sp.Basic) and expr.args:
            temp = self._temps.get(expr)
            if temp is not None and expr is not self._defining and (
                    not self._check_available or temp in self._available):
                return temp
            constant = self._constants.get(expr)
            if constant is not None:
                return constant
        return super()._print(expr, **kwargs)

    def shared_temporary(self, kind: str, arg) -> str | None:
        """The temporary of a value several nodes share (``("sqrt", b)``: ``sqrt(b)``;
        ``("exp_neg_abs", z)``: ``exp(-|z|)``, see :func:`_plan`) once it is defined, else None."""
        node = self._shared.get((kind, arg))
        if node is None or node is self._defining:
            return None
        temp = self._temps[node]
        return temp if not self._check_available or temp in self._available else None

    def define(self, expr, name: str) -> str:
        """Print ``expr`` itself (not the name of its temporary); afterwards ``name`` may
        stand for it."""
        self._defining = expr
        try:
            return self._print(expr)
        finally:
            self._defining = None
            self._available.add(name)

    def _print_Symbol(self, expr) -> str:
        name = self._names.get(expr)
        if name is None:
            raise NameError(
                f"the expression uses the symbol {expr} that is not among the inputs "
                f"{list(self._names.values())}; pass it in `inputs`"
            )
        return name

    _print_ArrayVar = _print_Symbol
    _print_Dummy = _print_Symbol

    def _print_Float(self, expr) -> str:
        value = float(expr)
        if not np.isfinite(value) or (value == 0 and not expr.is_zero):
            # SymPy multiplied constants into one beyond float64 (x*1e308*10 -> 1e309*x)
            raise OverflowError(
                f"SymPy folded constants into the coefficient {sp.sstr(expr, full_prec=False)}, which float64 "
                "cannot hold, so the compiled code would not compute what NumPy does op by op; write the "
                "constants as one Python number (x * inf), or run this backward with "
                "symgrad.backward_engine('tape')"
            )
        return repr(value) if expr._prec <= 53 else super()._print_Float(expr)

    def _print_ComplexInfinity(self, expr) -> str:
        """SymPy's ``zoo``, a whole number divided by zero that SymPy folded (the ``1/n`` of a
        mean over no elements, of a variance with nothing left after its correction): an
        infinity without a sign, which only NaN stands for honestly.  It multiplies an
        empty sum, 0, where NumPy's 0/0 is NaN too."""
        return self._print(sp.nan)

    def _print_helper_call(self, expr) -> str:
        """SymPy functions NumPy has no vectorised form of (``loggamma`` would print as the
        scalar ``math.lgamma``, ``polygamma``, ``erfinv`` and ``besseli`` not at all):
        a call of the op table's NumPy implementation of the same name
        (``stable.NUMPY_HELPERS``)."""
        return f"{type(expr).__name__}({', '.join(self._print(a) for a in expr.args)})"

    _print_loggamma = _print_polygamma = _print_erfinv = _print_besseli = _print_helper_call

    def _print_DiracDelta(self, expr) -> str:
        return f"(0*{self._print(expr.args[0])})"

    # ------------------------------------------------------------------ arithmetic
    def _wrap(self, expr, level: int, strict: bool = False) -> str:
        text = self._print(expr)
        prec = _precedence(expr, self)
        return f"({text})" if prec < level or (strict and prec <= level) else text

    def _print_Add(self, expr, order=None) -> str:
        return self._sum(expr.args)

    def define_index_put_sum(self, expr, puts: list, name: str) -> list[str]:
        """Statements defining ``name`` as the sum ``expr`` whose terms ``puts`` are
        ``index_put``s of its shape at basic indices (:func:`_index_put_terms`): one
        zeros array of the promoted dtype, each term's values added in place at its
        index (the values are names: :func:`_plan` gives them temporaries), then the
        other terms."""
        values = [self._print(p.data[0]) for p in puts]
        lines = [f"{name} = numpy.zeros({attr_code(tuple(puts[0].attrs['shape']))}, "
                 f"numpy.result_type({', '.join(values)}))"]
        lines += [f"{name}[{subscript_code(p.attrs['index'])}] += {v}" for p, v in zip(puts, values)]
        chosen = {id(p) for p in puts}
        rest = [t for t in expr.args if id(t) not in chosen]
        if rest:  # not in place: the rest may promote the dtype
            lines.append(f"{name} = {name} + ({self._sum(rest)})")
        self._available.add(name)
        return lines

    def _sum(self, terms) -> str:
        """The terms of a sum, each pass over the data counted: a power of two all terms
        share as coefficient is applied once (``(a - b)/2``, not ``-b/2 + a/2``: the same
        rounding; see :func:`_power_of_two`), and a positive term goes first (``a - b``,
        not ``-b + a``, which negates ``b`` first).  A sum among the terms keeps its
        parentheses: ``a + (b + c)`` is not ``(a + b) + c`` in floating point."""
        common = self._common_coefficient(terms) if 1 < len(terms) <= CHUNK else None
        parts = []
        for term in terms:
            if common is None:
                negative, text = self._signed(term)
            else:
                negative = term.args[0].is_extended_negative
                text = self._product(sp.S.One, term.args[1:])
            parts.append(("-" if negative else "+", text))
        if len(parts) > CHUNK:
            return _balanced([f"-{t}" if s == "-" else t for s, t in parts], " + ")
        first = next((i for i, (sign, _) in enumerate(parts) if sign == "+"), 0)
        parts.insert(0, parts.pop(first))
        out = parts[0][1] if parts[0][0] == "+" else f"-{parts[0][1]}"
        for sign, text in parts[1:]:
            out += f" {sign} {text}"
        if common is None:
            return out
        if common.is_Integer:
            return f"{common.p}*({out})"
        if common.is_Rational:
            scaled = f"({out})/{common.q}"
            return scaled if common.p == 1 else f"{common.p}*{scaled}"
        return f"{self._print(common)}*({out})"

    def _common_coefficient(self, terms):
        """The absolute numeric coefficient (other than 1) of every term, if they all have
        the same one and none is a named temporary; else None."""
        common = None
        for term in terms:
            if not isinstance(term, sp.Mul) or not term.args[0].is_Number or self._is_named(term):
                return None
            coeff = abs(term.args[0])
            if common is None:
                common = coeff
            elif type(coeff) is not type(common) or coeff != common:
                return None
        return common if common is not sp.S.One and _power_of_two(common) else None

    def _signed(self, term) -> tuple[bool, str]:
        """``(negative, text)`` of a term of a sum, ``text`` without the sign."""
        if _negative_number(term):
            return True, self._print(-term)
        constant = self._constants.get(term)
        if constant is not None and constant.startswith("(-"):
            return True, constant[2:-1]
        if isinstance(term, sp.Mul) and term.args and _negative_number(term.args[0]) and not self._is_named(term):
            return True, self._product(-term.args[0], term.args[1:])
        return False, self._wrap(term, PRECEDENCE["Add"], strict=isinstance(term, sp.Add))

    def _is_named(self, expr) -> bool:
        temp = self._temps.get(expr)
        return (temp is not None and expr is not self._defining and (
            not self._check_available or temp in self._available)) or expr in self._constants

    def _print_Mul(self, expr) -> str:
        args = expr.args
        if args and args[0].is_Number:
            coeff, factors = args[0], args[1:]
        else:
            coeff, factors = sp.S.One, args
        if _negative_number(coeff):
            return "-" + self._product(-coeff, factors)
        return self._product(coeff, factors)

    def _product(self, coeff, factors) -> str:
        """``coeff * prod(factors)`` for a non-negative number ``coeff``."""
        numer: list[str] = []
        denom: list[tuple] = []
        if coeff.is_Rational and not coeff.is_Integer:
            if coeff.p != 1:
                numer.append(str(coeff.p))
            denom.append((str(coeff.q), True))
        elif coeff is not sp.S.One or not factors:
            numer.append(self._print(coeff))
        if len(factors) > CHUNK:
            numer.append(_balanced([self._wrap(f, PRECEDENCE["Mul"]) for f in factors], "*"))
            factors = ()
        for factor in factors:
            if _divides(factor):  # x/y divides, as the div op does: not x*(1/y), nor x*0.333... for x/3
                base, expo = factor.base, -factor.exp
                if expo is sp.S.One:
                    denom.append((self._wrap(base, PRECEDENCE["Mul"], strict=True), True))
                else:
                    denom.append((self._power(base, expo), True))
            else:  # a product among the factors is one of its own: x*(y*z) is not (x*y)*z in floating point
                numer.append(self._wrap(factor, PRECEDENCE["Mul"], strict=isinstance(factor, sp.Mul)))
        text = "*".join(numer) if numer else "1"
        if not denom:
            return text
        if len(denom) == 1:
            d, atomic = denom[0]
            return f"{text}/{d}" if atomic else f"{text}/({d})"
        return f"{text}/({'*'.join(d for d, _ in denom)})"

    def _print_Pow(self, expr, rational=False) -> str:
        base, expo = expr.args
        if _as_division(base, expo):
            if expo is sp.S.NegativeOne:
                return f"1/{self._wrap(base, PRECEDENCE['Mul'], strict=True)}"
            return f"1/{self._power(base, -expo)}"
        return self._power(base, expo)

    def _power(self, base, expo) -> str:
        """``base**expo`` for a non-negative ``expo`` (or one :func:`_as_division` leaves
        as a power), as an atom or a power."""
        k = half_integer(base, expo)
        if k is not None:
            root = self.shared_temporary("sqrt", base) or f"{self._module_format('numpy.sqrt')}({self._print(base)})"
            if k == 0:
                return root
            factor = self._wrap(base, PRECEDENCE["Mul"]) if k == 1 else self._power(base, sp.Integer(k))
            return f"({factor}*{root})"
        if expo.is_Rational and not expo.is_Integer:
            expo_text = f"({expo.p}/{expo.q})"
        elif expo.is_Number:
            expo_text = self._print(expo)
            if _negative_number(expo):
                expo_text = f"({expo_text})"
        else:
            expo_text = self._wrap(expo, PRECEDENCE["Pow"], strict=True)
        return f"{self._wrap(base, PRECEDENCE['Pow'], strict=True)}**{expo_text}"

    def _print_Piecewise(self, expr) -> str:
        pieces = list(expr.args)
        if pieces[-1].cond is sp.true:
            out = self._print(pieces.pop().expr)
        else:
            out = f"{self._module_format('numpy.nan')}"
        where = self._module_format("numpy.where")
        for value, cond in reversed(pieces):
            out = f"{where}({self._print(cond)}, {self._print(value)}, {out})"
        return out

    def _nested(self, func: str, args) -> str:
        out = self._print(args[0])
        for arg in args[1:]:
            out = f"{self._module_format('numpy.' + func)}({out}, {self._print(arg)})"
        return out

    def _print_Max(self, expr) -> str:
        return self._nested("maximum", expr.args)

    def _print_Min(self, expr) -> str:
        return self._nested("minimum", expr.args)

    def _print_And(self, expr) -> str:
        return self._nested("logical_and", expr.args)

    def _print_Or(self, expr) -> str:
        return self._nested("logical_or", expr.args)


CHUNK = 32
"""Sums and products with more terms print as balanced groups, so that Python's compiler
never meets one left-deep chain of thousands of operators."""


def _balanced(parts: list[str], op: str) -> str:
    while len(parts) > CHUNK:
        parts = ["(" + op.join(parts[i:i + CHUNK]) + ")" for i in range(0, len(parts), CHUNK)]
    return "(" + op.join(parts) + ")"


def _power_of_two(number) -> bool:
    """Whether multiplying by ``number`` only shifts the exponent (``2``, ``1/4``, ``0.5``), so
    that ``c*(a + b)`` rounds as ``c*a + c*b`` does: a sum whose terms share any other
    coefficient prints term by term, as it was computed (``3*a + 3*b`` is not ``3*(a + b)``).

    >>> _power_of_two(sp.Integer(8)), _power_of_two(sp.Rational(1, 4)), _power_of_two(sp.Integer(3))
    (True, True, False)
    """
    if number.is_zero or not number.is_finite:
        return False
    if number.is_Rational:  # reduced, so one of p and q is 1
        p, q = abs(number.p), number.q
        return p & (p - 1) == 0 and q & (q - 1) == 0
    return bool(number.is_Float) and np.frexp(abs(float(number)))[0] == 0.5


def _negative_number(expr) -> bool:
    return expr.is_Number and expr.is_extended_negative is True


def _precedence(expr, printer: SymgradNumPyPrinter) -> int:
    """The precedence of what :class:`SymgradNumPyPrinter` prints for ``expr`` (without
    SymPy's ``could_extract_minus_sign``, which builds ``-expr``)."""
    if expr.args and printer._is_named(expr):
        return PRECEDENCE["Atom"]
    if expr.is_Number:
        if _negative_number(expr):
            return PRECEDENCE["Add"]
        if expr.is_Rational and not expr.is_Integer:
            return PRECEDENCE["Mul"]
        return PRECEDENCE["Atom"]
    if isinstance(expr, sp.Add):
        return PRECEDENCE["Add"]
    if isinstance(expr, sp.Mul):
        args = expr.args
        if args and _negative_number(args[0]):
            return PRECEDENCE["Add"]
        return PRECEDENCE["Mul"]
    if isinstance(expr, sp.Pow):
        base, expo = expr.args
        if _as_division(base, expo):
            return PRECEDENCE["Mul"]
        if half_integer(base, expo) is not None:
            return PRECEDENCE["Atom"]
        return PRECEDENCE["Pow"]
    return precedence(expr)


MAX_HALF = 2
"""Powers ``b**(k + 1/2)`` up to this ``k`` print through ``sqrt(b)``; higher ones stay
``b**e`` (``b**k`` itself is a ``power`` call then)."""


def _as_division(base, expo) -> bool:
    """Whether ``base**expo`` prints as ``1/base**-expo``: for a negative integer or
    Rational ``expo``, or one that prints through a square root (:func:`half_integer`).
    Any other negative Float stays a power: NumPy computes ``b**0.5`` as ``sqrt(b)``, so
    ``1/b**0.5`` is -inf at ``b = -0.0`` where ``b**-0.5`` is +inf.

    >>> x = sp.Symbol("x", real=True)
    >>> _as_division(x, sp.Integer(-2)), _as_division(x, sp.Float(-2.0)), _as_division(x, sp.Float(-0.5))
    (True, True, False)
    """
    if not (expo.is_Number and expo.is_negative):
        return False
    return not expo.is_Float or float(expo).is_integer() or half_integer(base, expo) is not None


def half_integer(base, expo) -> int | None:
    """``k`` when ``base**expo`` may print through a square root, ``|expo| == k + 1/2`` for
    ``0 <= k <= MAX_HALF``, else None.

    A Rational exponent comes from ``sqrt`` (whose derivative the tape computes with
    ``sqrt`` too); a Float exponent is a ``x ** 1.5`` the user wrote, which NumPy computes
    with ``power``, and ``sqrt`` gives the same only where the base is never -0.0 or -inf
    (``power(-0.0, -0.5)`` is +inf, ``1/sqrt(-0.0)`` -inf; ``power(-inf, 0.5)`` is inf,
    ``sqrt(-inf)`` nan): for a base that is surely non-negative (:func:`_never_negative`).

    >>> x = sp.Symbol("x", real=True)
    >>> half_integer(x, sp.Rational(3, 2)), half_integer(x, sp.Float(-0.5)), half_integer(x ** 2 + 1, sp.Float(-0.5))
    (1, None, 0)
    """
    if not expo.is_Number:
        return None
    if expo.is_Rational:
        if expo.q != 2:
            return None
        k = (abs(expo.p) - 1) // 2
    elif expo.is_Float:
        twice = 2 * abs(float(expo))
        if not (twice.is_integer() and int(twice) % 2 == 1) or not _never_negative(base):
            return None
        k = int(twice) // 2
    else:
        return None
    return k if k <= MAX_HALF else None


def _never_negative(expr, levels: int = 6) -> bool:
    """True when ``expr`` is never negative, -0.0 or -inf in floating point (an even
    power, ``exp``, ``abs``, a positive number, sums and products of them, and products
    whose other factors come in pairs, ``y*y``), decided from at most ``levels`` levels
    of the tree (no assumption queries on deep forms).

    >>> y, z = sp.symbols("y z", real=True)
    >>> from sympy.core.parameters import evaluate
    >>> with evaluate(False):
    ...     _never_negative(y * y + z * z + 1), _never_negative(y * z + 1)
    (True, False)
    """
    if expr.is_Number:
        return bool(expr.is_positive) or (expr.is_zero and not expr.is_Float)
    if levels == 0:
        return False
    if isinstance(expr, sp.Pow):
        expo = expr.args[1]
        return bool(expo.is_Integer and expo.is_even) or (expo.is_Rational and _never_negative(expr.args[0], levels - 1))
    if isinstance(expr, (sp.exp, sp.Abs)):
        return True
    if isinstance(expr, sp.Add):
        return all(_never_negative(arg, levels - 1) for arg in expr.args)
    if isinstance(expr, sp.Mul):
        unpaired = Counter(arg for arg in expr.args if not _never_negative(arg, levels - 1))
        return all(n % 2 == 0 for n in unpaired.values())
    return False


# ============================================================================ CSE
def common_subexpressions(outputs: Sequence[sp.Basic]) -> tuple[list, dict]:
    """The nodes that get a temporary, in evaluation order, and ``node -> name``.

    A node gets one when it is not atomic and is used twice or more (by the DAG or as
    an output), or when it sits deeper than :data:`MAX_DEPTH` below its last temporary.
    Linear in the size of the DAG.

    >>> x = sp.Symbol("x")
    >>> order, names = common_subexpressions([sp.exp(x) + 1, sp.exp(x) * 2])
    >>> order, names[sp.exp(x)]
    ([exp(x)], '_t0')
    """
    chosen, temps, _, _, _ = _plan(outputs)
    return chosen, temps


def _plan(outputs: Sequence[sp.Basic], share: bool = False) -> tuple[list, dict, set, dict, dict]:
    """Temporaries (see :func:`common_subexpressions`), the constant subexpressions (no
    symbols, no array ops), which print as numbers, and -- with ``share``, for the NumPy
    printer -- the values several nodes share: ``("sqrt", b) -> sqrt(b)`` when ``b`` has
    two or more half-integer powers, ``("exp_neg_abs", z) -> exp(-|z|)`` when both
    ``sigmoid(z)`` and ``softplus(z)`` occur.  Each shared value is a temporary defined
    just before its first user; the base of a power that prints it twice (``b*sqrt(b)``)
    is a temporary too.  Also with ``share``: the sums accumulated in place, ``sum ->
    its index_put terms`` (:func:`_index_put_terms`); each is a temporary, and so are
    the values of its terms."""
    uses: dict = {}
    order: list = []
    kids: dict = {}
    for out in outputs:
        uses[out] = uses.get(out, 0) + 1
    for root in outputs:
        if root in kids:
            continue
        kids[root] = _args(root)
        stack = [(root, iter(kids[root]))]
        while stack:
            node, it = stack[-1]
            for child in it:
                uses[child] = uses.get(child, 0) + 1
                if child not in kids:
                    kids[child] = _args(child)
                    stack.append((child, iter(kids[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    temps: dict = {}
    chosen: list = []
    depth: dict = {}
    constants: set = set()
    users = _sharing_users(order) if share else {}
    shared: dict = {}
    scatters: dict = {}

    def name(node) -> None:
        temps[node] = f"_t{len(chosen)}"
        chosen.append(node)
        depth[node] = 0

    for node in order:  # operands first
        if not node.args:
            depth[node] = 0
            continue
        if node in temps:  # a shared value defined earlier (``sqrt(b)`` that is also in the DAG)
            continue
        if _constant(node, constants):
            constants.add(node)
            depth[node] = 0
            continue
        puts = _index_put_terms(node, temps) if share else None
        if puts:
            for value in (p.data[0] for p in puts):
                if value.args and value not in temps and value not in constants and _nameable(value):
                    name(value)  # its only user is its index_put, which is printed as this sum
            scatters[node] = puts
            name(node)
            continue
        key = _sharing_key(node) if share else None
        if key is not None:
            kind, arg = key
            if users[key] > 1 and key not in shared:
                shared[key] = ExpNegAbs(arg) if kind == "exp_neg_abs" else sp.Pow(arg, sp.S.Half, evaluate=False)
                name(shared[key])
                if node in temps:  # the DAG's own ``sqrt(b)``
                    continue
            if kind == "sqrt" and key in shared and node.args[1].is_positive and half_integer(*node.args) == 0:
                depth[node] = 0  # ``b**0.5`` prints as the shared root's name
                continue
            if (kind == "sqrt" and half_integer(*node.args) and arg.args and arg not in temps
                    and arg not in constants and _nameable(arg)):
                name(arg)  # printed twice (``b*sqrt(b)``); this power is its only user
        d = 1 + max((depth.get(c, 0) for c in kids[node]), default=0)
        if (uses.get(node, 0) > 1 or d > MAX_DEPTH) and _nameable(node):
            name(node)
            d = 0
        depth[node] = d
    return chosen, temps, constants, shared, scatters


def _index_put_terms(node: sp.Basic, temps: dict) -> list | None:
    """The ``index_put`` terms of a sum that accumulate in one array: two or more, at
    basic indices (each element once), of the sum's own shape, not named temporaries."""
    if not isinstance(node, sp.Add):
        return None
    puts = [t for t in node.args if is_basic_index_put(t) and t not in temps]
    if len(puts) < 2:
        return None
    shape = shape_of(node)
    return puts if all(tuple(p.attrs["shape"]) == shape for p in puts) else None


def _sharing_key(node: sp.Basic):
    """``("sqrt", b)`` for a half-integer power of ``b``, ``("exp_neg_abs", z)`` for
    ``sigmoid(z)`` or ``softplus(z)``, else None."""
    if isinstance(node, sp.Pow):
        return ("sqrt", node.args[0]) if half_integer(*node.args) is not None else None
    if isinstance(node, (sigmoid, softplus)):
        return ("exp_neg_abs", node.args[0])
    return None


def _sharing_users(order: list) -> dict:
    """How many nodes could share each value of :func:`_sharing_key`: the half-integer
    powers of each base; for ``exp(-|z|)``, 2 when both ``sigmoid(z)`` and ``softplus(z)``
    occur (two sigmoids of ``z`` are one node already)."""
    users: dict = {}
    for node in order:
        key = _sharing_key(node)
        if key is not None:
            users[key] = users.get(key, 0) + 1
    return users


def _constant(node: sp.Basic, constants: set) -> bool:
    if not isinstance(node, sp.Expr) or isinstance(node, StructuralFunction):
        return False
    for arg in node.args:
        if arg.args:
            if arg not in constants:
                return False
        elif not (arg.is_Number or isinstance(arg, sp.NumberSymbol)):
            return False
    return True


def _constant_text(node: sp.Expr) -> str | None:
    """A Python number literal for a constant subexpression, or None to print it."""
    try:
        value = node.evalf(17)
    except Exception:  # noqa: BLE001  (leave anything unusual to the printer)
        return None
    if not value.is_Number:
        return None
    if value is sp.nan:
        return "float('nan')"
    if value.is_infinite:
        return "float('inf')" if value.is_extended_positive else "float('-inf')"
    number = float(value)
    if not np.isfinite(number):  # beyond float64 (exp(1000)): NumPy's exp overflows to inf too
        return "float('inf')" if number > 0 else "float('-inf')"
    return repr(number) if number >= 0 else f"({number!r})"


def _nameable(node: sp.Basic) -> bool:
    return isinstance(node, (sp.Expr, sp.logic.boolalg.Boolean)) and not isinstance(node, ExprCondPair)


def _args(node: sp.Basic) -> tuple:
    """The operands the printed code of ``node`` reads: a factor ``y**-1`` of a product is
    printed as a division by ``y``, so ``y`` is read, not the power (which therefore never
    gets a temporary ``1/y`` that a product would multiply by)."""
    if not node.args:
        return ()
    if isinstance(node, sp.Mul) and len(node.args) <= CHUNK:
        return tuple(a for a in (f.base if _divides(f) else f for f in node.args) if a.args)
    return tuple(a for a in node.args if a.args)


def _divides(factor: sp.Basic) -> bool:
    """Whether a factor of a product prints as a division (``x/y`` for ``x*y**-1``,
    ``x/y**2``, ``x/sqrt(y)``; see :meth:`SymgradNumPyPrinter._product`): so the compiled
    code divides where the tape's ``div`` divides, also when the power is shared.

    A constant that is not a number (``pi`` in ``rad2deg``'s ``x*180/pi``, ``log(2)``) is part
    of an op's formula, whose forward multiplies by one literal: its reciprocal stays a
    literal factor.

    >>> y = sp.Symbol("y", real=True)
    >>> _divides(y ** -1), _divides(y ** 2), _divides(sp.Pow(sp.Integer(3), -1, evaluate=False)), _divides(1 / sp.pi)
    (True, False, True, False)
    """
    return (isinstance(factor, sp.Pow) and _as_division(factor.base, factor.exp) and factor.base.is_commutative
            and not _formula_constant(factor.base))


def _formula_constant(expr: sp.Basic, levels: int = 3) -> bool:
    """Whether ``expr`` is a constant other than a plain number, made of numbers and
    ``pi``/``E``-like constants within ``levels`` levels (so a deep operand costs nothing).

    >>> _formula_constant(sp.pi), _formula_constant(sp.log(2)), _formula_constant(sp.Integer(3))
    (True, True, False)
    """
    if expr.is_Number:
        return False
    stack = [(expr, levels)]
    while stack:
        node, left = stack.pop()
        if node.is_Number or isinstance(node, sp.NumberSymbol):
            continue
        if left == 0 or not node.args or not isinstance(node, sp.Expr) or isinstance(node, StructuralFunction):
            return False
        stack.extend((a, left - 1) for a in node.args)
    return True


# ============================================================================ compiled function
def python_name(name: str, taken: set) -> str:
    """A safe, unused Python identifier for a display name: ASCII letters, digits and
    ``_`` only (``fc.weight`` -> ``fc_weight``), never a keyword, a builtin, a name the
    generated code calls (``matmul``, ``sum``, ``numpy`` ...) or a temporary (``_t0``).
    Tensor names come from users, so nothing of ``name`` reaches generated code except
    these characters.

    >>> python_name("fc.weight", set()), python_name("lambda", set()), python_name("x", {"x"})
    ('fc_weight', 'lambda_', 'x_1')
    >>> python_name("__import__('os')", set()), python_name("sum", set()), python_name("x y", set())
    ('__import____os__', 'sum_', 'x_y')
    """
    base = re.sub(r"[^0-9A-Za-z_]", "_", str(name)) or "_"
    if base[0].isdigit():
        base = "_" + base
    while base in _reserved() or keyword.iskeyword(base) or keyword.issoftkeyword(base) or _TEMPORARY.match(base):
        base += "_"
    candidate, i = base, 0
    while candidate in taken or candidate in _reserved() or _TEMPORARY.match(candidate):
        i += 1
        candidate = f"{base}_{i}"
    taken.add(candidate)
    return candidate


_TEMPORARY = re.compile(r"_t\d+$")
_RESERVED_NAMES: dict = {}


def _reserved() -> set:
    """Every name generated code may read: builtins, the modules and every function of
    :func:`numpy_namespace`, and the names of generated functions."""
    from ...ops import OPS
    from ..forms.structural import STRUCTURAL_FUNCTIONS

    version = (len(OPS), len(STRUCTURAL_FUNCTIONS))
    names = _RESERVED_NAMES.get(version)
    if names is None:
        import builtins

        names = set(dir(builtins)) | set(numpy_namespace()) | {
            "numpy", "functools", "np", "sympy", "sp", "compiled", "backward", "grad", "value_and_grad",
            "jacobian", "hessian", "vjp", "jvp"}
        _RESERVED_NAMES.clear()
        _RESERVED_NAMES[version] = names
    return names


class ClosedFormFunction:
    """What every compiled function is, whatever generated it (NumPy code here, C or
    another backend in :mod:`symgrad.symbolic.codegen.backends`): named inputs (its
    ``symbols``) and outputs (``exprs`` maps each output name to its SymPy closed form),
    called positionally or by name, returning a named tuple; ``latex()`` and the notebook
    show the closed forms; pickling sends them, not the generated code.

    A subclass generates and loads its code in ``__init__`` (after this class's) and
    implements :meth:`outputs_of`.
    """

    backend = ""
    """The name of the backend that compiled it (see :mod:`symgrad.symbolic.codegen.backends`)."""

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 output_dtypes: Sequence[Any] | None = None, name: str = "compiled") -> None:
        self.symbols = list(inputs)
        taken: set = set()
        self.inputs = [python_name(n, taken) for n in (input_names or [str(s) for s in inputs])]
        out_taken: set = set()
        self.outputs = [python_name(n, out_taken) for n in (output_names or [f"out{i}" for i in range(len(outputs))])]
        if len(self.outputs) != len(outputs):
            raise ValueError(f"got {len(self.outputs)} output names for {len(outputs)} outputs")
        self.exprs: dict[str, sp.Expr] = dict(zip(self.outputs, outputs))
        self.output_dtypes = [None if d is None else np.dtype(d) for d in (output_dtypes or [None] * len(outputs))]
        self.name = name
        self._result = namedtuple("Outputs", self.outputs, rename=True)
        self._positions = {n: i for i, n in enumerate(self.inputs)}

    def __call__(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != len(self.inputs):
            args = self._bind(args, kwargs)
        return self._result(*self.outputs_of(args))

    def outputs_of(self, values: Sequence[Any]) -> list:
        """The outputs, as a list, for every input in order (arrays or numbers): the call
        without argument binding or the named tuple, for callers that have the inputs
        in order already (backward, the transforms of :mod:`..transforms`)."""
        raise NotImplementedError

    def _bind(self, args: tuple, kwargs: dict) -> list:
        """The inputs in order, from positional and named values."""
        values = list(args) + [None] * (len(self.inputs) - len(args))
        for key, value in kwargs.items():
            position = self._positions.get(key)
            if position is None:
                raise TypeError(f"unknown input {key!r}; the inputs are {self.inputs}")
            values[position] = value
        if len(values) != len(self.inputs) or any(v is None for v in values):
            raise self._arity_error(args, kwargs)
        return values

    def _arity_error(self, args: Sequence, kwargs: dict) -> TypeError:
        return TypeError(f"{self.name} takes the inputs {self.inputs}, got {len(args)} positional "
                         f"and {sorted(kwargs)} named values")

    def latex(self) -> str:
        """The outputs as LaTeX equations."""
        from ..printing.printers import latex

        lines = [rf"\mathrm{{{n.replace('_', chr(92) + '_')}}} &= {latex(e)}" for n, e in self.exprs.items()]
        return r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """The closed forms in a notebook, bounded (see :mod:`symgrad.symbolic.printing.notebook`)."""
        from ..printing.notebook import form_bundle

        return form_bundle(list(self.exprs.items()), whole_latex=lambda: f"$\\displaystyle {self.latex()}$",
                           rest=".latex(), or .exprs for the expressions")

    def _repr_latex_(self) -> str:
        return self._repr_mimebundle_()["text/latex"]

    def __reduce__(self):
        """Pickle the closed forms, not the generated code: unpickling (in another process,
        a Dask worker) compiles them again.  The expressions travel as a flat table of
        nodes (:func:`_dag_table`), so a deep graph never meets pickle's recursion limit."""
        options = {"input_names": self.inputs, "output_names": self.outputs, "output_shapes": self.output_shapes,
                   "output_dtypes": self.output_dtypes, "name": self.name}
        return (_unpickle_compiled, (type(self), self.symbols, _dag_table(list(self.exprs.values())), options))


class CompiledFunction(ClosedFormFunction):
    """One generated NumPy function returning several named outputs.

    Call it with NumPy arrays or Python numbers, positionally in the order of
    ``inputs`` or by name; it returns a named tuple of arrays (``.value``,
    ``.grad_w`` ...).  ``source`` is the generated code, ``exprs`` maps each output name
    to its SymPy closed form, ``latex()`` renders them.

    >>> x = sp.Symbol("x", real=True)
    >>> f = compile_exprs([x], [sp.sin(x), sp.cos(x)], output_names=["value", "grad_x"])
    >>> f(0.0)
    Outputs(value=array(0.), grad_x=array(1.))
    >>> print(f.source)
    def compiled(x):
        return (numpy.sin(x), numpy.cos(x))
    """

    backend = "numpy"

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 output_shapes: Sequence[tuple | None] | None = None,
                 output_dtypes: Sequence[Any] | None = None, name: str = "compiled") -> None:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"a compiled function needs an identifier for a name, got {name!r}")
        super().__init__(inputs, outputs, input_names=input_names, output_names=output_names,
                         output_dtypes=output_dtypes, name=name)
        self.output_shapes = list(output_shapes) if output_shapes is not None else [
            _maybe_shape(e) for e in outputs]
        self.source, self.n_temporaries = _generate(self.symbols, self.inputs, list(outputs), name)
        namespace = {"numpy": np, "functools": __import__("functools")}
        namespace.update(numpy_namespace())
        filename = f"<symgrad compiled {name} #{next(_SOURCE_NUMBERS)}>"
        code = compile(self.source, filename, "exec")
        exec(code, namespace)
        # tracebacks through the generated code show its lines, as long as this function lives
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        weakref.finalize(self, linecache.cache.pop, filename, None)
        self.fn: Callable = namespace[name]
        # once per compiled function (its inputs have fixed shapes and dtypes), not per call
        self._finishing = list(zip([None if s is None else tuple(s) for s in self.output_shapes], self.output_dtypes))
        self._quiet_fn = _quiet(self.fn)

    def outputs_of(self, values: Sequence[Any]) -> list:
        """The outputs, as a list, for every input in order (arrays or numbers): the call
        without argument binding or the named tuple, for callers that have the inputs
        in order already (the transforms of :mod:`..transforms`).

        >>> x = sp.Symbol("x", real=True)
        >>> compile_exprs([x], [x + 1, 2 * x]).outputs_of([np.array(1.0)])
        [array(2.), array(2.)]
        """
        arrays = []
        for value in values:
            if type(value) is not np.ndarray:
                if value is None:
                    raise self._arity_error(values, {})
                value = np.asarray(value)
            arrays.append(value)
        raw = self._quiet_fn(*arrays)
        outs: list = []
        for value, (shape, dtype) in zip(raw, self._finishing):
            outs.append(self._finish(value, shape, dtype, arrays, outs))
        return outs

    @staticmethod
    def _finish(value: Any, shape: tuple | None, dtype: np.dtype | None, inputs: list, earlier: list) -> np.ndarray:
        """One output with its shape and dtype, writeable, and sharing no memory with an
        input or an earlier output (generated code returns views of inputs where it can:
        those are copied, nothing else is)."""
        out = value if type(value) is np.ndarray else np.asarray(value)
        if shape is not None and out.shape != shape:
            out = np.broadcast_to(out, shape)
        if dtype is not None and out.dtype != dtype:
            return out.astype(dtype)  # a new array
        if not out.flags.writeable or _overlaps_any(out, inputs) or _overlaps_any(out, earlier):
            return out.copy()
        return out

    def __repr__(self) -> str:
        return f"<CompiledFunction {self.name}({', '.join(self.inputs)}) -> ({', '.join(self.outputs)})>"


def _dag_table(roots: list) -> tuple[list, list]:
    """``(table, outputs)``: every distinct node once, after its arguments -- an atom as
    itself, any other node as ``(func, argument positions)`` -- and the roots' positions."""
    position: dict = {}
    table: list = []
    for root in roots:
        stack = [(root, iter(root.args))]
        while stack:
            node, args = stack[-1]
            for arg in args:
                if arg not in position:
                    stack.append((arg, iter(arg.args)))
                    break
            else:
                stack.pop()
                if node not in position:
                    position[node] = len(table)
                    table.append((node.func, tuple(position[a] for a in node.args)) if node.args else node)
    return table, [position[r] for r in roots]


def _unpickle_compiled(cls: type, symbols: list, dag: tuple[list, list], options: dict) -> "CompiledFunction":
    """Rebuild the expressions of :func:`_dag_table` as they were (no re-evaluation) and
    compile them."""
    table, roots = dag
    nodes: list = []
    with evaluate(False):
        for entry in table:
            nodes.append(entry[0](*[nodes[i] for i in entry[1]]) if isinstance(entry, tuple) else entry)
    return cls(symbols, [nodes[i] for i in roots], **options)


def _quiet(fn: Callable) -> Callable:
    """``fn`` run under ``numpy.errstate(divide="ignore", invalid="ignore", over="ignore")``
    (every branch of a ``Piecewise`` is evaluated; the unused ones may warn).

    ``errstate`` builds its settings object on every call (a microsecond, as much as a
    small gradient costs); this makes it once per error state the caller is in -- NumPy
    keeps that state in a context variable, so threads and a caller's own ``errstate``
    are respected -- and falls back to ``errstate`` where that variable is not found.

    >>> with np.errstate(divide="raise"):
    ...     _quiet(lambda x: 1 / x)(np.zeros(1)), np.geterr()["divide"]
    (array([inf]), 'raise')
    """
    state, make = numpy_error_state, numpy_error_settings
    if state is None:  # pragma: no cover  (another NumPy layout)
        return np.errstate(divide="ignore", invalid="ignore", over="ignore")(fn)

    def quiet(*arrays):
        current = state.get()
        caller, settings = _QUIET_SETTINGS[0]
        if caller is not current:
            settings = make(divide="ignore", invalid="ignore", over="ignore")
            _QUIET_SETTINGS[0] = (current, settings)
        token = state.set(settings)
        try:
            return fn(*arrays)
        finally:
            state.reset(token)

    return quiet


_SOURCE_NUMBERS = itertools.count(1)
"""Numbers the generated sources' file names, so each has its own ``linecache`` entry."""

_QUIET_SETTINGS: list = [(None, None)]
"""The last caller's NumPy error state and its quiet version (one tuple, swapped whole)."""


def _overlaps_any(out: np.ndarray, arrays: list) -> bool:
    """Whether ``out`` may share memory with one of ``arrays``.  A NumPy view's ``base``
    is the array owning the data, so two arrays whose owners differ share nothing; only
    when their owners are one array, or when one's data belongs to no array (a buffer),
    does ``numpy.shares_memory`` decide (it costs as much as a small op: a backward step
    calls this for every output and input)."""
    owner = out if out.base is None else out.base
    foreign = not isinstance(owner, np.ndarray) or owner.base is not None
    for a in arrays:
        if a is out:
            return True
        other = a if a.base is None else a.base
        if other is owner or ((foreign or not isinstance(other, np.ndarray) or other.base is not None)
                              and np.shares_memory(out, a)):
            return True
    return False


def _maybe_shape(expr: sp.Expr):
    try:
        return shape_of(expr)
    except Exception:  # noqa: BLE001  (unknown functions: leave the shape to NumPy)
        return None


def operation_count(outputs: Sequence[sp.Expr]) -> int:
    """Operations after common-subexpression elimination: every distinct node of the
    DAG counted once -- ``n - 1`` for a sum or product of ``n`` terms, 1 for anything
    else that is not atomic.  Linear in the size of the DAG.

    >>> x = sp.Symbol("x")
    >>> operation_count([sp.exp(x) + 1, sp.exp(x) * 2])   # exp once, + once, * once
    3
    """
    from ..core.symbols import postorder

    total = 0
    for node in postorder(list(outputs)):
        if not node.args or isinstance(node, ExprCondPair):
            continue
        if isinstance(node, (sp.Add, sp.Mul)):
            total += len(node.args) - 1
        else:
            total += 1
    return total


def _generate(symbols: list, names: list[str], outputs: list, name: str) -> tuple[str, int]:
    order, temps, constant_nodes, shared, scatters = _plan(outputs, share=True)
    constants = {}
    for node in constant_nodes:
        text = _constant_text(node)
        if text is not None:
            constants[node] = text
    printer = SymgradNumPyPrinter(dict(zip(symbols, names)), temps, constants, shared)
    printer._check_available = True
    lines = [f"def {name}({', '.join(names)}):"]
    for node in order:
        if node in scatters:
            lines += [f"    {line}" for line in printer.define_index_put_sum(node, scatters[node], temps[node])]
        else:
            lines.append(f"    {temps[node]} = {printer.define(node, temps[node])}")
    results = [printer._print(out) for out in outputs]
    body = ", ".join(results) + ("," if len(results) == 1 else "")
    lines.append(f"    return ({body})")
    return free_dead_temporaries("\n".join(lines)), len(order)


_AST_LOCK = threading.Lock()
"""``ast.parse`` one thread at a time: on CPython 3.11.2 (a Debian machine's Python, seen in
CI) two threads building syntax trees at once can raise ``SystemError: AST constructor
recursion depth mismatch``, and threads compiling backward passes do build them at once."""


def free_dead_temporaries(source: str) -> str:
    r"""``source`` (one generated function) with ``del`` statements releasing every
    temporary right after the statement that reads it last: a liveness pass over the
    CSE assignments, so that an array no later statement needs is freed at once instead
    of at ``return`` (for W1 of the benchmarks, a third less peak memory).  Temporaries
    the ``return`` reads stay.  Generated code has no nested scope (no ``lambda``, no
    generator: ``tests/reliability/test_hostile_names.py`` checks), so a read is done
    when its statement is.

    >>> print(free_dead_temporaries("def f(x):\n    _t0 = x + 1\n    _t1 = _t0*_t0\n    return (_t1 + x,)"))
    def f(x):
        _t0 = x + 1
        _t1 = _t0*_t0
        del _t0
        return (_t1 + x,)
    """
    with _AST_LOCK:
        function = ast.parse(source).body[0]
    *steps, returned = function.body
    kept = _temporaries_read(returned)
    last: dict = {}
    for i, step in enumerate(steps):
        for name in _temporaries_read(step):
            last[name] = i
    dying: dict = {}
    for name, i in last.items():
        if name not in kept:
            dying.setdefault(i, []).append(name)
    if not dying:
        return source
    lines = source.split("\n")
    out = lines[:steps[0].lineno - 1]
    for i, step in enumerate(steps):
        out += lines[step.lineno - 1:step.end_lineno]
        if i in dying:
            out.append(f"    del {', '.join(sorted(dying[i], key=lambda n: int(n[2:])))}")
    out += lines[returned.lineno - 1:]
    return "\n".join(out)


def _temporaries_read(node: ast.AST) -> set:
    """The temporaries (``_t0`` ...) that ``node`` reads."""
    return {n.id for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and _TEMPORARY.match(n.id)}


def compile_exprs(inputs: Sequence[sp.Symbol], outputs: Sequence[Any], *,
                  output_names: Sequence[str] | None = None, input_names: Sequence[str] | None = None,
                  output_shapes: Sequence[Any] | None = None, output_dtypes: Sequence[Any] | None = None,
                  cache: bool = True, name: str = "compiled", backend: str = "auto") -> ClosedFormFunction:
    """Compile ``outputs`` (SymPy expressions over ``inputs``) into one function, cached by
    the expressions' structure and the backend: ``"auto"`` (the default) runs the NumPy
    code and tiers up to C when its calls pay for a compile
    (:mod:`symgrad.symbolic.codegen.backends.auto`); ``"numpy"`` generates NumPy code only;
    ``"c"``, ``"c_fused"`` and ``"c_scalar"`` generate C (see
    :mod:`symgrad.symbolic.codegen.backends`).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (3,))
    >>> f = compile_exprs([x], [2 * x + 1])
    >>> f(np.arange(3.0)).out0
    array([1., 3., 5.])
    >>> compile_exprs([x], [2 * x + 1], backend="c").backend   # doctest: +SKIP
    'c_fused'
    """
    from .backends import get_backend

    chosen = get_backend(backend)
    outputs = [as_expr(o) for o in outputs]
    key = ("exprs", tuple(inputs), tuple(outputs), tuple(output_names or ()), tuple(input_names or ()),
           _hashable(output_shapes), _hashable(output_dtypes), name, backend)

    def build() -> CompiledFunction:
        return chosen.compile(inputs, outputs, input_names=input_names, output_names=output_names,
                              output_shapes=output_shapes, output_dtypes=output_dtypes, name=name)

    return cached(key, build) if cache else build()


def _hashable(value: Any) -> Any:
    if value is None:
        return None
    return tuple(None if v is None else (tuple(v) if isinstance(v, (tuple, list)) else str(np.dtype(v)))
                 for v in value)


# ============================================================================ the cache
CacheInfo = namedtuple("CacheInfo", "hits misses maxsize currsize")


class _Cache:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict = OrderedDict()  # _HashedKey -> (that same key, value)
        self.hits = 0
        self.misses = 0
        self.lock = threading.RLock()
        self.claims: dict = {}  # key -> the _Claim of a value being built, or built and not committed yet


class _HashedKey:
    """A cache key hashed once.  Keys are nested tuples of the graph's structure, and a
    tuple recomputes its hash (and a lookup compares it element by element) every time:
    this keeps the hash, and the cache stores the first key it met for a structure, so a
    later lookup compares in full once and the commit then finds that same object."""

    __slots__ = ("key", "hash")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.hash = hash(key)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, _HashedKey) and self.hash == other.hash and self.key == other.key)


_CACHE = _Cache(256)
_MISSING = object()
_LOCAL = threading.local()  # .open: this thread's open transactions, innermost last


class _Claim:
    """One thread's claim to build the value of a key: threads that miss the same key
    meanwhile wait for it instead of building it again."""

    __slots__ = ("owner", "done", "value", "error")

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        """The value once built; the builder's exception if the build failed."""
        if self.owner == threading.get_ident() and not self.done.is_set():
            raise RuntimeError(
                "a compile-cache build looked up its own key while building it (it would wait for itself "
                "forever); build the value without calling cached() for the same key inside"
            )
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


def _open_transactions() -> list:
    try:
        return _LOCAL.open
    except AttributeError:
        _LOCAL.open = []
        return _LOCAL.open


def _release(claims: list) -> None:
    if not claims:
        return
    with _CACHE.lock:
        for key, claim in claims:
            if _CACHE.claims.get(key) is claim:
                del _CACHE.claims[key]


def _commit(transaction: "cache_transaction") -> None:
    """Count and store a transaction's lookups: a key still absent is a miss and enters
    the cache, a present one is a hit (so misses count the entries ever added)."""
    with _CACHE.lock:
        for key, value in transaction.lookups:
            if key in _CACHE.entries:
                _CACHE.entries.move_to_end(key)
                _CACHE.hits += 1
            else:
                _CACHE.entries[key] = (key, value)
                _CACHE.misses += 1
        while len(_CACHE.entries) > _CACHE.maxsize:
            _CACHE.entries.popitem(last=False)
        _release(transaction.claims)


class cache_transaction:
    """Commit the cache lookups made inside the block only if it ends without an
    exception: then values built inside enter the cache and every lookup counts as a
    hit or a miss; after an exception the cache and its counts are as they were (so a
    failed ``backward()`` leaves no entry).  Blocks nest: an inner one commits into the
    outer one.  Inside the block, values built before are found again.

    >>> before = compile_cache_info()
    >>> try:
    ...     with cache_transaction():
    ...         value = cached(("doc", "transaction"), lambda: "built")
    ...         raise ValueError("the call fails later")
    ... except ValueError:
    ...     pass
    >>> compile_cache_info() == before
    True
    >>> with cache_transaction():
    ...     cached(("doc", "transaction"), lambda: "built")
    'built'
    >>> compile_cache_info().misses - before.misses
    1
    """

    __slots__ = ("lookups", "claims")

    def __init__(self) -> None:
        self.lookups: list = []  # (key, value) in order
        self.claims: list = []  # (key, _Claim) of the values built inside

    def __enter__(self) -> None:
        _open_transactions().append(self)

    def __exit__(self, kind, error, traceback) -> None:
        transactions = _open_transactions()
        transactions.pop()
        if kind is not None:
            _release(self.claims)
        elif transactions:
            transactions[-1].lookups.extend(self.lookups)
            transactions[-1].claims.extend(self.claims)
        else:
            _commit(self)


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """The cached value for ``key``, building (and counting a miss) when absent.

    Keys describe graph structure only -- ops, shapes, dtypes, attributes, constants --
    never input values.  Threads that miss the same key at once build it once: the first
    claims the key, the others wait for its value (or get its exception).  Inside
    :func:`cache_transaction` the value enters the cache when the block commits.

    >>> before = compile_cache_info().misses
    >>> cached(("doc", 1), lambda: "built"), cached(("doc", 1), lambda: "again")
    ('built', 'built')
    >>> compile_cache_info().misses - before
    1
    """
    transactions = _open_transactions()
    if not transactions:
        with cache_transaction():
            return cached(key, build)
    key = _HashedKey(key)
    with _CACHE.lock:
        found = _CACHE.entries.get(key)
        if found is None:
            value = _MISSING
            claim = _CACHE.claims.get(key)
        else:
            key, value = found  # the stored key: the commit finds it by identity
            claim = None
        mine = value is _MISSING and claim is None
        if mine:
            claim = _CACHE.claims[key] = _Claim()
    if mine:
        try:
            claim.value = build()
        except BaseException as err:
            claim.error = err
            _release([(key, claim)])
            raise
        finally:
            claim.done.set()
        transactions[-1].claims.append((key, claim))
        value = claim.value
    elif claim is not None:
        value = claim.result()
    transactions[-1].lookups.append((key, value))
    return value


def compile_cache_info() -> CacheInfo:
    """Hits, misses, capacity and current size of the compiled-function cache.

    >>> info = compile_cache_info()
    >>> info.maxsize >= info.currsize
    True
    """
    with _CACHE.lock:
        return CacheInfo(_CACHE.hits, _CACHE.misses, _CACHE.maxsize, len(_CACHE.entries))


def compile_cache_clear() -> None:
    """Drop every compiled function and reset the hit/miss counts.

    >>> compile_cache_clear(); compile_cache_info()
    CacheInfo(hits=0, misses=0, maxsize=256, currsize=0)
    """
    with _CACHE.lock:
        _CACHE.entries.clear()
        _CACHE.hits = _CACHE.misses = 0


def set_compile_cache_size(maxsize: int) -> None:
    """Bound the cache to ``maxsize`` compiled functions (least recently used go first).

    >>> set_compile_cache_size(512); compile_cache_info().maxsize
    512
    >>> set_compile_cache_size(256)
    """
    if maxsize < 1:
        raise ValueError(f"the compile cache needs room for at least one function, got maxsize={maxsize}")
    with _CACHE.lock:
        _CACHE.maxsize = int(maxsize)
        while len(_CACHE.entries) > _CACHE.maxsize:
            _CACHE.entries.popitem(last=False)
