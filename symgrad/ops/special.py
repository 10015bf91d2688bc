"""Special functions: ``lgamma``, ``digamma``, ``polygamma``, ``erfinv``, the modified Bessel
functions ``i0``, ``i0e``, ``i1``, ``i1e`` (and ``bessel_i``/``bessel_ie`` of any integer
order), ``erf``, ``erfc``, ``xlogy``, ``xlog1py`` and ``betaln``.

NumPy has none of these as ufuncs (``np.i0`` exists but is not a ufunc and has no scaled
form) and symgrad does not depend on SciPy, so their NumPy forwards are written here,
vectorised, in float64 (a float32 input gives a float32 result, rounded once):

* ``lgamma``: the C library's ``lgamma`` through ``math.lgamma`` element by element
  (``+inf`` at the poles 0, -1, -2, ..., as PyTorch);
* ``digamma``: the recurrence ``psi(x) = psi(x + 1) - 1/x`` up to ``x >= 10``, then the
  asymptotic series (Bernoulli numbers up to ``B_16``, error below 1e-16); reflection
  ``psi(x) = psi(1 - x) - pi/tan(pi x)`` for ``x < 0``; ``-inf`` at 0 and NaN at the
  negative integers, as PyTorch;
* ``polygamma(n, x)``, ``n >= 1``: the recurrence
  ``psi_n(x) = psi_n(x + 1) + (-1)**(n+1) n!/x**(n+1)`` up to ``x >= 15 + n``, then the
  asymptotic series (its cost grows with ``-x`` for negative ``x``); ``n = 0`` is ``digamma``;
* ``erfinv``: Winitzki's closed approximation refined by Newton steps on ``math.erf`` /
  ``math.erfc`` (the residual is taken from ``erfc`` near +-1, where ``erf`` loses digits);
* ``bessel_i(nu, x)`` and its scaled ``exp(-|x|) I_nu(x)``: the power series for
  ``|x| < 30`` (all terms of one sign, so no cancellation) and Hankel's asymptotic series
  beyond (30 terms: error below 1e-20 relative);
* ``erf``, ``erfc``: the C library's, through ``math.erf``/``math.erfc`` element by element;
* ``xlog1py(x, y)`` is ``x * log1p(y)``, 0 where ``x == 0`` and ``y <= -1`` (PyTorch's);
  ``xlogy(x, y)`` is ``x * log(y)``, 0 where ``x == 0`` and ``y <= 0``;
  ``betaln(a, b)`` is ``lgamma(a) + lgamma(b) - lgamma(a + b)``.

``bessel_i(nu, x)`` and ``bessel_ie(nu, x)`` are ops too (not public), of any integer
order: derivatives of ``i1`` hold ``I2``, of ``I2`` hold ``I3``..., and every function of a
closed form must be an op for ``create_graph=True`` on the symbolic engine.

Their SymPy forms are SymPy's ``loggamma``, ``polygamma``, ``erfinv``, ``besseli`` and the
engine's ``besselie`` (``symbolic/forms/stable.py``); the symbolic engine compiles them to the
forwards here (``stable.NUMPY_HELPERS``).  The C backends compute ``lgamma``, ``erf`` and ``erfc``
(libm) and refuse the others, naming them.
"""
from __future__ import annotations

import math

import numpy as np

from .base import UNDEFINED, Domain, Op, register, sympy_function

_BERNOULLI = [1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798, -174611 / 330]
"""B_2, B_4, ..., B_20."""


def _float64(x) -> tuple[np.ndarray, np.dtype]:
    """``x`` as float64, and the float dtype the result is given (float32 stays float32)."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return x.astype(np.float64), dtype


def _scalar_lgamma(v: float) -> float:
    if math.isfinite(v) and v <= 0 and v == math.floor(v):
        return math.inf
    return math.lgamma(v)


_lgamma_elements = np.frompyfunc(_scalar_lgamma, 1, 1)


def lgamma(x) -> np.ndarray:
    """``log|Gamma(x)|``.

    >>> lgamma(np.array([1.0, 0.5, 0.0]))
    array([0.        , 0.57236494,        inf])
    """
    x, dtype = _float64(x)
    return np.asarray(_lgamma_elements(x), dtype=np.float64).astype(dtype)


def _digamma_positive(x: np.ndarray) -> np.ndarray:
    shift = np.zeros_like(x)
    for _ in range(10):  # psi(x) = psi(x + 1) - 1/x, until x >= 10
        small = x < 10
        shift = shift - np.where(small, 1 / np.where(small, x, 1.0), 0.0)
        x = np.where(small, x + 1, x)
    inverse_square = 1 / (x * x)
    series = np.zeros_like(x)
    for k in range(8, 0, -1):  # sum of B_2k / (2k x**2k), Horner in 1/x**2
        series = (series + _BERNOULLI[k - 1] / (2 * k)) * inverse_square
    return shift + np.log(x) - 0.5 / x - series


def digamma(x) -> np.ndarray:
    """``psi(x) = d/dx log Gamma(x)``.

    >>> digamma(np.array([1.0, 0.5]))  # -Euler's gamma, -gamma - 2 log 2
    array([-0.57721566, -1.96351003])
    """
    x, dtype = _float64(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        negative = x < 0
        reflected = np.where(negative, 1 - x, x)
        value = _digamma_positive(np.where(reflected > 0, reflected, 1.0))
        value = np.where(negative, value - np.pi / np.tan(np.pi * x), value)
        value = np.where(x == 0, -np.inf, value)
        value = np.where(negative & (x == np.floor(x)), np.nan, value)
        value = np.where(np.isnan(x), np.nan, np.where(x == np.inf, np.inf, value))
    return value.astype(dtype)


def _polygamma_order(n: int, x: np.ndarray) -> np.ndarray:
    """``psi_n(x)`` for one order ``n >= 1``."""
    sign = -1.0 if n % 2 == 0 else 1.0  # (-1)**(n+1)
    start = 15.0 + n
    steps = int(max(0.0, math.ceil(start - np.min(x, initial=start)))) if x.size else 0
    total = np.zeros_like(x)
    for _ in range(steps):
        small = x < start
        total = total + np.where(small, 1 / np.where(small, x, 1.0) ** (n + 1), 0.0)
        x = np.where(small, x + 1, x)
    total = total * sign * math.factorial(n)
    # (-1)**(n+1) [(n-1)!/x**n + n!/(2 x**(n+1)) + sum B_2k (2k+n-1)!/((2k)! x**(2k+n))]
    series = math.factorial(n - 1) / x ** n + math.factorial(n) / (2 * x ** (n + 1))
    for k in range(1, len(_BERNOULLI) + 1):
        series = series + _BERNOULLI[k - 1] * math.factorial(2 * k + n - 1) / math.factorial(2 * k) / x ** (2 * k + n)
    return total + sign * series


def polygamma(n, x) -> np.ndarray:
    """``psi_n(x)``, the ``n``-th derivative of ``digamma``; ``n`` is a non-negative
    integer (or an array of them, broadcast with ``x``).

    >>> polygamma(1, np.array([1.0]))  # pi**2 / 6
    array([1.64493407])
    """
    orders = np.asarray(n)
    if orders.dtype.kind not in "iuf" or np.any(orders < 0) or np.any(orders != np.floor(orders)):
        raise ValueError(f"polygamma needs non-negative integer orders n, got {orders!r}")
    x, dtype = _float64(x)
    orders, x = np.broadcast_arrays(orders, x)
    value = np.zeros(x.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for order in np.unique(orders):
            order = int(order)
            chosen = orders == order
            part = digamma(x) if order == 0 else _polygamma_order(order, np.where(chosen, x, 1.0))
            if order > 0:  # poles at 0, -1, -2, ...: +inf for odd n, NaN as the sign is undefined for even n
                pole = (x <= 0) & (x == np.floor(x))
                part = np.where(pole, np.inf if order % 2 else np.nan, part)
            value = np.where(chosen, part, value)
    return value.astype(dtype)


_erf_elements = np.frompyfunc(math.erf, 1, 1)
_erfc_elements = np.frompyfunc(math.erfc, 1, 1)


def erf(x) -> np.ndarray:
    """The error function, the C library's ``erf`` element by element.

    >>> erf(np.array([0.0, 1.0], dtype=np.float32))
    array([0.       , 0.8427008], dtype=float32)
    """
    x, dtype = _float64(x)
    return np.asarray(_erf_elements(x), dtype=np.float64).astype(dtype)


def erfc(x) -> np.ndarray:
    """``1 - erf(x)``, accurate where ``erf`` is close to 1 (the C library's ``erfc``).

    >>> erfc(np.array([0.0, 10.0]))
    array([1.00000000e+00, 2.08848758e-45])
    """
    x, dtype = _float64(x)
    return np.asarray(_erfc_elements(x), dtype=np.float64).astype(dtype)


def erfinv(y) -> np.ndarray:
    """The inverse of ``erf`` on ``(-1, 1)``; +-inf at +-1, NaN beyond.

    >>> np.round(erfinv(np.array([0.0, 0.5])), 8).tolist(), erfinv(np.array([-1.0, 1.5])).tolist()
    ([0.0, 0.47693628], [-inf, nan])
    """
    y, dtype = _float64(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.abs(y)
        inside = magnitude < 1
        m = np.where(inside, magnitude, 0.0)
        log_term = np.log1p(-m * m)
        a = 0.147
        first = 2 / (np.pi * a) + log_term / 2
        x = np.sqrt(np.sqrt(first * first - log_term / a) - first)  # Winitzki, relative error < 2e-3
        for _ in range(4):  # Newton on erf(x) = m, residual from erfc near 1
            residual = np.where(m > 0.5, (1 - m) - np.asarray(_erfc_elements(x), dtype=np.float64),
                                np.asarray(_erf_elements(x), dtype=np.float64) - m)
            x = x - residual / (2 / np.sqrt(np.pi) * np.exp(-x * x))
        value = np.where(inside, np.copysign(x, y), np.where(magnitude == 1, np.copysign(np.inf, y), np.nan))
    return value.astype(dtype)


def _bessel_series(nu: int, x: np.ndarray) -> np.ndarray:
    half_square = (x / 2) ** 2
    term = (x / 2) ** nu / math.factorial(nu)
    total = term
    for k in range(1, 90):
        term = term * half_square / (k * (k + nu))
        total = total + term
    return total


def _bessel_asymptotic_scaled(nu: int, x: np.ndarray) -> np.ndarray:
    """``exp(-x) I_nu(x)`` for ``x >= 30`` (Hankel's expansion)."""
    term = np.ones_like(x)
    total = term
    for k in range(1, 31):
        term = -term * (4 * nu * nu - (2 * k - 1) ** 2) / (8 * k * x)
        total = total + term
    return total / np.sqrt(2 * np.pi * x)


def bessel_i(nu, x, scaled: bool = False) -> np.ndarray:
    """The modified Bessel function ``I_nu(x)`` of integer order ``nu``, or
    ``exp(-|x|) I_nu(x)`` when ``scaled``.

    >>> bessel_i(0, np.array([0.0, 1.0])), bessel_i(1, np.array([-1.0]), scaled=True)
    (array([1.        , 1.26606588]), array([-0.20791042]))
    """
    order = abs(int(nu))  # I_-n = I_n for integer n
    if order != nu and int(nu) != nu:
        raise ValueError(f"bessel_i computes integer orders only, got {nu!r}")
    x, dtype = _float64(x)
    magnitude = np.abs(x)
    with np.errstate(over="ignore", invalid="ignore"):
        near = np.where(magnitude < 30, magnitude, 0.0)
        far = np.where(magnitude < 30, 30.0, magnitude)
        series = _bessel_series(order, near)
        asymptotic = _bessel_asymptotic_scaled(order, far)
        if scaled:
            value = np.where(magnitude < 30, series * np.exp(-near), asymptotic)
        else:
            value = np.where(magnitude < 30, series, asymptotic * np.exp(far))
        value = np.where(np.isnan(x), np.nan, value)
    if order % 2:  # odd orders are odd functions
        value = np.where(x < 0, -value, value)
    return value.astype(dtype)


def _unary(name, grad_fn_name, forward, vjp, sympy, domain, summary, saves=("inputs",), **faces):
    """A one-input special function: public, and callable in formulas."""
    return register(Op(
        name=name, grad_fn_name=grad_fn_name, forward=forward, vjp=vjp, sympy=sympy,
        saves=frozenset(saves), domains=(domain,), summary=summary, public=True, in_formulas=True, **faces,
    ))


_besselie = sympy_function("symgrad.symbolic.forms.stable.besselie")  # exp(-|x|) I_nu(x), stable for large |x|

lgamma_ = _unary(
    "lgamma", "LgammaBackward0", lgamma,
    vjp=lambda xp, g, ans, x: (g * xp.digamma(x),),
    sympy=lambda sp, x: sp.loggamma(x),
    domain=Domain(-2.9, 5.0, avoid=(-2.0, -1.0, 0.0), margin=0.1),
    summary="log|Gamma(x)|", libm="lgamma",
)

digamma_ = _unary(
    "digamma", "DigammaBackward0", digamma,
    vjp=lambda xp, g, ans, x: (g * xp.polygamma(1, x),),
    sympy=lambda sp, x: sp.polygamma(0, x),
    domain=Domain(-2.9, 5.0, avoid=(-2.0, -1.0, 0.0), margin=0.1),
    summary="digamma psi(x), the derivative of lgamma",
)


def _polygamma_vjp(xp, g, ans, n, x):
    return UNDEFINED, xp.sum_to(g * xp.polygamma(n + 1, x), shape=np.shape(x))


# the order n is an input (PyTorch's torch.polygamma(n, x)), not differentiable: so every
# polygamma(k, x) a derivative produces is this op again
polygamma_ = register(Op(
    name="polygamma",
    grad_fn_name="PolygammaBackward0",
    forward=polygamma,
    vjp=_polygamma_vjp,
    sympy=lambda sp, n, x: sp.polygamma(n, x),
    arity=2,
    domains=(Domain(1, 3, integer=True), Domain(0.2, 5.0)),
    differentiable=(False, True),
    public=True,
))

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)  # a Python float keeps float32

erf_ = _unary(
    "erf", "ErfBackward0", erf,
    vjp=lambda xp, g, ans, x: (g * _TWO_OVER_SQRT_PI * xp.exp(-(x * x)),),
    sympy=sympy_function("symgrad.symbolic.forms.stable.erf"),
    domain=Domain(-3.0, 3.0),
    summary="error function", libm="erf",
)

erfc_ = _unary(
    "erfc", "ErfcBackward0", erfc,
    vjp=lambda xp, g, ans, x: (-(g * _TWO_OVER_SQRT_PI * xp.exp(-(x * x))),),
    sympy=sympy_function("symgrad.symbolic.forms.stable.erfc"),
    domain=Domain(-3.0, 3.0),
    summary="complementary error function 1 - erf(x)", libm="erfc",
)

erfinv_ = _unary(
    "erfinv", "ErfinvBackward0", erfinv,
    vjp=lambda xp, g, ans, x: (g * (math.sqrt(math.pi) / 2) * xp.exp(ans * ans),),  # a Python float keeps float32
    sympy=lambda sp, x: sp.erfinv(x),
    domain=Domain(-0.95, 0.95),
    summary="inverse error function", saves=("output",),
)

i0 = _unary(
    "i0", "I0Backward0", lambda x: bessel_i(0, x),
    vjp=lambda xp, g, ans, x: (g * xp.i1(x),),
    sympy=lambda sp, x: sp.besseli(0, x),
    domain=Domain(-4.0, 4.0),
    summary="modified Bessel function I0", numpy="i0",
)

i0e = _unary(
    "i0e", "SpecialI0EBackward0", lambda x: bessel_i(0, x, scaled=True),
    vjp=lambda xp, g, ans, x: (g * (xp.i1e(x) - xp.sign(x) * ans),),
    sympy=lambda sp, x: _besselie(sp, 0, x),
    domain=Domain(-4.0, 4.0, avoid=(0.0,)),
    summary="exp(-|x|) I0(x)", saves=("inputs", "output"),
)


i1 = _unary(
    "i1", "SpecialI1Backward0", lambda x: bessel_i(1, x),
    vjp=lambda xp, g, ans, x: (g * (xp.i0(x) + xp.bessel_i(2, x)) / 2,),  # I1' = (I0 + I2)/2, as SymPy has it
    sympy=lambda sp, x: sp.besseli(1, x),
    domain=Domain(-4.0, 4.0),
    summary="modified Bessel function I1",
)

i1e = _unary(
    "i1e", "SpecialI1EBackward0", lambda x: bessel_i(1, x, scaled=True),
    vjp=lambda xp, g, ans, x: (g * ((xp.i0e(x) + xp.bessel_ie(2, x)) / 2 - xp.sign(x) * ans),),
    sympy=lambda sp, x: _besselie(sp, 1, x),
    domain=Domain(-4.0, 4.0, avoid=(0.0,)),
    summary="exp(-|x|) I1(x)", saves=("inputs", "output"),
)


def _orders(nu) -> np.ndarray:
    orders = np.asarray(nu)
    if orders.dtype.kind not in "iuf" or np.any(orders != np.floor(orders)):
        raise ValueError(f"the Bessel functions I_nu of symgrad need integer orders nu, got {orders!r}")
    return orders


def bessel_of_orders(nu, x, scaled: bool = False) -> np.ndarray:
    """:func:`bessel_i` for an array of integer orders ``nu``, broadcast with ``x``.

    >>> bessel_of_orders(np.array([0, 1]), np.array([0.0, 0.0])).tolist()
    [1.0, 0.0]
    """
    orders, values = np.broadcast_arrays(_orders(nu), np.asarray(x))
    out = np.zeros(values.shape, dtype=np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float64)
    for order in np.unique(orders):
        out = np.where(orders == order, bessel_i(int(order), values, scaled=scaled), out)
    return np.asarray(out)


# I_nu(x) of any integer order, the order an input without a derivative (as polygamma's).
# Not public (torch has i0 and i1 only): it is here because derivatives of I1 need I2, I2's
# need I3..., and every function a closed form holds must be an op for create_graph=True.
bessel_i_ = register(Op(
    name="bessel_i",
    grad_fn_name="BesselIBackward0",
    forward=lambda nu, x: bessel_of_orders(nu, x, scaled=False),
    vjp=lambda xp, g, ans, nu, x: (
        UNDEFINED, xp.sum_to(g * (xp.bessel_i(nu - 1, x) + xp.bessel_i(nu + 1, x)) / 2, shape=np.shape(x))),
    sympy=lambda sp, nu, x: sp.besseli(nu, x),
    arity=2,
    domains=(Domain(0, 3, integer=True), Domain(-4.0, 4.0)),
    differentiable=(False, True),
))

bessel_ie = register(Op(
    name="bessel_ie",
    grad_fn_name="BesselIeBackward0",
    forward=lambda nu, x: bessel_of_orders(nu, x, scaled=True),
    vjp=lambda xp, g, ans, nu, x: (
        UNDEFINED,
        xp.sum_to(g * ((xp.bessel_ie(nu - 1, x) + xp.bessel_ie(nu + 1, x)) / 2 - xp.sign(x) * ans), shape=np.shape(x))),
    sympy=lambda sp, nu, x: _besselie(sp, nu, x),
    arity=2,
    saves=frozenset({"inputs", "output"}),
    domains=(Domain(0, 3, integer=True), Domain(-4.0, 4.0, avoid=(0.0,))),
    differentiable=(False, True),
))


def xlog1py_values(x, y):
    x, y = np.asarray(x), np.asarray(y)
    nothing = (x == 0) & (y <= -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(nothing, 0.0 * x, x * np.log1p(np.where(nothing, 0.0, y))))


def _xlog1py_vjp(xp, g, ans, x, y):
    # PyTorch's partials: d/dx = log1p(y) (also at x = 0), but 0 where the value is the
    # constant 0 (x == 0 and y <= -1; the branch not taken is computed at y = 0), and
    # d/dy = x/(1 + y) everywhere (NaN at x = 0, y = -1, as PyTorch's)
    nothing = (x == 0) * (y <= -1)
    grad_x = xp.where(nothing, 0.0, g * xp.log1p(xp.where(nothing, 0.0, y)))
    grad_y = g * x / (1 + y)
    return xp.sum_to(grad_x, shape=np.shape(x)), xp.sum_to(grad_y, shape=np.shape(y))


xlog1py = register(Op(
    name="xlog1py",
    grad_fn_name="SpecialXlog1PyBackward0",
    forward=xlog1py_values,
    vjp=_xlog1py_vjp,
    sympy=sympy_function("symgrad.symbolic.forms.stable.xlog1py"),
    arity=2,
    domains=(Domain(), Domain(-0.9, 3.0)),
    summary="a*log(1+b), 0 where a = 0", public=True, in_formulas=True,
))


def xlogy_values(x, y):
    x, y = np.asarray(x), np.asarray(y)
    nothing = (x == 0) & (y <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(nothing, 0.0 * x, x * np.log(np.where(nothing, 1.0, y))))


def _xlogy_vjp(xp, g, ans, x, y):
    # PyTorch's partials, as xlog1py's: d/dx is 0 where the value is the constant 0
    # (x == 0 and y <= 0; the branch not taken is computed at y = 1), d/dy = x/y everywhere
    nothing = (x == 0) * (y <= 0)
    grad_x = xp.where(nothing, 0.0, g * xp.log(xp.where(nothing, 1.0, y)))
    grad_y = g * x / y
    return xp.sum_to(grad_x, shape=np.shape(x)), xp.sum_to(grad_y, shape=np.shape(y))


xlogy = register(Op(
    name="xlogy",
    grad_fn_name="XlogyBackward0",
    forward=xlogy_values,
    vjp=_xlogy_vjp,
    sympy=sympy_function("symgrad.symbolic.forms.stable.xlogy"),
    arity=2,
    domains=(Domain(), Domain(0.1, 3.0)),
    summary="a*log(b), 0 where a = 0", public=True, in_formulas=True,
))


def _betaln_forward(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.asarray(lgamma(a) + lgamma(b) - lgamma(a + b))


def _betaln_vjp(xp, g, ans, a, b):
    both = xp.digamma(a + b)
    return (xp.sum_to(g * (xp.digamma(a) - both), shape=np.shape(a)),
            xp.sum_to(g * (xp.digamma(b) - both), shape=np.shape(b)))


# log B(a, b): derived from lgamma, but one op as SciPy's betaln (PyTorch has none)
betaln = register(Op(
    name="betaln",
    grad_fn_name="BetalnBackward0",
    forward=_betaln_forward,
    vjp=_betaln_vjp,
    sympy=lambda sp, a, b: sp.loggamma(a) + sp.loggamma(b) - sp.loggamma(a + b),
    arity=2,
    domains=(Domain(0.2, 5.0), Domain(0.2, 5.0)),
    summary="log|B(a, b)|, the log of the beta function", public=True, in_formulas=True,
))
