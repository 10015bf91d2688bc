"""NaN and inf: values and gradients propagate them exactly as NumPy evaluating the chain
rule would -- on both engines, never replaced by a number -- and ``detect_anomaly``
names the op (and the line of user code) where one first appears in backward."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.check import AnomalyError, detect_anomaly

# every input is tried at these points: zeros of both signs, ordinary numbers, huge and
# tiny magnitudes, both infinities and NaN
POINTS = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -0.3, 1000.0, -1000.0, 1e-300, -1e-300,
                   np.inf, -np.inf, np.nan])
NAN, INF = float("nan"), float("inf")


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


# (id, program on a tensor, NumPy value, NumPy derivative) -- the derivative formula is
# what a NumPy chain rule evaluates (PyTorch's backward formulas), including its NaNs.
PRIMITIVES = [
    ("exp", lambda x: x.exp(), np.exp, np.exp),
    ("log", lambda x: x.log(), np.log, lambda x: 1 / x),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    ("sin", lambda x: x.sin(), np.sin, np.cos),
    ("cos", lambda x: x.cos(), np.cos, lambda x: -np.sin(x)),
    ("tanh", lambda x: x.tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    ("sigmoid", lambda x: x.sigmoid(), _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    ("softplus", lambda x: x.softplus(), lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))),
     lambda x: np.where(x > 20, 1.0, _sigmoid(x))),
    # PyTorch zeroes relu's gradient where x <= 0, so it passes it at NaN
    ("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), lambda x: np.where(x <= 0, 0.0, 1.0)),
    ("abs", lambda x: x.abs(), np.abs, np.sign),
    ("neg", lambda x: -x, np.negative, lambda x: -np.ones_like(x)),
    ("square", lambda x: x ** 2, np.square, lambda x: 2 * x),
    ("cube", lambda x: x ** 3, lambda x: x ** 3, lambda x: 3 * x ** 2),
    ("reciprocal", lambda x: 1 / x, lambda x: 1 / x, lambda x: -1 / x ** 2),
    ("times-3", lambda x: x * 3.0, lambda x: x * 3.0, lambda x: np.full_like(x, 3.0)),
    ("times-inf", lambda x: x * INF, lambda x: x * INF, lambda x: np.full_like(x, INF)),
    ("times-tensor", lambda x: x * symgrad.tensor(POINTS[::-1].copy()), lambda x: x * POINTS[::-1],
     lambda x: POINTS[::-1].copy()),
    # PyTorch zeroes maximum's gradient where x loses (x < 0.5), so it passes it at NaN
    ("maximum", lambda x: x.maximum(symgrad.tensor(np.full(len(POINTS), 0.5))), lambda x: np.maximum(x, 0.5),
     lambda x: np.where(x == 0.5, 0.5, np.where(x < 0.5, 0.0, 1.0))),
    ("where", lambda x: symgrad.where(x > 0, x * 2, x * -3), lambda x: np.where(x > 0, 2 * x, -3 * x),
     lambda x: np.where(x > 0, 2.0, -3.0)),
]

# Python-number operands SymPy cannot hold as numbers -- NaN and the infinities (x + oo
# would fold to oo), and a zero that multiplies or divides (x*0 -> 0, 0/x -> 0, x/0 ->
# zoo, sqrt(x*0 - 1) -> I, -0.0 -> 0) -- are inputs of the symbolic engine's compiled
# code, read at call time.
CONSTANT_CASES = [
    ("plus-inf", lambda x: x + INF, lambda x: x + INF, lambda x: np.ones_like(x)),
    ("minus-inf", lambda x: x - INF, lambda x: x - INF, lambda x: np.ones_like(x)),
    ("plus-minus-inf", lambda x: x + -INF, lambda x: x + -INF, lambda x: np.ones_like(x)),
    ("plus-nan", lambda x: x + NAN, lambda x: x + NAN, lambda x: np.ones_like(x)),
    ("nan-minus", lambda x: NAN - x, lambda x: NAN - x, lambda x: -np.ones_like(x)),
    ("times-nan", lambda x: x * NAN, lambda x: x * NAN, lambda x: np.full_like(x, NAN)),
    ("over-nan", lambda x: x / NAN, lambda x: x / NAN, lambda x: np.full_like(x, NAN)),
    ("inf-over", lambda x: INF / x, lambda x: INF / x, lambda x: -INF / x ** 2),
    ("inf-sum-times-nan-sum", lambda x: (x + INF) * (x - NAN), lambda x: (x + INF) * (x - NAN),
     lambda x: (x - NAN) + (x + INF)),
    ("over-zero", lambda x: x / 0.0, lambda x: x / 0.0, lambda x: np.full_like(x, INF)),
    ("over-minus-zero", lambda x: x / -0.0, lambda x: x / -0.0, lambda x: np.full_like(x, -INF)),
    ("over-int-zero", lambda x: x / 0, lambda x: x / 0.0, lambda x: np.full_like(x, INF)),
    ("zero-over", lambda x: 0.0 / x, lambda x: 0.0 / x, lambda x: -0.0 / x ** 2),
    ("times-inf-times-zero", lambda x: x * INF * 0.0, lambda x: x * INF * 0.0, lambda x: np.full_like(x, INF * 0.0)),
    ("times-minus-zero", lambda x: x * -0.0, lambda x: x * -0.0, lambda x: np.full_like(x, -0.0)),
    ("sqrt-of-negative-constant", lambda x: (x * 0.0 - 1.0).sqrt() * x, lambda x: np.sqrt(x * 0.0 - 1.0) * x,
     lambda x: 0.5 / np.sqrt(x * 0.0 - 1.0) * 0.0 * x + np.sqrt(x * 0.0 - 1.0)),
]

# clamp passes the gradient where min <= x <= max (bounds included, not at NaN), as the
# tape and PyTorch do; its value at NaN is NaN.
CLAMP_CASES = [
    ("clamp", lambda x: x.clamp(-1.0, 1.0), lambda x: np.clip(x, -1.0, 1.0),
     lambda x: ((x >= -1.0) & (x <= 1.0)) * 1.0),
    ("clamp-min", lambda x: x.clamp(min=-1.0), lambda x: np.clip(x, -1.0, None), lambda x: (x >= -1.0) * 1.0),
    ("clamp-max", lambda x: x.clamp(max=2.5), lambda x: np.clip(x, None, 2.5), lambda x: (x <= 2.5) * 1.0),
]

# Forms SymPy would simplify (x/x -> 1, sqrt(x**2) -> Abs(x), exp(x)/exp(x) -> 1,
# log(exp(x)) -> x, x*x**-1 -> 1 in an adjoint): the engines differentiate the graph as
# recorded, so where NumPy's chain rule meets 0/0, inf/inf or inf*0 they give NaN too.
SIMPLIFIED_CASES = [
    ("x-over-x", lambda x: x / x, lambda x: x / x, lambda x: 1 / x - x / x ** 2),
    ("sqrt-of-square", lambda x: (x * x).sqrt(), lambda x: np.sqrt(x * x), lambda x: 0.5 / np.sqrt(x * x) * 2 * x),
    ("exp-over-exp", lambda x: x.exp() / x.exp(), lambda x: np.exp(x) / np.exp(x),
     lambda x: np.exp(x) / np.exp(x) - np.exp(x) * np.exp(x) / np.exp(x) ** 2),
    ("log-of-exp", lambda x: x.exp().log(), lambda x: np.log(np.exp(x)), lambda x: 1 / np.exp(x) * np.exp(x)),
    # (x*zero)**-2 * zero -> 1/(x**2*zero): -inf where the chain rule's -inf*0 is nan
    ("one-over-times-zero", lambda x: 1.0 / (x * 0.0), lambda x: 1.0 / (x * 0.0),
     lambda x: -1.0 / (x * 0.0) ** 2 * 0.0),
    ("x-minus-x", lambda x: x - x, lambda x: x - x, lambda x: np.zeros_like(x)),
    ("log-times-x", lambda x: x.log() * x, lambda x: np.log(x) * x, lambda x: np.log(x) + x * (1 / x)),
    ("x-squared-over-x", lambda x: x * x / x, lambda x: x * x / x, lambda x: 2 * x / x - x * x / x ** 2),
]

# NumPy's power and sqrt differ at -0.0 and -inf: (-0.0)**-0.5 = +inf, 1/sqrt(-0.0) = -inf;
# (-inf)**-0.5 = 0, 1/sqrt(-inf) = nan.  The tape (like PyTorch) uses numpy.power, and so
# does the symbolic engine's code for a Float exponent unless the base is never negative;
# so the references call numpy.power too (before NumPy 2.3 the operator ``a ** 0.5`` took
# a sqrt shortcut that numpy.power did not; from 2.3 both agree).
POW_CASES = [
    ("pow-half", lambda x: x ** 0.5, lambda x: np.power(x, 0.5), lambda x: 0.5 * np.power(x, -0.5)),
    ("pow-one-and-a-half", lambda x: x ** 1.5, lambda x: np.power(x, 1.5), lambda x: 1.5 * np.power(x, 0.5)),
    ("pow-minus-half", lambda x: x ** -0.5, lambda x: np.power(x, -0.5), lambda x: -0.5 * np.power(x, -1.5)),
    ("pow-half-of-a-square-plus-one", lambda x: (x * x + 1.0) ** 0.5, lambda x: np.power(x * x + 1.0, 0.5),
     lambda x: 0.5 * np.power(x * x + 1.0, -0.5) * 2 * x),
]


# d/db a**b is 0 where a == 0 and b >= 0 (PyTorch's rule, not 0 * log 0 = nan), on both
# engines, for a constant 0 base too (whose log is -inf for b < 0).
ZERO_BASE_CASES = [
    ("zero-to-the-x", lambda x: 0.0 ** x, lambda x: 0.0 ** x, lambda x: np.where(x >= 0, 0.0, 0.0 ** x * np.log(0.0))),
    ("zeros-tensor-to-the-x", lambda x: symgrad.tensor(np.zeros(len(POINTS))) ** x, lambda x: 0.0 ** x,
     lambda x: np.where(x >= 0, 0.0, 0.0 ** x * np.log(0.0))),
    ("x-to-the-zeros-tensor", lambda x: x ** symgrad.tensor(np.zeros(len(POINTS))), lambda x: x ** 0.0,
     lambda x: np.zeros_like(x)),
]


def _cases():
    for case in PRIMITIVES + CONSTANT_CASES + CLAMP_CASES + POW_CASES + ZERO_BASE_CASES + SIMPLIFIED_CASES:
        yield pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize("program, value, derivative", list(_cases()))
def test_nan_and_inf_propagate_as_numpy_would(engine, program, value, derivative, figures):
    weights = np.linspace(0.5, 2.0, len(POINTS))
    x = symgrad.tensor(POINTS, requires_grad=True)
    with np.errstate(all="ignore"):
        y = program(x)
        y.backward(gradient=symgrad.tensor(weights))
        expected_value = value(POINTS)
        expected_grad = weights * derivative(POINTS)
    np.testing.assert_allclose(y.detach().numpy(), expected_value, rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-12, equal_nan=True)
    figures.add("non-finite cases (program x engine)", 1)


# Constants that are inputs of the compiled code are still part of its structure key:
# programs that differ only in such a constant (or its sign, or its dtype) never share
# code, and a program seen before is a cache hit.  (program, NumPy derivative)
KEYED_CONSTANTS = [(f"x * {c!r}", lambda x, c=c: x * c, lambda x, c=c: np.full_like(x, c))
                   for c in (INF, -INF, NAN, 0.0, -0.0, 1.0)]
KEYED_CONSTANTS += [(f"x / {c!r}", lambda x, c=c: x / c, lambda x, c=c: np.full_like(x, 1.0) / c)
                    for c in (0.0, -0.0, INF, 2.0)]
KEYED_CONSTANTS += [(f"(x + {c!r}) * x", lambda x, c=c: (x + c) * x, lambda x, c=c: 2 * x + c)
                    for c in (INF, NAN, 1.0)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nonfinite_and_zero_constants_keep_their_own_compiled_code(dtype, rng):
    from symgrad.symbolic import compile_cache_info

    symgrad.compile_cache_clear()
    points = np.concatenate([POINTS, rng.normal(size=5)]).astype(dtype)
    terms = np.where(np.isfinite(points), 2 * np.abs(points) + 1, 0.0)  # the size of the terms a gradient adds
    for round_ in range(2):
        for name, program, derivative in KEYED_CONSTANTS:
            x = symgrad.tensor(points, requires_grad=True)
            with symgrad.backward_engine("symbolic"), np.errstate(all="ignore"):
                program(x).sum().backward()
                expected = derivative(points)
            assert x.grad.dtype == dtype, name
            # the engine adds x + (x + c) where NumPy computes 2*x + c: their rounding differs by a
            # few ulps of the terms, which is far more than rtol where they cancel (x near -c/2)
            got = x.grad.numpy()
            with np.errstate(invalid="ignore"):
                close = np.isclose(got, expected, rtol=1e-6, atol=0, equal_nan=True) | (
                    np.abs(got - expected) <= 4 * np.finfo(dtype).eps * terms)
            assert close.all(), f"{name}: at {points[~close]} the gradient is {got[~close]}, NumPy's {expected[~close]}"
            zeros = expected == 0  # a zero gradient has NumPy's sign too (x * -0.0 gives -0.0)
            assert (np.signbit(x.grad.numpy()[zeros]) == np.signbit(expected[zeros])).all(), name
        assert compile_cache_info().misses == len(KEYED_CONSTANTS), round_


# The same constants through the functional transforms (the value is the compiled SymPy
# form's, not the tape's) and through create_graph=True (the closed forms evaluated with
# tensor ops), against NumPy.  (id, program, NumPy value, NumPy derivative)
TRANSFORM_CASES = [
    ("clamp", lambda x: x.clamp(-1.0, 1.0), lambda x: np.clip(x, -1.0, 1.0),
     lambda x: ((x >= -1.0) & (x <= 1.0)) * 1.0),
    ("clamp-min", lambda x: x.clamp(min=0.5), lambda x: np.clip(x, 0.5, None), lambda x: (x >= 0.5) * 1.0),
    ("plus-inf-times-x", lambda x: (x + INF) * x, lambda x: (x + INF) * x, lambda x: 2 * x + INF),
    ("over-zero-plus-nan", lambda x: x / 0.0 + NAN, lambda x: x / 0.0 + NAN, lambda x: np.full_like(x, INF)),
    ("minus-zero-over", lambda x: -0.0 / x, lambda x: -0.0 / x, lambda x: 0.0 / x ** 2),
]


@pytest.mark.parametrize("program, value, derivative", [c[1:] for c in TRANSFORM_CASES],
                         ids=[c[0] for c in TRANSFORM_CASES])
def test_transforms_and_create_graph_see_the_same_constants(program, value, derivative):
    weights = np.linspace(0.5, 2.0, len(POINTS))
    with np.errstate(all="ignore"):
        expected_value, expected_grad = value(POINTS), derivative(POINTS)
        got_value, got_grad = symgrad.value_and_grad(lambda x: (program(x) * weights).sum())(POINTS)
        np.testing.assert_allclose(got_value, np.sum(expected_value * weights), equal_nan=True)
        np.testing.assert_allclose(got_grad, weights * expected_grad, rtol=1e-12, equal_nan=True)
        vjp_value, pull_back = symgrad.vjp(program, POINTS)
        np.testing.assert_allclose(vjp_value, expected_value, equal_nan=True)
        np.testing.assert_allclose(pull_back(weights)[0], weights * expected_grad, rtol=1e-12, equal_nan=True)
        x = symgrad.tensor(POINTS, requires_grad=True)
        with symgrad.backward_engine("symbolic"):
            (grad,) = symgrad.autograd.grad((program(x) * symgrad.tensor(weights)).sum(), [x], create_graph=True)
    np.testing.assert_allclose(grad.detach().numpy(), weights * expected_grad, rtol=1e-12, equal_nan=True)


# An inf or NaN *upstream gradient*: where an op's derivative is a 0/1 selection, PyTorch
# selects (where, masked_fill) and gives an exact 0 outside it, never inf*0 = NaN; both
# engines must too.  Every x is paired with every g.  (NaN inputs are left out: PyTorch's
# maximum passes g at x = NaN and its abs gives 0 there; symgrad's follow NumPy, above.)
UPSTREAM_X = np.repeat([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, INF, -INF], 4)
UPSTREAM_G = np.tile([INF, -INF, NAN, 1.5], 9)


def _lib(x):
    torch = pytest.importorskip("torch")
    return torch if isinstance(x, torch.Tensor) else symgrad


def _like(x, values):
    return _lib(x).tensor(np.resize(values, len(UPSTREAM_X)))


UPSTREAM_CASES = [
    ("relu", lambda x: x.relu()),
    ("clamp", lambda x: x.clamp(-1.0, 1.0)),
    ("clamp-min", lambda x: x.clamp(min=0.0)),
    ("where", lambda x: _lib(x).where(x > 0, x, x * -2.0)),
    ("pow-zero", lambda x: x ** 0),
    ("abs", lambda x: x.abs()),
    ("times-zero", lambda x: x * 0.0),
    # maximum/minimum select g (half of it at a tie); pow's d/da is 0 at exponent 0
    ("maximum", lambda x: x.maximum(_like(x, [0.5]))),
    ("minimum", lambda x: x.minimum(_like(x, [0.5]))),
    ("pow-tensor-exponent", lambda x: x ** _like(x, [0.0, 2.0])),
]


@pytest.mark.parametrize("program", [case[1] for case in UPSTREAM_CASES], ids=[case[0] for case in UPSTREAM_CASES])
def test_nonfinite_upstream_gradients_select_as_torch_does(engine, program, figures):
    torch = pytest.importorskip("torch")
    reference = torch.tensor(UPSTREAM_X, requires_grad=True)
    program(reference).backward(torch.tensor(UPSTREAM_G))
    x = symgrad.tensor(UPSTREAM_X, requires_grad=True)
    with np.errstate(all="ignore"):
        program(x).backward(symgrad.tensor(UPSTREAM_G))
    np.testing.assert_array_equal(x.grad.numpy(), reference.grad.numpy())  # NaN where torch has NaN
    figures.add("non-finite upstream gradients (program x engine)", 1)


def test_exponent_gradient_at_a_zero_base_selects_the_upstream_gradient(engine):
    """``d/db 0**b`` is 0 for ``b >= 0``: symgrad selects it, so an inf or NaN upstream
    gradient gives an exact 0 there (PyTorch multiplies g by that 0 and gives NaN); for
    ``b < 0`` it is ``g * inf * log(0)``, as NumPy's chain rule computes it."""
    with np.errstate(all="ignore"):
        x = symgrad.tensor(UPSTREAM_X, requires_grad=True)
        (symgrad.tensor(np.zeros(len(UPSTREAM_X))) ** x).backward(symgrad.tensor(UPSTREAM_G))
        expected = np.where(UPSTREAM_X >= 0, 0.0, UPSTREAM_G * 0.0 ** UPSTREAM_X * np.log(0.0))
    np.testing.assert_array_equal(x.grad.numpy(), expected)


# The chain rule multiplies the numbers of a product's adjoint into one coefficient,
# exactly; one beyond float64 (x*1e308*10 -> 1e309, x*1e-200*1e-200 -> 1e-400) would print
# as inf or 0, where NumPy, op by op, gives other numbers (1e-400*x is 0 for x = 1e300,
# NumPy's 1e-100).  The symbolic engine refuses such code; the tape computes.  (id,
# program, NumPy's chain rule for an upstream gradient of ones, op by op)
FOLDED_BEYOND_FLOAT64 = [
    ("overflow", lambda x: x * 1e308 * 10.0, lambda x: np.ones_like(x) * 10.0 * 1e308),
    ("underflow", lambda x: x * 1e-200 * 1e-200, lambda x: np.ones_like(x) * 1e-200 * 1e-200),
]


@pytest.mark.parametrize("program, derivative", [c[1:] for c in FOLDED_BEYOND_FLOAT64],
                         ids=[c[0] for c in FOLDED_BEYOND_FLOAT64])
def test_constants_folded_beyond_float64_fail_loudly_on_the_symbolic_engine(program, derivative):
    points = np.array([0.0, 1.0, -1.0, 1e300])
    x = symgrad.tensor(points, requires_grad=True)
    with np.errstate(all="ignore"):
        with symgrad.backward_engine("symbolic"), pytest.raises(OverflowError, match="float64 cannot hold"):
            program(x).sum().backward()
        assert x.grad is None
        with symgrad.backward_engine("tape"):
            program(x).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), derivative(points))


def test_numbers_of_different_nodes_are_not_folded_together(engine):
    """``x**1000 * 1e306``: the product's 1e306 and the power's 1000 are multiplied at run
    time, in the chain rule's order, as the tape does (folded, 1e309 would be beyond
    float64): inf, and NaN where it meets ``0**999``."""
    points = np.array([0.0, 1.0, -1.0, 0.5])
    x = symgrad.tensor(points, requires_grad=True)
    with np.errstate(all="ignore"):
        (x ** 1000 * 1e306).sum().backward()
        expected = np.ones_like(points) * 1e306 * 1000 * points ** 999
    np.testing.assert_array_equal(x.grad.numpy(), expected)


# A constant subexpression (x - x is 0 for SymPy) evaluated beyond float64 is printed as
# inf, which is what NumPy's exp gives too.  (id, program, NumPy value)
CONSTANT_OVERFLOW = [
    ("exp-1000", lambda x: (x - x + 1000.0).exp() * x, lambda x: np.exp(1000.0) * x),
    ("minus-exp-1000", lambda x: -(x - x + 1000.0).exp() * x, lambda x: -np.exp(1000.0) * x),
    ("exp-minus-1000", lambda x: (x - x - 1000.0).exp() * x, lambda x: np.exp(-1000.0) * x),
]


@pytest.mark.parametrize("program, value", [c[1:] for c in CONSTANT_OVERFLOW], ids=[c[0] for c in CONSTANT_OVERFLOW])
def test_constant_subexpressions_beyond_float64_compile_to_numpys_value(program, value):
    points = np.array([1.0, 2.5, -0.5])
    with np.errstate(all="ignore"):
        got = symgrad.vjp(program, points)[0]
        np.testing.assert_array_equal(got, value(points))


# Reductions and the softmax family: the engines agree element for element (NaN where
# one is NaN, the same infinities) and the value is NumPy's.
REDUCTIONS = [
    ("sum", lambda x: x.sum(), np.sum),
    ("mean", lambda x: x.mean(), np.mean),
    ("max", lambda x: x.max(), np.max),
    ("norm", lambda x: x.norm(), lambda a: np.sqrt(np.sum(a * a))),
    ("logsumexp", lambda x: x.logsumexp(dim=0), None),
    ("softmax", lambda x: (x.softmax(dim=0) * symgrad.arange(len(x), dtype=symgrad.float64)).sum(), None),
    ("log_softmax", lambda x: (x.log_softmax(dim=0) * symgrad.arange(len(x), dtype=symgrad.float64)).sum(), None),
]
REDUCTION_INPUTS = [
    ("nan", [1.0, np.nan, 2.0]),
    ("inf", [1.0, np.inf, 2.0]),
    ("-inf", [1.0, -np.inf, 2.0]),
    ("both-inf", [np.inf, -np.inf, 0.0]),
    ("all--inf", [-np.inf, -np.inf, -np.inf]),
]


@pytest.mark.parametrize("values", [v for _, v in REDUCTION_INPUTS], ids=[n for n, _ in REDUCTION_INPUTS])
@pytest.mark.parametrize("program, numpy_value", [r[1:] for r in REDUCTIONS], ids=[r[0] for r in REDUCTIONS])
def test_reductions_with_nan_and_inf_agree_between_engines(program, numpy_value, values, figures):
    grads = {}
    for name in ("tape", "symbolic"):
        x = symgrad.tensor(values, requires_grad=True)
        with symgrad.backward_engine(name), np.errstate(all="ignore"):
            y = program(x)
            y.backward()
        grads[name] = x.grad.numpy()
        if numpy_value is not None:
            with np.errstate(all="ignore"):
                np.testing.assert_allclose(y.item(), numpy_value(np.array(values)), equal_nan=True)
    np.testing.assert_allclose(grads["symbolic"], grads["tape"], rtol=1e-12, atol=0, equal_nan=True)
    figures.add("non-finite cases (reductions)", 1)


# ---------------------------------------------------------------------------- detect_anomaly
def sqrt_at_zero(x, w):
    centred = x - x.detach()
    return (centred.sqrt() * w).sum()  # origin: sqrt


def log_at_zero(x, w):
    return (x - x.detach()).log().sum() + w.sum()  # origin: log


def division_by_zero(x, w):
    return (w / (x - x.detach())).sum()  # origin: div


def pow_at_zero(x, w):
    return ((x - x.detach()) ** 0.5 * w).sum()  # origin: pow


def nan_from_the_forward_pass(x, w):
    bad = (x - x.detach() - 1).sqrt()  # NaN values: the first NaN gradient is w's, in mul
    return (bad * w).sum()  # origin: mul


class NanBackward(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def custom_function(x, w):
    return (NanBackward.apply(x) * w).sum()  # origin: custom


# (program, the op named first, its grad_fn name, the kind of value, the marker comment)
ANOMALIES = [
    (sqrt_at_zero, "sqrt", "SqrtBackward0", "inf", "# origin: sqrt"),
    (log_at_zero, "log", "LogBackward0", "inf", "# origin: log"),
    (division_by_zero, "div", "DivBackward0", "inf", "# origin: div"),
    (pow_at_zero, "pow_scalar", "PowBackward0", "inf", "# origin: pow"),
    (nan_from_the_forward_pass, "mul", "MulBackward0", "nan", "# origin: mul"),
    (custom_function, "NanBackward", "NanBackwardBackward", "nan", "# origin: custom"),
]


@pytest.mark.parametrize("program, op, node, kind, marker", [a for a in ANOMALIES], ids=[a[0].__name__ for a in ANOMALIES])
def test_detect_anomaly_names_the_op_and_the_line_where_nonfinite_values_start(engine, program, op, node, kind,
                                                                                 marker, figures):
    x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True)
    with pytest.raises(AnomalyError) as caught, detect_anomaly(), np.errstate(all="ignore"):
        program(x, w).backward()
    message = str(caught.value)
    assert message.startswith(f"backward of {op} ({node}) produced {kind}"), message
    assert "test_nonfinite.py" in message and marker in message and program.__name__ in message
    assert caught.value.node.name() == node
    assert x.grad is None and w.grad is None  # the failed backward wrote nothing
    figures.add("anomaly origins pinpointed", 1)


def test_without_anomaly_mode_the_same_programs_give_numpy_nonfinite_gradients(engine):
    for program, *_ in ANOMALIES:
        x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
        w = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True)
        with np.errstate(all="ignore"):
            program(x, w).backward()
        assert not np.isfinite(x.grad.numpy()).all(), program.__name__
