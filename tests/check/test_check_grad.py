"""check_grad: NumPy gradient functions against finite differences, element by element,
with the traced derivative as a third opinion when f runs on symgrad tensors."""
from __future__ import annotations

import numpy as np
import pytest

from symgrad.check import GradcheckError, check_grad

from .rosenbrock import rosen, rosen_der


def rosen_der_wrong(x):
    g = rosen_der(x)
    g[-1] *= 0.5  # forgets a factor of 2 in the last element
    return g


X = np.array([0.5, -0.3, 1.2, 0.8])


def test_right_numpy_gradient_passes_with_the_traced_opinion(engine):
    result = check_grad(rosen, rosen_der, X, engines=(engine,))
    assert result and result.labels == (f"{engine} (traced rosen)", "rosen_der")


def test_wrong_numpy_gradient_names_the_element():
    with pytest.raises(GradcheckError) as caught:
        check_grad(rosen, rosen_der_wrong, X, engines=("tape",))
    result = caught.value.result
    assert [(m.label, m.in_index) for m in result.mismatches] == [("rosen_der_wrong", (3,))]
    message = str(caught.value)
    assert "check_grad(rosen) failed" in message and "d rosen / d x[3]" in message
    assert "tape (traced rosen)" in message  # the third opinion agrees with finite differences


def test_numpy_only_function_is_checked_by_finite_differences_alone():
    # np.cbrt has no op in symgrad's table, so f cannot run on tensors
    result = check_grad(lambda x: np.cbrt(x).sum(), lambda x: np.cbrt(x) / (3 * x), X, engines=("tape",))
    assert result and result.labels == ("lambda x: np.cbrt(x) / (3 * x)",)
    assert "f was not traced" in result.report()


def test_numpy_function_made_of_ops_is_traced_too():
    # np.sin is the op sin on tensors (tape/numpy_protocol.py): a third opinion
    result = check_grad(lambda x: np.sin(x).sum(), lambda x: np.cos(x), X, engines=("tape",))
    assert result and result.labels == ("tape (traced lambda x: np.sin(x).sum())", "lambda x: np.cos(x)")


def test_several_arguments_and_a_vector_output():
    def f(a, b):
        return a * b.sum()

    def jac(a, b):  # Jacobians: shape f.shape + argument shape
        return np.diag(np.full(a.shape, b.sum())), np.outer(a, np.ones_like(b))

    assert check_grad(f, jac, np.array([1.0, 2.0]), np.array([0.5, -1.0, 3.0]), argnums=(0, 1), engines=("tape",))


@pytest.mark.parametrize("grad_f, message", [
    (lambda x: np.zeros(3), r"gradient of shape \[3\] for x of shape \[4\]; expected \[4\]"),
    (lambda x: (np.zeros(4), np.zeros(4)), r"gradient of shape \[2, 4\] for x of shape \[4\].*pass argnums"),
    (lambda x: (np.zeros(4), np.zeros(3)), r"not an array of numbers .*pass argnums"),
])
def test_gradient_of_the_wrong_shape_is_explained(grad_f, message):
    with pytest.raises(ValueError, match=message):
        check_grad(rosen, grad_f, X)


def test_check_grad_accepts_lists_and_ints():
    assert check_grad(lambda x: (x * x).sum(), lambda x: 2 * x, [1, 2, 3], engines=("tape",))
