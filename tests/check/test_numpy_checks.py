"""check_grad's SciPy-style arguments (issue 19): extra arguments are data, argnums picks
what is differentiated, elementwise and value_and_grad modes, Hessian-vector products and
Hessians, reports that name the user's functions, and bad inputs explained."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad
from symgrad.check import GradcheckError, KinkWarning, check_grad, check_hessian, check_hvp

from .rosenbrock import rosen, rosen_der, rosen_hess, rosen_hess_prod


def loss(w, X, y):
    return ((X @ w - y) ** 2).sum()


def loss_grad(w, X, y):
    return 2 * X.T @ (X @ w - y)


def loss_grad_X(w, X, y):
    return 2 * np.outer(X @ w - y, w)


@pytest.fixture
def data(rng):
    return rng.normal(size=(5, 3)), rng.normal(size=5), rng.normal(size=3)


# ----------------------------------------------------------------------------- item 3: data arguments, argnums
def test_extra_arguments_are_data_and_only_x_is_differentiated(data):
    X, y, w = data
    result = check_grad(loss, loss_grad, w, X, y, engines=("tape",))
    assert result and [b.in_name for b in result.blocks] == ["w"]


@pytest.mark.parametrize("argnums, grad, names", [
    (1, loss_grad_X, ["X"]),
    ((0, 1), lambda w, X, y: (loss_grad(w, X, y), loss_grad_X(w, X, y)), ["w", "X"]),
    (-2, loss_grad_X, ["X"]),
])
def test_argnums_picks_the_differentiated_arguments(data, argnums, grad, names):
    X, y, w = data
    result = check_grad(loss, grad, w, X, y, argnums=argnums, engines=())
    assert result and [b.in_name for b in result.blocks] == names


def test_a_wrong_gradient_of_a_data_argument_is_caught(data):
    X, y, w = data
    with pytest.raises(GradcheckError, match=r"d loss / d X\["):
        check_grad(loss, lambda w, X, y: 0.5 * loss_grad_X(w, X, y), w, X, y, argnums=1, engines=())


# ----------------------------------------------------------------------------- item 4: modes
def test_elementwise_checks_each_element_from_one_perturbation():
    calls = []

    def softplus(x):
        calls.append(1)
        return np.log1p(np.exp(x))

    x = np.linspace(-30, 30, 200)
    assert check_grad(softplus, lambda x: 1 / (1 + np.exp(-x)), x, elementwise=True, engines=())
    assert len(calls) < 40  # a few perturbations of all elements at once, not 2 per element
    with pytest.raises(GradcheckError, match=r"on 4 of 200 element\(s\) of d softplus/d x: softplus\[196\]/x\[196\]"):
        check_grad(softplus, lambda x: np.where(x > 29, 0.5, 1 / (1 + np.exp(-x))), x, elementwise=True, engines=())


def test_elementwise_needs_outputs_of_the_inputs_shape():
    with pytest.raises(ValueError, match="elementwise=True needs outputs of the inputs' shape"):
        check_grad(lambda x: x.sum(), lambda x: np.ones_like(x), np.ones(3), elementwise=True, engines=())


def test_value_and_grad_functions_are_accepted_and_detected():
    def fun(x):
        return rosen(x), rosen_der(x)

    x = np.array([0.5, -0.3, 1.2])
    assert check_grad(fun, None, x, value_and_grad=True)
    with pytest.raises(TypeError, match=r"returned a tuple of 2 items.*value_and_grad=True"):
        check_grad(fun, rosen_der, x)
    with pytest.raises(TypeError, match="pass grad_f=None and value_and_grad=True"):
        check_grad(fun, None, x)
    with pytest.raises(TypeError, match="must return \\(value, gradient\\)"):
        check_grad(rosen, None, x, value_and_grad=True)


@pytest.mark.parametrize("f_or_grad", [rosen_der, rosen], ids=["gradient given", "gradient traced from f"])
def test_hessian_vector_products_and_hessians(f_or_grad, rng):
    x, p = rng.normal(size=4), rng.normal(size=4)
    assert check_hvp(f_or_grad, rosen_hess_prod, x, p, engines=())
    assert check_hessian(f_or_grad, rosen_hess, x, engines=())
    with pytest.raises(GradcheckError, match=r"check_hvp\(.*\) failed"):
        check_hvp(f_or_grad, lambda x, p: rosen_hess_prod(x, p) * (1 + 0.1 * np.eye(4)[1]) + np.eye(4)[1] * 0.1, x, p,
                  engines=())
    with pytest.raises(GradcheckError, match=r"d .* / d x\[2\]"):
        wrong_at_2_2 = np.outer(np.eye(4)[2], np.eye(4)[2])  # element [2, 2] off by 10% (and 0.1)
        check_hessian(f_or_grad, lambda x: rosen_hess(x) * (1 + 0.1 * wrong_at_2_2) + 0.1 * wrong_at_2_2, x,
                      engines=())


def test_a_scalar_function_that_cannot_be_traced_asks_for_its_gradient():
    with pytest.raises(TypeError, match="pass the gradient function instead"):
        check_hvp(lambda x: float(np.sum(np.exp(x))), rosen_hess_prod, np.ones(4), np.ones(4))


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("call, error, message", [
    (lambda: check_grad(rosen, rosen_der, np.ones(3), argnums=3), ValueError, "argnums 3 is out of range"),
    (lambda: check_grad(rosen, rosen_der, np.ones(3), argnums=(0, 0)), ValueError, "names an argument twice"),
    (lambda: check_grad(rosen, rosen_der, np.ones(3), argnums="x"), TypeError, "argnums must be an int"),
    (lambda: check_grad("rosen", rosen_der, np.ones(3)), TypeError, "expects a function f"),
    (lambda: check_grad(rosen, 3.0, np.ones(3)), TypeError, "expects a gradient function grad_f"),
    (lambda: check_grad(rosen, rosen_der, rosen), TypeError, "argument 0 is a function"),
    (lambda: check_grad(rosen, rosen_der, ["a", "b"]), TypeError, "cannot be made a floating-point array"),
    (lambda: check_grad(rosen, lambda x: x[:2], np.ones(3)), ValueError, r"shape \[2\] for x of shape \[3\]"),
    (lambda: check_hvp(rosen_der, rosen_hess_prod, np.ones(3), np.ones(2)), ValueError, "p has shape"),
    (lambda: check_hvp(rosen_der, lambda x, p: p[:2], np.ones(3), np.ones(3)), ValueError, "a Hessian-vector product has x's shape"),
    (lambda: check_hvp(rosen_der, None, np.ones(3), np.ones(3)), TypeError, "expects a Hessian-vector product function"),
    (lambda: check_hessian(rosen_der, lambda x: np.eye(2), np.ones(3)), ValueError, r"expected \[3, 3\]"),
    (lambda: check_hessian(lambda x: np.ones(2), rosen_hess, np.ones(3)), ValueError, "give the gradient"),
], ids=["argnums range", "argnums twice", "argnums type", "f not callable", "grad_f not callable", "x a function",
        "x not numeric", "gradient shape", "p shape", "hvp shape", "hvp not callable", "hessian shape",
        "f_or_grad shape"])
def test_bad_inputs_are_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ----------------------------------------------------------------------------- item 9: names, tensors, warnings
def test_reports_name_lambdas_by_their_source_and_functions_by_where_they_are():
    result = check_grad(lambda x: np.cbrt(x).sum(), lambda x: np.cbrt(x), np.array([0.3, 1.0]), raise_exception=False)
    assert result.what == "check_grad(lambda x: np.cbrt(x).sum())" and result.labels == ("lambda x: np.cbrt(x)",)
    result = check_grad(rosen, lambda x: rosen_der(x) * 2, np.array([0.3, 1.0]), engines=(), raise_exception=False)
    assert "where: f is rosen (rosenbrock.py:" in result.report()


def test_engines_empty_never_calls_f_on_symgrad_tensors():
    seen = []

    def f(x):
        seen.append(type(x))
        return (x * x).sum()

    assert check_grad(f, lambda x: 2 * x, np.array([1.0, 2.0]), engines=())
    assert seen and symgrad.Tensor not in seen
    check_grad(f, lambda x: 2 * x, np.array([1.0, 2.0]), engines=("tape",))
    assert symgrad.Tensor in seen  # with engines, f is traced as a third opinion


def test_kink_warnings_point_at_the_callers_line(gradcheck):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gradcheck.numpy(lambda x: np.abs(x).sum(), lambda x: np.where(x >= 0, 1.0, -1.0), np.array([0.0, 1.0]))
    kinks = [w for w in caught if issubclass(w.category, KinkWarning)]
    assert kinks and kinks[0].filename == __file__


@pytest.mark.parametrize("mode", ["elementwise", "hvp"])
def test_traced_opinions_in_the_elementwise_and_hvp_modes(mode, engine, rng):
    """f that also runs on symgrad tensors is differentiated by the engine too, per element
    (elementwise) or along p (hvp of a gradient that traces)."""
    x = rng.uniform(-2, 2, size=4)
    if mode == "elementwise":
        result = check_grad(lambda x: x * x * x, lambda x: 3 * x * x, x, elementwise=True, engines=(engine,))
    else:
        result = check_hvp(lambda x: x * x * 2, lambda x, p: 4 * x * p, x, rng.normal(size=4), engines=(engine,))
    assert result and result.labels[0].startswith(f"{engine} (traced")


@pytest.mark.parametrize("derivative_at_zero, passes", [(1.0, True), (-1.0, True), (0.5, True), (3.0, False)])
def test_a_hand_written_subgradient_at_a_kink_is_checked_against_the_one_sided_derivatives(derivative_at_zero, passes):
    """np.abs runs on tensors, so the engines give 0 at the kink; a hand-written gradient
    may pick any value between the one-sided derivatives (-1 and 1) there, not beyond."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KinkWarning)
        result = check_grad(lambda x: np.abs(x).sum(), lambda x: np.where(x == 0, derivative_at_zero, np.sign(x)),
                            np.array([0.0, 1.0]), raise_exception=False)
    assert bool(result) is passes, result.report()
