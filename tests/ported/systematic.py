"""The check every case of the ported systematic suites runs (HIPS autograd's ``combo_check``
and ``check_grads``, rewritten): a function of some arrays, its value against NumPy's, and
its gradient with respect to each differentiated argument four ways.

* ``symgrad.grad`` against central differences of the function;
* eager ``.backward()`` on each engine (``"symbolic"``, ``"tape"``) against the same
  differences;
* forward mode (autograd's ``modes=["fwd", "rev"]``): ``symgrad.jvp`` along a random
  tangent against central differences of the outputs;
* to order 2 (autograd's default): a Hessian-vector product, ``grad`` of ``grad`` along a
  random direction and eager double backward (``create_graph=True``) on each engine,
  against central differences of the gradient;
* PyTorch's autograd, where the case gives the torch spelling (skipped without torch).

A function's output (an array, or a list or tuple of them) is reduced to a scalar
against fixed weights, as autograd's ``check_grads`` does with a random vector, so every
output element reaches the gradient.
"""
from __future__ import annotations

import numpy as np

import symgrad

from .conftest import central_grad

ENGINES = ("symbolic", "tape")


def outputs(result) -> list:
    """The arrays (tensors) a function returned, as a list."""
    return list(result) if isinstance(result, (list, tuple)) else [result]


def weights_like(result) -> list[np.ndarray]:
    """Fixed weights, one array per output, shaped like it and all distinct."""
    out, start = [], 0
    for part in outputs(result):
        shape = tuple(np.shape(part.detach().numpy() if isinstance(part, symgrad.Tensor) else part))
        size = int(np.prod(shape))
        out.append(np.cos(np.arange(start, start + size).reshape(shape) + 0.5))
        start += size
    return out


def scalarized(f, weights):
    """``f`` reduced to a scalar: the sum of each output times its weights."""
    def loss(*args):
        total = 0.0
        for part, w in zip(outputs(f(*args)), weights):
            total = total + (part * symgrad.tensor(w)).sum()
        return total
    return loss


def as_input(a):
    """An argument as autograd's tests pass it: Python floats stay floats."""
    return a if isinstance(a, float) else np.array(a, dtype=np.float64)


def check_case(f, args, argnums=(0,), order=2, reference=None, torch_f=None, rng=None, forward=True, rtol=1e-5,
               atol=1e-7):
    """Run every check on ``f(*args)``; ``reference`` (NumPy's function on the arrays) gives
    the expected value, ``torch_f`` the same function on torch tensors; ``forward`` adds
    forward mode and ``order=2`` the second derivative (both draw directions from ``rng``)."""
    args = [as_input(a) for a in args]
    value = f(*[symgrad.tensor(a) for a in args])
    if reference is not None:
        expected = outputs(reference(*[np.array(a) for a in args]))
        got = outputs(value)
        assert len(got) == len(expected), f"{len(got)} outputs, NumPy gives {len(expected)}"
        for g, e in zip(got, expected):
            g = g.detach().numpy()
            assert g.shape == np.shape(e), f"value shape {g.shape}, NumPy's is {np.shape(e)}"
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    loss = scalarized(f, weights_like(value))
    differences = {i: central_grad(loss, args, i) for i in argnums}
    grads = {}
    for i in argnums:
        got = grads[i] = symgrad.grad(loss, argnums=i)(*args)
        assert np.shape(got) == np.shape(args[i]), f"grad shape {np.shape(got)} for an argument of {np.shape(args[i])}"
        np.testing.assert_allclose(got, differences[i], rtol=rtol, atol=atol, err_msg=f"symgrad.grad, argnum {i}")
    previous = symgrad.get_backward_engine()
    try:
        for engine in ENGINES:
            symgrad.set_backward_engine(engine)
            tensors = [symgrad.tensor(a, requires_grad=k in argnums) for k, a in enumerate(args)]
            loss(*tensors).backward()
            for i in argnums:
                np.testing.assert_allclose(tensors[i].grad.numpy().reshape(np.shape(args[i])), differences[i],
                                           rtol=rtol, atol=atol, err_msg=f"{engine} backward, argnum {i}")
    finally:
        symgrad.set_backward_engine(previous)
    if forward:
        check_forward_mode(f, args, argnums, rng, rtol=rtol, atol=atol)
    if order >= 2:
        for i in argnums:
            check_second_order(loss, args, i, rng)
    if torch_f is not None:
        check_torch(torch_f, args, argnums, grads, weights_like(value))


def check_forward_mode(f, args, argnums, rng, eps=1e-6, rtol=1e-5, atol=1e-7):
    """``symgrad.jvp`` along a random tangent of the differentiated arguments against central
    differences of every output along it (autograd's ``modes=["fwd", "rev"]``)."""
    tangents = [rng.standard_normal(np.shape(a)) if k in argnums else np.zeros(np.shape(a)) for k, a in enumerate(args)]
    tangents = [float(t) if isinstance(a, float) else t for t, a in zip(tangents, args)]
    _, tangent_out = symgrad.jvp(f, tuple(args), tuple(tangents))

    def at(step):
        return outputs(f(*[symgrad.tensor(np.asarray(a) + step * np.asarray(t)) for a, t in zip(args, tangents)]))

    for got, plus, minus in zip(outputs(tangent_out), at(eps), at(-eps)):
        np.testing.assert_allclose(got, (plus.numpy() - minus.numpy()) / (2 * eps), rtol=rtol, atol=atol,
                                   err_msg="symgrad.jvp (forward mode)")


def check_second_order(loss, args, i, rng, eps=1e-5):
    """``grad(grad(loss))`` along a random direction against differences of the gradient."""
    v = rng.standard_normal(np.shape(args[i]))
    gradient = symgrad.grad(loss, argnums=i)

    def directional(*a):
        return (symgrad.grad(loss, argnums=i)(*a) * symgrad.tensor(v)).sum()

    hvp = symgrad.grad(directional, argnums=i)(*args)

    def shifted(step):
        return [a + step * v if k == i else a for k, a in enumerate(args)]

    expected = (np.asarray(gradient(*shifted(eps))) - np.asarray(gradient(*shifted(-eps)))) / (2 * eps)
    np.testing.assert_allclose(hvp, expected, rtol=1e-5, atol=1e-6, err_msg=f"second order, argnum {i}")
    previous = symgrad.get_backward_engine()
    try:
        for engine in ENGINES:  # eager double backward: PyTorch's create_graph=True
            symgrad.set_backward_engine(engine)
            tensors = [symgrad.tensor(a, requires_grad=k == i) for k, a in enumerate(args)]
            first, = symgrad.autograd.grad(loss(*tensors), tensors[i], create_graph=True)
            if first.grad_fn is None:  # a gradient that does not depend on the input: zero curvature
                eager = np.zeros(np.shape(args[i]))
            else:
                eager, = symgrad.autograd.grad((first * symgrad.tensor(v)).sum(), tensors[i], allow_unused=True)
                eager = np.zeros(np.shape(args[i])) if eager is None else eager.numpy()
            np.testing.assert_allclose(np.reshape(eager, np.shape(args[i])), expected, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{engine} double backward (create_graph), argnum {i}")
    finally:
        symgrad.set_backward_engine(previous)


def check_torch(torch_f, args, argnums, grads, weights):
    """torch's gradient of the same weighted sum against symgrad's (skip without torch)."""
    import pytest

    torch = pytest.importorskip("torch", exc_type=ImportError)
    tensors = [torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=k in argnums)
               for k, a in enumerate(args)]
    total = sum((part * torch.tensor(w)).sum() for part, w in zip(outputs(torch_f(*tensors)), weights))
    total.backward()
    for i in argnums:
        np.testing.assert_allclose(grads[i], tensors[i].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"symgrad.grad against torch's, argnum {i}")


# ---------------------------------------------------------------------------- matrices
def normal(*shape):
    """Draws of standard normal arrays of ``shape``."""
    return lambda rng: rng.standard_normal(shape)


def well_conditioned(*shape):
    """Draws of (batches of) square matrices ``G / sqrt(n) + 3 I`` (singular values in about [1, 5])."""
    n = shape[-1]
    return lambda rng: rng.standard_normal(shape) / np.sqrt(n) + 3.0 * np.eye(n)


def positive_definite(*shape):
    """Draws of ``G G^T / n + I``: symmetric positive definite, condition number below about 5."""
    n = shape[-1]

    def draw(rng):
        g = rng.standard_normal(shape)
        return g @ np.swapaxes(g, -1, -2) / n + np.eye(n)
    return draw
