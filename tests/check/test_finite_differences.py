"""Finite differences that know their error (symgrad.check.numerical): on every hard case
of tests/check/fd_cases.py the estimate is within its own stated error and the exact
gradient passes check_grad; rounding noise is reported, not blamed on the gradient."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from symgrad.check import check_grad, numerical_jacobian
from symgrad.check.numerical import derivative, step_for, unit_roundoff

from .fd_cases import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_estimate_is_within_its_stated_error_and_the_exact_gradient_passes(case):
    x = case.point()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = check_grad(case.f, case.gradient, x, elementwise=case.elementwise, engines=(), raise_exception=False)
    assert result, result.report()
    block = result.blocks[0]
    exact = np.asarray(case.gradient(x.astype(np.float64)), np.float64).reshape(block.numerical.shape)
    assert np.all(np.abs(block.numerical - exact) <= block.fd_error), (block.numerical, exact, block.fd_error)


VISIBLE = [c for c in CASES if np.max(np.abs(c.gradient(c.point().astype(np.float64)))) * 0.1 > 1e-3]
"""The cases whose gradient is large enough for a 10% error to exceed atol (1e-5; 1e-4 in float32)."""


@pytest.mark.parametrize("case", VISIBLE, ids=[c.name for c in VISIBLE])
def test_a_gradient_wrong_by_ten_percent_fails_on_every_hard_case(case):
    x = case.point()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = check_grad(case.f, lambda x: case.gradient(x) * 1.1, x, elementwise=case.elementwise, engines=(),
                            raise_exception=False)
    assert not result and result.mismatches


def test_rounding_noise_of_a_large_term_is_estimated_and_printed():
    """Issue 19, item 2: one huge term; the small ones pass, and a wrong gradient's report
    gives the finite difference's error beside the disagreement."""
    f = lambda x: np.exp(-x).sum()  # noqa: E731
    assert check_grad(f, lambda x: -np.exp(-x), [0, 0, -17])
    wrong = check_grad(f, lambda x: -np.exp(-x) * np.array([1.4, 1.0, 1.0]), [0, 0, -17], raise_exception=False)
    assert [m.in_index for m in wrong.mismatches] == [(0,)]
    assert "finite-difference error here is ~" in wrong.report() and "the disagreement is 4.00e-01" in wrong.report()


@pytest.mark.parametrize("values", [[1.0, -2.5, 3.0], [0.0, 0.5, 100.0]])
def test_float32_only_function_gets_float32_steps_and_no_false_kink(values):
    """Issue 19, item 1: a function that refuses float64 falls back to float32, with steps
    (and a rounding estimate) for float32: x**2 passes and is no kink."""
    def square_float32_only(x):
        if x.dtype != np.float32:
            raise TypeError("float32 only")
        return (x * x).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = check_grad(square_float32_only, lambda x: 2 * x, np.array(values, np.float32), engines=())
    assert result and not result.kinks
    assert "finite differences ran in float32" in result.report()
    assert result.blocks[0].steps.min() >= step_for(1.0, np.float32)


def test_steps_follow_the_dtype_and_the_element():
    assert step_for(1.0, np.float32) / step_for(1.0) == pytest.approx((unit_roundoff(np.float32) / unit_roundoff(np.float64)) ** 0.2)
    assert step_for(1e6) == pytest.approx(1e6 * step_for(0.0))


def test_adaptation_shrinks_the_step_when_truncation_dominates():
    """1/x near 0: the first step is too coarse; the adapted one is smaller and the estimate
    better than the first step alone."""
    f = lambda t: [np.array([1 / (0.003 + t)])]  # noqa: E731
    f0 = f(0.0)
    fixed = derivative(f, f0, step_for(0.003), adapt=False)
    adapted = derivative(f, f0, step_for(0.003), target=lambda v: 1e-6 * np.abs(v))
    exact = -1 / 0.003 ** 2
    assert adapted.step[0][0] < fixed.step[0][0]
    assert abs(adapted.value[0][0] - exact) < abs(fixed.value[0][0] - exact)
    assert abs(adapted.value[0][0] - exact) <= adapted.error[0][0]


def test_a_fixed_step_is_used_as_given():
    import symgrad

    x = symgrad.tensor([0.5, 2.0], requires_grad=True)
    jacobian = numerical_jacobian(lambda x: x ** 3, (x,), eps=1e-3)[0][0]
    np.testing.assert_allclose(np.diag(jacobian), [0.75, 12.0], rtol=1e-9)
