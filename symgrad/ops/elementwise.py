"""Elementwise ops: NumPy forward, SymPy form, hand-written VJP and test domain, side by side.

Binary ops broadcast like NumPy; their VJPs sum the gradient back to each input's shape
with ``xp.sum_to`` (the one unbroadcast helper, see ``broadcast.py``).

Conventions every entry here follows:

* forwards return a new array (``np.asarray`` turns NumPy's 0-d scalar results into
  arrays) in the inputs' float dtype: constants are Python numbers, which NumPy's
  NEP 50 rules treat as "weak", so ``float32`` stays ``float32``;
* VJPs use only Python operators (``+ - * / **``, comparisons, which give boolean masks)
  and ``xp.<op>(...)`` calls with attributes passed by keyword, so the same code runs on
  arrays and, for ``create_graph=True``, on tensors;
* at kinks the VJPs return what PyTorch 2.13 returns (checked by ``tests/test_ops_table.py``):
  relu'(0) = 0 (relu'(nan) = 1), abs'(0) = sign(0) = 0, clamp passes the gradient at its bounds
  (``min <= x <= max``, so not at NaN), maximum/minimum split it half/half on ties and zero
  it only for the losing argument, so where either argument is NaN both get all of it
  (``maximum(x, x)`` has gradient 2 at NaN, 1 elsewhere); elu'(0) = alpha and
  leaky_relu'(0) = negative_slope (the negative side's slope), the rounding ops (floor,
  ceil, round, trunc) have gradient 0 also at their jumps, frac 1, remainder and fmod
  d/da = 1 and d/db = -floor(a/b) or -trunc(a/b) there, sinc'(0) = 0 (with sinc''(0) = -pi^2/3), copysign's d/da = 0
  at a = 0, nan_to_num's gradient is g * isfinite(x);
* relu, clamp and where select the gradient (``xp.where(mask, g, 0.0)``) rather than
  multiply it by a 0/1 mask, so an inf or NaN ``g`` gives PyTorch's exact 0 outside the
  mask, not ``inf * 0 = nan`` (the symbolic engine selects too);
* SymPy forms are chosen so that SymPy's own derivative agrees with PyTorch at those
  kinks and so that ``lambdify(..., "numpy")`` evaluates them elementwise over arrays
  (``Piecewise``, never ``Max``/``Min``, which print as reductions).
"""
from __future__ import annotations

import math

import numpy as np

from .base import UNDEFINED, Domain, Op, register, shape_of, sympy_function, sympy_number
from .special import erf as _erf


def _fresh(ufunc):
    """Wrap a NumPy function so that its result is always an ``ndarray`` (never a scalar)."""
    return lambda *arrays: np.asarray(ufunc(*arrays))


def _zeros_like(xp, g):
    """Exact zeros shaped and typed like ``g`` (``g * 0`` is NaN where ``g`` is inf or NaN;
    PyTorch's zero gradients are 0 there too)."""
    return xp.where(True, 0.0, g)


def _unary(name, grad_fn_name, forward, vjp, sympy, domain=Domain(), saves=("inputs",), **faces):
    """A one-input elementwise op; ``faces`` are the record's public fields (``summary``,
    ``public``, ``in_formulas``, ``libm``)."""
    return register(Op(
        name=name,
        grad_fn_name=grad_fn_name,
        forward=_fresh(forward),
        vjp=vjp,
        sympy=sympy,
        saves=frozenset(saves),
        domains=(domain,),
        **faces,
    ))


# the public faces of an elementary function: a Tensor method, a free function, a name in
# formulas and the C library function of the same name
_ELEMENTARY = dict(public=True, in_formulas=True)


# ----------------------------------------------------------------------------- arithmetic

add = register(Op(
    name="add",
    numpy="add",
    grad_fn_name="AddBackward0",
    forward=_fresh(np.add),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g, shape=shape_of(a)), xp.sum_to(g, shape=shape_of(b))),
    sympy=lambda sp, a, b: a + b,
    arity=2,
    saves=frozenset(),
    domains=(Domain(), Domain()),
))

sub = register(Op(
    name="sub",
    numpy="subtract",
    grad_fn_name="SubBackward0",
    forward=_fresh(np.subtract),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g, shape=shape_of(a)), xp.sum_to(-g, shape=shape_of(b))),
    sympy=lambda sp, a, b: a - b,
    arity=2,
    saves=frozenset(),
    domains=(Domain(), Domain()),
))

neg = _unary(
    "neg", "NegBackward0", np.negative,
    vjp=lambda xp, g, ans, x: (-g,),
    sympy=lambda sp, x: -x,
    saves=(),
    numpy="negative",
)

mul = register(Op(
    name="mul",
    numpy="multiply",
    grad_fn_name="MulBackward0",
    forward=_fresh(np.multiply),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g * b, shape=shape_of(a)), xp.sum_to(g * a, shape=shape_of(b))),
    sympy=lambda sp, a, b: a * b,
    arity=2,
    needed_by={0: (1,), 1: (0,)},
    domains=(Domain(), Domain()),
))

# div is mul(a, pow_scalar(b, -1)) mathematically; it has its own entry because it is
# PyTorch's DivBackward0 node and a / b is more accurate than a * b ** -1.
div = register(Op(
    name="div",
    numpy="divide",
    grad_fn_name="DivBackward0",
    forward=_fresh(np.true_divide),
    vjp=lambda xp, g, ans, a, b: (
        xp.sum_to(g / b, shape=shape_of(a)),
        xp.sum_to(-g * a / (b * b), shape=shape_of(b)),
    ),
    sympy=lambda sp, a, b: a / b,
    arity=2,
    needed_by={0: (1,)},
    domains=(Domain(), Domain(avoid=(0.0,), margin=0.3)),
))


def _pow_vjp(xp, g, ans, a, b):
    # PyTorch: d/da is 0 where the exponent is 0 (even at a = 0); d/db is 0 where
    # a == 0 and b >= 0 (instead of 0 * log 0 = nan).  Selected, never multiplied by 0, so
    # an inf or NaN upstream gradient gives an exact 0 there too.  The branch not taken is
    # computed at a = 1 there (JAX's "double where"), so it is finite and the gradient's
    # own derivatives (create_graph=True: with respect to g, a, b) are 0 there, not
    # 0 * inf = nan.
    no_base = b == 0
    grad_a = xp.where(no_base, 0.0, g * b * xp.pow(xp.where(no_base, 1.0, a), b - 1))
    at_zero = (a == 0) * (b >= 0)
    grad_b = xp.where(at_zero, 0.0, g * ans * xp.log(xp.where(at_zero, 1.0, a)))
    return xp.sum_to(grad_a, shape=shape_of(a)), xp.sum_to(grad_b, shape=shape_of(b))


pow_ = register(Op(
    name="pow",
    numpy="power",
    grad_fn_name="PowBackward1",
    forward=_fresh(np.power),
    vjp=_pow_vjp,
    sympy=lambda sp, a, b: a ** b,
    arity=2,
    saves=frozenset({"inputs", "output"}),
    needed_by={"output": (1,)},
    domains=(Domain(0.5, 2.0), Domain()),
    public=True,
))


def _pow_scalar_forward(x, *, exponent):
    if isinstance(exponent, np.generic):  # a NumPy scalar would promote float32 to float64
        exponent = exponent.item()
    return np.asarray(np.power(x, exponent))


def _pow_scalar_vjp(xp, g, ans, x, *, exponent):
    if exponent == 0:  # PyTorch returns zeros, even at x = 0
        return (_zeros_like(xp, g),)
    return (g * exponent * xp.pow_scalar(x, exponent=exponent - 1),)


pow_scalar = register(Op(
    name="pow_scalar",
    grad_fn_name="PowBackward0",
    forward=_pow_scalar_forward,
    vjp=_pow_scalar_vjp,
    sympy=lambda sp, x, *, exponent: x ** sympy_number(sp, exponent),
    domains=(Domain(0.5, 2.0),),
))

# ----------------------------------------------------------------------------- transcendental

exp = _unary(
    "exp", "ExpBackward0", np.exp,
    vjp=lambda xp, g, ans, x: (g * ans,),
    sympy=lambda sp, x: sp.exp(x),
    summary="exponential", libm='exp', **_ELEMENTARY,
    saves=("output",),
    numpy="exp",
)

log = _unary(
    "log", "LogBackward0", np.log,
    vjp=lambda xp, g, ans, x: (g / x,),
    sympy=lambda sp, x: sp.log(x),
    summary="natural logarithm", libm='log', **_ELEMENTARY,
    domain=Domain(0.1, 3.0),
    numpy="log",
)

sqrt = _unary(
    "sqrt", "SqrtBackward0", np.sqrt,
    vjp=lambda xp, g, ans, x: (g / (2 * ans),),
    sympy=lambda sp, x: sp.sqrt(x),
    summary="square root", **_ELEMENTARY,
    domain=Domain(0.1, 3.0),
    saves=("output",),
    numpy="sqrt",
)

sin = _unary(
    "sin", "SinBackward0", np.sin,
    vjp=lambda xp, g, ans, x: (g * xp.cos(x),),
    sympy=lambda sp, x: sp.sin(x),
    summary="sine", libm='sin', **_ELEMENTARY,
    numpy="sin",
)

cos = _unary(
    "cos", "CosBackward0", np.cos,
    vjp=lambda xp, g, ans, x: (-(g * xp.sin(x)),),
    sympy=lambda sp, x: sp.cos(x),
    summary="cosine", libm='cos', **_ELEMENTARY,
    numpy="cos",
)

tan = _unary(
    "tan", "TanBackward0", np.tan,
    vjp=lambda xp, g, ans, x: (g * (1 + ans * ans),),
    sympy=lambda sp, x: sp.tan(x),
    summary="tangent", libm='tan', **_ELEMENTARY,
    domain=Domain(-3.0, 3.0, avoid=(-np.pi / 2, np.pi / 2), margin=0.15),
    saves=("output",),
    numpy="tan",
)

tanh = _unary(
    "tanh", "TanhBackward0", np.tanh,
    vjp=lambda xp, g, ans, x: (g * (1 - ans * ans),),
    sympy=lambda sp, x: sp.tanh(x),
    summary="hyperbolic tangent", libm='tanh', **_ELEMENTARY,
    saves=("output",),
    numpy="tanh",
)


log1p = _unary(
    "log1p", "Log1PBackward0", np.log1p,
    vjp=lambda xp, g, ans, x: (g / (1 + x),),
    sympy=sympy_function("sympy.codegen.cfunctions.log1p"),
    domain=Domain(-0.9, 3.0),
    summary="log(1+x), accurate near 0", libm="log1p", **_ELEMENTARY,
    numpy="log1p",
)

expm1 = _unary(
    "expm1", "Expm1Backward0", np.expm1,
    vjp=lambda xp, g, ans, x: (g * (ans + 1),),
    sympy=sympy_function("sympy.codegen.cfunctions.expm1"),
    saves=("output",),
    summary="exp(x)-1, accurate near 0", libm="expm1", **_ELEMENTARY,
    numpy="expm1",
)

def _atan2_vjp(xp, g, ans, y, x):
    # x/(x^2 + y^2) and -y/(x^2 + y^2), and 0 at the origin as PyTorch's (not 0/0), the
    # branch not taken divided by 1
    squares = x * x + y * y
    origin = squares == 0
    safe = xp.where(origin, 1.0, squares)
    return (xp.sum_to(xp.where(origin, 0.0, g * x / safe), shape=shape_of(y)),
            xp.sum_to(xp.where(origin, 0.0, -(g * y) / safe), shape=shape_of(x)))


atan2 = register(Op(
    name="atan2",
    numpy="arctan2",
    grad_fn_name="Atan2Backward0",
    forward=_fresh(np.arctan2),
    vjp=_atan2_vjp,
    sympy=sympy_function("symgrad.symbolic.forms.stable.atan2"),  # PyTorch's 0 partials at the origin
    arity=2,
    # y away from 0: the angle jumps by 2*pi across the negative x axis
    domains=(Domain(avoid=(0.0,), margin=0.2), Domain(avoid=(0.0,), margin=0.2)),
    summary="the angle of the point (x=b, y=a), in (-pi, pi]", libm="atan2", **_ELEMENTARY,
))


hypot = register(Op(
    name="hypot",
    numpy="hypot",
    grad_fn_name="HypotBackward0",
    forward=_fresh(np.hypot),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g * a / ans, shape=shape_of(a)), xp.sum_to(g * b / ans, shape=shape_of(b))),
    sympy=sympy_function("sympy.codegen.cfunctions.hypot"),
    arity=2,
    saves=frozenset({"inputs", "output"}),
    domains=(Domain(avoid=(0.0,), margin=0.2), Domain(avoid=(0.0,), margin=0.2)),
    summary="sqrt(a**2 + b**2) without overflow", libm="hypot", **_ELEMENTARY,
))


_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))

log2 = _unary(
    "log2", "Log2Backward0", np.log2,
    vjp=lambda xp, g, ans, x: (g / (x * _LN2),),
    sympy=sympy_function("sympy.codegen.cfunctions.log2"),
    domain=Domain(0.1, 3.0),
    summary="base-2 logarithm", libm="log2", **_ELEMENTARY,
    numpy="log2",
)

log10 = _unary(
    "log10", "Log10Backward0", np.log10,
    vjp=lambda xp, g, ans, x: (g / (x * _LN10),),
    sympy=sympy_function("sympy.codegen.cfunctions.log10"),
    domain=Domain(0.1, 3.0),
    summary="base-10 logarithm", libm="log10", **_ELEMENTARY,
    numpy="log10",
)

exp2 = _unary(
    "exp2", "Exp2Backward0", np.exp2,
    vjp=lambda xp, g, ans, x: (g * ans * _LN2,),
    sympy=sympy_function("sympy.codegen.cfunctions.exp2"),
    saves=("output",),
    summary="2**x", libm="exp2", **_ELEMENTARY,
    numpy="exp2",
)

sinh = _unary(
    "sinh", "SinhBackward0", np.sinh,
    vjp=lambda xp, g, ans, x: (g * xp.cosh(x),),
    sympy=lambda sp, x: sp.sinh(x),
    summary="hyperbolic sine", libm="sinh", **_ELEMENTARY,
    numpy="sinh",
)

cosh = _unary(
    "cosh", "CoshBackward0", np.cosh,
    vjp=lambda xp, g, ans, x: (g * xp.sinh(x),),
    sympy=lambda sp, x: sp.cosh(x),
    summary="hyperbolic cosine", libm="cosh", **_ELEMENTARY,
    numpy="cosh",
)

# the inverse functions: samples stay away from the ends of their domains, where the slope is infinite
asin = _unary(
    "asin", "AsinBackward0", np.arcsin,
    vjp=lambda xp, g, ans, x: (g / xp.sqrt(1 - x * x),),
    sympy=lambda sp, x: sp.asin(x),
    domain=Domain(-0.9, 0.9),
    summary="inverse sine, in [-pi/2, pi/2]", libm="asin", **_ELEMENTARY,
    numpy="arcsin",
)

acos = _unary(
    "acos", "AcosBackward0", np.arccos,
    vjp=lambda xp, g, ans, x: (-(g / xp.sqrt(1 - x * x)),),
    sympy=lambda sp, x: sp.acos(x),
    domain=Domain(-0.9, 0.9),
    summary="inverse cosine, in [0, pi]", libm="acos", **_ELEMENTARY,
    numpy="arccos",
)

atan = _unary(
    "atan", "AtanBackward0", np.arctan,
    vjp=lambda xp, g, ans, x: (g / (1 + x * x),),
    sympy=lambda sp, x: sp.atan(x),
    summary="inverse tangent, in (-pi/2, pi/2)", libm="atan", **_ELEMENTARY,
    numpy="arctan",
)

asinh = _unary(
    "asinh", "AsinhBackward0", np.arcsinh,
    vjp=lambda xp, g, ans, x: (g / xp.sqrt(x * x + 1),),
    sympy=lambda sp, x: sp.asinh(x),
    summary="inverse hyperbolic sine", libm="asinh", **_ELEMENTARY,
    numpy="arcsinh",
)

acosh = _unary(
    "acosh", "AcoshBackward0", np.arccosh,
    vjp=lambda xp, g, ans, x: (g / xp.sqrt(x * x - 1),),
    sympy=lambda sp, x: sp.acosh(x),
    domain=Domain(1.1, 3.0),
    summary="inverse hyperbolic cosine (x >= 1)", libm="acosh", **_ELEMENTARY,
    numpy="arccosh",
)

atanh = _unary(
    "atanh", "AtanhBackward0", np.arctanh,
    vjp=lambda xp, g, ans, x: (g / (1 - x * x),),
    sympy=lambda sp, x: sp.atanh(x),
    domain=Domain(-0.9, 0.9),
    summary="inverse hyperbolic tangent (-1 < x < 1)", libm="atanh", **_ELEMENTARY,
    numpy="arctanh",
)

reciprocal = _unary(
    "reciprocal", "ReciprocalBackward0", np.reciprocal,
    vjp=lambda xp, g, ans, x: (-(g * ans * ans),),
    sympy=lambda sp, x: 1 / x,
    domain=Domain(avoid=(0.0,), margin=0.3),
    saves=("output",),
    summary="1/x", **_ELEMENTARY,
    numpy="reciprocal",
)

rsqrt = _unary(
    "rsqrt", "RsqrtBackward0", lambda x: 1 / np.sqrt(x),
    vjp=lambda xp, g, ans, x: (g * ans * ans * ans * -0.5,),
    sympy=lambda sp, x: 1 / sp.sqrt(x),
    domain=Domain(0.1, 3.0),
    saves=("output",),
    summary="1/sqrt(x)", **_ELEMENTARY,
)

# PyTorch computes square as pow(x, 2): its node is PowBackward0
square = _unary(
    "square", "PowBackward0", np.square,
    vjp=lambda xp, g, ans, x: (g * 2 * x,),
    sympy=lambda sp, x: x ** 2,
    summary="x**2", **_ELEMENTARY,
    numpy="square",
)

deg2rad = _unary(
    "deg2rad", "Deg2RadBackward0", np.deg2rad,
    vjp=lambda xp, g, ans, x: (g * (np.pi / 180),),
    sympy=lambda sp, x: x * sp.pi / 180,
    saves=(),
    summary="degrees to radians, x*pi/180", **_ELEMENTARY,
    numpy="deg2rad",
)

rad2deg = _unary(
    "rad2deg", "Rad2DegBackward0", np.rad2deg,
    vjp=lambda xp, g, ans, x: (g * (180 / np.pi),),
    sympy=lambda sp, x: x * 180 / sp.pi,
    saves=(),
    summary="radians to degrees, x*180/pi", **_ELEMENTARY,
    numpy="rad2deg",
)


def _sigmoid_forward(x):
    # Stable for any |x|: exp is only ever taken of -|x| <= 0, so it cannot overflow.
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# sigmoid = 1 / (1 + exp(-x)) is derived, but is its own entry: composing it overflows
# exp(-x) for x < -88 in float32, and PyTorch records it as one SigmoidBackward0 node.
sigmoid = _unary(
    "sigmoid", "SigmoidBackward0", _sigmoid_forward,
    vjp=lambda xp, g, ans, x: (g * ans * (1 - ans),),
    # 1 / (1 + exp(-x)), as a SymPy function that compiles to a stable form
    sympy=sympy_function("symgrad.symbolic.forms.stable.sigmoid"),
    saves=("output",),
    summary="logistic sigmoid 1/(1+exp(-x)), stable when compiled", **_ELEMENTARY,
)

# ----------------------------------------------------------------------------- piecewise

relu = _unary(
    "relu", "ReluBackward0", lambda x: np.maximum(x, 0),
    # relu'(0) = 0 and relu'(nan) = 1, as PyTorch (which zeroes the gradient where x <= 0)
    vjp=lambda xp, g, ans, x: (xp.where(ans <= 0, 0.0, g),),
    sympy=lambda sp, x: sp.Piecewise((0, x <= 0), (x, True)),  # NaN: value NaN, as np.maximum
    domain=Domain(avoid=(0.0,)),
    saves=("output",),
    summary="max(x, 0)", **_ELEMENTARY,
)

sign = _unary(
    "sign", "SignBackward0", np.sign,
    vjp=lambda xp, g, ans, x: (_zeros_like(xp, g),),  # zero everywhere, as PyTorch (no Dirac delta)
    sympy=lambda sp, x: sp.sign(x),
    domain=Domain(avoid=(0.0,)),
    saves=(),
    summary="sign (-1, 0 or 1)", **_ELEMENTARY,
    numpy="sign",
)

abs_ = _unary(
    "abs", "AbsBackward0", np.abs,
    vjp=lambda xp, g, ans, x: (g * xp.sign(x),),  # abs'(0) = sign(0) = 0, as PyTorch
    sympy=lambda sp, x: sp.Abs(x),  # d/dx Abs(x) = sign(x) for a real symbol
    domain=Domain(avoid=(0.0,)),
    summary="absolute value", **_ELEMENTARY,
    numpy="absolute",
)


def _clamp_forward(x, *, min=None, max=None):  # noqa: A002  (PyTorch's attr names)
    if min is None and max is None:
        raise ValueError("clamp needs at least one of min= and max= to be a number, got both None")
    return np.asarray(np.clip(x, min, max))


def _clamp_vjp(xp, g, ans, x, *, min=None, max=None):  # noqa: A002
    # PyTorch passes the gradient where min <= x <= max, bounds included; if min > max
    # the output is the constant max and no element passes.
    grad = g
    if min is not None:
        grad = xp.where(x >= min, grad, 0.0)
    if max is not None:
        grad = xp.where(x <= max, grad, 0.0)
    return (grad,)


def _clamp_sympy(sp, x, *, min=None, max=None):  # noqa: A002
    # x where min <= x <= max (derivative 1 at the bounds, as PyTorch), a bound beyond
    # it, and NaN for NaN (no branch holds: value NaN, derivative 0, as PyTorch).
    # Unevaluated: for a real x SymPy would drop the NaN branch as unreachable.
    if min is not None and max is not None and min > max:
        return sympy_number(sp, max) + 0 * x
    inside, beyond = [], []
    if min is not None:
        inside.append(x >= min)
        beyond.append((sympy_number(sp, min), x < min))
    if max is not None:
        inside.append(x <= max)
        beyond.append((sympy_number(sp, max), x > max))
    return sp.Piecewise((x, sp.And(*inside)), *beyond, (sp.nan, True), evaluate=False)


clamp = register(Op(
    name="clamp",
    numpy="clip",
    grad_fn_name="ClampBackward1",
    forward=_clamp_forward,
    vjp=_clamp_vjp,
    sympy=_clamp_sympy,
    # the test table's bounds are drawn from these points
    domains=(Domain(avoid=(-1.0, -0.5, 0.0, 0.5, 1.0)),),
    public=True,
))


def _clamp_tensor_vjp(xp, g, ans, x, min, max):  # noqa: A002
    # The derivative of the SymPy form below, branch by branch (first match): x where
    # min <= x <= max; else max where max < min; else min where x < min; else max where
    # x > max; else (a NaN) nothing.
    inside = (x >= min) * (x <= max)
    crossed = max < min
    below = x < min
    grad_x = xp.where(inside, g, 0.0)
    grad_min = xp.where(inside, 0.0, xp.where(crossed, 0.0, xp.where(below, g, 0.0)))
    grad_max = xp.where(inside, 0.0, xp.where(crossed, g, xp.where(below, 0.0, xp.where(x > max, g, 0.0))))
    return (xp.sum_to(grad_x, shape=shape_of(x)), xp.sum_to(grad_min, shape=shape_of(min)),
            xp.sum_to(grad_max, shape=shape_of(max)))


def _clamp_tensor_sympy(sp, x, min, max):  # noqa: A002
    # Unevaluated: for real symbols SymPy would drop the NaN branch as unreachable.
    return sp.Piecewise((x, sp.And(x >= min, x <= max)), (max, max < min), (min, x < min), (max, x > max),
                        (sp.nan, True), evaluate=False)


# clamp with array or tensor bounds (PyTorch's clamp.Tensor, one ClampBackward0 node): the
# bounds are inputs, broadcast with x, and take gradients.  Tensor.clamp passes a missing
# bound as -inf or +inf.  Gradients are PyTorch's, but for two degenerate cases its rule
# cannot be a derivative of any one closed form (it gives no gradient to anything there):
# below min == max, and below min with a NaN max, min gets it here.  Values are NumPy's
# (NaN where any operand is NaN; max where min > max).
clamp_tensor = register(Op(
    name="clamp_tensor",
    grad_fn_name="ClampBackward0",
    forward=lambda x, min, max: np.asarray(np.minimum(np.maximum(x, min), max)),  # noqa: A002
    vjp=_clamp_tensor_vjp,
    sympy=_clamp_tensor_sympy,
    arity=3,
    domains=(Domain(), Domain(-2.0, -0.2), Domain(0.2, 2.0)),
))


def _extremum_vjp(xp, g, a, b, wins):
    """Gradients of maximum/minimum: ``wins(a, b)`` is where ``a`` is chosen.  As in
    PyTorch, ties split half/half and only the losing argument gets 0, so where either
    argument is NaN (no comparison holds) both get ``g``.  ``g`` is selected, never
    multiplied by a 0/1 mask (inf * 0 would be NaN)."""
    tie = a == b
    half = g * 0.5
    grad_a = xp.where(tie, half, xp.where(wins(b, a), 0.0, g))
    grad_b = xp.where(tie, half, xp.where(wins(a, b), 0.0, g))
    return xp.sum_to(grad_a, shape=shape_of(a)), xp.sum_to(grad_b, shape=shape_of(b))


maximum = register(Op(
    name="maximum",
    numpy="maximum",
    grad_fn_name="MaximumBackward0",
    forward=_fresh(np.maximum),
    vjp=lambda xp, g, ans, a, b: _extremum_vjp(xp, g, a, b, lambda p, q: p > q),
    # the engine's Maximum, not a Piecewise: nested calls of a three-branch Piecewise grow
    # exponentially, and SymPy rewrites a Piecewise over arrays (symbolic/forms/selections.py).
    # Its derivative is TieStep: NaN in either argument gives both d = 1, ties split half/half
    sympy=sympy_function("symgrad.symbolic.forms.selections.Maximum"),
    arity=2,
    domains=(Domain(), Domain()),
    summary="elementwise maximum of two arguments", **_ELEMENTARY,
))

minimum = register(Op(
    name="minimum",
    numpy="minimum",
    grad_fn_name="MinimumBackward0",
    forward=_fresh(np.minimum),
    vjp=lambda xp, g, ans, a, b: _extremum_vjp(xp, g, a, b, lambda p, q: p < q),
    sympy=sympy_function("symgrad.symbolic.forms.selections.Minimum"),  # as maximum's
    arity=2,
    domains=(Domain(), Domain()),
    summary="elementwise minimum of two arguments", **_ELEMENTARY,
))


def _where_vjp(xp, g, ans, condition, a, b):
    return (
        UNDEFINED,
        xp.sum_to(xp.where(condition, g, 0.0), shape=shape_of(a)),
        xp.sum_to(xp.where(condition, 0.0, g), shape=shape_of(b)),
    )


where = register(Op(
    name="where",
    numpy="where",
    grad_fn_name="WhereBackward0",
    forward=lambda condition, a, b: np.asarray(np.where(np.asarray(condition, dtype=bool), a, b)),
    vjp=_where_vjp,
    # the condition is a boolean array; SymPy sees it as a number, true when non-zero
    sympy=lambda sp, condition, a, b: sp.Piecewise((a, sp.Ne(condition, 0)), (b, True)),
    arity=3,
    needed_by={1: (), 2: ()},  # only the condition is read
    domains=(Domain(boolean=True), Domain(), Domain()),
    differentiable=(False, True, True),
))

clone = _unary(
    "clone", "CloneBackward0", lambda x: np.array(x, copy=True),
    vjp=lambda xp, g, ans, x: (g,),
    sympy=lambda sp, x: x,
    saves=(),
    public=True,
    numpy="copy",
)

# ----------------------------------------------------------------------------- rounding and remainders

_stable_floor = sympy_function("symgrad.symbolic.forms.stable.floor")
_stable_trunc = sympy_function("symgrad.symbolic.forms.stable.trunc")
_INTEGERS = Domain(-2.5, 2.5, avoid=(-2.0, -1.0, 0.0, 1.0, 2.0))  # jumps at the integers


# No libm= for floor, ceil, trunc, round (nearbyint) and copysign: glibc's libmvec has no
# vector variants of them, and the C backends declare a libm function "declare simd" unless
# symbolic/codegen/backends/c_code.py lists it in _SCALAR_ONLY, so they refuse these, naming them.
def _rounding(name, grad_fn_name, forward, sympy, summary, **faces):
    # piecewise constant: gradient 0 everywhere, also at the jumps, as PyTorch
    return _unary(name, grad_fn_name, forward, vjp=lambda xp, g, ans, x: (_zeros_like(xp, g),), sympy=sympy,
                  domain=_INTEGERS, saves=(), summary=summary, numpy=name, **faces, **_ELEMENTARY)


floor = _rounding("floor", "FloorBackward0", np.floor, _stable_floor, "largest integer <= x")
ceil = _rounding("ceil", "CeilBackward0", np.ceil, sympy_function("symgrad.symbolic.forms.stable.ceiling"),
                 "smallest integer >= x")
trunc = _rounding("trunc", "TruncBackward0", np.trunc, _stable_trunc, "x rounded toward 0")
round_ = _rounding("round", "RoundBackward0", np.round, sympy_function("symgrad.symbolic.forms.stable.round_half_even"),
                   "x rounded to the nearest integer, halves to even")

frac = _unary(
    "frac", "FracBackward0", lambda x: x - np.trunc(x),
    vjp=lambda xp, g, ans, x: (g,),
    sympy=lambda sp, x: x - _stable_trunc(sp, x),
    domain=_INTEGERS,
    saves=(),
    summary="fractional part x - trunc(x), with the sign of x", **_ELEMENTARY,
)

# NumPy's floor_divide, remainder and fmod, each one SymPy function compiled as the NumPy
# function: written out as a - b*floor(a/b) the remainder would differ from NumPy's where
# the quotient a/b rounds to an integer (1.0 % 0.1 is 0.0999..., 1.0 - 0.1*floor(1.0/0.1) is
# 0).  As PyTorch: d/da = 1, and d/db = -floor_divide(a, b) or -trunc(a/b), also at the jumps.
floor_divide = register(Op(
    name="floor_divide",
    numpy="floor_divide",
    grad_fn_name="FloorDivideBackward0",
    forward=_fresh(np.floor_divide),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(_zeros_like(xp, g), shape=shape_of(a)),
                                  xp.sum_to(_zeros_like(xp, g), shape=shape_of(b))),
    sympy=sympy_function("symgrad.symbolic.forms.stable.floor_divide"),
    arity=2,
    saves=frozenset(),
    domains=(Domain(-3.0, 3.0), Domain(avoid=(0.0,), margin=0.3)),
    summary="floor(a/b) from the exact remainder, as numpy.floor_divide (a // b); gradient 0", **_ELEMENTARY,
))

remainder = register(Op(
    name="remainder",
    numpy="remainder",
    grad_fn_name="RemainderBackward1",
    forward=_fresh(np.remainder),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g, shape=shape_of(a)),
                                  xp.sum_to(-(g * xp.floor_divide(a, b)), shape=shape_of(b))),
    sympy=sympy_function("symgrad.symbolic.forms.stable.remainder"),
    arity=2,
    domains=(Domain(-3.0, 3.0), Domain(avoid=(0.0,), margin=0.3)),
    summary="a - b*floor_divide(a, b), the remainder with the sign of b (a % b)", **_ELEMENTARY,
))

fmod = register(Op(
    name="fmod",
    numpy="fmod",
    grad_fn_name="FmodBackward1",
    forward=_fresh(np.fmod),
    vjp=lambda xp, g, ans, a, b: (xp.sum_to(g, shape=shape_of(a)), xp.sum_to(-(g * xp.trunc(a / b)), shape=shape_of(b))),
    sympy=sympy_function("symgrad.symbolic.forms.stable.fmod"),
    arity=2,
    domains=(Domain(-3.0, 3.0), Domain(avoid=(0.0,), margin=0.3)),
    summary="a - b*trunc(a/b), the remainder with the sign of a (C's fmod)", **_ELEMENTARY,
))


def _copysign_vjp(xp, g, ans, a, b):
    # PyTorch: d/da = ans/a = sign(a)*copysign(1, b), 0 at a = 0; d/db = 0
    zero = a == 0
    grad_a = xp.where(zero, 0.0, g * ans / xp.where(zero, 1.0, a))
    return xp.sum_to(grad_a, shape=shape_of(a)), xp.sum_to(_zeros_like(xp, g), shape=shape_of(b))


copysign = register(Op(
    name="copysign",
    numpy="copysign",
    grad_fn_name="CopysignBackward0",
    forward=_fresh(np.copysign),
    vjp=_copysign_vjp,
    sympy=sympy_function("symgrad.symbolic.forms.stable.copysign"),
    arity=2,
    saves=frozenset({"inputs", "output"}),
    domains=(Domain(avoid=(0.0,)), Domain(avoid=(0.0,))),
    summary="abs(a) with the sign of b", **_ELEMENTARY,
))


def _nan_to_num_forward(x, *, nan=0.0, posinf=None, neginf=None):
    return np.asarray(np.nan_to_num(np.asarray(x), copy=True, nan=nan, posinf=posinf, neginf=neginf))


# PyTorch's gradient: g * isfinite(x) (multiplied, so a NaN g stays NaN at inf and NaN)
nan_to_num = register(Op(
    name="nan_to_num",
    numpy="nan_to_num",
    grad_fn_name="NanToNumBackward0",
    forward=_nan_to_num_forward,
    vjp=lambda xp, g, ans, x, **attrs: (g * (xp.abs(x) < np.inf),),
    sympy=sympy_function("symgrad.symbolic.forms.stable.nan_to_num_form"),
    summary="x with NaN as 0 and +-inf as the largest finite numbers",
    **_ELEMENTARY,
))

# ----------------------------------------------------------------------------- three inputs


def _lerp_forward(start, end, weight):
    # PyTorch's two formulas, exact at weight 0 and at weight 1
    start, end, weight = np.asarray(start), np.asarray(end), np.asarray(weight)
    return np.asarray(np.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)))


lerp = register(Op(
    name="lerp",
    grad_fn_name="LerpBackward1",
    forward=_lerp_forward,
    vjp=lambda xp, g, ans, start, end, weight: (
        xp.sum_to(g * (1 - weight), shape=shape_of(start)),
        xp.sum_to(g * weight, shape=shape_of(end)),
        xp.sum_to(g * (end - start), shape=shape_of(weight)),
    ),
    sympy=lambda sp, start, end, weight: start + weight * (end - start),
    arity=3,
    domains=(Domain(), Domain(), Domain(-0.5, 1.5)),
    summary="a + c*(b - a): from a to b by the weight c", **_ELEMENTARY,
))

# ----------------------------------------------------------------------------- smooth activations


def _softplus_forward(x, *, beta=1.0, threshold=20.0):
    # PyTorch: x where beta * x > threshold, else log1p(exp(beta * x)) / beta.  exp is
    # taken of min(beta * x, threshold) so the unused branch cannot overflow.
    x = np.asarray(x)
    z = x * beta
    return np.where(z > threshold, x, np.log1p(np.exp(np.minimum(z, threshold))) / beta)


# softplus = log(1 + exp(x)) is derived, but is its own entry: the composition overflows
# for large x, and PyTorch's threshold switch (identity above it) must be reproduced.
softplus = register(Op(
    name="softplus",
    grad_fn_name="SoftplusBackward0",
    forward=_softplus_forward,
    vjp=lambda xp, g, ans, x, *, beta=1.0, threshold=20.0: (
        xp.where(x * beta > threshold, g, g * xp.sigmoid(x * beta)),
    ),
    # x where beta*x > threshold, else log(1 + exp(beta*x))/beta, with the engine's stable softplus
    sympy=sympy_function("symgrad.symbolic.forms.stable.softplus_form"),
    domains=(Domain(-3.0, 3.0),),
    summary="log(1+exp(x)), stable when compiled", **_ELEMENTARY,
))


def _bce_forward(logits, target):
    # max(z, 0) - z*y + log1p(exp(-|z|)): exp of a non-positive number, never overflows
    z = np.asarray(logits)
    return np.asarray(np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z))))


# The loss log(1 + exp(z)) - z*y is derived, but is its own entry for stability (see
# the forward) and because PyTorch records one BinaryCrossEntropyWithLogitsBackward0 node.
binary_cross_entropy_with_logits = register(Op(
    name="binary_cross_entropy_with_logits",
    grad_fn_name="BinaryCrossEntropyWithLogitsBackward0",
    forward=_bce_forward,
    vjp=lambda xp, g, ans, logits, target: (
        xp.sum_to(g * (xp.sigmoid(logits) - target), shape=shape_of(logits)),
        xp.sum_to(-(g * logits), shape=shape_of(target)),
    ),
    # the smooth form log(1 + exp(z)) - z*y with the engine's stable softplus (not
    # max(z,0) + log1p(exp(-|z|))), so that SymPy's derivative at z = 0 is sigmoid(0) - y
    # like PyTorch's, not the one-sided -y
    sympy=sympy_function("symgrad.symbolic.forms.stable.bce_with_logits_form"),
    arity=2,
    domains=(Domain(-3.0, 3.0), Domain(0.0, 1.0)),
))



def _logaddexp_vjp(xp, g, ans, a, b):
    return xp.sum_to(g * xp.sigmoid(a - b), shape=shape_of(a)), xp.sum_to(g * xp.sigmoid(b - a), shape=shape_of(b))


logaddexp = register(Op(
    name="logaddexp",
    numpy="logaddexp",
    grad_fn_name="LogaddexpBackward0",
    forward=_fresh(np.logaddexp),
    vjp=_logaddexp_vjp,
    sympy=sympy_function("symgrad.symbolic.forms.stable.logaddexp"),  # compiled as np.logaddexp: no overflow
    arity=2,
    domains=(Domain(-3.0, 3.0), Domain(-3.0, 3.0)),
    summary="log(exp(a) + exp(b)), without overflow", **_ELEMENTARY,
))


SINC_SLOPE_SERIES = tuple((2 * k - 1, (-1) ** k * 2 * k * math.pi ** (2 * k) / math.factorial(2 * k + 1))
                          for k in range(1, 7))
"""(power, coefficient) of the Maclaurin series of sinc'(x) up to x^11: the derivative's form
for ``|x| < SINC_SERIES_BELOW`` (JAX's ``_sinc_maclaurin``). At 0 it is 0 (PyTorch's value)
with the right derivatives (sinc''(0) = -pi^2/3, where a constant 0 would give 0); near 0 it
avoids the quotient's cancellation (cos(pi x) - sinc(x) ~ pi^2 x^2 / 3)."""

SINC_SERIES_BELOW = 0.1
"""Below it the series' first omitted term is under 1e-17 of sinc'; above it the quotient
loses at most about 3e-15 to cancellation."""


def sinc_slope_series(x):
    """The series of sinc'(x) (:data:`SINC_SLOPE_SERIES`), in Horner form, for arrays, tensors
    or SymPy expressions."""
    total = 0.0
    for _, c in reversed(SINC_SLOPE_SERIES):
        total = total * x * x + c
    return total * x


def _sinc_vjp(xp, g, ans, x):
    # (cos(pi x) - sinc(x))/x, and near 0 its Maclaurin series.  The branch not taken is
    # computed at x = 1, so its derivatives stay finite there.
    near_zero = xp.abs(x) < SINC_SERIES_BELOW
    safe = xp.where(near_zero, 1.0, x)
    small = xp.where(near_zero, x, 0.0)
    return (g * xp.where(near_zero, sinc_slope_series(small), (xp.cos(safe * np.pi) - xp.sinc(safe)) / safe),)


# PyTorch's and NumPy's normalised sinc, sin(pi x)/(pi x), 1 at x = 0
sinc = _unary(
    "sinc", "SincBackward0", np.sinc,
    vjp=_sinc_vjp,
    # its derivative is 0 at x = 0, as PyTorch's, and its second -pi^2/3 (a Piecewise form's
    # was NaN there: 0 * inf)
    sympy=sympy_function("symgrad.symbolic.forms.stable.sinc"),
    summary="sin(pi x)/(pi x), 1 at 0", **_ELEMENTARY,
    numpy="sinc",
)

silu = _unary(
    "silu", "SiluBackward0", lambda x: x * _sigmoid_forward(x),
    # PyTorch's form: s * (1 + x * (1 - s)) with s = sigmoid(x)
    vjp=lambda xp, g, ans, x: (g * xp.sigmoid(x) * (1 + x * (1 - xp.sigmoid(x))),),
    sympy=lambda sp, x: x * sympy_function("symgrad.symbolic.forms.stable.sigmoid")(sp, x),
    summary="x*sigmoid(x)", **_ELEMENTARY,
)


def _gelu_forward(x, *, approximate="none"):
    x = np.asarray(x)
    if approximate == "tanh":
        return np.asarray(0.5 * x * (1 + np.tanh(_GELU_BETA * (x + _GELU_KAPPA * x * x * x))))
    _check_gelu(approximate)
    return np.asarray(0.5 * x * (1 + _erf(x * _SQRT_HALF)))


def _check_gelu(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu's approximate= is 'none' or 'tanh', got {approximate!r}")


def _gelu_vjp(xp, g, ans, x, *, approximate="none"):
    if approximate == "tanh":  # PyTorch's: 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2)
        t = xp.tanh((x + x * x * x * _GELU_KAPPA) * _GELU_BETA)
        return (g * ((1 + t) * 0.5 + x * 0.5 * (1 - t * t) * _GELU_BETA * (1 + x * x * (3 * _GELU_KAPPA))),)
    _check_gelu(approximate)
    # Phi(x) + x phi(x)
    return (g * ((1 + xp.erf(x * _SQRT_HALF)) * 0.5 + x * xp.exp(x * x * -0.5) * _INV_SQRT_2PI),)


def _gelu_sympy(sp, x, *, approximate="none"):
    if approximate == "tanh":
        return x * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Float(_GELU_KAPPA) * x ** 3))) / 2
    _check_gelu(approximate)
    return x * (1 + sympy_function("symgrad.symbolic.forms.stable.erf")(sp, x / sp.sqrt(2))) / 2


_SQRT_HALF = float(np.sqrt(0.5))
_INV_SQRT_2PI = float(1 / np.sqrt(2 * np.pi))
_GELU_BETA = float(np.sqrt(2 / np.pi))
_GELU_KAPPA = 0.044715

# x Phi(x) with the normal CDF Phi (approximate="none"), or PyTorch's tanh approximation
gelu = register(Op(
    name="gelu",
    grad_fn_name="GeluBackward0",
    forward=_gelu_forward,
    vjp=_gelu_vjp,
    sympy=_gelu_sympy,
    domains=(Domain(-3.0, 3.0),),
    summary="x*Phi(x), Phi the normal CDF (the exact form in formulas)", **_ELEMENTARY,
))


def _elu_forward(x, *, alpha=1.0):
    x = np.asarray(x)
    return np.asarray(np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))))


def _elu_vjp(xp, g, ans, x, *, alpha=1.0):
    # PyTorch: alpha*exp(x) where x <= 0 (so alpha at 0), 1 elsewhere (also at NaN); exp is
    # taken of min(x, 0) so the branch not taken cannot overflow
    negative = x <= 0
    return (xp.where(negative, g * alpha * xp.exp(xp.where(negative, x, 0.0)), g),)


elu = register(Op(
    name="elu",
    grad_fn_name="EluBackward0",
    forward=_elu_forward,
    vjp=_elu_vjp,
    sympy=lambda sp, x, *, alpha=1.0: sp.Piecewise(
        (sympy_number(sp, alpha) * sympy_function("sympy.codegen.cfunctions.expm1")(sp, x), x <= 0), (x, True)),
    domains=(Domain(avoid=(0.0,)),),
    summary="x where x > 0, else exp(x) - 1 (alpha=1 in formulas)", **_ELEMENTARY,
))

leaky_relu = register(Op(
    name="leaky_relu",
    grad_fn_name="LeakyReluBackward0",
    forward=lambda x, *, negative_slope=0.01: np.asarray(np.where(np.asarray(x) > 0, x, np.asarray(x) * negative_slope)),
    # PyTorch: 1 where x > 0, else negative_slope (at 0 and at NaN too)
    vjp=lambda xp, g, ans, x, *, negative_slope=0.01: (xp.where(x > 0, g, g * negative_slope),),
    sympy=lambda sp, x, *, negative_slope=0.01: sp.Piecewise((x, x > 0), (sympy_number(sp, negative_slope) * x, True)),
    domains=(Domain(avoid=(0.0,)),),
    summary="x where x > 0, else 0.01*x (negative_slope=0.01 in formulas)", **_ELEMENTARY,
))


def _softsign_vjp(xp, g, ans, x):
    d = 1 + xp.abs(x)
    return (g / (d * d),)


# PyTorch computes softsign as x / (1 + |x|): its node is DivBackward0
softsign = _unary(
    "softsign", "DivBackward0", lambda x: x / (1 + np.abs(x)),
    vjp=_softsign_vjp,
    sympy=lambda sp, x: x / (1 + sp.Abs(x)),
    summary="x/(1 + abs(x))", **_ELEMENTARY,
)
