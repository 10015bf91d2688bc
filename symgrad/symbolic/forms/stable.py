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

from typing import Any, Callable

import numpy as np
import sympy as sp
from sympy.core.function import ArgumentIndexError

from ...ops import special, sympy_number

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
