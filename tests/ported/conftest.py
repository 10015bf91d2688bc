"""Helpers shared by the ported suites (``tests/ported``): central finite differences of a
function written with symgrad ops (evaluated eagerly, not through a transform) and a
fixture that selects the eager backward engine and restores the previous choice."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad


def central_grad(f, args, argnum=0, eps=1e-6):
    """d f(*args) / d args[argnum] by central differences, element by element.

    ``f`` returns a scalar (a symgrad tensor with one element, or a number); it is called
    on plain NumPy float64 arrays wrapped as symgrad tensors, so no transform is involved.
    """
    arrays = [np.array(a, dtype=np.float64) for a in args]
    x = arrays[argnum]
    out = np.zeros(x.shape)

    def value(shift_index, shift):
        shifted = [a.copy() for a in arrays]
        shifted[argnum][shift_index] += shift
        result = f(*[symgrad.tensor(a) for a in shifted])
        if isinstance(result, symgrad.Tensor):
            result = result.detach().numpy()
        return float(np.asarray(result).reshape(()))

    for k in np.ndindex(*x.shape):
        out[k] = (value(k, eps) - value(k, -eps)) / (2 * eps)
    return out


@pytest.fixture
def numerical_grad():
    """The :func:`central_grad` helper."""
    return central_grad


@pytest.fixture(params=["symbolic", "tape"])
def engine(request):
    """Run the test once per eager backward engine, restoring the previous engine after."""
    previous = symgrad.get_backward_engine()
    symgrad.set_backward_engine(request.param)
    yield request.param
    symgrad.set_backward_engine(previous)
