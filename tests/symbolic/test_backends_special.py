"""Every operation the C backends translate, at IEEE special values, against NumPy.

The points are ±0, ±inf, NaN, the subnormals 5e-324 (also negative) and 1e-310, the
huge ±1e308 and a few ordinary numbers, alone (unary operations) and in every pair
(binary ones).  Each operation is compiled by ``c_fused`` (arrays) and by ``c_scalar``
(scalar symbols, called once per point) and compared with the NumPy backend evaluating
the same expression over arrays (``math.erf``/``math.erfc`` for ``erf``/``erfc``, which
NumPy lacks):

* **bit for bit** where NumPy's result is IEEE-exact (``+ - * /``, square roots, ``abs``,
  ``floor``, ``ceiling``, ``sign``, powers printed as products, selections, comparisons,
  logic, casts): the same bits, so the sign of every zero too;
* within ``ULPS`` units in the last place where NumPy calls a math library (``exp``,
  ``log``, ``sin``, ``pow``, ...: NumPy's own SIMD code or glibc against glibc's scalar or
  vector functions, libmvec documented to 4 ulp), with infinities equal and zeros of the
  same sign.

NaN equals NaN (any sign or payload).  Tests skip, with the reason, without a C compiler.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.symbolic as S
from symgrad.symbolic.forms.selections import (Cast, Equal, Greater, GreaterEqual, Less, LessEqual, LogicalAnd,
                                          LogicalNot, LogicalOr, Maximum, Minimum, NotEqual, Select, TieStep)
from symgrad.symbolic.forms.stable import sigmoid, softplus
from symgrad.symbolic.core.symbols import ArrayVar

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e-310, 1e308, -1e308, 1.0, -1.0, 0.5, -2.5]
ULPS = 4
"""The tolerance where a math library computes the result (see the module docstring)."""

H = sp.Rational(1, 2)
EXACT = {  # name -> (arity, the expression of x (and y))
    "add": (2, lambda x, y: x + y), "sub": (2, lambda x, y: x - y), "mul": (2, lambda x, y: x * y),
    "div": (2, lambda x, y: x / y), "neg": (1, lambda x: -x), "twice": (1, lambda x: 2 * x),
    "half": (1, lambda x: x / 2), "x*0.5": (1, lambda x: sp.Float(0.5) * x), "3x/7": (1, lambda x: 3 * x / 7),
    "1/x": (1, lambda x: 1 / x), "x**2": (1, lambda x: x ** 2), "x**-2": (1, lambda x: x ** -2),
    "x**2.0": (1, lambda x: x ** sp.Float(2.0)), "x**1.0": (1, lambda x: x ** sp.Float(1.0)),
    "x**0.0": (1, lambda x: sp.Pow(x, sp.Float(0.0), evaluate=False)),
    "x**-1.0": (1, lambda x: x ** sp.Float(-1.0)), "x**-2.0": (1, lambda x: x ** sp.Float(-2.0)),
    "sqrt": (1, lambda x: sp.sqrt(x)), "x**(3/2)": (1, lambda x: x ** (3 * H)), "x**(5/2)": (1, lambda x: x ** (5 * H)),
    "x**(-1/2)": (1, lambda x: x ** -H), "x**(-3/2)": (1, lambda x: x ** (-3 * H)),
    "x**0.5": (1, lambda x: x ** sp.Float(0.5)), "(x*x)**0.5": (1, lambda x: (x * x) ** sp.Float(0.5)),
    "sqrt(x*x)": (1, lambda x: sp.sqrt(x * x)),
    "d sqrt(x*x)": (1, lambda x: sp.Mul(H, x / sp.sqrt(x * x), evaluate=False)),
    "x/y/2": (2, lambda x, y: sp.Mul(H, x / y, evaluate=False)), "2x/y": (2, lambda x, y: 2 * x / y),
    "x/(2y)": (2, lambda x, y: x / (2 * y)), "x/(y*y)": (2, lambda x, y: x / (y * y)),
    "(x+y)/2": (2, lambda x, y: (x + y) / 2), "x/2+y/2": (2, lambda x, y: x / 2 + y / 2),
    "x-y/2": (2, lambda x, y: x - y / 2), "-x+y": (2, lambda x, y: -x + y), "x*y*x": (2, lambda x, y: x * y * x),
    "x+y+x": (2, lambda x, y: sp.Add(x, y, x, evaluate=False)),
    "abs": (1, lambda x: sp.Abs(x)), "floor": (1, lambda x: sp.floor(x)), "ceiling": (1, lambda x: sp.ceiling(x)),
    "sign": (1, lambda x: sp.sign(x)), "DiracDelta": (1, lambda x: sp.DiracDelta(x)),
    "Max": (2, lambda x, y: sp.Max(x, y)), "Min": (2, lambda x, y: sp.Min(x, y)),
    "maximum": (2, lambda x, y: Maximum(x, y)), "minimum": (2, lambda x, y: Minimum(x, y)),
    "tie_step": (2, lambda x, y: TieStep(x, y)),
    "greater": (2, lambda x, y: Greater(x, y)), "greater_equal": (2, lambda x, y: GreaterEqual(x, y)),
    "less": (2, lambda x, y: Less(x, y)), "less_equal": (2, lambda x, y: LessEqual(x, y)),
    "equal": (2, lambda x, y: Equal(x, y)), "not_equal": (2, lambda x, y: NotEqual(x, y)),
    "logical_and": (2, lambda x, y: LogicalAnd(x, y)), "logical_or": (2, lambda x, y: LogicalOr(x, y)),
    "logical_not": (1, lambda x: LogicalNot(x)), "where": (2, lambda x, y: Select(Greater(x, y), x, y)),
    "where(x)": (2, lambda x, y: Select(x, x, y)),
    "Piecewise": (2, lambda x, y: sp.Piecewise((x, sp.And(x > 0, sp.Not(y < 0))), (y, sp.Or(x < -1, y >= 2)),
                                               (x * y, True))),
    "Piecewise >=": (2, lambda x, y: sp.Piecewise((x, x >= y), (y, True))),
    "Piecewise ==": (2, lambda x, y: sp.Piecewise((x, sp.Eq(x, y)), (y, sp.Ne(x, 0)), (0, True))),
    "cast float32": (1, lambda x: Cast.of(x, "float32")), "cast float16": (1, lambda x: Cast.of(x, "float16")),
    "cast float32 * 3": (1, lambda x: Cast.of(x, "float32") * 3), "cast float64": (1, lambda x: Cast.of(x, "float64")),
    "Piecewise <=": (2, lambda x, y: sp.Piecewise((x, x <= y), (y, True))),
    "-pi-y+x": (2, lambda x, y: sp.Add(-sp.pi, -y, x, evaluate=False)),
    "-x/3-y/3+x/3": (2, lambda x, y: sp.Add(-x / 3, -y / 3, x / 3, evaluate=False)),
    "2x-2y*x": (2, lambda x, y: sp.Add(2 * x, -2 * y * x, evaluate=False)),
    "(pi/3)*x": (1, lambda x: sp.Mul(sp.pi / 3, x, evaluate=False)),  # NumPy: pi/3 rounded once
    "(log(2)/7)*x": (1, lambda x: sp.Mul(sp.log(2) / 7, x, evaluate=False)),
    "2*pi+2*x": (1, lambda x: sp.Add(sp.Mul(2, sp.pi, evaluate=False), 2 * x, evaluate=False)),
    "-pi/3+x": (1, lambda x: sp.Add(sp.Mul(-sp.pi, sp.Rational(1, 3), evaluate=False), x, evaluate=False)),
    "x*(3/2)": (1, lambda x: sp.Mul(x, sp.Rational(3, 2), evaluate=False)),  # NumPy: x*3/2, overflows at 1e308
    "2*(x*y)": (2, lambda x, y: sp.Mul(2, sp.Mul(x, y, evaluate=False), evaluate=False)),  # NumPy: 2*x*y
    "y*(x*x)": (2, lambda x, y: sp.Mul(y, sp.Mul(x, x, evaluate=False), evaluate=False)),  # NumPy: y*x*x
    "y+(x+x)": (2, lambda x, y: sp.Add(y, sp.Add(x, x, evaluate=False), evaluate=False)),  # NumPy: y + x + x
    "sum of 42": (2, lambda x, y: sp.Add(x, *[y, -y] * 15, y, *[x, -x] * 5, evaluate=False)),  # 2 chunks of 32
    "product of 40": (2, lambda x, y: sp.Mul(*[x, y, 1 / y, x] * 10, evaluate=False)),
}
LIBRARY = {  # name -> (arity, the expression), computed by a math library
    **{f.__name__: (1, f) for f in (sp.sin, sp.cos, sp.tan, sp.exp, sp.log, sp.tanh, sp.sinh, sp.cosh, sp.asin,
                                    sp.acos, sp.atan, sp.asinh, sp.acosh, sp.atanh)},
    "atan2": (2, lambda x, y: sp.atan2(x, y)), "pow": (2, lambda x, y: x ** y),
    "x**3": (1, lambda x: x ** 3), "x**-3": (1, lambda x: x ** -3), "x**(1/3)": (1, lambda x: x ** sp.Rational(1, 3)),
    "x**1.5": (1, lambda x: x ** sp.Float(1.5)), "x**-0.5": (1, lambda x: x ** sp.Float(-0.5)),
    "x**2.5": (1, lambda x: x ** sp.Float(2.5)), "x**0.3": (1, lambda x: x ** sp.Float(0.3)),
    "(x*x)**1.5": (1, lambda x: (x * x) ** sp.Float(1.5)), "d x**1.5": (1, lambda x: 1.5 * x ** sp.Float(0.5)),
    "sigmoid": (1, lambda x: sigmoid(x)), "softplus": (1, lambda x: softplus(x)),
    "pi*x": (1, lambda x: sp.pi * x), "log(2)*x": (1, lambda x: sp.log(2) * x),
}
ERF = {"erf": (sp.erf, math.erf), "erfc": (sp.erfc, math.erfc)}


def points(arity: int) -> list[np.ndarray]:
    if arity == 1:
        return [np.array(SPECIAL)]
    x, y = np.meshgrid(SPECIAL, SPECIAL)
    return [x.ravel(), y.ravel()]


def evaluate(backend: str, build, arity: int) -> tuple[np.ndarray, str]:
    """``build`` compiled by ``backend`` at every point: ``(values as float64, source)``."""
    values = points(arity)
    if backend == "c_scalar":  # 0-d array symbols: SymPy orders their arguments as the reference's
        symbols = [ArrayVar(n, ()) for n in "xy"[:arity]]
        f = S.compile_exprs(symbols, [build(*symbols)], backend=backend, cache=False)
        with np.errstate(all="ignore"):
            got = [f.call_packed(np.array(point))[0] for point in zip(*values)]
        return np.array(got, dtype=np.float64), f.source
    symbols = [ArrayVar(n, (len(values[0]),)) for n in "xy"[:arity]]
    f = S.compile_exprs(symbols, [build(*symbols)], backend=backend, cache=False)
    with np.errstate(all="ignore"):
        return np.asarray(f(*values).out0, dtype=np.float64), f.source


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between float64 arrays (-0.0 and 0.0 are 0 apart)."""
    def ordered(v):
        bits = v.view(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFFFFFFFFFF), bits).astype(object)
    return np.abs(ordered(a) - ordered(b))


def assert_same(got: np.ndarray, want: np.ndarray, arity: int, ulp: int, source: str, where: list | None = None) -> None:
    """``got`` equal to ``want`` (bit for bit, or within ``ulp``), NaN where it is NaN;
    a failure names the points (``where``: by default those of :func:`points`)."""
    nan = np.isnan(want)
    equal = (np.isnan(got) & nan) | (got.view(np.int64) == want.view(np.int64))
    if ulp:
        finite = ~nan & ~np.isnan(got) & np.isfinite(want) & np.isfinite(got)
        same_zero = (want != 0) | (got != 0) | (np.signbit(want) == np.signbit(got))
        equal |= finite & same_zero & (ulps(got, want) <= ulp).astype(bool)
    bad = [i for i in range(len(want)) if not equal[i]]
    where = list(zip(*points(arity))) if where is None else where
    assert not bad, "\n".join([f"at {where[i]}: got {got[i]!r}, NumPy {want[i]!r}" for i in bad[:12]]
                              + [f"({len(bad)} points differ)", source[-1500:]])


@pytest.mark.parametrize("backend", ["c_fused", "c_scalar"])
@pytest.mark.parametrize("case", sorted(EXACT))
def test_exact_operations_agree_bit_for_bit(cc, backend, case):
    arity, build = EXACT[case]
    got, source = evaluate(backend, build, arity)
    want, _ = evaluate("numpy", build, arity)
    assert_same(got, want, arity, 0, source)


@pytest.mark.parametrize("backend", ["c_fused", "c_scalar"])
@pytest.mark.parametrize("case", sorted(LIBRARY))
def test_library_functions_agree_within_ulps(cc, backend, case):
    arity, build = LIBRARY[case]
    got, source = evaluate(backend, build, arity)
    want, _ = evaluate("numpy", build, arity)
    assert_same(got, want, arity, ULPS, source)


@pytest.mark.parametrize("backend", ["c_fused", "c_scalar"])
@pytest.mark.parametrize("case", sorted(ERF))
def test_error_functions_agree_with_the_math_module(cc, backend, case):
    function, reference = ERF[case]
    got, source = evaluate(backend, function, 1)
    assert_same(got, np.array([reference(v) for v in SPECIAL]), 1, ULPS, source)


# ============================================================================ through the transforms
PROGRAMS = {  # name -> (the function of a tensor, whether NumPy's result is IEEE-exact)
    "x**1.5": (lambda x: x ** 1.5, False), "x**0.5": (lambda x: x ** 0.5, True),
    "sqrt(x*x)": (lambda x: symgrad.sqrt(x * x), True), "x**2.5": (lambda x: x ** 2.5, False),
    "x*x/x": (lambda x: x * x / x, True), "x/(x*x+1)": (lambda x: x / (x * x + 1), True),
    "abs": (lambda x: symgrad.abs(x), True), "relu": (lambda x: symgrad.relu(x), True),
    "clamp": (lambda x: symgrad.clamp(x, -1.0, 1.0), True), "maximum": (lambda x: symgrad.maximum(x, -x), True),
    "sigmoid": (lambda x: symgrad.sigmoid(x), False), "exp(-x*x)/2": (lambda x: symgrad.exp(-x * x) / 2, False),
}


@pytest.mark.parametrize("backend", ["c_fused", "c_scalar"])
@pytest.mark.parametrize("case", sorted(PROGRAMS))
def test_gradients_agree_at_special_values(cc, backend, case):
    """The report's cases (the gradient of ``x**1.5`` at -inf and -0.0, of ``sqrt(x*x)`` at
    5e-324) and their siblings through ``grad``: on arrays (``c_fused``) and one scalar at
    a time (``c_scalar``), against the NumPy backend over the array."""
    function, exact = PROGRAMS[case]
    values = np.array(SPECIAL)
    with np.errstate(all="ignore"):
        want = S.grad(lambda x: function(x).sum())(values)
        native = S.grad(lambda x: function(x).sum(), backend=backend)
        if backend == "c_fused":
            got = native(values)
        else:
            got = np.array([float(native(v)) for v in values])
    assert_same(np.asarray(got, dtype=np.float64), want, 1, 0 if exact else ULPS, native.source)


# ============================================================================ random arithmetic
def random_expression(seed: int, x, y) -> sp.Expr:
    """A random expression of IEEE-exact operations (nested sums and products, evaluated by
    SymPy or not, Rational, Integer and Float constants, ``pi``, squares, square roots,
    ``abs``, ``maximum``, ``where``), four levels deep; real and finite as an expression."""
    rng = np.random.default_rng(seed)
    leaves = [x, y, x, y, sp.Integer(2), sp.Integer(-1), sp.Rational(1, 2), sp.Rational(-3, 7), sp.Float(0.1), sp.pi]
    ops = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a ** 2,
           lambda a, b: sp.sqrt(a * a), lambda a, b: sp.Abs(a), lambda a, b: Maximum(a, b), lambda a, b: -a,
           lambda a, b: a / 2, lambda a, b: Select(Greater(a, b), a, b),
           lambda a, b: sp.Add(a, b, a, evaluate=False), lambda a, b: sp.Mul(sp.Rational(1, 2), a, b, evaluate=False),
           lambda a, b: sp.Mul(a, sp.Rational(3, 2), b, evaluate=False)]

    def build(depth):
        if depth == 0:
            return leaves[rng.integers(len(leaves))]
        return ops[rng.integers(len(ops))](build(depth - 1), build(depth - 1))

    while True:
        expr = build(4)
        if expr.free_symbols and not expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I):
            return expr


@pytest.mark.parametrize("backend", ["c_fused", "c_scalar"])
@pytest.mark.parametrize("seed", range(20))
def test_random_exact_expressions_agree_bit_for_bit(cc, backend, seed):
    """The whole class, beyond the rows above: the C code evaluates arithmetic in the NumPy
    backend's order and grouping, so no overflow, underflow or rounding differs."""
    build = lambda x, y: random_expression(seed, x, y)  # noqa: E731
    got, source = evaluate(backend, build, 2)
    want, _ = evaluate("numpy", build, 2)
    assert_same(got, want, 2, 0, source)


# ============================================================================ slices and plans
def _slice(x, index):
    from symgrad.symbolic.forms.structural import Getitem

    return Getitem.of(x, index=index)


SHIFTED = {  # name -> (arity, the expression of 1-D x (and y)): slices read at shifted points of one loop
    "x[1:]-x[:-1]": (1, lambda x: _slice(x, (slice(1, None),)) - _slice(x, (slice(None, -1),))),
    "x[::2]*y[1::2]": (2, lambda x, y: _slice(x, (slice(None, None, 2),)) * _slice(y, (slice(1, None, 2),))),
    "x[::-1]/y": (2, lambda x, y: _slice(x, (slice(None, None, -1),)) / y),
    "x[3]*y+x[-1]": (2, lambda x, y: _slice(x, (3,)) * y + _slice(x, (-1,))),
    "maximum(x[2:],x[:-2])": (1, lambda x: Maximum(_slice(x, (slice(2, None),)), _slice(x, (slice(None, -2),)))),
}


@pytest.mark.parametrize("backend", ["c", "c_fused"])
@pytest.mark.parametrize("case", sorted(SHIFTED))
def test_slices_agree_bit_for_bit(cc, backend, case):
    arity, build = SHIFTED[case]
    values = points(arity)
    symbols = [ArrayVar(n, (len(values[0]),)) for n in "xy"[:arity]]
    got = S.compile_exprs(symbols, [build(*symbols)], backend=backend, cache=False)
    want = S.compile_exprs(symbols, [build(*symbols)], cache=False)
    with np.errstate(all="ignore"):
        a, b = np.asarray(got(*values).out0, np.float64), np.asarray(want(*values).out0, np.float64)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(a[~np.isnan(a)].view(np.int64),
                                                                       b[~np.isnan(b)].view(np.int64)), got.source


SHIFTED_PROGRAMS = {  # name -> the function of a 1-D tensor; gradients through slices' adjoints (index_put)
    "rosenbrock": lambda x: 100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2,
    "second difference": lambda x: (x[2:] - 2 * x[1:-1] + x[:-2]) ** 2,
    "x[1:]*x[:-1]": lambda x: x[1:] * x[:-1],
    "abs(x[::2])": lambda x: symgrad.abs(x[::2]) * x[1::2],
    "x[0]*x": lambda x: x[0] * x + x[-1],
    "relu(x[1:])-x[:-1]": lambda x: symgrad.relu(x[1:]) - x[:-1] / 2,
    "rows of a matrix": lambda x: x.reshape(7, 2)[1:] * x.reshape(7, 2)[:-1] - x.reshape(7, 2)[3],
}


@pytest.mark.parametrize("case", sorted(SHIFTED_PROGRAMS))
def test_slice_gradients_agree_bit_for_bit(cc, case):
    """The adjoints of slices (zeros with the gradient added at the slice, which the NumPy
    backend accumulates in place: ``-0.0`` becomes ``0.0`` there) at every special value,
    through ``grad`` with ``backend="c"``: the same bits as the NumPy backend."""
    function = SHIFTED_PROGRAMS[case]
    values = np.array(SPECIAL)
    with np.errstate(all="ignore"):
        want = S.grad(lambda x: function(x).sum())(values)
        native = S.grad(lambda x: function(x).sum(), backend="c")
        got = native(values)
    assert_same(np.asarray(got, dtype=np.float64), want, 1, 0, native.source)


PLANNED_PROGRAMS = {  # name -> the function of a (2, 7) tensor: C loops around NumPy pieces
    "tanh(x @ x.T)": lambda x: symgrad.tanh(x @ x.T),
    "softmax": lambda x: symgrad.softmax(x, dim=1) * x,
    "x / sum over rows": lambda x: x / (x * x).sum(dim=1, keepdim=True),
    "relu(x)[:, 1:] * x[:, :-1]": lambda x: symgrad.relu(x)[:, 1:] * x[:, :-1],
}


@pytest.mark.parametrize("case", sorted(PLANNED_PROGRAMS))
def test_planned_programs_agree_at_special_values(cc, case):
    """Programs ``backend="c"`` evaluates as a plan of C loops (and NumPy steps), at the special
    values (each row of x a permutation of them): the values and gradients the NumPy backend
    gives, NaN where it has NaN; the C loops' arithmetic is exact and NumPy computes the
    rest, so within ``ULPS`` (the softmax's ``exp`` runs in NumPy on both sides)."""
    function = PLANNED_PROGRAMS[case]
    x = np.stack([np.array(SPECIAL)[:7], np.array(SPECIAL)[7:]])
    with np.errstate(all="ignore"):
        want_value, want_grad = S.value_and_grad(lambda x: function(x).sum())(x)
        native = S.value_and_grad(lambda x: function(x).sum(), backend="c")
        got_value, got_grad = native(x)
    assert native.compiled.backend == "c"
    assert_same(np.asarray(got_grad, dtype=np.float64).ravel(), np.asarray(want_grad).ravel(), 1, ULPS, native.source)
    assert np.isnan(got_value) == np.isnan(want_value)


def _structural(name: str, *args, **attrs):
    return S.structural_class(name).of(*args, **attrs)


AXIS_EXTREMES = {  # name -> (output of a (7, 14) array t, ulps): C loop nests along one axis, no NumPy step
    "max along rows": (lambda t: _structural("max", t, dim=1, keepdim=False), 0),
    "max along columns, kept": (lambda t: _structural("max", t * 2, dim=0, keepdim=True), 0),
    "amin along rows": (lambda t: _structural("amin", -t, dim=1, keepdim=False), 0),
    "logsumexp along rows": (lambda t: _structural("logsumexp", t, dim=1, keepdim=False), ULPS),
    "logsumexp along columns, kept": (lambda t: _structural("logsumexp", t / 2, dim=0, keepdim=True), ULPS),
    "softmax along rows": (lambda t: _structural("softmax", t, dim=1), ULPS),
    "softmax along columns": (lambda t: _structural("softmax", t - 1, dim=0), ULPS),
}


@pytest.mark.parametrize("case", sorted(AXIS_EXTREMES))
def test_max_logsumexp_softmax_along_an_axis_at_special_values(cc, case):
    """``max``/``amin`` (bit for bit), ``logsumexp`` and ``softmax`` (within ``ULPS``: ``exp``
    and ``log`` are libmvec's against NumPy's, sums in another order along the last axis)
    along either axis of an array whose rows and columns mix the special values (NaN in
    some, infinities, zeros of both signs, subnormals, huge numbers), as C loop nests: the
    NumPy backend's values, infinities and NaN in the same places."""
    build, ulp = AXIS_EXTREMES[case]
    t = ArrayVar("t", (7, 14))
    values = np.array([np.roll(SPECIAL, k) for k in range(7)])
    values[:, 13] = [np.inf] * 7  # a column without NaN
    values[3] = np.resize([-0.0, 0.0, 1.0, -1e308], 14)  # a row without NaN or infinities
    values[5] = np.resize([-np.inf, -1.0], 14)  # a row whose maximum is finite beside -inf
    values[6] = np.resize([-0.0, 0.0, -1.0, 0.0, -0.0], 14)  # extremes tied at zeros of both signs
    native = S.compile_exprs([t], [build(t)], backend="c", cache=False)
    reference = S.compile_exprs([t], [build(t)], cache=False)
    assert [step.kind for step in native.steps] == ["reduce"]
    with np.errstate(all="ignore"):
        got, want = native(values).out0, reference(values).out0
    assert got.shape == want.shape
    assert_same(np.asarray(got, dtype=np.float64).ravel(), np.asarray(want, dtype=np.float64).ravel(), 1, ulp,
                native.source, where=list(np.ndindex(got.shape)))
