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
    ("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    ("abs", lambda x: x.abs(), np.abs, np.sign),
    ("neg", lambda x: -x, np.negative, lambda x: -np.ones_like(x)),
    ("square", lambda x: x ** 2, np.square, lambda x: 2 * x),
    ("cube", lambda x: x ** 3, lambda x: x ** 3, lambda x: 3 * x ** 2),
    ("reciprocal", lambda x: 1 / x, lambda x: 1 / x, lambda x: -1 / x ** 2),
    ("times-3", lambda x: x * 3.0, lambda x: x * 3.0, lambda x: np.full_like(x, 3.0)),
    ("times-inf", lambda x: x * INF, lambda x: x * INF, lambda x: np.full_like(x, INF)),
    ("times-tensor", lambda x: x * symgrad.tensor(POINTS[::-1].copy()), lambda x: x * POINTS[::-1],
     lambda x: POINTS[::-1].copy()),
    ("maximum", lambda x: x.maximum(symgrad.tensor(np.full(len(POINTS), 0.5))), lambda x: np.maximum(x, 0.5),
     lambda x: np.where(x == 0.5, 0.5, (x > 0.5) * 1.0)),
    ("where", lambda x: symgrad.where(x > 0, x * 2, x * -3), lambda x: np.where(x > 0, 2 * x, -3 * x),
     lambda x: np.where(x > 0, 2.0, -3.0)),
]

# The symbolic engine turns a Python-number NaN or inf into SymPy's nan/oo, and SymPy
# absorbs the operand into it: x + oo -> oo, x*nan -> nan, x - oo -> -oo for a finite
# real symbol.  The derivative of that constant is 0, so the tensor's gradient becomes 0
# where NumPy's chain rule (the tape, PyTorch) gives 1 or nan.
NONFINITE_CONSTANT = (
    "symbolic engine: a Python-number NaN/inf operand becomes SymPy nan/oo, which absorbs the tensor "
    "(x + oo -> oo, x*nan -> nan), so the symbolic gradient is 0 instead of NumPy's 1/nan"
)
CONSTANT_CASES = [
    ("plus-inf", lambda x: x + INF, lambda x: x + INF, lambda x: np.ones_like(x)),
    ("minus-inf", lambda x: x - INF, lambda x: x - INF, lambda x: np.ones_like(x)),
    ("plus-nan", lambda x: x + NAN, lambda x: x + NAN, lambda x: np.ones_like(x)),
    ("nan-minus", lambda x: NAN - x, lambda x: NAN - x, lambda x: -np.ones_like(x)),
    ("times-nan", lambda x: x * NAN, lambda x: x * NAN, lambda x: np.full_like(x, NAN)),
    ("over-nan", lambda x: x / NAN, lambda x: x / NAN, lambda x: np.full_like(x, NAN)),
]

# x / 0.0 becomes x/0 = zoo in SymPy, which the NumPy printer cannot print.
ZERO_CONSTANT_DIVISOR = (
    "symbolic engine: dividing by a Python-number 0.0 makes SymPy's zoo (ComplexInfinity); compiling the "
    "gradient raises KeyError: 'ComplexInfinity' in the NumPy printer instead of giving NumPy's inf/nan"
)
ZERO_DIVISOR_CASES = [
    ("over-zero", lambda x: x / 0.0, lambda x: x / 0.0, lambda x: np.full_like(x, INF)),
]

# SymPy simplifies while building the expression (x/x -> 1, sqrt(x**2) -> Abs(x) for a
# real x, exp(x)/exp(x) -> 1, log(exp(x)) -> x, x**2/x -> x), so where NumPy's chain rule
# meets 0/0, inf/inf or inf*0 the symbolic gradient is a finite number.
AUTO_SIMPLIFIED = (
    "symbolic engine: SymPy's automatic simplification (x/x -> 1, sqrt(x**2) -> Abs(x), exp(x)/exp(x) -> 1, "
    "log(exp(x)) -> x) removes the 0/0, inf/inf and inf*0 that NumPy's chain rule meets, so the symbolic "
    "gradient is finite where the tape's is nan"
)
SIMPLIFIED_CASES = [
    ("x-over-x", lambda x: x / x, lambda x: x / x, lambda x: 1 / x - x / x ** 2),
    ("sqrt-of-square", lambda x: (x * x).sqrt(), lambda x: np.sqrt(x * x), lambda x: 0.5 / np.sqrt(x * x) * 2 * x),
    ("exp-over-exp", lambda x: x.exp() / x.exp(), lambda x: np.exp(x) / np.exp(x),
     lambda x: np.exp(x) / np.exp(x) - np.exp(x) * np.exp(x) / np.exp(x) ** 2),
    ("log-of-exp", lambda x: x.exp().log(), lambda x: np.log(np.exp(x)), lambda x: 1 / np.exp(x) * np.exp(x)),
]

# clamp's SymPy form is Piecewise((min, x < min), (max, x > max), (x, True)); both
# comparisons are False for NaN, so NaN takes the pass-through branch (gradient g),
# while the tape (and PyTorch) pass the gradient only where min <= x <= max (0 at NaN).
CLAMP_AT_NAN = (
    "symbolic engine: clamp's SymPy form Piecewise((min, x < min), (max, x > max), (x, True)) sends NaN to "
    "the pass-through branch (gradient g) where the tape and PyTorch give 0 (min <= x <= max is False)"
)
# SymPy folds x*0 -> 0 and sqrt(-1) -> I: the compiled gradient is the complex 1j*g,
# cast to the input's real dtype (0) with only a ComplexWarning.
COMPLEX_FOLDING = (
    "symbolic engine: SymPy folds x*0 -> 0 and sqrt(-1) -> I, so the compiled gradient of sqrt(x*0 - 1)*x is "
    "the complex 1j*g, cast to real (0) with only a ComplexWarning, where NumPy's chain rule gives nan"
)
COMPLEX_CASES = [
    ("sqrt-of-negative-constant", lambda x: (x * 0.0 - 1.0).sqrt() * x, lambda x: np.sqrt(x * 0.0 - 1.0) * x,
     lambda x: 0.5 / np.sqrt(x * 0.0 - 1.0) * 0.0 * x + np.sqrt(x * 0.0 - 1.0)),
]

# NumPy's power and sqrt differ at -0.0 and -inf: (-0.0)**-0.5 = +inf, 1/sqrt(-0.0) = -inf;
# (-inf)**-0.5 = 0, 1/sqrt(-inf) = nan.  The tape (like PyTorch) uses power.
POW_AS_SQRT = (
    "symbolic engine: d/dx x**0.5 = 0.5*x**-0.5 is compiled as 0.5/sqrt(x), which gives -inf at x = -0.0 and "
    "nan at x = -inf where NumPy's power (the tape, PyTorch) gives +inf and 0"
)
POW_CASES = [
    ("pow-half", lambda x: x ** 0.5, lambda x: x ** 0.5, lambda x: 0.5 * x ** -0.5),
]

CLAMP_CASES = [
    ("clamp", lambda x: x.clamp(-1.0, 1.0), lambda x: np.clip(x, -1.0, 1.0),
     lambda x: ((x >= -1.0) & (x <= 1.0)) * 1.0),
]


def _cases():
    for case in PRIMITIVES:
        yield pytest.param(*case[1:], None, id=case[0])
    for cases, reason in ((CONSTANT_CASES, NONFINITE_CONSTANT), (SIMPLIFIED_CASES, AUTO_SIMPLIFIED),
                          (COMPLEX_CASES, COMPLEX_FOLDING), (ZERO_DIVISOR_CASES, ZERO_CONSTANT_DIVISOR), (POW_CASES, POW_AS_SQRT), (CLAMP_CASES, CLAMP_AT_NAN)):
        for case in cases:
            yield pytest.param(*case[1:], reason, id=case[0])


@pytest.mark.parametrize("program, value, derivative, symbolic_bug", list(_cases()))
def test_nan_and_inf_propagate_as_numpy_would(engine, program, value, derivative, symbolic_bug, request, figures):
    if symbolic_bug and engine == "symbolic":
        request.applymarker(pytest.mark.xfail(strict=True, reason=symbolic_bug))
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
