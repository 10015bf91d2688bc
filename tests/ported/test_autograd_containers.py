"""Port of HIPS autograd's container and wrapper tests: ``tests/test_dict.py``,
``test_list.py``, ``test_tuple.py`` (gradients with respect to dicts, lists and tuples,
repeated and unused items, iteration over a dict, ``dict.get``, nested higher-order
derivatives through a tuple) and ``tests/test_wrappers.py`` (``value_and_grad``,
``hessian``, ``multigrad``, ``elementwise_grad``, Hessian-vector, vector-Jacobian and
Jacobian-vector products, ``grad_and_aux``, ``make_ggnvp``, ``functools.partial``,
dtypes, the wrapped function's name), onto symgrad's transforms and pytrees; namedtuples
and ``OrderedDict`` are added, as symgrad's pytrees take them.

autograd's ``check_grads`` is replaced by hand-derived closed forms and central finite
differences of the eager function (``conftest.central_grad``); nothing is checked against
the transform under test.

How autograd's wrappers map onto symgrad:

* ``multigrad(f, argnums=[3, 1])`` and ``grad_named(f, "y")`` are ``grad(f, argnums=(3, 1))``
  and ``grad(f, argnums=<position of y>)``: symgrad differentiates positional arguments
  only, as JAX does (a keyword argument can be a pytree argument that is not
  differentiated).
* ``elementwise_grad(f)(x)`` is ``vjp(f, x)[1](ones)``; ``vector_jacobian_product`` is
  ``vjp``; ``make_jvp`` is ``jvp``; ``hessian_vector_product`` and ``make_ggnvp`` are
  compositions of ``grad``, ``jvp`` and ``vjp`` written out in the tests.
* ``grad_and_aux`` is ``grad(f, has_aux=True)``.
* ``checkpoint`` is not applicable: symgrad compiles one closed form of the whole
  derivative and keeps no tape of intermediate values to recompute.

Deliberate differences from autograd (each said at its test):

1. ``grad`` and ``value_and_grad`` need one scalar output, as JAX's do; ``jacobian``,
   ``vjp`` and ``jvp`` take a dict, list or tuple output (autograd's ``test_make_dict``,
   and ``jvp(grad(f))`` of a ``f`` with a dict argument, whose ``grad`` is a dict) as JAX
   does, and ``has_aux`` passes any pytree out beside a scalar.
2. A list or tuple of numbers only is one array (NumPy's reading, so
   ``[[1., 2.], [3., 4.]]`` is a matrix); autograd's ``test_isinstance`` for tuples
   differentiates ``(1.0, 2.0, 3.0)`` as three scalars, symgrad as one vector.
3. ``grad(f).__doc__`` is symgrad's description of a transform, not ``f``'s docstring.
"""
from __future__ import annotations

import functools
import operator
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import symgrad

from .conftest import central_grad

Pair = namedtuple("Pair", "first second")
Items = namedtuple("Items", "a b c")


def close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=atol)


def _three_arrays(rng):
    return rng.standard_normal((5, 6)), rng.standard_normal((4, 3)), rng.standard_normal((2, 4))


def _dict_of(arrays):
    return dict(zip(("item_1", "item_2", "item_X"), arrays))


CONTAINERS = {
    "dict": (_dict_of, ("item_1", "item_2", "item_X")),
    "list": (list, (0, 1, 2)),
    "tuple": (tuple, (0, 1, 2)),
    "namedtuple": (lambda arrays: Items(*arrays), (0, 1, 2)),
}


def _as_tensors(container):
    """A copy of ``container`` (dict, list, tuple or namedtuple of arrays) holding tensors."""
    if isinstance(container, dict):
        return {k: symgrad.tensor(v) for k, v in container.items()}
    items = [symgrad.tensor(v) for v in container]
    return type(container)(*items) if hasattr(container, "_fields") else type(container)(items)


def _replaced(container, key, value):
    """``container`` with the item at ``key`` replaced."""
    if isinstance(container, dict):
        return {**container, key: value}
    items = list(container)
    items[key] = value
    return type(container)(*items) if hasattr(container, "_fields") else type(container)(items)


def numerical_item_grad(f, container, key):
    """Central differences of ``f(container)`` with respect to ``container[key]``, eagerly."""
    tensors = _as_tensors(container)
    return central_grad(lambda item: f(_replaced(tensors, key, item)), [container[key]])


# ============================================================ test_dict/list/tuple.py: test_getter
@pytest.mark.parametrize("kind", CONTAINERS)
def test_getter_repeated_and_unused_items(kind, rng):
    make, (k1, k2, k3) = CONTAINERS[kind]
    arrays = _three_arrays(rng)

    def fun(items):
        return items[k1].sum() + items[k2].sum() + items[k2].sum()

    result = symgrad.grad(fun)(make(arrays))
    assert type(result) is type(make(arrays))
    close(result[k1], np.ones((5, 6)))
    close(result[k2], 2 * np.ones((4, 3)))
    close(result[k3], np.zeros((2, 4)))  # unused: zeros of its shape, not None


# ============================================================ test_grads: first and second order
def _sin_cos(items, k1, k2):
    return items[k1].sin().sum() + items[k2].cos().sum()


@pytest.mark.parametrize("kind", CONTAINERS)
def test_grads_first_order(kind, rng):
    make, (k1, k2, k3) = CONTAINERS[kind]
    items = make(_three_arrays(rng))
    result = symgrad.grad(lambda c: _sin_cos(c, k1, k2))(items)
    close(result[k1], np.cos(items[k1]))
    close(result[k2], -np.sin(items[k2]))
    close(result[k3], 0.0)
    close(numerical_item_grad(lambda c: _sin_cos(c, k1, k2), items, k2), -np.sin(items[k2]), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", CONTAINERS)
def test_grads_second_order(kind, rng):
    # d_fun of autograd's test_grads: a function of the gradient, differentiated again
    make, (k1, k2, k3) = CONTAINERS[kind]
    items = make(_three_arrays(rng))

    def d_fun(c):  # called eagerly by the finite differences, where grad gives arrays
        g = symgrad.grad(lambda inner: _sin_cos(inner, k1, k2))(c)
        return symgrad.sum(g[k1]) + symgrad.sin(g[k1]).sum() + symgrad.sin(g[k2]).sum()

    result = symgrad.grad(d_fun)(items)
    x1, x2 = items[k1], items[k2]
    close(result[k1], -np.sin(x1) - np.cos(np.cos(x1)) * np.sin(x1))
    close(result[k2], -np.cos(-np.sin(x2)) * np.cos(x2))
    close(result[k3], 0.0)
    close(numerical_item_grad(d_fun, items, k1), result[k1], rtol=1e-6, atol=1e-8)


# ============================================================ test_dict.py
def test_dict_iteration_in_sorted_key_order(rng):
    # test_iter: the weight of each item is its position among the sorted keys
    items = _dict_of(_three_arrays(rng))

    def fun(d):
        total = 0.0
        for i, key in enumerate(sorted(d)):
            total = total + d[key].sin().sum() * (i + 1.0) + d[key].cos().sum()
        return total

    result = symgrad.grad(fun)(items)
    for i, key in enumerate(sorted(items)):
        close(result[key], (i + 1.0) * np.cos(items[key]) - np.sin(items[key]))


def test_dict_items_values_keys(rng):
    # test_items_values_keys
    items = _dict_of(_three_arrays(rng))

    def fun(d):
        a = 0.0
        b = 0.0
        for i, (_, v) in enumerate(sorted(d.items(), key=operator.itemgetter(0))):
            a = a + v.sin().sum() * (i + 1.0)
            b = b + v.cos().sum()
        for v in d.values():
            a = a + v.sin().sum()
        for key in sorted(d.keys()):
            a = a + d[key].cos().sum()
        return a + b

    result = symgrad.grad(fun)(items)
    for i, key in enumerate(sorted(items)):
        close(result[key], (i + 2.0) * np.cos(items[key]) - 2 * np.sin(items[key]))
    close(numerical_item_grad(fun, items, "item_2"), result["item_2"], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("d,x,expected", [
    ({"item_1": 3.0}, 2.0, ({"item_1": 6.0}, 0.0)),    # the item is used: 2 * 3
    ({"item_2": 4.0}, 2.0, ({"item_2": 0.0}, 4.0)),    # the default is used: 2 * 2
    ({}, 2.0, ({}, 4.0)),
])
def test_dict_get(d, x, expected):
    # test_get, with argnums=(0, 1)
    gd, gx = symgrad.grad(lambda d, x: d.get("item_1", x) ** 2, argnums=(0, 1))(d, x)
    assert sorted(gd) == sorted(expected[0])
    for key, value in expected[0].items():
        close(gd[key], value)
    close(gx, expected[1])


def test_dict_output():
    # test_make_dict: a function returning a dict, differentiated in reverse mode (difference 1)
    x = np.array([1.0, 2.0])
    jac = symgrad.jacobian(lambda x: dict([("a", x)], b=x * 2))(x)
    assert sorted(jac) == ["a", "b"]
    close(jac["a"], np.eye(2))
    close(jac["b"], 2 * np.eye(2))
    with pytest.raises(TypeError, match="one scalar output"):  # grad needs a scalar, as JAX's
        symgrad.grad(lambda x: {"a": x.sum()})(x)
    g, aux = symgrad.grad(lambda x: (x.sum(), dict([("a", x)], b=x * 2)), has_aux=True)(np.array([1.0, 2.0]))
    close(g, [1.0, 1.0])
    assert sorted(aux) == ["a", "b"]
    close(aux["b"], [2.0, 4.0])


@pytest.mark.parametrize("value,kind", [({"x": 1.5}, dict), ((np.array(1.5), np.array(2.0)), tuple),
                                        ([np.array(1.5), np.array(2.0)], list),
                                        (Pair(np.array(1.5), np.array(2.0)), Pair)])
def test_isinstance_inside_the_traced_function(value, kind):
    # test_isinstance: the function sees the container type it was called with
    def fun(c):
        assert isinstance(c, kind)
        first = c["x"] if isinstance(c, dict) else c[0]
        return first * 3.0

    result = symgrad.grad(fun)(value)
    assert type(result) is kind
    close(result["x"] if kind is dict else result[0], 3.0)


def test_ordered_dict_keeps_its_order_and_dict_is_sorted():
    ordered = OrderedDict([("z", np.array(1.0)), ("a", np.array(2.0))])
    result = symgrad.grad(lambda d: d["z"] * d["a"] ** 2)(ordered)
    assert type(result) is OrderedDict and list(result) == ["z", "a"]
    close(result["z"], 4.0)
    close(result["a"], 4.0)
    plain = symgrad.grad(lambda d: d["z"] * d["a"] ** 2)({"z": np.array(1.0), "a": np.array(2.0)})
    close(plain["z"], 4.0)


# ============================================================ test_list.py / test_tuple.py
def test_nested_containers(rng):
    # a dict of tuples of lists, as autograd's nested-container grads
    w, b, s = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal()
    params = {"layer": ([w, b], {"scale": s}), "unused": (np.ones(2), None)}

    def fun(p):
        (weights, bias), extra = p["layer"]
        return ((weights * bias).sin() * extra["scale"]).sum()

    result = symgrad.grad(fun)(params)
    (gw, gb), gextra = result["layer"]
    close(gw, np.cos(w * b) * b * s)
    close(gb, np.cos(w * b) * w * s)
    close(gextra["scale"], np.sin(w * b).sum())
    close(result["unused"][0], np.zeros(2))
    assert result["unused"][1] is None


def test_nested_higher_order_through_a_tuple():
    # test_nested_higher_order: outer(x) = sum(sin(grad(y0 * y1)((x, x)))) = 2 sin(x)
    def outer(x):
        g0, g1 = symgrad.grad(lambda y: y[0] * y[1])((x, x))
        return g0.sin() + g1.sin()

    x = 0.7
    close(symgrad.grad(outer)(x), 2 * np.cos(x))
    close(symgrad.grad(symgrad.grad(outer))(x), -2 * np.sin(x))
    close(symgrad.grad(symgrad.grad(symgrad.grad(outer)))(x), -2 * np.cos(x))


def test_list_of_numbers_is_one_array():
    # difference 2: autograd's test_isinstance differentiates (1.0, 2.0, 3.0) as a tuple of scalars
    result = symgrad.grad(lambda t: (t * t).sum())((1.0, 2.0, 3.0))
    assert isinstance(result, np.ndarray) and result.shape == (3,)
    close(result, [2.0, 4.0, 6.0])
    mixed = symgrad.grad(lambda t: t[0] * t[1] ** 2)([np.array(1.0), 2.0])  # an array inside: a list node
    assert isinstance(mixed, list)
    close(mixed[0], 4.0)
    close(mixed[1], 4.0)


# ============================================================ aux pytrees
def test_aux_pytrees_through_grad_value_and_grad_and_jacobian():
    x = np.array([1.0, 2.0])

    def fun(v):
        return (v ** 2).sum(), {"squares": v ** 2, "parts": [v.sum(), (v * 3,)], "pair": Pair(v, None)}

    g, aux = symgrad.grad(fun, has_aux=True)(x)
    (value, aux2), g2 = symgrad.value_and_grad(fun, has_aux=True)(x)
    close(g, 2 * x)
    close(g2, 2 * x)
    close(value, 5.0)
    for a in (aux, aux2):
        close(a["squares"], x ** 2)
        close(a["parts"][0], 3.0)
        close(a["parts"][1][0], 3 * x)
        assert isinstance(a["pair"], Pair) and a["pair"].second is None
    jac, jaux = symgrad.jacobian(lambda v: (v.sin(), {"s": v.sum()}), has_aux=True)(x)
    close(jac, np.diag(np.cos(x)))
    close(jaux["s"], 3.0)


# ============================================================ test_wrappers.py
def test_return_both():
    # test_return_both: 3 x^3.2 at 1.7
    value, derivative = symgrad.value_and_grad(lambda x: 3.0 * x ** 3.2)(1.7)
    close(value, 3.0 * 1.7 ** 3.2)
    close(derivative, 9.6 * 1.7 ** 2.2)


def test_value_and_grad(rng):
    x = rng.standard_normal(5)
    value, g = symgrad.value_and_grad(lambda v: (v.sin() ** 2).sum())(x)
    close(value, (np.sin(x) ** 2).sum())
    close(g, 2 * np.sin(x) * np.cos(x))


def test_hessian_of_a_quadratic(rng):
    h = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    close(symgrad.hessian(lambda v: (v @ symgrad.tensor(h)) @ v)(x), h + h.T)


def _cosh(v):
    return (symgrad.exp(v) + symgrad.exp(-v)) / 2


def test_multigrad_argnums_order():
    # test_multigrad: argnums=[3, 1] gives (d/dd, d/db) in that order; keywords pass through
    def complicated(a, b, c, d, e, f=1.1, g=9.0):
        return a + symgrad.sin(b) + _cosh(c) + symgrad.cos(d) + symgrad.tan(e) + f + g

    args = (0.5, -0.3, 0.2, -1.1, 0.7)
    gd, gb = symgrad.grad(complicated, argnums=(3, 1))(*args, f=0.6, g=-0.1)
    close(gd, -np.sin(-1.1))
    close(gb, np.cos(-0.3))
    close(central_grad(lambda d: complicated(0.5, -0.3, 0.2, d, 0.7, f=0.6, g=-0.1), [-1.1]), gd, rtol=1e-6)


def test_multigrad_one_argument_matches_a_packed_tuple(rng):
    # test_multigrad_onearg
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    (ga,) = symgrad.grad(lambda x, y: (x + y.sin()).sum(), argnums=(0,))(a, b)
    packed = symgrad.grad(lambda xy: (xy[0] + xy[1].sin()).sum())((a, b))
    close(ga, np.ones(3))
    close(packed[0], np.ones(3))
    close(packed[1], np.cos(b))


def test_grad_named_is_argnums():
    # autograd's grad_named(fun, "y"): the position of y
    def fun(x, y):
        return x * y ** 2

    close(symgrad.grad(fun, argnums=1)(3.0, 2.0), 12.0)


def test_elementwise_grad_is_vjp_with_ones(rng):
    # test_elementwise_grad and test_elementwise_grad_multiple_args
    a = rng.standard_normal(10)
    _, back = symgrad.vjp(lambda v: v + v.sin() + _cosh(v), a)
    close(back(np.ones(10))[0], 1 + np.cos(a) + np.sinh(a))
    _, back2 = symgrad.vjp(lambda s, v: s + s.sin() + _cosh(v), 0.9, a)
    g_scalar, g_vector = back2(np.ones(10))
    close(g_vector, np.sinh(a))
    close(g_scalar, 10 * (1 + np.cos(0.9)))  # the scalar is broadcast over 10 outputs


@pytest.mark.parametrize("shape", [(5,), (5, 4), (5, 4, 3)])
def test_hessian_vector_product_by_composition(shape, rng):
    # test_hessian_vector_product / _matrix_product / _tensor_product: H of sum(sin(a)) is
    # diag(-sin(a)), so H . V = -sin(a) * V, as forward-over-reverse and reverse-over-reverse
    a, v = rng.standard_normal(shape), rng.standard_normal(shape)
    df = symgrad.grad(lambda x: x.sin().sum())
    _, forward_over_reverse = symgrad.jvp(df, (a,), (v,))
    reverse_over_reverse = symgrad.grad(lambda x, w: (df(x) * w).sum())(a, v)
    close(forward_over_reverse, -np.sin(a) * v)
    close(reverse_over_reverse, -np.sin(a) * v)
    hess = symgrad.hessian(lambda x: x.sin().sum())(a)
    close(np.tensordot(hess, v, axes=len(shape)), -np.sin(a) * v)


def _roll_sin(a):
    """np.roll(np.sin(a), 1) along the first axis."""
    s = a.sin()
    return symgrad.cat([s[-1:], s[:-1]], 0)


@pytest.mark.parametrize("shape", [(5,), (5, 4), (5, 4, 3)])
def test_vector_jacobian_product(shape, rng):
    # test_vector_jacobian_product / matrix_ / tensor_: an asymmetric Jacobian
    a, v = rng.standard_normal(shape), rng.standard_normal(shape)
    value, back = symgrad.vjp(_roll_sin, a)
    close(value, np.roll(np.sin(a), 1, axis=0))
    close(back(v)[0], np.roll(v, -1, axis=0) * np.cos(a))


def test_jacobian_vector_product(rng):
    # make_jvp: J v of the asymmetric roll, in forward direction
    a, v = rng.standard_normal(5), rng.standard_normal(5)
    value, tangent = symgrad.jvp(_roll_sin, (a,), (v,))
    close(value, np.roll(np.sin(a), 1))
    close(tangent, np.roll(np.cos(a) * v, 1))


def test_generalized_gauss_newton_vector_product(rng):
    # make_ggnvp(f, g)(x)(v) = J_f^T H_g J_f v, composed from jvp, grad and vjp: here
    # f = sin (J_f = diag(cos x)) and g(y) = sum(y^3) / 3 (H_g = diag(2 y))
    x, v = rng.standard_normal(4), rng.standard_normal(4)
    f = symgrad.sin
    y, jf_v = symgrad.jvp(f, (x,), (v,))
    _, hg_jf_v = symgrad.jvp(symgrad.grad(lambda z: (z ** 3).sum() / 3), (y,), (jf_v,))
    _, back = symgrad.vjp(f, x)
    close(back(hg_jf_v)[0], np.cos(x) * 2 * np.sin(x) * np.cos(x) * v)


def test_hessian_vector_product_on_a_dict():
    # reverse over reverse on a pytree: grad of <grad f(p), v> summed over the leaves;
    # f = sum(a^2 b): H v = (2 b va + 2 a vb, 2 a va)
    p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    v = {"a": np.array([1.0, -1.0]), "b": np.array([0.5, 2.0])}
    df = symgrad.grad(lambda q: (q["a"] ** 2 * q["b"]).sum())

    def grad_dot(q, w):
        g = df(q)
        return sum((g[k] * w[k]).sum() for k in g)

    hv = symgrad.grad(grad_dot)(p, v)
    close(hv["a"], 2 * p["b"] * v["a"] + 2 * p["a"] * v["b"])
    close(hv["b"], 2 * p["a"] * v["a"])


def test_jvp_of_grad_with_a_dict_argument():
    # forward over reverse on a pytree (difference 1: grad of a dict argument is a dict, an
    # output jvp takes): f = sum(a^2 b), the tangent of its gradient is H v
    p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    v = {"a": np.array([1.0, -1.0]), "b": np.array([0.5, 2.0])}
    df = symgrad.grad(lambda q: (q["a"] ** 2 * q["b"]).sum())
    g, hv = symgrad.jvp(df, (p,), (v,))
    close(g["a"], 2 * p["a"] * p["b"])
    close(g["b"], p["a"] ** 2)
    close(hv["a"], 2 * p["b"] * v["a"] + 2 * p["a"] * v["b"])
    close(hv["b"], 2 * p["a"] * v["a"])


def test_grad_and_aux():
    g, aux = symgrad.grad(lambda x: ((x ** 2).sum(), x.sum()), has_aux=True)(np.array([1.0, 2.0]))
    close(g, [2.0, 4.0])
    close(aux, 3.0)


def test_partial():
    # test_partial: a functools.partial is a function like any other
    df = symgrad.grad(functools.partial(lambda x, y: x * y ** 2, y=3.0))
    close(df(2.0), 9.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_dtypes_are_kept(dtype, rng):
    # test_dtypes
    y = rng.standard_normal((4, 4)).astype(dtype)
    g = symgrad.grad(lambda x: (x ** 2).sum())(y)
    assert g.dtype == dtype
    close(g, 2 * y.astype(float), rtol=1e-2, atol=1e-3)


def test_wrapped_name():
    # test_wrapped_name_and_docs: the name says what was transformed (difference 3: the doc
    # is symgrad's)
    def polynomial(x, y):
        return x * y

    assert "polynomial" in symgrad.grad(polynomial).__name__
    assert "polynomial" in symgrad.hessian(polynomial).__name__
