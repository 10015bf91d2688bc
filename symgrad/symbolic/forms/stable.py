"""Elementwise SymPy functions whose compiled NumPy form is the numerically stable one.

A closed form like ``exp(z)/(1 + exp(z))`` overflows for large ``z`` when compiled
literally.  For the ops where the op table's SymPy form would be unstable in compiled
code, the symbolic engine uses these functions instead: each is an ordinary SymPy
``Function`` with a correct ``fdiff`` (so derivatives still come from SymPy's own
differentiation, and print compactly as ``sigmoid(z) - y``), a LaTeX form, a rewrite to
elementary functions (``expr.rewrite(sp.exp)``), and NumPy printing that calls a stable
helper from :data:`NUMPY_HELPERS` -- or, where the compiler shares one ``exp(-|z|)``
between ``sigmoid(z)`` and ``softplus(z)`` (:class:`ExpNegAbs`), computes from it.

The op table names these as its ops' SymPy forms (``sympy_function("symgrad.symbolic.forms.stable.sigmoid")``):
an op has exactly one SymPy form, and it is the one the engine uses.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import sympy as sp

from ...ops import special, sympy_number
from ..core._compat import ArgumentIndexError

__all__ = ["sigmoid", "softplus", "besselie", "softplus_form", "bce_with_logits_form", "ExpNegAbs", "shared_exp_neg_abs",
           "NUMPY_HELPERS"]


def _np_sigmoid(x):
    """``1/(1+exp(-x))`` without overflow: ``exp(-logaddexp(0, -x))``."""
    return np.exp(-np.logaddexp(0, -x))


def _np_softplus(x):
    """``log(1+exp(x))`` without overflow."""
    return np.logaddexp(0, x)


class _StableFunction(sp.Function):
    """Shared numeric behaviour: real for real arguments, and a direct ``evalf`` from
    the elementary form, so that SymPy can compare ``softplus(3)`` with a number at once
    (the default path splits it into ``re``/``im`` parts and can loop for minutes)."""

    nargs = 1

    def _eval_evalf(self, prec):
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_number:
            return None
        with sp.core.parameters.evaluate(True):
            return self._eval_rewrite_as_exp(arg)._eval_evalf(prec)

    def as_real_imag(self, deep=True, **hints):
        if self.args[0].is_extended_real:
            return (self, sp.S.Zero)
        return super().as_real_imag(deep=deep, **hints)

    def _eval_is_extended_real(self):
        return True if self.args[0].is_extended_real else None

    def _eval_is_real(self):
        return True if self.args[0].is_real else None

    def _eval_is_finite(self):
        return True if self.args[0].is_finite else None


class sigmoid(_StableFunction):
    """The logistic function; compiled as ``exp(-logaddexp(0, -x))``.

    >>> z = sp.Symbol("z", real=True)
    >>> sigmoid(z).diff(z)
    (1 - sigmoid(z))*sigmoid(z)
    >>> sigmoid(z).rewrite(sp.exp)
    1/(1 + exp(-z))
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None

    def _numpycode(self, printer) -> str:
        z = self.args[0]
        e = shared_exp_neg_abs(printer, z)
        if e is None:
            return f"sigmoid({printer._print(z)})"
        return f"(numpy.where({printer._print(z)} >= 0, 1.0, {e})/(1.0 + {e}))"

    _pythoncode = _numpycode

    def _latex(self, printer, exp=None) -> str:
        text = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return text if exp is None else r"%s^{%s}" % (text, exp)


class softplus(_StableFunction):
    """``log(1 + exp(x))``; compiled as ``logaddexp(0, x)``.

    >>> x = sp.Symbol("x", real=True)
    >>> softplus(x).diff(x)
    sigmoid(x)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    _eval_rewrite_as_log = _eval_rewrite_as_exp

    def _numpycode(self, printer) -> str:
        z = self.args[0]
        e = shared_exp_neg_abs(printer, z)
        if e is None:
            return f"softplus({printer._print(z)})"
        return f"(numpy.maximum({printer._print(z)}, 0) + numpy.log1p({e}))"

    _pythoncode = _numpycode

    def _latex(self, printer, exp=None) -> str:
        text = r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])
        return text if exp is None else r"%s^{%s}" % (text, exp)


class ExpNegAbs(sp.Function):
    """``exp(-|z|)``: the one transcendental that ``sigmoid(z)`` and ``softplus(z)`` of the
    same ``z`` share in compiled code.  The compiler gives it a temporary when both occur
    (``compile._plan``); then ``sigmoid(z)`` prints as ``where(z >= 0, 1, e)/(1 + e)`` and
    ``softplus(z)`` as ``maximum(z, 0) + log1p(e)``, stable for any ``|z|`` (``e`` is in
    ``[0, 1]``, so nothing overflows) and two transcendentals for both instead of five.
    Only code generation builds it; it is never differentiated.

    >>> z = sp.Symbol("z", real=True)
    >>> from sympy.printing.numpy import NumPyPrinter
    >>> NumPyPrinter({"fully_qualified_modules": True})._print(ExpNegAbs(z))
    'numpy.exp(-numpy.abs(z))'
    """

    nargs = 1

    def _numpycode(self, printer) -> str:
        return f"numpy.exp(-numpy.abs({printer._print(self.args[0])}))"

    _pythoncode = _numpycode


def shared_exp_neg_abs(printer, z: sp.Expr) -> str | None:
    """The name of the temporary holding ``exp(-|z|)`` if ``printer`` (the compiler's)
    has one, else None (then ``sigmoid``/``softplus`` call their helpers)."""
    shared = getattr(printer, "shared_temporary", None)
    return shared("exp_neg_abs", z) if shared is not None else None


class besselie(sp.Function):
    """``exp(-|x|) I_nu(x)``, the exponentially scaled modified Bessel function of integer
    order ``nu`` (the ops ``i0e``, ``i1e``), which SymPy does not have; compiled as the op
    table's ``bessel_of_orders(nu, x, scaled=True)``, finite where ``I_nu`` overflows.

    >>> x = sp.Symbol("x", real=True)
    >>> besselie(0, x).diff(x) == besselie(1, x) - sp.sign(x) * besselie(0, x)
    True
    >>> besselie(1, x).rewrite(sp.besseli)
    exp(-Abs(x))*besseli(1, x)
    """

    nargs = 2

    @classmethod
    def eval(cls, nu, x):
        if nu.is_Integer and nu.is_negative:  # I_-n = I_n
            return cls(-nu, x)
        return None

    def fdiff(self, argindex=2):
        if argindex != 2:
            raise ArgumentIndexError(self, argindex)
        nu, x = self.args
        return (besselie(nu - 1, x) + besselie(nu + 1, x)) / 2 - sp.sign(x) * self

    def _eval_rewrite_as_besseli(self, nu, x, **kwargs):
        return sp.exp(-sp.Abs(x)) * sp.besseli(nu, x)

    def _eval_is_extended_real(self):
        return True if self.args[1].is_extended_real else None

    def _numpycode(self, printer) -> str:
        return f"besselie({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    _pythoncode = _numpycode

    def _latex(self, printer, exp=None) -> str:
        text = r"e^{-\left|%s\right|} I_{%s}\left(%s\right)" % (
            printer._print(self.args[1]), printer._print(self.args[0]), printer._print(self.args[1]))
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


def _np_besselie(nu, x):
    return special.bessel_of_orders(nu, x, scaled=True)


NUMPY_HELPERS: dict[str, Callable] = {
    "sigmoid": _np_sigmoid, "softplus": _np_softplus,
    # the special functions NumPy has no ufunc of: the op table's implementations
    "loggamma": special.lgamma, "polygamma": special.polygamma, "erfinv": special.erfinv,
    "besseli": special.bessel_of_orders, "besselie": _np_besselie,
}


def softplus_form(sp_module, x, beta: Any = 1.0, threshold: Any = 20.0):
    """The op table's ``softplus``: PyTorch's ``x`` where ``beta*x > threshold``, else
    ``softplus(beta*x)/beta``.

    From ``threshold >= 20`` on (PyTorch's default) the switch changes values and slopes
    by at most ``log1p(exp(-20)) ~ 2e-9``, a numerical shortcut rather than mathematics,
    so the form is plain ``softplus``; a smaller threshold is kept as a ``Piecewise``.

    >>> x = sp.Symbol("x", real=True)
    >>> softplus_form(sp, x), softplus_form(sp, x, beta=2.0, threshold=1.0)
    (softplus(x), Piecewise((x, x > 1/2), (softplus(2*x)/2, True)))
    """
    beta = sympy_number(sp, beta)
    smooth = softplus(beta * x) / beta
    if threshold is None or float(threshold) >= 20:
        return smooth
    return sp.Piecewise((x, beta * x > sympy_number(sp, threshold)), (smooth, True))


def bce_with_logits_form(sp_module, logits, target):
    """The op table's ``binary_cross_entropy_with_logits``: ``softplus(z) - y*z``, which is
    ``log(1 + exp(z)) - z*y`` compiled without overflow.

    >>> z, y = sp.symbols("z y", real=True)
    >>> bce_with_logits_form(sp, z, y)
    -y*z + softplus(z)
    """
    return softplus(logits) - target * logits


# ----------------------------------------------------------------------------- the elementwise ops of issue 16
# Self-contained: the SymPy forms of erf, erfc, logaddexp, copysign and the rounding ops,
# which SymPy either prints as scalar ``math`` calls, lacks, or leaves without a derivative.


class erf(sp.erf):
    """SymPy's ``erf``, compiled as the op table's vectorised ``erf`` (SymPy's NumPy
    printer writes the scalar ``math.erf``).

    >>> x = sp.Symbol("x", real=True)
    >>> erf(x).diff(x), erf(-x)
    (2*exp(-x**2)/sqrt(pi), -erf(x))
    """

    def _numpycode(self, printer) -> str:
        return f"erf({printer._print(self.args[0])})"

    _pythoncode = _numpycode


class erfc(sp.erfc):
    """SymPy's ``erfc``, compiled as the op table's vectorised ``erfc`` (see :class:`erf`).

    >>> erfc(sp.Symbol("x", real=True)).diff(sp.Symbol("x", real=True))
    -2*exp(-x**2)/sqrt(pi)
    """

    def _numpycode(self, printer) -> str:
        return f"erfc({printer._print(self.args[0])})"

    _pythoncode = _numpycode


class logaddexp(sp.Function):
    """``log(exp(a) + exp(b))``; compiled as NumPy's ``logaddexp``, which does not
    overflow; its partials are sigmoids of the difference.

    >>> a, b = sp.symbols("a b", real=True)
    >>> logaddexp(a, b).diff(a), logaddexp(a, b).rewrite(sp.exp)
    (sigmoid(a - b), log(exp(a) + exp(b)))
    """

    nargs = 2

    def fdiff(self, argindex=1):
        # unevaluated differences: logaddexp(a, a) at a = -inf has the partials
        # sigmoid(-inf - -inf) = NaN (PyTorch's), not sigmoid(0) = 1/2
        a, b = self.args
        if argindex == 1:
            return sigmoid(sp.Add(a, -b, evaluate=False))
        if argindex == 2:
            return sigmoid(sp.Add(b, -a, evaluate=False))
        raise ArgumentIndexError(self, argindex)

    def _eval_rewrite_as_exp(self, a, b, **kwargs):
        return sp.log(sp.exp(a) + sp.exp(b))

    def _eval_evalf(self, prec):
        if not all(arg.is_number for arg in self.args):
            return None
        return self._eval_rewrite_as_exp(*self.args)._eval_evalf(prec)

    def _eval_is_extended_real(self):
        return True if all(arg.is_extended_real for arg in self.args) else None

    def _numpycode(self, printer) -> str:
        return f"numpy.logaddexp({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    _pythoncode = _numpycode

    def _latex(self, printer, exp=None) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        text = r"\log\left(e^{%s} + e^{%s}\right)" % (a, b)
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)


class copysign(sp.Function):
    """``|a|`` with the sign bit of ``b`` (``-0.0`` counts as negative, as in C and
    NumPy); ``d/da = sign(a) copysign(1, b)``, 0 at ``a = 0`` as PyTorch, ``d/db = 0``.

    >>> a, b = sp.symbols("a b", real=True)
    >>> copysign(a, b).diff(a), copysign(a, b).diff(b), copysign(-3, -0.5)
    (copysign(1, b)*sign(a), 0, -3)
    """

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number and not (b.is_zero or a is sp.nan or b is sp.nan):
            return abs(a) if b.is_positive else -abs(a)
        return None

    def fdiff(self, argindex=1):
        if argindex == 1:
            return sp.sign(self.args[0]) * copysign(1, self.args[1])
        if argindex == 2:
            return sp.S.Zero
        raise ArgumentIndexError(self, argindex)

    def _eval_is_extended_real(self):
        return True if all(arg.is_extended_real for arg in self.args) else None

    def _numpycode(self, printer) -> str:
        return f"numpy.copysign({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    _pythoncode = _numpycode


class sinc(sp.Function):
    """NumPy's and PyTorch's normalised sinc, ``sin(pi x)/(pi x)``, 1 at 0; compiled as
    ``numpy.sinc``.  Its derivative is ``(cos(pi x) - sinc(x))/x``, selected away at
    ``|x| < 0.1`` for its Maclaurin series there (``ops.elementwise.SINC_SLOPE_SERIES``: 0 at
    0, PyTorch's value, with the right derivatives, ``sinc''(0) = -pi^2/3``, and no
    cancellation near 0): as a function of its own, not
    a ``Piecewise`` of the quotient, whose derivative would multiply the quotient's
    infinite derivative at 0 by the selection's 0 and give NaN.  The quotient is computed
    at ``x = 1`` where it is not taken, so derivatives of the derivative (``hessian``,
    ``jvp``) take no 0 times NaN.

    >>> x = sp.Symbol("x", real=True)
    >>> sinc(0), sinc(sp.S.Half), sinc(x).diff(x).subs(x, sp.Rational(1, 2))
    (1, 2/pi, -4/pi)
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.One
        if x.is_Number and x is not sp.nan:
            return sp.sin(sp.pi * x) / (sp.pi * x)
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        from ...ops.elementwise import SINC_SERIES_BELOW, sinc_slope_series
        from .selections import Less, Select

        x = self.args[0]
        near_zero = Less(sp.Abs(x), SINC_SERIES_BELOW)
        safe = Select(near_zero, sp.S.One, x)  # the branch not taken is computed at 1: its own derivatives stay finite
        small = Select(near_zero, x, sp.S.Zero)
        return Select(near_zero, sinc_slope_series(small), (sp.cos(sp.pi * safe) - sinc(safe)) / safe)

    def _eval_is_extended_real(self):
        return True if self.args[0].is_extended_real else None

    def _eval_rewrite_as_sin(self, x, **kwargs):
        return sp.Piecewise((1, sp.Eq(x, 0)), (sp.sin(sp.pi * x) / (sp.pi * x), True))

    def _numpycode(self, printer) -> str:
        return f"numpy.sinc({printer._print(self.args[0])})"

    _pythoncode = _numpycode


class atan2(sp.atan2):
    """SymPy's ``atan2(y, x)`` with PyTorch's partials at the origin, where the angle is not
    differentiable: 0 there (``x/(x^2 + y^2)`` and ``-y/(x^2 + y^2)`` elsewhere), not 0/0.

    >>> y, x = sp.symbols("y x", real=True)
    >>> atan2(y, x).diff(y)
    where(x**2 + y**2 == 0, 0, x/(x**2 + y**2))
    """

    def fdiff(self, argindex=1):
        from .selections import Equal, Select

        y, x = self.args
        squares = x ** 2 + y ** 2
        if argindex == 1:
            return Select(Equal(squares, 0), sp.S.Zero, x / squares)
        if argindex == 2:
            return Select(Equal(squares, 0), sp.S.Zero, -y / squares)
        raise ArgumentIndexError(self, argindex)


class _XLog(sp.Function):
    """``x * log(y + shift)``, the constant 0 where ``x == 0`` and ``y + shift <= 0``
    (``xlogy``, ``xlog1py``); compiled as the op table's forward.  Its partials are
    PyTorch's: ``d/dx = log(y + shift)``, 0 where the value is that constant 0, and
    ``d/dy = x/(y + shift)`` everywhere (NaN at ``x = 0, y + shift = 0``, as PyTorch's).
    A ``Piecewise`` form gave NaN for ``d/dx`` there instead (its selection's 0 times the
    infinite ``log``)."""

    nargs = 2
    shift: Any = 0

    @classmethod
    def _log(cls, y):
        return sp.log(y + cls.shift)

    @classmethod
    def eval(cls, x, y):
        if x.is_Number and y.is_Number and x is not sp.nan and y is not sp.nan:
            return sp.S.Zero if x.is_zero and y + cls.shift <= 0 else x * cls._log(y)
        return None

    def fdiff(self, argindex=1):
        from .selections import Equal, LessEqual, LogicalAnd, Select

        x, y = self.args
        if argindex == 1:
            constant = LogicalAnd(Equal(x, 0), LessEqual(y, -self.shift))
            return Select(constant, sp.S.Zero, self._log(y))
        if argindex == 2:  # unevaluated: x/x is NaN at 0, not 1
            return sp.Mul(x, sp.Pow(y + self.shift, -1, evaluate=False), evaluate=False)
        raise ArgumentIndexError(self, argindex)

    def _eval_is_extended_real(self):
        return None

    def _numpycode(self, printer) -> str:
        return f"{type(self).__name__}({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    _pythoncode = _numpycode


class xlogy(_XLog):
    """``x * log(y)``, 0 where ``x == 0`` and ``y <= 0`` (see :class:`_XLog`).

    >>> x, y = sp.symbols("x y", real=True)
    >>> xlogy(x, y).diff(x), xlogy(x, y).diff(y), xlogy(0, 0), xlogy(2, 1)
    (where((x == 0) & (y <= 0), 0, log(y)), x/y, 0, 0)
    """


class xlog1py(_XLog):
    """``x * log(1 + y)``, 0 where ``x == 0`` and ``y <= -1`` (see :class:`_XLog`).

    >>> x, y = sp.symbols("x y", real=True)
    >>> xlog1py(x, y).diff(y), xlog1py(0, -1)
    (x/(y + 1), 0)
    """

    shift = 1

    @classmethod
    def _log(cls, y):
        from sympy.codegen.cfunctions import log1p

        return log1p(y)


class _Step:
    """A mixin for rounding functions: piecewise constant, so derivative 0 (PyTorch's
    gradient of floor, ceil, round and trunc; SymPy leaves ``floor(x).diff(x)``
    unevaluated)."""

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return sp.S.Zero


class floor(_Step, sp.floor):
    """SymPy's ``floor`` with derivative 0.

    >>> x = sp.Symbol("x", real=True)
    >>> floor(x).diff(x), floor(sp.Float(-1.5))
    (0, -2)
    """


class ceiling(_Step, sp.ceiling):
    """SymPy's ``ceiling`` with derivative 0.

    >>> ceiling(sp.Symbol("x", real=True)).diff(sp.Symbol("x", real=True))
    0
    """


class _NumPyStep(_Step, sp.Function):
    """A rounding function SymPy does not have, compiled as ``numpy.<_numpy>``."""

    nargs = 1
    _numpy = ""

    def _eval_is_extended_real(self):
        return True if self.args[0].is_extended_real else None

    def _eval_is_integer(self):
        return True if self.args[0].is_finite and self.args[0].is_real else None

    def _numpycode(self, printer) -> str:
        return f"numpy.{self._numpy}({printer._print(self.args[0])})"

    _pythoncode = _numpycode


class trunc(_NumPyStep):
    """Rounding toward zero.

    >>> trunc(sp.Float(-1.5)), trunc(sp.Symbol("x", real=True)).diff(sp.Symbol("x", real=True))
    (-1, 0)
    """

    _numpy = "trunc"

    @classmethod
    def eval(cls, x):
        if x.is_Number and x.is_finite:
            return sp.Integer(int(x))
        return None


class round_half_even(_NumPyStep):
    """Rounding to the nearest integer, halves to even (``numpy.round``, ``torch.round``).

    >>> round_half_even(sp.Float(2.5)), round_half_even(sp.Float(3.5))
    (2, 4)
    """

    _numpy = "round"

    @classmethod
    def eval(cls, x):
        if x.is_Number and x.is_finite:
            return sp.Integer(int(np.round(float(x))))
        return None


class _NumPyBinary(sp.Function):
    """A function of two real arguments compiled as ``numpy.<_numpy>(a, b)``, evaluated
    for two finite numbers as NumPy does (so a folded constant is NumPy's value)."""

    nargs = 2
    _numpy = ""

    @classmethod
    def eval(cls, a, b):
        if a.is_Number and b.is_Number and a.is_finite and b.is_finite and not b.is_zero:
            value = getattr(np, cls._numpy)(float(a), float(b))
            return sp.Integer(int(value)) if a.is_Integer and b.is_Integer else sp.Float(value)
        return None

    def _eval_is_extended_real(self):
        return True if all(arg.is_extended_real for arg in self.args) else None

    def _numpycode(self, printer) -> str:
        return f"numpy.{self._numpy}({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    _pythoncode = _numpycode


class floor_divide(_NumPyBinary):
    """``floor(a/b)`` computed as NumPy and PyTorch compute it, from the exact remainder:
    ``floor_divide(1.0, 0.1)`` is 9 (``1.0 = 9*0.1 + 0.0999...``) where ``floor(1.0/0.1)``
    is 10, the quotient having rounded up to 10.0.  Piecewise constant: derivative 0.

    >>> a, b = sp.symbols("a b", real=True)
    >>> floor_divide(sp.Float(1.0), sp.Float(0.1)), floor_divide(a, b).diff(b)
    (9.00000000000000, 0)
    """

    _numpy = "floor_divide"

    def fdiff(self, argindex=1):
        if argindex not in (1, 2):
            raise ArgumentIndexError(self, argindex)
        return sp.S.Zero


class remainder(_NumPyBinary):
    """``a - b*floor_divide(a, b)`` with the sign of ``b`` (Python's ``%``), as NumPy
    computes it (the exact remainder, then its sign; written out as ``a - b*floor(a/b)``
    it is 0 where NumPy's is 0.0999... for ``1.0 % 0.1``); ``d/da = 1``,
    ``d/db = -floor_divide(a, b)`` as PyTorch.

    >>> a, b = sp.symbols("a b", real=True)
    >>> remainder(a, b).diff(b), remainder(a, a)
    (-floor_divide(a, b), remainder(a, a))
    """

    _numpy = "remainder"

    def fdiff(self, argindex=1):
        if argindex == 1:
            return sp.S.One
        if argindex == 2:
            return -floor_divide(*self.args)
        raise ArgumentIndexError(self, argindex)


class fmod(_NumPyBinary):
    """``a - b*trunc(a/b)`` with the sign of ``a`` (C's ``fmod``, exact), as NumPy
    computes it; ``d/da = 1``, ``d/db = -trunc(a/b)`` as PyTorch (its quotient rounded
    first: PyTorch's gradient, not the exact quotient).

    >>> a, b = sp.symbols("a b", real=True)
    >>> fmod(a, b).diff(b)
    -trunc(a/b)
    """

    _numpy = "fmod"

    def fdiff(self, argindex=1):
        if argindex == 1:
            return sp.S.One
        if argindex == 2:
            a, b = self.args
            return -trunc(a / b)
        raise ArgumentIndexError(self, argindex)


class nan_to_num(sp.Function):
    """``x`` with NaN, +inf and -inf replaced by the numbers ``bounds`` (``nan``,
    ``posinf``, ``neginf``; None is NumPy's default, the dtype's largest finite number,
    chosen when the compiled code runs).  This class has the defaults; other bounds are
    subclasses named after them (:func:`nan_to_num_form`), so that the function has one
    argument and a derivative holds only the default class, which is the op.  The
    derivative is 1 where ``x`` is finite and 0 elsewhere, as PyTorch's.

    >>> x = sp.Symbol("x", real=True)
    >>> nan_to_num_form(sp, x, posinf=1.0), nan_to_num_form(sp, x, posinf=1.0).diff(x)
    (nan_to_num[posinf=1.0](x), Piecewise((1, Eq(x, nan_to_num(x))), (0, True)))
    """

    nargs = 1
    bounds: tuple = (0.0, None, None)

    def _eval_derivative(self, s):
        # where x is not finite, the default nan_to_num(x) differs from x
        x = self.args[0]
        return sp.Piecewise((x.diff(s), sp.Eq(nan_to_num(x), x)), (0, True))

    def _eval_is_extended_real(self):
        return True if self.args[0].is_extended_real else None

    def _numpycode(self, printer) -> str:
        nan, posinf, neginf = self.bounds
        return f"numpy.nan_to_num({printer._print(self.args[0])}, nan={nan!r}, posinf={posinf!r}, neginf={neginf!r})"

    _pythoncode = _numpycode


@functools.lru_cache(maxsize=None)
def _nan_to_num_with(bounds: tuple) -> type:
    named = ",".join(f"{k}={v!r}" for k, v, default in zip(("nan", "posinf", "neginf"), bounds, nan_to_num.bounds)
                     if v != default)
    return type(f"nan_to_num[{named}]", (nan_to_num,), {"bounds": bounds, "__module__": __name__})


def nan_to_num_form(sp_module, x, nan: Any = 0.0, posinf: Any = None, neginf: Any = None):
    """The op table's ``nan_to_num``: :class:`nan_to_num`, or its subclass for other bounds."""
    bounds = tuple(None if b is None else float(b) for b in (nan, posinf, neginf))
    return (nan_to_num if bounds == nan_to_num.bounds else _nan_to_num_with(bounds))(x)


NUMPY_HELPERS.update(erf=special.erf, erfc=special.erfc, xlogy=special.xlogy_values, xlog1py=special.xlog1py_values)
__all__ += ["erf", "erfc", "logaddexp", "copysign", "sinc", "xlogy", "xlog1py", "atan2", "floor", "ceiling", "trunc", "round_half_even", "nan_to_num",
            "nan_to_num_form", "floor_divide", "remainder", "fmod"]
