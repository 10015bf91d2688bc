"""symgrad.testing's assertion helpers: what passes, and failure messages that read well."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.testing import (assert_check_grad, assert_function_backward, assert_gradcheck, assert_gradgradcheck,
                             assert_grads_close, close_tolerances)


def test_close_gradients_pass_in_every_form():
    x = symgrad.tensor([1.0, 2.0])
    assert_grads_close(x, np.array([1.0, 2.0]))
    assert_grads_close([x, None], [[1.0, 2.0], None], names=["x", "unused"])
    assert_grads_close({"w": x}, {"w": x + 1e-9})
    assert_grads_close(symgrad.tensor(1.0), 1.0)


@pytest.mark.parametrize("actual, expected, kwargs, message", [
    ([1.0, 2.0, 3.0], [1.0, 2.5, 3.0], {}, r"grad: 1 of 3 element\(s\) outside tolerance \(rtol=1e-07, atol=1e-07\)\n"
                                         r"  grad\[1\]: actual 2, expected 2.5, abs err 5.00e-01, rel err 2.00e-01"),
    ({"w": np.ones((2, 2))}, {"w": np.eye(2)}, {}, r"w\[0, 1\]: actual 1, expected 0.*\n  w\[1, 0\]"),
    ({"w": np.ones(2)}, {"w": np.ones(3)}, {}, r"w: shape \[2\] differs from the expected \[3\]"),
    ({"w": None}, {"w": np.ones(3)}, {}, "w: actual is None, expected a gradient"),
    ({"w": 1.0}, {"b": 1.0}, {}, r"actual has \['w'\], expected has \['b'\]"),
    ([1.0], [1.1], {"rtol": 0.2}, None),
    (np.arange(30.0), np.zeros(30), {}, r"\.\.\. and 19 more"),
])
def test_failure_messages_name_each_element(actual, expected, kwargs, message):
    if message is None:
        assert_grads_close(actual, expected, **kwargs)
        return
    with pytest.raises(AssertionError, match=message):
        assert_grads_close(actual, expected, **kwargs)


def test_tolerances_follow_the_dtype():
    a = np.float32([1.0])
    assert_grads_close(a, a * (1 + 1e-6))  # float32 default rtol 1.3e-6
    with pytest.raises(AssertionError):
        assert_grads_close(a.astype(np.float64), a.astype(np.float64) * (1 + 1e-6))
    assert close_tolerances(np.float64) == (1e-7, 1e-7)


class Leaky(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g


def test_assertion_forms_of_the_checks():
    x = symgrad.tensor([0.5, -1.5], requires_grad=True)
    assert_gradcheck(lambda x: x.sin(), (x,), engines=("tape",))
    assert_gradgradcheck(lambda x: x.sin(), (x,), engines=("tape",))
    assert_check_grad(lambda v: (v ** 2).sum(), lambda v: 2 * v, np.array([1.0, 2.0]), engines=("tape",))
    with pytest.raises(AssertionError, match=r"check_function\(Leaky\) failed.\nWorst mismatch: .*d input0\[1\]"):
        assert_function_backward(Leaky, (x,))
    with pytest.raises(AssertionError, match=r"lambda v: np.array\(\[2.0, 0.0\]\) \* v disagrees with finite differences on 1 of 2"):
        assert_check_grad(lambda v: (v ** 2).sum(), lambda v: np.array([2.0, 0.0]) * v, np.array([1.0, 2.0]),
                          engines=("tape",))


def test_strategies_load_lazily():
    import symgrad.testing as testing

    assert callable(testing.programs) and callable(testing.arrays_in)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        testing.nope  # noqa: B018
