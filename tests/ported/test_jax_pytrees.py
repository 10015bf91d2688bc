"""Port of JAX's pytree semantics for transforms: the pytree parts of ``tests/api_test.py``
(``grad``/``value_and_grad`` of dict and tuple arguments, ``argnums`` over pytrees,
``has_aux`` with pytree aux -- ``test_grad_and_aux_constant``,
``test_grad_and_aux_no_tracers`` --, ``test_jacobian_on_pytrees``,
``test_hessian_on_pytrees``, ``vjp``/``jvp`` with pytree primals and
``test_jvp_mismatched_arguments``' tree-structure half, retracing on a new structure) and
of ``tests/tree_util_test.py`` (flatten/unflatten round trips, leaf order, structures as
hashable keys, ``None``), run against ``symgrad.pytree`` and symgrad's transforms.
Expected values are closed forms derived by hand, central finite differences of the eager
function, or the eager tape (``backward()``).

Deliberate differences from JAX (each said at its test):

1. A list or tuple of numbers only is one array, as NumPy reads it: ``(1., 2., 3.)`` is a
   vector (JAX: three scalar leaves), so ``jacobian(lambda x: x[:2])((1., 2., 3.))`` is a
   2x3 array where JAX gives a tuple of tuples with the same numbers, and ``()`` is an
   empty array where JAX sees an empty tree.
2. ``hessian`` needs one output element in every output leaf (a pytree of scalar losses is
   fine): JAX's ``hessian(lambda x: jnp.array(x) ** 2)`` of a vector output has no
   counterpart; its pytree-of-pytrees structure is tested on a scalar function instead.
   Pytree *outputs* of every transform are tested in ``test_jax_pytree_outputs.py``.
3. ``None`` is a leaf that stays ``None`` in every result (JAX: a subtree with no leaves);
   what a user sees is the same.
4. A tangent whose structure differs from its primal's raises ``ValueError`` naming both
   structures (JAX: ``TypeError``), and ``jvp`` reads ``primals`` and ``tangents`` as two
   sequences, so a tuple of primals with a list of tangents is accepted.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import symgrad
from symgrad import pytree

from .conftest import central_grad

Params = namedtuple("Params", "weight bias")


def close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=atol)


# ============================================================ tree_util_test.py
TREES = [
    pytest.param((), id="empty-tuple"),
    pytest.param({}, id="empty-dict"),
    pytest.param({"b": np.ones(2), "a": 3.0}, id="dict"),
    pytest.param([np.ones(2), (4.0, None)], id="list-tuple-none"),
    pytest.param(Params(np.zeros((2, 2)), [np.ones(1), {"k": 2.0}]), id="namedtuple"),
    pytest.param(OrderedDict([("z", 1.0), ("y", np.ones(3))]), id="ordereddict"),
    pytest.param({"x": [[1.0, 2.0], [3.0, 4.0]]}, id="matrix-as-nested-list"),
]


def _same_tree(a, b):
    """Structure, container types and leaves of ``a`` and ``b`` are equal (a plain dict
    comes back in sorted key order, as in JAX; an OrderedDict in its own)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == (list(b) if isinstance(a, OrderedDict) else sorted(b))
        for key in a:
            _same_tree(a[key], b[key])
    elif pytree.is_node(a):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_tree(x, y)
    elif a is None:
        assert b is None
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tree", TREES)
def test_flatten_unflatten_roundtrip(tree):
    # testRoundtrip
    leaves, structure = pytree.flatten(tree)
    _same_tree(structure.unflatten(leaves), tree)
    assert structure.n_leaves == len(leaves)


def test_leaf_order_is_sorted_dict_keys_and_sequence_positions():
    # testFlattenOrder: a dict by sorted key, an OrderedDict by insertion
    leaves, _ = pytree.flatten({"b": 1.0, "a": (2.0, np.array(3.0)), "c": OrderedDict([("z", 4.0), ("y", 5.0)])})
    assert [float(v) for v in leaves] == [2.0, 3.0, 1.0, 4.0, 5.0]


def test_structures_compare_and_hash_by_structure_not_values():
    # treedefs are trace keys: equal for equal structures, different for other keys or kinds
    first = pytree.flatten({"a": np.ones(2), "b": 1.0})[1]
    second = pytree.flatten({"b": 7.0, "a": np.zeros(5)})[1]
    assert first == second and hash(first) == hash(second)
    assert pytree.flatten({"a": 1.0, "c": 1.0})[1] != first
    assert pytree.flatten([np.ones(1), 2.0])[1] != pytree.flatten((np.ones(1), 2.0))[1]


def test_unflatten_with_the_wrong_number_of_leaves_raises():
    _, structure = pytree.flatten({"a": np.ones(2), "b": (np.ones(1), np.ones(1))})
    with pytest.raises(ValueError, match="3 leaves"):
        structure.unflatten([1.0])


def test_numbers_only_sequences_are_leaves():
    # difference 1 of the docstring
    assert pytree.flatten([[1.0, 2.0], [3.0, 4.0]])[1].is_leaf
    assert pytree.flatten((1.0, 2.0, 3.0))[1].is_leaf
    assert not pytree.flatten([np.ones(2), 3.0])[1].is_leaf
    assert not pytree.flatten((3.0, None))[1].is_leaf


# ============================================================ grad of pytree arguments
def test_grad_of_a_dict_against_central_differences(rng):
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    x = rng.standard_normal((4, 3))

    def loss(p, x):
        return ((x @ p["w"] + p["b"]).tanh() ** 2).sum()

    g = symgrad.grad(loss)(params, x)
    assert sorted(g) == ["b", "w"]
    z = np.tanh(x @ params["w"] + params["b"])
    delta = 2 * z * (1 - z ** 2)
    close(g["w"], x.T @ delta)
    close(g["b"], delta.sum(0))
    numerical_b = central_grad(lambda b: loss({"w": symgrad.tensor(params["w"]), "b": b}, symgrad.tensor(x)),
                               [params["b"]])
    close(numerical_b, g["b"], rtol=1e-6, atol=1e-8)


def test_grad_of_a_namedtuple_keeps_its_type():
    p = Params(np.array([1.0, 2.0]), np.array(0.5))
    g = symgrad.grad(lambda q, x: ((q.weight * x).sum() + q.bias) ** 2)(p, np.array([3.0, 4.0]))
    assert isinstance(g, Params)
    inner = 11.0 + 0.5
    close(g.weight, 2 * inner * np.array([3.0, 4.0]))
    close(g.bias, 2 * inner)


@pytest.mark.parametrize("argnums,pick", [(0, lambda a, b: a), (1, lambda a, b: b), (-1, lambda a, b: b),
                                          ((0, 1), lambda a, b: (a, b)), ((1, 0), lambda a, b: (b, a))])
def test_argnums_over_pytrees(argnums, pick):
    # test_grad_argnums / test_value_and_grad_argnums with a dict and a tuple argument
    d = {"x": np.array([1.0, 2.0]), "unused": np.array(5.0)}
    t = (np.array([3.0, -1.0]), np.array(2.0))

    def f(d, t):
        return (d["x"] * t[0]).sum() * t[1]

    expected_d = {"x": t[0] * t[1], "unused": 0.0}
    expected_t = (d["x"] * t[1], (d["x"] * t[0]).sum())
    value, got = symgrad.value_and_grad(f, argnums=argnums)(d, t)
    close(value, (d["x"] * t[0]).sum() * t[1])
    want = pick(expected_d, expected_t)
    for g, w in (zip(got, want) if isinstance(argnums, tuple) else [(got, want)]):
        leaves_got, structure_got = pytree.flatten(g)
        leaves_want, structure_want = pytree.flatten(w)
        assert structure_got == structure_want
        for a, b in zip(leaves_got, leaves_want):
            close(a, b)


def test_keyword_pytree_argument_is_read_at_every_call():
    df = symgrad.grad(lambda x, p: (x * p["w"]).sum())
    close(df(np.array([1.0, 2.0]), p={"w": np.array([3.0, 4.0])}), [3.0, 4.0])
    close(df(np.array([1.0, 2.0]), p={"w": np.array([-1.0, 0.5])}), [-1.0, 0.5])


def test_none_leaves_stay_none():
    # difference 3
    g = symgrad.grad(lambda d: (d["a"] ** 2).sum())({"a": np.array([1.0, 2.0]), "mask": None, "t": (None,)})
    assert g["mask"] is None and g["t"] == (None,)
    close(g["a"], [2.0, 4.0])


def test_empty_containers():
    # difference 1: () is an empty array, {} an empty tree
    gd, gx = symgrad.grad(lambda d, x: x ** 2, argnums=(0, 1))({}, 3.0)
    assert gd == {}
    close(gx, 6.0)
    gt, _ = symgrad.grad(lambda t, x: x ** 2, argnums=(0, 1))((), 3.0)
    assert isinstance(gt, np.ndarray) and gt.shape == (0,)


def test_boolean_leaf_in_a_differentiated_pytree_is_refused():
    # JAX: grad requires real-valued inputs (TypeError), here too
    with pytest.raises(TypeError, match="boolean"):
        symgrad.grad(lambda d: d["x"] * 2.0)({"x": 2.0, "flag": True})


def test_a_new_structure_retraces_and_new_values_do_not(traces):
    df = symgrad.grad(lambda d: sum((v ** 2).sum() for v in d.values()))
    close(df({"a": np.array([1.0, 2.0])})["a"], [2.0, 4.0])
    close(df({"a": np.array([3.0, 4.0])})["a"], [6.0, 8.0])
    assert len(traces) == 1
    g = df({"a": np.array([1.0, 2.0]), "b": np.array(3.0)})
    close(g["b"], 6.0)
    assert len(traces) == 2


# ============================================================ has_aux with pytrees
def test_grad_and_aux_constant():
    # test_grad_and_aux_constant
    g, aux = symgrad.grad(lambda x: (x ** 3, [4.0]), has_aux=True)(4.0)
    close(g, 48.0)
    assert aux == [4.0]
    g, aux = symgrad.grad(lambda x: (x ** 3, [x ** 2, 4.0]), has_aux=True)(4.0)
    close(g, 48.0)
    assert isinstance(aux, list) and len(aux) == 2
    close(aux[0], 16.0)
    assert aux[1] == 4.0


def test_grad_and_aux_no_tracers():
    # test_grad_and_aux_no_tracers: aux holds plain arrays, not traced tensors
    _, aux = symgrad.grad(lambda x: (x ** 2, dict(identity=x, p1=x + 1)), has_aux=True)(3.0)
    assert isinstance(aux, dict) and sorted(aux) == ["identity", "p1"]
    assert all(isinstance(v, np.ndarray) for v in aux.values())
    close(aux["p1"], 4.0)


def test_aux_follows_each_call():
    f = symgrad.value_and_grad(lambda p: ((p["w"] ** 2).sum(), {"norm": p["w"].abs().sum(), "w": (p["w"],)}),
                               has_aux=True)
    for w in (np.array([1.0, -2.0]), np.array([0.5, 3.0])):
        (value, aux), g = f({"w": w})
        close(value, (w ** 2).sum())
        close(aux["norm"], np.abs(w).sum())
        close(aux["w"][0], w)
        close(g["w"], 2 * w)


def test_jacobian_with_pytree_aux():
    # test_jacrev_and_aux_basic with a list aux
    jac, aux = symgrad.jacobian(lambda x: (x ** 3, [x ** 2]), has_aux=True)(np.array([1.0, 2.0]))
    close(jac, np.diag([3.0, 12.0]))
    close(aux[0], [1.0, 4.0])


def test_grad_and_aux_nested_with_pytree_aux():
    # test_grad_and_aux_nested, the aux a dict of lists: d/dx (x^2 sin x + 3 x^2)
    def f(x):
        g, aux = symgrad.grad(lambda y: (y ** 3, {"k": [y ** 2 * symgrad.sin(y)]}), has_aux=True)(x)
        return aux["k"][0] + g

    x = 1.3
    close(symgrad.grad(f)(x), 2 * x * np.sin(x) + x ** 2 * np.cos(x) + 6 * x)


def test_value_and_grad_with_aux_inside_grad_of_a_dict():
    # f(p) = <aux, grad> + value with aux = 3 a, grad = 2 a, value = |a|^2: 7 |a|^2
    def f(p):
        (value, aux), g = symgrad.value_and_grad(lambda q: ((q["a"] ** 2).sum(), (q["a"] * 3,)), has_aux=True)(p)
        return (aux[0] * g["a"]).sum() + value

    close(symgrad.grad(f)({"a": np.array([1.0, 2.0])})["a"], [14.0, 28.0])


# ============================================================ jacobian and hessian
def test_jacobian_on_pytrees():
    # test_jacobian_on_pytrees: the parts with one array output (its pytree outputs are in
    # test_jax_pytree_outputs.py)
    x = np.array([1.0, 2.0])
    jac = symgrad.jacobian(lambda p: p["a"] * p["s"])({"a": x, "s": np.array(3.0)})
    close(jac["a"], 3.0 * np.eye(2))  # output shape + leaf shape
    close(jac["s"], x)
    # difference 1: a tuple of numbers is one vector; JAX's tuple of tuples has these numbers
    close(symgrad.jacobian(lambda v: v[:2])((1.0, 2.0, 3.0)), [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_hessian_on_pytrees(rng):
    # test_hessian_on_pytrees, on a scalar function (difference 2): a pytree of pytrees whose
    # block [i][j] has shape leaf_i.shape + leaf_j.shape; f = sum(a^2 * b) + c * sum(a)
    a, b, c = rng.standard_normal(2), rng.standard_normal(2), rng.standard_normal()
    h = symgrad.hessian(lambda t: (t[0] ** 2 * t[1]).sum() + t[2] * t[0].sum())((a, b, c))
    assert isinstance(h, tuple) and all(isinstance(row, tuple) and len(row) == 3 for row in h)
    close(h[0][0], np.diag(2 * b))
    close(h[0][1], np.diag(2 * a))
    close(h[1][0], np.diag(2 * a))
    close(h[1][1], np.zeros((2, 2)))
    close(h[0][2], np.ones(2))
    close(h[2][0], np.ones(2))
    close(h[2][2], 0.0)
    assert h[2][2].shape == () and h[0][2].shape == (2,)


def test_hessian_of_a_dict_is_a_dict_of_dicts():
    p = {"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0])}
    h = symgrad.hessian(lambda d: (d["x"] ** 2 * d["y"]).sum())(p)
    assert sorted(h) == ["x", "y"] and all(sorted(row) == ["x", "y"] for row in h.values())
    close(h["x"]["x"], np.diag(2 * p["y"]))
    close(h["x"]["y"], np.diag(2 * p["x"]))
    close(h["y"]["x"], np.diag(2 * p["x"]))
    close(h["y"]["y"], np.zeros((2, 2)))


def test_jacobian_of_a_leaf_of_grad_over_a_dict():
    # jacrev(grad) on a pytree: the dict's leaf is an array output, its Jacobian the Hessian block
    jac = symgrad.jacobian(lambda p: symgrad.grad(lambda q: (q["a"] ** 3).sum())(p)["a"])({"a": np.array([1.0, 2.0])})
    close(jac["a"], np.diag([6.0, 12.0]))


# ============================================================ vjp and jvp
def test_vjp_with_pytree_primals():
    d = {"a": np.array([1.0, 2.0]), "b": None}
    value, back = symgrad.vjp(lambda d, s: d["a"] * s, d, 3.0)
    close(value, [3.0, 6.0])
    gd, gs = back(np.array([1.0, -1.0]))
    assert gd["b"] is None
    close(gd["a"], [3.0, -3.0])
    close(gs, 1.0 - 2.0)


def test_jvp_with_pytree_tangents():
    p = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    v = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    value, tangent = symgrad.jvp(lambda d: (d["a"] * d["b"]).sum(), (p,), (v,))
    close(value, 11.0)
    close(tangent, (p["b"] * v["a"] + p["a"] * v["b"]).sum())


@pytest.mark.parametrize("tangent", [{"a": np.ones(2)}, [np.ones(2), np.ones(2)]], ids=["missing-key", "list-for-dict"])
def test_jvp_tangent_structure_must_match(tangent):
    # test_jvp_mismatched_arguments (difference 4: ValueError)
    with pytest.raises(ValueError, match="structure"):
        symgrad.jvp(lambda d: (d["a"] * d["b"]).sum(), ({"a": np.ones(2), "b": np.ones(2)},), (tangent,))


def test_jvp_accepts_a_list_of_tangents_for_a_tuple_of_primals():
    # difference 4: JAX raises TypeError here
    value, tangent = symgrad.jvp(lambda x: x * 2.0, (2.0,), [3.0])
    close(value, 4.0)
    close(tangent, 6.0)


# ============================================================ composition with the eager tape
def test_grad_of_a_dict_of_tensors_inside_an_eager_loss(engine):
    # a transform called on tensors that require grad is recorded: the eager tape
    # differentiates its result again (d/dw sum(3 w^2) = 6 w)
    w = symgrad.tensor([1.0, 2.0], requires_grad=True)
    g = symgrad.grad(lambda d: (d["a"] ** 3).sum())({"a": w})
    assert g["a"].requires_grad
    g["a"].sum().backward()
    close(w.grad.numpy(), [6.0, 12.0])
