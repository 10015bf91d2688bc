"""gradcheck and gradgradcheck: right gradients pass, wrong ones are caught with a report
naming the position, kinks are told apart from wrong gradients."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import symgrad
from symgrad.check import (EngineUnavailableError, EngineUnavailableWarning, Float32Warning, GradcheckError,
                           KinkWarning, gradcheck, gradgradcheck)
from symgrad.tape import engine as engine_switch
from symgrad.testing import skip_unless_engine


def leaf(values, name=None, dtype=np.float64):
    return symgrad.tensor(np.asarray(values, dtype=dtype), requires_grad=True, name=name)


# ----------------------------------------------------------------------------- right gradients pass
RIGHT = {
    "elementwise": (lambda x: x.sin() * x.exp(), lambda: (leaf([0.3, -1.2, 2.0]),)),
    "broadcasting": (lambda x, y: x * y + y, lambda: (leaf([[0.5, 1.0, -1.0], [2.0, 0.1, 0.3]]), leaf([1.5, -0.5, 2.0]))),
    "reduction": (lambda x: (x * x).sum(dim=1), lambda: (leaf([[0.5, 1.0, -1.0], [2.0, 0.1, 0.3]]),)),
    "matmul": (lambda a, b: a @ b, lambda: (leaf([[1.0, 2.0], [0.5, -1.0]]), leaf([[0.3], [0.7]]))),
    "scalar output": (lambda x: (x.tanh() ** 2).mean(), lambda: (leaf([0.1, 0.2, -0.4]),)),
    "two outputs": (lambda x: (x.sin(), x.sum()), lambda: (leaf([0.1, 0.2]),)),
    "constant argument": (lambda x, c: x * c, lambda: (leaf([1.0, 2.0]), 3.0)),
    "input without grad": (lambda x, y: x * y, lambda: (leaf([1.0, 2.0]), symgrad.tensor([4.0, 5.0]))),
    "unused input": (lambda x, y: x * 2, lambda: (leaf([1.0, 2.0]), leaf([4.0]))),
    "same tensor twice": (lambda x, y: x * y.exp(), lambda: (lambda t: (t, t))(leaf([0.5, -1.0]))),
}


@pytest.mark.parametrize("case", RIGHT, ids=list(RIGHT))
def test_right_gradients_pass(case, engine):
    func, make = RIGHT[case]
    result = gradcheck(func, make(), engines=(engine,))
    assert result and result.ok and not result.mismatches and result.labels == (engine,)


def test_result_holds_the_jacobians():
    x = leaf([1.0, 2.0])
    result = gradcheck(lambda x: x ** 2, (x,), engines=("tape",))
    np.testing.assert_allclose(result.jacobian("numerical"), np.diag([2.0, 4.0]), atol=1e-8)
    np.testing.assert_allclose(result.jacobian("tape"), np.diag([2.0, 4.0]))
    assert "passed" in result.report() and "tape agrees" in str(result)


# ----------------------------------------------------------------------------- arrays with no elements
EMPTY = {  # name: (function, inputs, the outputs' shapes)
    "empty slice": (lambda x: x[:, 3:] * 2, lambda: (leaf(np.ones((2, 3))),), [(2, 0)]),
    "matmul with an empty result": (lambda a, b: a @ b, lambda: (leaf(np.ones((0, 2))), leaf([[1.0, 2.0, 3.0]] * 2)),
                                    [(0, 3)]),
    "empty and non-empty outputs": (lambda x: (x[:0].sin(), x.exp()), lambda: (leaf([0.5, -1.0]),), [(0,), (2,)]),
    "empty input, non-empty output": (lambda e, x: (e.sum() + x).sin(), lambda: (leaf(np.ones((0, 2))), leaf([0.3])),
                                      [(1,)]),
    "matmul over an empty dim": (lambda a, b: a @ b, lambda: (leaf(np.ones((2, 0))), leaf(np.ones((0, 3)))),
                                 [(2, 3)]),
}


@pytest.mark.parametrize("fast_mode", [False, True], ids=["full", "fast"])
@pytest.mark.parametrize("case", EMPTY, ids=list(EMPTY))
def test_arrays_with_no_elements_have_empty_jacobians(case, fast_mode, engine):
    """An empty Jacobian is trivially right (gradcheck raised "cannot reshape array of size 0"
    on an empty output); its blocks still have the outputs' and inputs' sizes."""
    func, make, out_shapes = EMPTY[case]
    inputs = make()
    result = gradcheck(func, inputs, engines=(engine,), fast_mode=fast_mode)
    assert result.ok and result.labels == (engine,)
    for o, shape in enumerate(out_shapes):
        for k, x in enumerate(inputs):
            rows = 1 if fast_mode else int(np.prod(shape))
            columns = 1 if fast_mode else x.numel()
            for label in ("numerical", engine):
                assert result.jacobian(label, o, k).shape == (rows, columns)


def test_an_empty_output_still_checks_the_gradients_shape():
    """No one-hot row exists for an empty output, but one backward with its empty cotangent
    runs, so a backward returning a gradient of the wrong shape is caught."""
    class WrongShape(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x[:0] * 2

        @staticmethod
        def backward(ctx, g):
            return symgrad.tensor(np.zeros((0, 3)))

    result = gradcheck(WrongShape.apply, (leaf(np.ones((2, 3))),), engines=("tape",), raise_exception=False)
    assert not result and "shape [0, 3]" in result.report() and "[2, 3]" in result.report()


def test_an_engine_gradient_of_an_empty_input_must_have_its_shape(monkeypatch):
    """A gradient of the input's size but not its shape (both empty) is an error naming both."""
    def flat(roots, grads, **kwargs):
        return [np.zeros(0) for _ in kwargs["inputs"]]

    monkeypatch.setitem(engine_switch._ENGINES, "flat", flat)
    result = gradcheck(lambda e: e * 2, (leaf(np.ones((0, 3))),), engines=("flat",), raise_exception=False)
    assert not result and "gradient of shape [0] for input 0 of shape [0, 3]" in result.report()


def test_gradgradcheck_of_an_empty_output(engine):
    x = leaf([0.3, -0.7])
    assert gradgradcheck(lambda x: (x[1:1].exp(), (x ** 3).sum()), (x,), engines=(engine,))


# ----------------------------------------------------------------------------- wrong custom backwards
class ForgetfulRelu(symgrad.autograd.Function):
    """ReLU whose backward forgets to zero the gradient of the negative part."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g


class RightRelu(ForgetfulRelu):
    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * (x > 0)


A = np.array([[1.0, 2.0, 0.5], [-1.0, 0.3, 2.0], [0.7, -0.2, 1.1]])


class TransposedRightMatmul(symgrad.autograd.Function):
    """``x @ A`` whose backward returns the gradient of x transposed."""

    @staticmethod
    def forward(ctx, x):
        return x @ symgrad.tensor(A)

    @staticmethod
    def backward(ctx, g):
        return (g @ symgrad.tensor(A.T)).T


class RightMatmul(TransposedRightMatmul):
    @staticmethod
    def backward(ctx, g):
        return g @ symgrad.tensor(A.T)


def test_forgotten_negative_part_is_caught_at_the_negative_element():
    x = leaf([1.5, -0.5, 2.0, -1.0], name="x")
    with pytest.raises(GradcheckError) as caught:
        symgrad.check.check_function(ForgetfulRelu, (x,))
    message = str(caught.value)
    result = caught.value.result
    assert {(m.out_index, m.in_index) for m in result.mismatches} == {((1,), (1,)), ((3,), (3,))}
    assert "check_function(ForgetfulRelu) failed" in message
    assert "d output0[1] / d x[1]" in message
    assert re.search(r"numerical\s+0 ", message) and re.search(r"ForgetfulRelu.backward\s+1 .*MISMATCH", message)
    assert "atol=1e-05, rtol=0.001" in message
    assert "output0[1]/x[1], output0[3]/x[3]" in message
    assert "missing mask" in message
    assert "Jacobian d output0/d x" in message  # the compact table


def test_transposed_gradient_is_caught_and_named():
    x = leaf(np.arange(9.0).reshape(3, 3) / 5 - 0.5, name="X")
    result = symgrad.check.check_function(TransposedRightMatmul, (x,), raise_exception=False)
    assert not result
    wrong = {m.in_index for m in result.mismatches}
    assert all(i != j for i, j in wrong), "only off-diagonal entries of X's gradient are wrong"
    report = result.report()
    assert "transpose of the right one" in report
    assert f"d {result.worst.out_name}[" in report and "/ d X[" in report
    assert "in X's layout" in report  # the worst row, laid out like X


@pytest.mark.parametrize("function, inputs", [
    (RightRelu, lambda: (leaf([1.5, -0.5, 2.0, -1.0]),)),
    (RightMatmul, lambda: (leaf(np.arange(9.0).reshape(3, 3) / 5 - 0.5),)),
])
def test_right_custom_backwards_pass(function, inputs):
    assert symgrad.check.check_function(function, inputs())


def test_fast_mode_catches_and_then_locates_the_wrong_element():
    x = leaf(np.arange(9.0).reshape(3, 3) / 5 - 0.5, name="X")
    result = symgrad.check.check_function(TransposedRightMatmul, (x,), fast_mode=True, raise_exception=False)
    assert not result and result.fast_mode
    assert result.mismatches[0].in_index is None  # a projection, not an element
    assert result.full is not None and result.full.mismatches[0].in_index is not None
    assert "The full Jacobian check locates the mismatch" in result.report()
    assert symgrad.check.check_function(RightMatmul, (x,), fast_mode=True)


def test_fast_mode_uses_far_fewer_backward_passes():
    calls = {"n": 0}

    class Counted(RightMatmul):
        @staticmethod
        def backward(ctx, g):
            calls["n"] += 1
            return g @ symgrad.tensor(A.T)

    x = leaf(np.ones((4, 3)))
    symgrad.check.check_function(Counted, (x,))
    full = calls["n"]
    calls["n"] = 0
    symgrad.check.check_function(Counted, (x,), fast_mode=True)
    assert (full, calls["n"]) == (12, 1)


# ----------------------------------------------------------------------------- kinks
KINKS = {  # function, point, whether the engines' value differs from the central difference there
    "relu at 0": (lambda x: x.relu(), [0.0, 1.0, -1.0], True),
    "abs at 0 (inside a sum)": (lambda x: (x.abs() * 3).sum(), [0.0, 0.5], False),
    "clamp at its bounds": (lambda x: x.clamp(min=-0.5, max=0.5), [0.5, -0.5, 0.1], True),
    "maximum tie": (lambda x: symgrad.maximum(x, symgrad.tensor([0.0, 0.0])), [0.0, 1.0], False),
    "max over a tie": (lambda x: x.max(), [1.0, 1.0, 0.2], False),
    "max along a dim over a tie": (lambda x: x.max(dim=0).values, [[1.0, 0.5], [1.0, 0.2]], True),
    "relu just beside 0, inside the stencil": (lambda x: x.relu(), [1e-7, -3e-7], True),
}


@pytest.mark.parametrize("case", KINKS, ids=list(KINKS))
def test_kink_at_the_test_point_is_not_a_false_failure(case, engine):
    func, values, noted = KINKS[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = gradcheck(func, (leaf(values),), engines=(engine,))
    assert result
    kink_warnings = [w for w in caught if issubclass(w.category, KinkWarning)]
    if noted:  # the central difference is the average of the one-sided ones, the engine picks one
        assert result.kinks and kink_warnings and "straddle a kink" in str(kink_warnings[0].message)
        assert "straddle a kink and were not counted" in result.report()
    else:  # the engine's choice at the kink equals the central difference: nothing to say
        assert not result.kinks and not kink_warnings


def test_a_wrong_gradient_at_a_kink_is_still_caught():
    class SteepRelu(ForgetfulRelu):
        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * (x >= 0) * 3  # 3 is neither one-sided derivative (0 or 1)

    with pytest.raises(GradcheckError, match=r"d output0\[0\] / d input0\[0\]"):
        symgrad.check.check_function(SteepRelu, (leaf([0.0, 2.0]),))


def test_steep_smooth_function_is_not_mistaken_for_a_kink():
    # one-sided differences of 1/x near 0.01 differ a lot, but the function is smooth
    class WrongReciprocal(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 1 / x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return -g / (x * x) * 1.01

    result = symgrad.check.check_function(WrongReciprocal, (leaf([0.01]),), raise_exception=False)
    assert not result and not result.kinks


# ----------------------------------------------------------------------------- dtypes, engines, misuse
def test_float32_inputs_warn_and_use_looser_tolerances():
    x = leaf([0.3, -1.2, 2.0], dtype=np.float32)
    with pytest.warns(Float32Warning, match="float32"):
        result = gradcheck(lambda x: x.sin() * x.exp(), (x,), engines=("tape",))
    assert result and result.tolerances.rtol > 1e-3


def test_explicit_tolerances_override_the_defaults():
    x = leaf([1.0])
    result = gradcheck(lambda x: x * 2, (x,), engines=("tape",), eps=1e-4, atol=0.5, rtol=0.0)
    assert (result.tolerances.eps, result.tolerances.atol, result.tolerances.rtol) == (1e-4, 0.5, 0.0)


def test_unavailable_engine_is_an_error_when_named_and_skipped_by_default(monkeypatch):
    monkeypatch.setitem(engine_switch._ENGINES, "symbolic", "symgrad.no_such_module:backward")
    x = leaf([1.0, 2.0])
    with pytest.raises(EngineUnavailableError, match="'symbolic' backward engine cannot be loaded"):
        gradcheck(lambda x: x * x, (x,), engines=("symbolic", "tape"))
    with pytest.warns(EngineUnavailableWarning, match="skips the 'symbolic' engine"):
        result = gradcheck(lambda x: x * x, (x,))
    assert result and result.labels == ("tape",) and "symbolic" in result.skipped
    assert "engine 'symbolic' was not checked" in result.report()


def test_unknown_engine_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backward engine 'tapes'"):
        gradcheck(lambda x: x, (leaf([1.0]),), engines=("tapes",))


def test_engines_are_compared_with_each_other(monkeypatch):
    """An engine that agrees with finite differences nowhere but at kinks is still compared
    strictly with the other engines (here a fake second engine with relu'(0) = 1)."""
    def relu_prime_one(roots, grads, **kwargs):
        x = kwargs["inputs"][0]
        g = np.asarray(grads[0]) * (x._data >= 0)
        return [g]

    monkeypatch.setitem(engine_switch._ENGINES, "fake", relu_prime_one)
    x = leaf([0.0, 1.0, -1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KinkWarning)
        result = gradcheck(lambda x: x.relu(), (x,), engines=("tape", "fake"), raise_exception=False)
    assert not result
    assert [(m.label, m.reference, m.in_index) for m in result.mismatches] == [("fake", "tape", (0,))]
    assert "fake disagrees with tape" in result.report()


@pytest.mark.parametrize("func, inputs, error, message", [
    (lambda x: x, lambda: (symgrad.tensor([1.0]),), ValueError, "at least one input Tensor with requires_grad=True"),
    (lambda x: 3.0, lambda: (leaf([1.0]),), TypeError, "returned a float at output 0"),
    (lambda x: x.argmax(), lambda: (leaf([1.0]),), TypeError, "no floating-point Tensor"),
])
def test_misuse_is_explained(func, inputs, error, message):
    with pytest.raises(error, match=message):
        gradcheck(func, inputs(), engines=("tape",))


def test_an_engine_that_raises_is_reported_not_crashed():
    class Broken(ForgetfulRelu):
        @staticmethod
        def backward(ctx, g):
            raise ZeroDivisionError("oops in backward")

    result = symgrad.check.check_function(Broken, (leaf([1.0]),), raise_exception=False)
    assert not result and "Broken.backward raised ZeroDivisionError: oops in backward" in result.report()


# ----------------------------------------------------------------------------- second derivatives
def test_gradgradcheck_passes_for_right_second_derivatives(engine):
    x, w = leaf([0.3, -0.7], name="x"), leaf([[0.5, 1.0], [-1.0, 2.0]], name="w")
    result = gradgradcheck(lambda x, w: ((x @ w).tanh() * x.exp()).sum(), (x, w), engines=(engine,))
    assert result and result.order == 2


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    class DetachedSquare(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x.detach() * g  # right value, but its own derivative in x is lost

    x = leaf([0.5, -1.5], name="x")
    assert symgrad.check.check_function(DetachedSquare, (x,))
    with pytest.raises(GradcheckError, match="second derivatives") as caught:
        gradgradcheck(DetachedSquare.apply, (x,), engines=("tape",))
    assert "output0[0]/x[0], output0[1]/x[1]".replace("output0", "grad_x") in str(caught.value)


# ----------------------------------------------------------------------------- a Function's SymPy form
class Softsign(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + x.abs())

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g / (1 + x.abs()) ** 2

    @staticmethod
    def sympy(sp, x):
        return x / (1 + sp.Abs(x))


class SoftsignWrongBackward(Softsign):
    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g / (1 + x.abs())  # the square is missing


class SoftsignWrongSympy(Softsign):
    @staticmethod
    def sympy(sp, x):
        return x / (1 + x ** 2)  # not what forward computes


@pytest.mark.parametrize("function, wrong", [
    (Softsign, None), (SoftsignWrongBackward, "SoftsignWrongBackward.backward"),
    (SoftsignWrongSympy, "SoftsignWrongSympy.sympy"),
])
def test_check_function_also_checks_the_sympy_form(function, wrong):
    from symgrad.testing import skip_unless_engine

    skip_unless_engine("symbolic")
    x = leaf([0.5, -1.5, 2.0], name="x")
    result = symgrad.check.check_function(function, (x,), raise_exception=False)
    name = function.__name__
    assert result.labels == (f"{name}.backward", f"{name}.sympy")
    assert {m.label for m in result.mismatches} == (set() if wrong is None else {wrong})


def test_check_function_without_the_symbolic_engine_says_the_sympy_form_was_not_checked(monkeypatch):
    monkeypatch.setitem(engine_switch._ENGINES, "symbolic", "symgrad.no_such_module:backward")
    with pytest.warns(EngineUnavailableWarning, match="Softsign defines sympy"):
        result = symgrad.check.check_function(Softsign, (leaf([0.5]),))
    assert result.labels == ("Softsign.backward",) and "symbolic" in result.skipped


class UncompilableForm(symgrad.autograd.Function):
    """A right backward, and a SymPy form SymPy cannot differentiate."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2

    @staticmethod
    def sympy(sp, x):
        return sp.Function("mystery")(x)


class UncompilableFormWrongBackward(UncompilableForm):
    @staticmethod
    def backward(ctx, g):
        return g * 3


@pytest.mark.parametrize("function, passes", [(UncompilableForm, True), (UncompilableFormWrongBackward, False)])
def test_check_function_tells_an_uncompiled_sympy_form_from_a_failure(function, passes):
    skip_unless_engine("symbolic")
    with pytest.warns(symgrad.check.SympyFormWarning, match="could not be compiled"):
        result = symgrad.check.check_function(function, (leaf([1.0, 2.0]),), raise_exception=False)
    assert bool(result) is passes and not result.errors
    assert f"engine '{function.__name__}.sympy' was not checked: its SymPy form could not be compiled" in result.report()
