"""Elementwise selection functions that SymPy never rewrites: ``where``, comparisons,
``maximum``/``minimum`` and their tie-splitting derivative.

The op table writes ``relu``, ``clamp``, ``where``, ``maximum`` and ``minimum`` as SymPy
``Piecewise`` expressions.  Over *array* symbols a ``Piecewise`` is unsafe: SymPy's
automatic evaluation pulls a nested ``Piecewise`` out of any function call, so
``x < sum(Piecewise((a, a > b), (b, True)))`` becomes ``ITE(a > b, x < sum(a), x < sum(b))``
-- right for numbers, wrong for arrays, whose elements choose differently -- and nested
``maximum`` calls grow exponentially (each level copies the one below into three
branches).  The symbolic engine therefore *lowers* every elementwise form it builds
(:func:`elementwise_form`): the form is built once on scalar dummies and translated to
the functions below, which are ordinary SymPy ``Function`` classes that only evaluate on
numbers:

* :class:`Select` ``where(c, a, b)`` (``numpy.where``), its condition a comparison
  (:class:`Greater`, ...) or a logical combination of them;
* :class:`Maximum` / :class:`Minimum` (``numpy.maximum``/``numpy.minimum``), whose
  ``fdiff`` is :class:`TieStep` -- 0 where the argument loses, 1/2 at a tie, 1 elsewhere
  (where it wins, and where either argument is NaN), which is PyTorch's rule -- so the
  derivative of ``n`` nested calls has ``O(n)`` nodes.  Neither simplifies a call on two
  equal arguments: ``maximum(x, x)`` is ``x`` but its derivative is 2 at NaN (PyTorch's
  rule), so ``tie_step(x, x)`` is 1/2 only where ``x`` is a number.

All of them are real, differentiate by ``fdiff`` (a comparison's derivative is zero
almost everywhere, as every numeric engine has it) and print as NumPy calls that keep
the operands' dtype (Python scalars are "weak" under NumPy 2, so a ``float32`` graph
stays ``float32``).

>>> x = sp.Symbol("x", real=True)
>>> step = elementwise_form("doc_step", lambda sp, x: sp.Piecewise((x, x > 0), (0, True)), [x])
>>> step, step.diff(x)
(where(x > 0, x, 0), where(x > 0, 1, 0))
>>> Maximum(x, 2 * x).diff(x)  # tie_step(x, 2*x) + 2*tie_step(2*x, x), printed as Iverson brackets
[x == 2*x]/2 + [x > 2*x] + 2*([2*x == x]/2 + [2*x > x])
"""
from __future__ import annotations

import operator
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .notation import PrintedInStandardNotation
from ..core._compat import evaluate
from ..core.symbols import expression_cache

__all__ = ["Select", "Compare", "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual",
           "LogicalAnd", "LogicalOr", "LogicalNot", "Maximum", "Minimum", "TieStep", "Cast", "lower",
           "elementwise_form", "is_condition", "cast_form", "function_ops", "match_function_op", "NUMPY_HELPERS", "NOT_DIFFERENTIABLE"]


class _Real(sp.Function):
    """Real-valued elementwise helper functions."""

    def _eval_is_extended_real(self):
        return True

    def _eval_is_real(self):
        return True

    def _eval_is_finite(self):
        return True if all(a.is_finite for a in self.args) else None

    def _eval_evalf(self, prec):
        if not all(a.is_number for a in self.args):
            return None
        values = [a._eval_evalf(prec) for a in self.args]
        if any(v is None for v in values):
            return None
        with evaluate(True):
            out = self.func(*values)
        return None if isinstance(out, type(self)) else out._eval_evalf(prec)

    def _pretty(self, printer):
        from .structural import pretty_call

        return pretty_call(printer, self._display_name(), self.args, [])

    def _display_name(self) -> str:
        return type(self).__name__.lower()


def _same(a: sp.Basic, b: sp.Basic) -> bool:
    """``a == b``, comparing cached hashes first (SymPy's ``==`` walks both trees, which
    for two deep unequal expressions of the same shape would recurse deeply)."""
    return a is b or (hash(a) == hash(b) and a == b)


def _number(expr: sp.Basic) -> bool:
    return expr.is_Number and expr.is_extended_real is not False


# ============================================================================ comparisons
class Compare(_Real):
    """An elementwise comparison, 1 where it holds and 0 elsewhere (a boolean array in
    compiled code).  Piecewise constant: its derivative is zero."""

    nargs = 2
    symbol: ClassVar[str] = "?"
    latex_symbol: ClassVar[str] = "?"
    numpy_name: ClassVar[str] = ""
    relation: ClassVar[Callable[[Any, Any], bool]] = staticmethod(lambda a, b: False)

    @classmethod
    def eval(cls, a, b):
        if _number(a) and _number(b) and not (a is sp.nan or b is sp.nan):
            return sp.S.One if cls.relation(a, b) else sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _numpycode(self, printer) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return f"{printer._module_format('numpy.' + self.numpy_name)}({a}, {b})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        a, b = (printer.parenthesize(arg, PRECEDENCE["Relational"] + 1, strict=False) for arg in self.args)
        return f"{a} {self.symbol} {b}"

    def _latex(self, printer, exp=None) -> str:
        a, b = (printer.parenthesize(arg, PRECEDENCE["Relational"] + 1, strict=False) for arg in self.args)
        text = f"{a} {self.latex_symbol} {b}"
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm, stringPict

        from .structural import pretty_operand

        a, b = (pretty_operand(printer, arg, PRECEDENCE["Relational"] + 1, strict=False) for arg in self.args)
        return prettyForm(*stringPict.next(a, f" {self.symbol} ", b))

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Relational"]


class Greater(Compare):
    """``a > b`` elementwise."""

    symbol, latex_symbol, numpy_name = ">", ">", "greater"
    relation = staticmethod(operator.gt)


class GreaterEqual(Compare):
    """``a >= b`` elementwise."""

    symbol, latex_symbol, numpy_name = ">=", r"\geq", "greater_equal"
    relation = staticmethod(operator.ge)


class Less(Compare):
    """``a < b`` elementwise."""

    symbol, latex_symbol, numpy_name = "<", "<", "less"
    relation = staticmethod(operator.lt)


class LessEqual(Compare):
    """``a <= b`` elementwise."""

    symbol, latex_symbol, numpy_name = "<=", r"\leq", "less_equal"
    relation = staticmethod(operator.le)


class Equal(Compare):
    """``a == b`` elementwise."""

    symbol, latex_symbol, numpy_name = "==", "=", "equal"
    relation = staticmethod(operator.eq)


class NotEqual(Compare):
    """``a != b`` elementwise."""

    symbol, latex_symbol, numpy_name = "!=", r"\neq", "not_equal"
    relation = staticmethod(operator.ne)


class _Logical(_Real):
    numpy_name: ClassVar[str] = ""
    symbol: ClassVar[str] = ""

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _numpycode(self, printer) -> str:
        args = [printer._print(a) for a in self.args]
        out = args[0]
        for arg in args[1:]:
            out = f"{printer._module_format('numpy.' + self.numpy_name)}({out}, {arg})"
        return out

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:  # & and | bind tighter than comparisons: (a > 0) & (b > 0)
        return f" {self.symbol} ".join(printer.parenthesize(a, PRECEDENCE["Relational"], strict=False)
                                       for a in self.args)

    @property
    def precedence(self) -> int:
        return PRECEDENCE["And"]


class LogicalAnd(_Logical):
    """Elementwise ``a & b`` of conditions."""

    nargs = 2
    numpy_name, symbol = "logical_and", "&"

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return sp.S.One if (a != 0 and b != 0) else sp.S.Zero
        return None


class LogicalOr(_Logical):
    """Elementwise ``a | b`` of conditions."""

    nargs = 2
    numpy_name, symbol = "logical_or", "|"

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number:
            return sp.S.One if (a != 0 or b != 0) else sp.S.Zero
        return None


class LogicalNot(_Logical):
    """Elementwise ``~a`` of a condition."""

    nargs = 1
    numpy_name = "logical_not"

    @classmethod
    def eval(cls, a):
        if a.is_Number:
            return sp.S.One if a == 0 else sp.S.Zero
        return None

    def _numpycode(self, printer) -> str:
        return f"{printer._module_format('numpy.logical_not')}({printer._print(self.args[0])})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        return "~" + printer.parenthesize(self.args[0], PRECEDENCE["Not"], strict=True)

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Not"]


# ============================================================================ selection
class Select(_Real):
    """``where(c, a, b)``: ``a`` where the condition ``c`` holds (is non-zero), else ``b``.

    >>> x = sp.Symbol("x", real=True)
    >>> Select(Greater(x, 0), x ** 2, 0).diff(x)
    where(x > 0, 2*x, 0)
    """

    nargs = 3

    @classmethod
    def eval(cls, c, a, b):
        if c.is_Number:
            return a if c != 0 else b
        if _same(a, b):
            return a
        return None

    def fdiff(self, argindex=1):
        c = self.args[0]
        if argindex == 1:
            return sp.S.Zero
        return Select(c, sp.S.One, sp.S.Zero) if argindex == 2 else Select(c, sp.S.Zero, sp.S.One)

    def _eval_derivative(self, s):
        c, a, b = self.args
        return Select(c, a.diff(s), b.diff(s))

    def _eval_is_finite(self):
        return True if self.args[1].is_finite and self.args[2].is_finite else None

    def _numpycode(self, printer) -> str:
        c, a, b = (printer._print(arg) for arg in self.args)
        return f"{printer._module_format('numpy.where')}({c}, {a}, {b})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        c, a, b = (printer._print(arg) for arg in self.args)
        return f"where({c}, {a}, {b})"

    def _display_name(self) -> str:
        return "where"

    def _latex(self, printer, exp=None) -> str:
        c, a, b = (printer._print(arg) for arg in self.args)
        text = r"\begin{cases} %s & \text{if}\: %s \\ %s & \text{otherwise} \end{cases}" % (a, c, b)
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    def _eval_rewrite_as_Piecewise(self, c, a, b, **kwargs):
        return sp.Piecewise((a, sp.Ne(c, 0)), (b, True))


class TieStep(PrintedInStandardNotation, _Real):
    """``tie_step(a, b)``: 0 where ``a < b``, 1/2 where ``a == b``, 1 elsewhere (``a > b``,
    or either is NaN) -- the share of the gradient ``maximum(a, b)`` sends to ``a``.  This
    is PyTorch's rule, which zeroes the gradient of the losing argument only: ties split
    half/half, and at a NaN both arguments get all of it.  Piecewise constant: its own
    derivative is zero.  ``tie_step(x, x)`` stays as it is (1 at NaN, 1/2 elsewhere)."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if _number(a) and _number(b):
            if a is sp.nan or b is sp.nan:
                return sp.S.One
            return sp.S.Zero if a < b else (sp.S.Half if a == b else sp.S.One)
        return None

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _numpycode(self, printer) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return f"tie_step({a}, {b})"

    _pythoncode = _numpycode


    def _eval_rewrite_as_Piecewise(self, a, b, **kwargs):
        return sp.Piecewise((0, a < b), (sp.S.Half, sp.Eq(a, b)), (1, True))

    def as_select(self) -> sp.Expr:
        """The same step as a selector: the reverse pass multiplies an upstream gradient
        into the branches of a ``where``, so an inf or NaN gradient gives an exact 0 where
        ``a`` loses (PyTorch's rule), never ``inf * 0``.

        >>> a, b = sp.symbols("a b", real=True)
        >>> TieStep(a, b).as_select()
        where(a < b, 0, where(a == b, 1/2, 1))
        """
        a, b = self.args
        return Select(Less(a, b), sp.S.Zero, Select(Equal(a, b), sp.S.Half, sp.S.One))


class _Extremum(_Real):
    nargs = 2
    numpy_name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""

    @classmethod
    def pick(cls, a, b):  # pragma: no cover  (abstract)
        raise NotImplementedError

    @classmethod
    def eval(cls, a, b):
        if _number(a) and _number(b):
            if a is sp.nan or b is sp.nan:
                return sp.nan
            return cls.pick(a, b)
        return None

    def _numpycode(self, printer) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return f"{printer._module_format('numpy.' + self.numpy_name)}({a}, {b})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return f"{self.numpy_name}({a}, {b})"

    def _display_name(self) -> str:
        return self.numpy_name

    def _latex(self, printer, exp=None) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        text = r"%s\left(%s, %s\right)" % (self.latex_name, a, b)
        return text if exp is None else r"%s^{%s}" % (text, exp)


class Maximum(_Extremum):
    """Elementwise ``maximum(a, b)``; the gradient goes to the larger argument, half to
    each at a tie (PyTorch's rule).

    >>> a, b = sp.symbols("a b", real=True)
    >>> Maximum(a, b).diff(a), Maximum(3, 2)  # tie_step(a, b): half of the gradient at a tie
    ([a == b]/2 + [a > b], 3)
    """

    numpy_name, latex_name = "maximum", r"\max"

    @classmethod
    def pick(cls, a, b):
        return a if a >= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        return TieStep(a, b) if argindex == 1 else TieStep(b, a)

    def _eval_rewrite_as_Piecewise(self, a, b, **kwargs):
        return sp.Piecewise((a, a > b), (b, a < b), ((a + b) / 2, sp.Eq(a, b)), (a + b, True))


class Minimum(_Extremum):
    """Elementwise ``minimum(a, b)``; ties split the gradient half/half."""

    numpy_name, latex_name = "minimum", r"\min"

    @classmethod
    def pick(cls, a, b):
        return a if a <= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        return TieStep(b, a) if argindex == 1 else TieStep(a, b)

    def _eval_rewrite_as_Piecewise(self, a, b, **kwargs):
        return sp.Piecewise((a, a < b), (b, a > b), ((a + b) / 2, sp.Eq(a, b)), (a + b, True))


class Cast(_Real):
    """``cast(x, dtype)``: ``x`` converted to a floating ``dtype`` (the second argument is
    an :class:`~symgrad.symbolic.core.symbols.Attrs` atom).  Values are rounded as the tape
    rounds them (``float64 -> float32``); the derivative is 1, as for ``x`` itself.

    >>> from symgrad.symbolic.core.symbols import Attrs
    >>> x = sp.Symbol("x", real=True)
    >>> c = Cast(x, Attrs({"dtype": "float32"}))
    >>> c, c.diff(x)
    (cast(x, dtype='float32'), 1)
    """

    nargs = 2

    @classmethod
    def of(cls, x, dtype) -> sp.Expr:
        from ..core.symbols import Attrs

        return cls(x, Attrs({"dtype": np.dtype(dtype).name}))

    @property
    def dtype(self) -> str:
        return self.args[1].get("dtype")

    def fdiff(self, argindex=1):
        return sp.S.One if argindex == 1 else sp.S.Zero

    def _eval_derivative(self, s):
        return self.args[0].diff(s)

    def _eval_evalf(self, prec):
        return self.args[0]._eval_evalf(prec) if self.args[0].is_number else None

    def _numpycode(self, printer) -> str:
        return f"{printer._module_format('numpy.asarray')}({printer._print(self.args[0])}, dtype={self.dtype!r})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        return f"cast({printer._print(self.args[0])}, dtype={self.dtype!r})"

    def _latex(self, printer, exp=None) -> str:
        text = r"\operatorname{cast}_{\mathtt{%s}}\left(%s\right)" % (self.dtype, printer._print(self.args[0]))
        return text if exp is None else r"%s^{%s}" % (text, exp)

    def _pretty(self, printer):
        from .structural import pretty_call

        return pretty_call(printer, "cast", self.args[:1], [f"dtype={self.dtype!r}"])


def cast_form(sp_module, x, dtype=None, **_: Any):
    """The symbolic engine's ``cast``: a :class:`Cast` to a floating dtype (the op table
    writes ``x``, which computes in the wider dtype)."""
    if dtype is None or np.dtype(dtype).kind != "f" or np.dtype(dtype) == np.float64:
        return x  # widening to float64 changes no value (float64 is the widest the engine computes in)
    return Cast.of(x, dtype)


NOT_DIFFERENTIABLE: tuple[type, ...] = (Compare, _Logical, TieStep)
"""Functions whose derivative is zero (almost everywhere): the reverse pass skips them."""


def _tie_step(a, b):
    """NumPy helper of :class:`TieStep`, in the floating dtype of its arguments."""
    dtype = np.result_type(a, b)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    one, half, zero = dtype.type(1), dtype.type(0.5), dtype.type(0)
    return np.where(np.less(a, b), zero, np.where(np.equal(a, b), half, one))


NUMPY_HELPERS: dict[str, Callable] = {"tie_step": _tie_step}


# ============================================================================ lowering
_RELATIONS = {
    sp.StrictGreaterThan: Greater, sp.GreaterThan: GreaterEqual, sp.StrictLessThan: Less,
    sp.LessThan: LessEqual, sp.Equality: Equal, sp.Unequality: NotEqual,
}


def _condition(cond: sp.Basic, stop: set | frozenset = frozenset()) -> sp.Expr:
    """A SymPy boolean as a 0/1-valued elementwise expression."""
    if cond is sp.true:
        return sp.S.One
    if cond is sp.false:
        return sp.S.Zero
    if type(cond) in _RELATIONS:
        return _RELATIONS[type(cond)](*[lower(a, stop) for a in cond.args])
    if isinstance(cond, sp.And):
        return _fold(LogicalAnd, [_condition(c, stop) for c in cond.args])
    if isinstance(cond, sp.Or):
        return _fold(LogicalOr, [_condition(c, stop) for c in cond.args])
    if isinstance(cond, sp.Not):
        return LogicalNot(_condition(cond.args[0], stop))
    if isinstance(cond, (Compare, _Logical)):
        return cond
    if isinstance(cond, sp.Expr):
        return NotEqual(lower(cond, stop), 0)
    raise NotImplementedError(
        f"the condition {cond} ({type(cond).__name__}) has no elementwise form; write conditions "
        "as comparisons combined with &, | and ~"
    )


def _fold(cls, args: list) -> sp.Expr:
    out = args[0]
    for arg in args[1:]:
        out = cls(out, arg)
    return out


def lower(expr: Any, stop: set | frozenset = frozenset()) -> Any:
    """``expr`` with every ``Piecewise``, relational, ``Max``/``Min`` and ``Heaviside``
    replaced by the functions of this module (meant for small forms: recursive).  Nodes
    in ``stop`` (already lowered arguments) are kept as they are.

    >>> x, y = sp.symbols("x y", real=True)
    >>> lower(sp.Piecewise((x, x < y), (y, True)) + sp.Max(x, y, 0))
    maximum(maximum(0, x), y) + where(x < y, x, y)
    """
    if not isinstance(expr, sp.Basic) or not expr.args or expr in stop:
        return expr
    if isinstance(expr, sp.Piecewise):
        out = sp.nan
        for value, cond in reversed(expr.args):
            value = lower(value, stop)
            out = value if cond is sp.true else Select(_condition(cond, stop), value, out)
        return out
    if isinstance(expr, (sp.Max, sp.Min)):
        cls = Maximum if isinstance(expr, sp.Max) else Minimum
        return _fold(cls, [lower(a, stop) for a in expr.args])
    if isinstance(expr, sp.Heaviside):
        x = lower(expr.args[0], stop)
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return Select(Greater(x, 0), sp.S.One, Select(Equal(x, 0), lower(at_zero, stop), sp.S.Zero))
    if isinstance(expr, sp.logic.boolalg.Boolean):
        return _condition(expr, stop)
    args = [lower(a, stop) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args)):
        return expr
    return expr.func(*args)


_DUMMIES: list = []
_TEMPLATES: dict = expression_cache()  # emptied with the canonical table (bounded by size and age)


def dummies(n: int) -> list:
    """``n`` private real dummy symbols, the same ones every time (so that templates built
    on them can be cached)."""
    while len(_DUMMIES) < n:
        _DUMMIES.append(sp.Dummy(f"u{len(_DUMMIES)}", real=True))
    return _DUMMIES[:n]


def elementwise_form(name: Any, form: Callable[..., Any], args: Sequence[sp.Expr], attrs: dict | None = None,
                     key: Any = None) -> sp.Expr:
    """The lowered SymPy form of an elementwise op applied to ``args``: ``form(sp, *u,
    **attrs)`` is built once per op and attributes on dummies ``u`` (with SymPy's
    evaluation on), lowered (:func:`lower`), cached, and the arguments are substituted
    into it.  Building on dummies keeps SymPy from inspecting (and rewriting) the real
    arguments, which may be deep array expressions.

    >>> x = sp.Symbol("x", real=True)
    >>> elementwise_form("clamp", lambda sp, x, lo: sp.Piecewise((lo, x < lo), (x, True)), [x, 0])
    where(x < 0, 0, x)
    """
    attrs = dict(attrs or {})
    if key is None:
        from ..core.symbols import _freeze

        key = (name, len(args), _freeze(attrs))
    template = _TEMPLATES.get(key)
    us = dummies(len(args))
    if template is None:
        with evaluate(True):
            template = lower(sp.sympify(form(sp, *us, **attrs)))
        _TEMPLATES[key] = template
    args = [sp.sympify(a) for a in args]
    rule = dict(zip(us, args))
    for u, a in zip(us, args):
        if is_condition(a):  # a mask the trace recorded: where(x > 0, ...), not where((x > 0) != 0, ...)
            rule[NotEqual(u, sp.S.Zero)] = a
            rule[Equal(u, sp.S.Zero)] = LogicalNot(a)
    return template.xreplace(rule)


def is_condition(expr: Any) -> bool:
    """Whether ``expr`` is a comparison or a logical combination of them (0/1-valued).

    >>> x = sp.Symbol("x", real=True)
    >>> is_condition(Greater(x, 0)), is_condition(LogicalNot(Less(x, 1))), is_condition(x)
    (True, True, False)
    """
    return isinstance(expr, (Compare, _Logical))


def function_ops() -> dict[type, list[tuple[str, tuple]]]:
    """The op table's elementwise ops whose SymPy form is one SymPy function applied to
    the op's inputs (and constants), by that function: ``{sp.exp: [("exp", (u0,))],
    sp.polygamma: [("digamma", (0, u0)), ("polygamma", (u0, u1))], ...}``, each op with the
    arguments of its form built on :func:`dummies` (the op's inputs).  Derived from the op
    table, so the ``create_graph`` evaluator (``as_tensors.py``) and the C backends'
    function map (``backends/c_code.py``) know every such op without a table of their own.
    Ops whose form needs attributes are left out.

    >>> [name for name, _ in function_ops()[sp.exp]]
    ['exp']
    """
    if not _FUNCTION_OPS:
        from ...ops import OPS

        for op in OPS.values():
            if op.kind != "elementwise" or op.arity is None:
                continue
            us = dummies(op.arity)
            try:
                with evaluate(True):
                    form = op.sympy(sp, *us)
            except TypeError:  # required attributes
                continue
            if isinstance(form, sp.Function) and set(us) <= set(form.args):
                _FUNCTION_OPS.setdefault(type(form), []).append((op.name, tuple(form.args)))
    return _FUNCTION_OPS


_FUNCTION_OPS: dict = {}


def match_function_op(node: sp.Basic) -> tuple[str, list] | None:
    """``(op name, positions of its inputs among node.args)`` for a node that is one of
    :func:`function_ops`' forms (constants equal), else None.

    >>> u = sp.Symbol("u", real=True)
    >>> match_function_op(sp.exp(u))
    ('exp', [0])
    """
    for name, template in function_ops().get(type(node), ()):
        if len(template) != len(node.args):
            continue
        us = dummies(len(template))
        positions: dict = {}
        for k, (want, have) in enumerate(zip(template, node.args)):
            if want in us:
                positions[us.index(want)] = k
            elif want != have:
                break
        else:
            return name, [positions[i] for i in range(len(positions))]
    return None
