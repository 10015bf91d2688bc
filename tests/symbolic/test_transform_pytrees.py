"""Pytree arguments in every transform: tuples, lists, dicts and namedtuples of arrays
(issue 16's pytrees, issue 19's keyword pytrees), as JAX's ``api_test.py`` (``grad`` of
dicts and tuples, ``jacfwd``/``hessian`` of pytrees) and HIPS autograd's
``test_dict.py``/``test_list.py``/``test_tuple.py`` use them.  Every result is compared
with a fresh eager run on the tape engine, and its structure with the argument's.

symgrad differs from JAX in one place, on purpose: a list or tuple of numbers only is one
array (NumPy's reading), not a pytree of scalars (see :func:`symgrad.pytree.is_node`).
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import symgrad
from symgrad.symbolic import grad, hessian, jacobian, jvp, value_and_grad, vjp

Params = namedtuple("Params", ["w", "b"])


def _loss(params, x, y):
    """A logistic regression written for a dict, a tuple or a namedtuple of parameters."""
    w, b = (params["w"], params["b"]) if isinstance(params, dict) else (params[0], params[1])
    return symgrad.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)


def _eager_grads(f, leaves, rebuild, *data):
    """The tape engine's gradient of ``f(rebuild(leaves), *data)`` for every leaf."""
    tensors = [symgrad.tensor(v, requires_grad=True) for v in leaves]
    with symgrad.backward_engine("tape"):
        out = f(rebuild(tensors), *data)
        grads = symgrad.autograd.grad(out, tensors, allow_unused=True)
    return out.detach().numpy(), [np.zeros(np.shape(v)) if g is None else g.numpy() for g, v in zip(grads, leaves)]


STRUCTURES = {
    "dict": lambda w, b: {"w": w, "b": b},
    "OrderedDict": lambda w, b: OrderedDict([("b", b), ("w", w)]),
    "tuple": lambda w, b: (w, b),
    "list": lambda w, b: [w, b],
    "namedtuple": lambda w, b: Params(w, b),
}


def _leaves(params):
    return (params["w"], params["b"]) if isinstance(params, dict) else (params[0], params[1])


@pytest.mark.parametrize("structure", STRUCTURES)
def test_grad_and_value_and_grad_of_a_pytree_keep_its_structure(structure, rng):
    make = STRUCTURES[structure]
    x, y = rng.normal(size=(6, 3)), (rng.uniform(size=(6, 1)) > 0.5) * 1.0
    dloss, vloss = grad(_loss), value_and_grad(_loss)
    for _ in range(2):  # new values, one trace
        params = make(rng.normal(size=(3, 1)), rng.normal(size=(1,)))
        g = dloss(params, x, y)
        value, g2 = vloss(params, x, y)
        assert type(g) is type(params) and type(g2) is type(params)
        if isinstance(params, dict):
            assert list(g) == (list(params) if structure == "OrderedDict" else sorted(params))
        expected_value, (ew, eb) = _eager_grads(_loss, list(_leaves(params)), lambda t: make(*t), x, y)
        for got in (g, g2):
            np.testing.assert_allclose(_leaves(got)[0], ew, rtol=1e-10)
            np.testing.assert_allclose(_leaves(got)[1], eb, rtol=1e-10)
        np.testing.assert_allclose(value, expected_value, rtol=1e-12)


def test_nested_pytrees_and_none_leaves():
    def f(p):
        return (p["layers"][0]["w"] ** 2).sum() + (p["layers"][1]["w"] * p["scale"]).sum()

    params = {"layers": [{"w": np.array([1.0, 2.0]), "act": None}, {"w": np.array([3.0])}],
              "scale": np.array(2.0)}
    g = grad(f)(params)
    assert g["layers"][0]["act"] is None
    np.testing.assert_allclose(g["layers"][0]["w"], [2.0, 4.0])
    np.testing.assert_allclose(g["layers"][1]["w"], [2.0])
    np.testing.assert_allclose(g["scale"], 3.0)


def test_several_argnums_with_pytrees():
    f = lambda a, b: (a[0] * b["k"]).sum() + (a[1] ** 3).sum()  # noqa: E731
    a, b = (np.array([1.0, 2.0]), np.array(0.5)), {"k": np.array([3.0, 4.0])}
    ga, gb = grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga[0], [3.0, 4.0])
    np.testing.assert_allclose(ga[1], 0.75)
    np.testing.assert_allclose(gb["k"], [1.0, 2.0])


def test_jacobian_of_a_pytree():
    f = lambda p: p["a"] * p["b"].sum()  # noqa: E731
    p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0, 5.0])}
    jac = jacobian(f)(p)
    np.testing.assert_allclose(jac["a"], 12.0 * np.eye(2))
    np.testing.assert_allclose(jac["b"], np.outer(p["a"], np.ones(3)))


def test_hessian_of_a_pytree_is_a_pytree_of_pytrees():
    f = lambda p: (p[0] ** 2 * p[1]).sum()  # noqa: E731
    p = (np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    h = hessian(f)(p)
    # the same function of one concatenated vector, for the reference
    flat = hessian(lambda v: (v[:2] ** 2 * v[2:]).sum())(np.concatenate(p))
    assert isinstance(h, tuple) and all(isinstance(row, tuple) for row in h)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(h[i][j], flat[2 * i:2 * i + 2, 2 * j:2 * j + 2])


def test_vjp_and_jvp_of_pytrees():
    f = lambda p: p["a"] * p["b"]  # noqa: E731
    p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    value, back = vjp(f, p)
    np.testing.assert_allclose(value, [3.0, 8.0])
    (cotangent,) = back(np.ones(2))
    np.testing.assert_allclose(cotangent["a"], p["b"])
    np.testing.assert_allclose(cotangent["b"], p["a"])
    value, tangent = jvp(f, (p,), ({"a": np.ones(2), "b": np.zeros(2)},))
    np.testing.assert_allclose(tangent, p["b"])
    with pytest.raises(ValueError, match="tangent for argument 0 has the structure"):
        jvp(f, (p,), ({"a": np.ones(2)},))


def test_keyword_pytrees_are_data():
    f = lambda w, *, data: ((data["x"] @ w - data["y"]) ** 2).mean()  # noqa: E731
    data = {"x": np.array([[1.0, 2.0], [3.0, 4.0]]), "y": np.array([1.0, 0.0])}
    w = np.array([0.5, -0.5])
    g = grad(f)(w, data=data)
    residual = data["x"] @ w - data["y"]
    np.testing.assert_allclose(g, data["x"].T @ residual)


def test_another_structure_retraces(traces):
    f = grad(lambda p: sum((v ** 2).sum() for v in p.values()))
    f({"a": np.ones(2)})
    f({"a": np.ones(2) * 3})
    assert len(traces) == 1
    g = f({"a": np.ones(2), "b": np.ones(1)})
    assert len(traces) == 2 and set(g) == {"a", "b"}


def test_leaf_names_never_collide_with_a_parameter():
    def f(p, p_w):
        return (p["w"] * 2.0 + p_w * 3.0).sum()

    gp, gw = grad(f, argnums=(0, 1))({"w": np.ones(2)}, np.ones(2))
    np.testing.assert_allclose(gp["w"], [2.0, 2.0])
    np.testing.assert_allclose(gw, [3.0, 3.0])


def test_a_list_of_numbers_is_one_array():
    np.testing.assert_allclose(grad(lambda x: (x ** 2).sum())([1.0, 2.0]), [2.0, 4.0])
    np.testing.assert_allclose(grad(lambda x, m: (x * m).sum())(np.ones(2), [[1.0, 2.0], [3.0, 4.0]]), [4.0, 6.0])


def test_the_both_engine_cross_checks_pytrees():
    with symgrad.backward_engine("both"):
        for transform in (grad, value_and_grad, jacobian, hessian):
            transform(lambda p: (p["a"] ** 2 * p["b"]).sum())({"a": np.array([1.0, 2.0]), "b": np.array(3.0)})


def test_aux_may_be_any_pytree():
    Aux = namedtuple("Aux", ["residual", "label"])

    def f(w):
        return ((w - 1.0) ** 2).sum(), Aux(w - 1.0, "fit")

    g, aux = grad(f, has_aux=True)(np.array([2.0, 3.0]))
    assert isinstance(aux, Aux) and aux.label == "fit"
    np.testing.assert_allclose(aux.residual, [1.0, 2.0])
    np.testing.assert_allclose(g, [2.0, 4.0])
