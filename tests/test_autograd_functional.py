"""Tests of ``symgrad.autograd.functional`` against ``torch.autograd.functional``: values and
return structures of ``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``vhp`` and ``hvp`` for
single and tuple inputs and outputs, ``create_graph`` (the results differentiate further),
``strict`` and the errors for bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.autograd import functional as AF

torch = pytest.importorskip("torch")
TF = torch.autograd.functional


def _lib_of(x):
    return torch if isinstance(x, torch.Tensor) else symgrad


# functions written once for both libraries: (name, function, input shapes, scalar output?)
def _elementwise(x):
    return (x ** 3).sin() * x.exp()


def _matrix(x, w):
    return (x @ w).tanh()


def _two_outputs(x, w):
    return (x * 2).sum() + (w ** 2).sum(), (x @ w) * x.sum()


def _scalar(x):
    return ((x ** 2).sum() + 1).log() * x[0]


def _scalar_two(x, w):
    return (x @ w).sin().sum() + (x ** 3).sum() * w[0, 0]


def _ignores_w(x, w):
    return (x ** 2).sum() + 0 * x[0]


FUNCTIONS = {
    "elementwise": (_elementwise, [(3,)]),
    "matrix": (_matrix, [(2, 3), (3, 2)]),
    "two-outputs": (_two_outputs, [(2, 3), (3, 2)]),
}
SCALARS = {
    "scalar": (_scalar, [(3,)]),
    "scalar-two-inputs": (_scalar_two, [(2, 3), (3, 2)]),
}


def _inputs(shapes, rng, tuple_form):
    arrays = [rng.uniform(-1.0, 1.0, shape) for shape in shapes]
    ours = tuple(symgrad.tensor(a) for a in arrays)
    theirs = tuple(torch.tensor(a) for a in arrays)
    if len(shapes) == 1 and not tuple_form:
        return ours[0], theirs[0]
    return ours, theirs


def _assert_same(ours, theirs, rtol=1e-12):
    """The same nesting of tuples, and the same values, leaf by leaf."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for mine, their in zip(ours, theirs):
            _assert_same(mine, their, rtol)
    else:
        assert isinstance(ours, symgrad.Tensor), type(ours)
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-14)


def _vectors(like, rng):
    """The same random vectors, shaped like ``like`` (a tensor or tuple), in both libraries."""
    if isinstance(like, tuple):
        pairs = [_vectors(item, rng) for item in like]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    array = rng.standard_normal(tuple(like.shape))
    return symgrad.tensor(array), torch.tensor(array)


@pytest.mark.parametrize("tuple_form", [False, True], ids=["tensor", "tuple"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_jacobian_vjp_jvp_match_torch(name, tuple_form, rng):
    func, shapes = FUNCTIONS[name]
    ours, theirs = _inputs(shapes, rng, tuple_form)
    _assert_same(AF.jacobian(func, ours), TF.jacobian(func, theirs))
    _assert_same(AF.jacobian(func, ours, vectorize=True), TF.jacobian(func, theirs, vectorize=True))
    out_like = func(*(theirs if isinstance(theirs, tuple) else (theirs,)))
    v_ours, v_theirs = _vectors(out_like, rng)
    _assert_same(AF.vjp(func, ours, v_ours), TF.vjp(func, theirs, v_theirs))
    u_ours, u_theirs = _vectors(theirs, rng)
    _assert_same(AF.jvp(func, ours, u_ours), TF.jvp(func, theirs, u_theirs))


@pytest.mark.parametrize("tuple_form", [False, True], ids=["tensor", "tuple"])
@pytest.mark.parametrize("name", SCALARS)
def test_hessian_vhp_hvp_match_torch(name, tuple_form, rng):
    func, shapes = SCALARS[name]
    ours, theirs = _inputs(shapes, rng, tuple_form)
    _assert_same(AF.hessian(func, ours), TF.hessian(func, theirs))
    u_ours, u_theirs = _vectors(theirs, rng)
    _assert_same(AF.vhp(func, ours, u_ours), TF.vhp(func, theirs, u_theirs))
    _assert_same(AF.hvp(func, ours, u_ours), TF.hvp(func, theirs, u_theirs))
    _assert_same(AF.vjp(func, ours), TF.vjp(func, theirs))  # v may be left out for a scalar output


def test_jvp_without_v_for_a_one_element_input():
    x = 0.7
    _assert_same(AF.jvp(lambda t: (t * 3).sin(), symgrad.tensor(x)),
                 TF.jvp(lambda t: (t * 3).sin(), torch.tensor(x, dtype=torch.float64)))


@pytest.mark.parametrize("function", ["jacobian", "hessian", "vjp", "hvp"])
def test_create_graph_keeps_the_results_differentiable(function, rng):
    data = rng.uniform(0.5, 1.5, 3)
    results = []
    for lib, functional in ((symgrad, AF), (torch, TF)):
        x = lib.tensor(data, requires_grad=True)
        func = _scalar if function in ("hessian", "hvp") else _elementwise
        if function in ("vjp", "hvp"):
            v = lib.tensor(np.array([1.0, -2.0, 0.5]))
            result = getattr(functional, function)(func, x, v, create_graph=True)[1]
        else:
            result = getattr(functional, function)(func, x, create_graph=True)
        assert result.requires_grad
        (result ** 2).sum().backward()
        results.append(x.grad)
    _assert_same(results[0], results[1], rtol=1e-11)


def test_results_are_detached_without_create_graph():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    out, result = AF.vjp(_elementwise, x, symgrad.ones(2))
    assert not out.requires_grad and not result.requires_grad
    assert not AF.jacobian(_elementwise, x).requires_grad
    assert x.grad is None


def test_independent_inputs_give_zeros_or_raise_in_strict_mode_like_torch(rng):
    ours, theirs = _inputs([(3,), (2,)], rng, True)
    _assert_same(AF.jacobian(_ignores_w, ours), TF.jacobian(_ignores_w, theirs))
    _assert_same(AF.vjp(_ignores_w, ours), TF.vjp(_ignores_w, theirs))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        TF.vjp(_ignores_w, theirs, strict=True)
    with pytest.raises(RuntimeError, match="independent of input 1. This is not allowed in strict mode"):
        AF.vjp(_ignores_w, ours, strict=True)
    with pytest.raises(RuntimeError, match="output 0 of the user-provided function does not require gradients"):
        AF.jacobian(lambda x: symgrad.ones(2), ours[0], strict=True)
    _assert_same(AF.jacobian(lambda x: symgrad.ones(2), ours[0]),
                 TF.jacobian(lambda x: torch.ones(2, dtype=torch.float64), theirs[0]))


@pytest.mark.parametrize("call, error, message", [
    (lambda x: AF.jacobian(_elementwise, [x]), TypeError, "must be either a Tensor or a tuple of Tensors but the "
                                                          "given inputs has type list"),
    (lambda x: AF.vjp(_elementwise, (x, 3.0)), TypeError, "the value at index 1 has type float"),
    (lambda x: AF.vjp(_elementwise, x, symgrad.ones(2)), RuntimeError, r"entry 0 of v has invalid size: should be "
                                                                       r"\[3\]"),
    (lambda x: AF.vjp(_elementwise, x, (x, x)), RuntimeError, "v is a tuple of invalid length: should be 1"),
    (lambda x: AF.vjp(_elementwise, x), RuntimeError, "v can only be None if the output is a single Tensor"),
    (lambda x: AF.jvp(_elementwise, x), RuntimeError, "v can only be None if the input is a single Tensor"),
    (lambda x: AF.hessian(_elementwise, x), RuntimeError, "should contain a single element, got shape \\[3\\]"),
    (lambda x: AF.hessian(lambda t: (t, t), x), RuntimeError, "should return a single Tensor, got tuple"),
    (lambda x: AF.jacobian(lambda t: t.sum().item(), x), TypeError, "outputs of the user-provided function"),
    (lambda x: AF.jacobian(_elementwise, x, strategy="forward-mode"), NotImplementedError, "reverse mode"),
    (lambda x: AF.hessian(_scalar, x, outer_jacobian_strategy="forward-mode"), NotImplementedError,
     "outer_jacobian_strategy='forward-mode'"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(symgrad.tensor([0.1, 0.2, 0.3]))


def test_reachable_as_torch_spells_it():
    assert symgrad.autograd.functional.hessian is AF.hessian
    assert set(AF.__all__) == {"vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"}
