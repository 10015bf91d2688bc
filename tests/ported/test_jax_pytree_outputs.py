"""Pytree *outputs* of the transforms, ported from JAX's ``tests/api_test.py``:
``test_jacobian_on_pytrees`` (``jacrev``/``jacfwd`` of tuple and dict outputs, by argnums),
``test_jacrev_and_aux_basic`` with a pytree output, ``test_grad_tuple_output`` and
``test_grad_unit_output``, ``test_vjp_mismatched_arguments``,
``test_vjp_bad_cotangent_shape``, ``test_vjp_too_many_args`` (a pull-back of a tuple
output), and ``jvp`` of tuple outputs; written anew for symgrad.

Every result is checked against central finite differences of the eager function, against
a fresh eager run on the tape engine, and -- where JAX is installed (skipped cleanly
without it) -- against ``jax.jacrev``/``jax.jacfwd``/``jax.vjp``/``jax.jvp``/
``jax.hessian`` in float64.  The output structure's part of the trace key is tested by
functions whose structure changes between calls, and by functions that record the same
graph but return it in other structures, interleaved through one warm compile cache.

Deliberate differences from JAX (each said at its test):

1. A list or tuple of numbers only is one array, as NumPy reads it (``symgrad.pytree``):
   a cotangent ``(7.0, 100.0)`` for a scalar output is a vector of the wrong shape
   (``ValueError`` naming the shape; JAX: ``ValueError`` naming the tree structure), and
   ``grad(lambda x: ())`` has an output of shape ``(0,)`` (``ValueError``; JAX:
   ``TypeError``).
2. An output leaf that is not floating (a mask, an integer count) is refused by every
   transform, ``vjp`` included (JAX's ``vjp`` accepts it with a ``float0`` cotangent);
   a cotangent of another float or integer dtype is converted (JAX refuses a
   ``float16`` cotangent for a ``float32`` output), a boolean or complex one is refused.
3. ``hessian`` needs one element in every output leaf (a pytree of scalar losses); JAX's
   ``hessian`` of a vector output has no counterpart.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import symgrad
from symgrad import pytree
from symgrad.testing.generator import elementwise_dag, random_program

Out = namedtuple("Out", "loss pred")


def close(actual, expected, rtol=1e-9, atol=1e-11):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=atol)


def same_tree(actual, expected, rtol=1e-9, atol=1e-11):
    """Equal structures (container types, keys, ``None`` in the same places) and close leaves."""
    got, got_structure = pytree.flatten(actual)
    want, want_structure = pytree.flatten(expected)
    assert got_structure == want_structure, f"{got_structure} != {want_structure}"
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            close(a, b, rtol, atol)


# ============================================================ the functions
# Each is written once over a namespace ``m`` (symgrad, or jax.numpy), so the same program
# runs in both tools; x has shape (2,), y shape (3,).
FUNCTIONS = {
    "tuple": lambda m, x, y: (m.sin(x) * y.sum(), x * 2.0),
    "dict": lambda m, x, y: {"x": x, "xy": x[:, None] * y[None, :]},
    "nested with None": lambda m, x, y: {"a": [m.tanh(x), (x ** 2).sum()], "b": (y * x.sum(), None)},
    "namedtuple": lambda m, x, y: Out(loss=((m.exp(x) ** 2).sum() * y).sum(), pred=m.cos(x[:, None] * y[None, :])),
    "OrderedDict": lambda m, x, y: OrderedDict([("z", y * y), ("a", (x * 3.0).sum())]),
    "constant leaf": lambda m, x, y: (x * y[:2], 3.0),
}


def _symgrad_f(name):
    f = FUNCTIONS[name]
    return lambda x, y: f(symgrad, x, y)


def _point(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, 2), rng.uniform(-1.0, 1.0, 3)


def _eager(f, args):
    """``f`` run eagerly on plain tensors: its output tree with NumPy leaves."""
    out = f(*[symgrad.tensor(a) for a in args])
    leaves, structure = pytree.flatten(out)
    return structure.unflatten([None if v is None else np.asarray(getattr(v, "_data", v), dtype=float)
                                for v in leaves])


def _central_jacobian(f, args, argnum, eps=1e-6):
    """The Jacobian of every output leaf of ``f`` for argument ``argnum``, by central
    differences: a tree of the output's structure, each leaf ``out.shape + arg.shape``."""
    args = [np.array(a, dtype=float) for a in args]
    x = args[argnum]
    columns = []
    for k in np.ndindex(*x.shape):
        plus, minus = [a.copy() for a in args], [a.copy() for a in args]
        plus[argnum][k] += eps
        minus[argnum][k] -= eps
        up, structure = pytree.flatten(_eager(f, plus))
        down, _ = pytree.flatten(_eager(f, minus))
        columns.append([None if u is None else (u - d) / (2 * eps) for u, d in zip(up, down)])
    leaves = []
    for j, leaf in enumerate(pytree.flatten(_eager(f, args))[0]):
        if leaf is None:
            leaves.append(None)
            continue
        stacked = np.stack([c[j] for c in columns], axis=-1)
        leaves.append(stacked.reshape(leaf.shape + x.shape))
    return structure.unflatten(leaves)


def _tape_jacobian(f, args, argnum):
    """The Jacobian of every output leaf by a fresh eager run on the tape engine: one
    ``autograd.grad`` per output element."""
    tensors = [symgrad.tensor(np.array(a, dtype=float), requires_grad=True) for a in args]
    with symgrad.backward_engine("tape"):
        out = f(*tensors)
        leaves, structure = pytree.flatten(out)
        result = []
        for leaf in leaves:
            if leaf is None:
                result.append(None)
                continue
            leaf = leaf if isinstance(leaf, symgrad.Tensor) else symgrad.tensor(leaf)
            x = tensors[argnum]
            rows = []
            for k in range(leaf.numel()):
                seed = np.zeros(leaf.numel())
                seed[k] = 1.0
                if not leaf.requires_grad:
                    rows.append(np.zeros(x.shape))
                    continue
                (g,) = symgrad.autograd.grad(leaf, [x], grad_outputs=symgrad.tensor(seed.reshape(leaf.shape)),
                                             retain_graph=True, allow_unused=True)
                rows.append(np.zeros(x.shape) if g is None else g.numpy())
            result.append(np.stack(rows).reshape(tuple(leaf.shape) + tuple(x.shape)))
    return structure.unflatten(result)


def _by_argnums(per_arg, argnums):
    """JAX's nesting from one tree per argument: the output's structure outside, the
    argnums tuple inside each of its leaves."""
    if isinstance(argnums, int):
        return per_arg[argnums]
    trees = [pytree.flatten(per_arg[i]) for i in argnums]
    structure = trees[0][1]
    leaves = [None if trees[0][0][j] is None else tuple(t[0][j] for t in trees)
              for j in range(structure.n_leaves)]
    return structure.unflatten(leaves)


# ============================================================ JAX, where installed
@pytest.fixture
def jax64():
    """``(jax, jax.numpy)`` with float64 enabled for the test, or a clean skip."""
    jax = pytest.importorskip("jax", exc_type=ImportError)
    enable = getattr(jax, "enable_x64", None)
    if enable is None:
        pytest.skip("this JAX has no enable_x64 context")
    with enable(True):
        import jax.numpy as jnp

        yield jax, jnp


def _jax_f(name, jnp):
    f = FUNCTIONS[name]
    return lambda x, y: f(jnp, x, y)


def _numpy_tree(tree):
    leaves, structure = pytree.flatten(tree)
    return structure.unflatten([None if v is None else np.asarray(v) for v in leaves])


# ============================================================ jacobian (jacrev)
def test_jacobian_on_pytrees():
    # test_jacobian_on_pytrees, the pytree-output half (jacfwd rows run through jacobian too)
    # (expected values as 0-d arrays: a tuple of numbers is one vector, difference 1)
    one, zero = np.array(1.0), np.array(0.0)
    jac = symgrad.jacobian(lambda x, y: (x, y))
    same_tree(jac(0.0, 1.0), (one, zero))
    same_tree(symgrad.jacobian(lambda x, y: (x, y), 1)(0.0, 1.0), (zero, one))
    same_tree(symgrad.jacobian(lambda x, y: (x, y), (0, 1))(0.0, 1.0), ((one, zero), (zero, one)))
    x, y = _point(1)
    got = symgrad.jacobian(lambda x, y: {"x": x, "xy": x[:, None] * y[None, :]})(x, y)
    same_tree(got, {"x": np.eye(2), "xy": np.kron(np.eye(2), y[:, None]).reshape(2, 3, 2)})


@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1, 0)], ids=str)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_jacobian_of_a_pytree_output(name, argnums):
    f = _symgrad_f(name)
    x, y = _point()
    with symgrad.backward_engine("both"):  # every call also runs eagerly on the tape and compares
        got = symgrad.jacobian(f, argnums=argnums)(x, y)
    numeric = [_central_jacobian(f, (x, y), i) for i in (0, 1)]
    same_tree(got, _by_argnums(numeric, argnums), rtol=1e-6, atol=1e-8)
    tape = [_tape_jacobian(f, (x, y), i) for i in (0, 1)]
    same_tree(got, _by_argnums(tape, argnums))
    assert type(got) is type(FUNCTIONS[name](np, x, y))


@pytest.mark.parametrize("argnums", [0, (0, 1)], ids=str)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_jacobian_against_jax(name, argnums, jax64):
    jax, jnp = jax64
    x, y = _point(2)
    got = symgrad.jacobian(_symgrad_f(name), argnums=argnums)(x, y)
    for jacfun in (jax.jacrev, jax.jacfwd):
        same_tree(got, _numpy_tree(jacfun(_jax_f(name, jnp), argnums=argnums)(x, y)))


@pytest.mark.parametrize("has_aux", [False, True], ids=["plain", "has_aux"])
@pytest.mark.parametrize("argnums", [0, (0, 1)], ids=str)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_jacfwd_and_jacrev_against_jax(name, argnums, has_aux, jax64):
    # test_jacobian / test_jacobian_on_pytrees / test_jac{fwd,rev}_and_aux_basic under JAX's
    # own names: symgrad.jacfwd and symgrad.jacrev are jacobian itself (a closed form has no
    # direction), so each must match both of JAX's
    jax, jnp = jax64
    x, y = _point(3)

    def with_aux(f):
        return (lambda x, y: (f(x, y), {"x2": x * x, "y": [y]})) if has_aux else f

    for ours, theirs in ((symgrad.jacfwd, jax.jacfwd), (symgrad.jacrev, jax.jacrev)):
        got = ours(with_aux(_symgrad_f(name)), argnums=argnums, has_aux=has_aux)(x, y)
        expected = theirs(with_aux(_jax_f(name, jnp)), argnums=argnums, has_aux=has_aux)(x, y)
        if has_aux:
            (got, got_aux), (expected, expected_aux) = got, expected
            same_tree(got_aux, _numpy_tree(expected_aux))
        same_tree(got, _numpy_tree(expected))


def test_jacfwd_and_jacrev_are_jacobian():
    assert symgrad.jacfwd is symgrad.jacobian and symgrad.jacrev is symgrad.jacobian
    assert symgrad.symbolic.jacfwd is symgrad.jacfwd and "jacfwd" in symgrad.symbolic.__all__


def test_jacobian_with_a_pytree_output_and_aux():
    # test_jacrev_and_aux_basic, the output a dict
    jac, aux = symgrad.jacobian(lambda x: ({"cube": x ** 3, "sq": x ** 2}, [x ** 2]), has_aux=True)(3.0)
    same_tree(jac, {"cube": 27.0, "sq": 6.0})
    close(aux[0], 9.0)


def test_jacobian_is_recorded_on_tensors_that_require_grad():
    # composition: the Jacobian of a dict output, differentiated again by the tape
    x0 = np.array([0.3, -0.7, 1.1])
    w = symgrad.tensor(x0, requires_grad=True)
    jac = symgrad.jacobian(lambda y: {"sq": y ** 2, "scaled": y.sum() * y})(w)
    assert jac["sq"].requires_grad
    (jac["sq"].sum() + (jac["scaled"] ** 2).sum()).backward()
    # J_sq = diag(2y); J_scaled[i, j] = s d_ij + y_i with s = sum(y)
    expected = _central_grad(lambda v: (2 * v).sum() + (((v.sum()) * np.eye(3) + v[:, None]) ** 2).sum(), x0)
    close(w.grad.numpy(), expected, rtol=1e-6, atol=1e-8)


def test_grad_of_a_function_that_takes_a_jacobian_of_a_pytree():
    def f(x):
        jac = symgrad.jacobian(lambda y: (y.sin(), {"s": (y ** 3).sum()}))(x)
        return (jac[0] * 2.0).sum() + jac[1]["s"].sum()

    x0 = np.array([0.4, 1.2])
    close(symgrad.grad(f)(x0), _central_grad(f, x0), rtol=1e-6, atol=1e-8)
    close(symgrad.grad(f)(x0), -2 * np.sin(x0) + 6 * x0)  # d/dx (2 sum cos x + 3 sum x^2)


def _central_grad(f, x, eps=1e-6):
    """d f / d x of a scalar NumPy function, by central differences."""
    out = np.zeros(x.shape)
    for k in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[k] += eps
        down[k] -= eps
        out[k] = (float(f(up)) - float(f(down))) / (2 * eps)
    return out


# ============================================================ vjp
def _random_like(tree, rng):
    leaves, structure = pytree.flatten(tree)
    return structure.unflatten([None if v is None else rng.standard_normal(np.shape(v)) for v in leaves])


def _contract(cotangent, jacobians):
    """sum over output leaves of <cotangent_leaf, J_leaf>: the pull-back by the Jacobians."""
    ct, _ = pytree.flatten(cotangent)
    jac, _ = pytree.flatten(jacobians)
    return sum(np.tensordot(c, j, axes=np.ndim(c)) for c, j in zip(ct, jac) if c is not None)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vjp_of_a_pytree_output(name):
    f = _symgrad_f(name)
    x, y = _point(3)
    value, back = symgrad.vjp(f, x, y)
    same_tree(value, _eager(f, (x, y)))
    cotangent = _random_like(value, np.random.default_rng(4))
    gx, gy = back(cotangent)
    close(gx, _contract(cotangent, _central_jacobian(f, (x, y), 0)), rtol=1e-6, atol=1e-8)
    close(gy, _contract(cotangent, _central_jacobian(f, (x, y), 1)), rtol=1e-6, atol=1e-8)
    close(gx, _contract(cotangent, _tape_jacobian(f, (x, y), 0)))
    close(gy, _contract(cotangent, _tape_jacobian(f, (x, y), 1)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_vjp_against_jax(name, jax64):
    jax, jnp = jax64
    x, y = _point(5)
    value, back = symgrad.vjp(_symgrad_f(name), x, y)
    jax_value, jax_back = jax.vjp(_jax_f(name, jnp), x, y)
    same_tree(value, _numpy_tree(jax_value))
    cotangent = _random_like(value, np.random.default_rng(6))
    same_tree(back(cotangent), _numpy_tree(jax_back(cotangent)))


def test_vjp_of_a_tuple_output_on_tensors_that_require_grad():
    x0 = np.array([0.5, -1.5])
    w = symgrad.tensor(x0, requires_grad=True)
    _, back = symgrad.vjp(lambda v: (v ** 2, v.sum()), w)
    (g,) = back((np.ones(2), 1.0))  # 2 v + 1, recorded
    (g ** 2).sum().backward()
    close(w.grad.numpy(), 4 * (2 * x0 + 1))


def test_vjp_mismatched_arguments():
    # test_vjp_mismatched_arguments: a cotangent of another tree structure
    _, back = symgrad.vjp(lambda x, y: x * y, np.float64(3), np.float64(4))
    with pytest.raises(ValueError, match="structure"):
        back((np.array(7.0), np.array(100.0)))
    with pytest.raises(ValueError, match=r"shape \(\)"):  # difference 1: a tuple of numbers is a vector
        back((7.0, 100.0))
    _, back = symgrad.vjp(lambda x: {"a": x * 2, "b": (x, x ** 2)}, 3.0)
    for wrong in [{"a": 1.0}, {"a": 1.0, "b": [1.0, 1.0]}, [1.0, (np.array(1.0), np.array(1.0))],
                  {"a": 1.0, "c": (np.array(1.0), np.array(1.0))}]:
        with pytest.raises(ValueError, match="structure"):
            back(wrong)
    close(back({"a": 1.0, "b": (np.array(1.0), np.array(1.0))})[0], 2 + 1 + 6)


def test_vjp_bad_cotangent_shape():
    # test_vjp_bad_cotangent_shape, the output a tuple: the message names the leaf
    _, back = symgrad.vjp(lambda x, y: (x @ y, x.sum()), np.ones((2, 5)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\) for the output\[0\], got shape \(2, 4\)"):
        back((np.ones((2, 4)), np.array(1.0)))
    with pytest.raises(ValueError, match=r"the output\[1\]"):
        back((np.ones((2, 3)), np.ones(1)))


def test_vjp_too_many_args():
    # test_vjp_too_many_args: the pull-back of a tuple output takes one cotangent, a tuple
    _, back = symgrad.vjp(lambda x: (x, x), 1.0)
    with pytest.raises(TypeError):
        back(1.0, 1.0)
    close(back((np.array(1.0), np.array(2.0)))[0], 3.0)


@pytest.mark.parametrize("cotangent,error,match", [
    ((np.ones(2), np.array(True)), TypeError, r"output\[1\] has dtype bool"),
    ((np.ones(2), np.array(1 + 2j)), TypeError, "complex128"),
    ((np.ones(2), "one"), TypeError, "<U3"),
], ids=["bool", "complex", "str"])
def test_vjp_refuses_a_cotangent_that_is_not_real(cotangent, error, match):
    # difference 2
    _, back = symgrad.vjp(lambda x: (x * 2, x.sum()), np.ones(2))
    with pytest.raises(error, match=match):
        back(cotangent)


def test_vjp_converts_integer_and_float32_cotangents():
    # difference 2
    _, back = symgrad.vjp(lambda x: (x * 2, x.sum()), np.ones(2))
    close(back((np.array([1, 2]), np.float32(3.0)))[0], [2 + 3, 4 + 3])


def test_vjp_none_output_takes_a_none_cotangent():
    # JAX: None is an empty subtree, its cotangent None too
    value, back = symgrad.vjp(lambda x: (x * 2, None), 1.5)
    assert value[1] is None
    close(back((np.array(1.0), None))[0], 2.0)
    with pytest.raises(ValueError, match=r"output\[1\] is None"):
        back((np.array(1.0), np.array(0.0)))


# ============================================================ jvp
@pytest.mark.parametrize("name", FUNCTIONS)
def test_jvp_of_a_pytree_output(name):
    f = _symgrad_f(name)
    x, y = _point(7)
    rng = np.random.default_rng(8)
    tx, ty = rng.standard_normal(2), rng.standard_normal(3)
    value, tangent = symgrad.jvp(f, (x, y), (tx, ty))
    same_tree(value, _eager(f, (x, y)))
    for jx, jy in [(_central_jacobian(f, (x, y), 0), _central_jacobian(f, (x, y), 1)),
                   (_tape_jacobian(f, (x, y), 0), _tape_jacobian(f, (x, y), 1))]:
        lx, structure = pytree.flatten(jx)
        ly, _ = pytree.flatten(jy)
        # (np.asarray: a sum of 0-d arrays is a NumPy scalar, which a list would read as a number)
        expected = structure.unflatten([
            None if a is None else np.asarray(np.tensordot(a, tx, 1) + np.tensordot(b, ty, 1)) for a, b in zip(lx, ly)])
        same_tree(tangent, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jvp_against_jax(name, jax64):
    jax, jnp = jax64
    x, y = _point(9)
    tangents = (np.array([0.5, -2.0]), np.array([1.0, 0.0, 3.0]))
    value, tangent = symgrad.jvp(_symgrad_f(name), (x, y), tangents)
    jax_value, jax_tangent = jax.jvp(_jax_f(name, jnp), (x, y), tangents)
    same_tree(value, _numpy_tree(jax_value))
    same_tree(tangent, _numpy_tree(jax_tangent))


def test_jvp_of_a_tuple_output():
    # test_jvp_and_aux_basic's function, its aux returned as a second output
    value, tangent = symgrad.jvp(lambda x: (x ** 3, [x ** 2]), (3.0,), (4.0,))
    same_tree(value, (np.array(27.0), [np.array(9.0)]))
    same_tree(tangent, (np.array(4.0 * 27.0), [np.array(4.0 * 6.0)]))


def test_jvp_inside_grad():
    # forward over a dict output, then reverse: d/dx sum(3 x^2 . 1) = 6 x
    x0 = np.array([0.5, 2.0])
    f = lambda x: symgrad.jvp(lambda y: {"a": y ** 3, "b": None}, (x,), (np.ones(2),))[1]["a"].sum()  # noqa: E731
    close(symgrad.grad(f)(x0), 6 * x0)


# ============================================================ grad, value_and_grad, hessian
@pytest.mark.parametrize("f", [lambda x: (x, x), lambda x: [x.sum()], lambda x: {"loss": x.sum()},
                               lambda x: Out(x.sum(), x.sum())], ids=["pair", "list", "dict", "namedtuple"])
@pytest.mark.parametrize("transform", [symgrad.grad, symgrad.value_and_grad])
def test_grad_tuple_output(transform, f):
    # test_grad_tuple_output: grad is only defined for a scalar output, as in JAX
    with pytest.raises(TypeError, match="one scalar output.*jacobian"):
        transform(f)(np.ones(3))


def test_grad_unit_output():
    # test_grad_unit_output (difference 1: () is an empty array, refused by its shape)
    with pytest.raises(ValueError, match=r"shape \(0,\)"):
        symgrad.grad(lambda x: ())(np.zeros(3))


def test_grad_with_a_pytree_aux_still_works():
    (value, aux), g = symgrad.value_and_grad(lambda x: ((x ** 2).sum(), {"x": x, "pair": (x * 2, None)}),
                                             has_aux=True)(np.array([1.0, 2.0]))
    close(value, 5.0)
    close(g, [2.0, 4.0])
    close(aux["pair"][0], [2.0, 4.0])
    assert aux["pair"][1] is None


def _scalar_losses(m, x):
    return {"cubic": (x ** 3).sum(), "mixed": [(m.sin(x) * x[::-1]).sum()]}


def test_hessian_of_a_dict_of_scalar_outputs():
    # difference 3: one Hessian per scalar output leaf, in the output's structure
    x = np.array([0.3, -1.2])
    with symgrad.backward_engine("both"):  # compared with the tape's Hessian of each leaf
        h = symgrad.hessian(lambda x: _scalar_losses(symgrad, x))(x)
    assert sorted(h) == ["cubic", "mixed"] and isinstance(h["mixed"], list)
    close(h["cubic"], np.diag(6 * x))
    # mixed = sin(x0) x1 + sin(x1) x0
    expected = np.array([[-np.sin(x[0]) * x[1], np.cos(x[0]) + np.cos(x[1])],
                         [np.cos(x[0]) + np.cos(x[1]), -np.sin(x[1]) * x[0]]])
    close(h["mixed"][0], expected)


def test_hessian_of_a_dict_of_scalar_outputs_against_jax(jax64):
    jax, jnp = jax64
    x = np.array([0.3, -1.2])
    h = symgrad.hessian(lambda x: _scalar_losses(symgrad, x))(x)
    same_tree(h, _numpy_tree(jax.hessian(lambda x: _scalar_losses(jnp, x))(x)))


def test_hessian_of_a_pytree_with_a_vector_leaf_names_it():
    # difference 3
    with pytest.raises(ValueError, match=r"one output element in the output\['vec'\], got shape \(2,\)"):
        symgrad.hessian(lambda x: {"loss": (x ** 2).sum(), "vec": x * 2})(np.ones(2))


# ============================================================ bad outputs
@pytest.mark.parametrize("f,error,match", [
    (lambda x: (x, x > 0), TypeError, r"output\[1\] of the function is a tensor of dtype bool"),
    (lambda x: {"x": x, "n": (x > 0).long().sum()}, TypeError, r"output\['n'\] of the function is a tensor of dtype"),
    (lambda x: (x, 3), TypeError, r"output\[1\] .* dtype int64"),
    (lambda x: (x, object()), TypeError, r"output\[1\] of the function is of type object"),
    (lambda x: Out(x, "text"), TypeError, r"output\.pred"),
    (lambda x: {}, TypeError, "holds no tensor"),
    (lambda x: (None, None), TypeError, "holds no tensor"),
], ids=["mask", "count", "python-int", "object", "string", "empty", "only-none"])
@pytest.mark.parametrize("transform", ["jacobian", "vjp", "jvp"])
def test_outputs_that_cannot_be_differentiated_are_named(transform, f, error, match):
    # difference 2: every transform refuses a non-float leaf
    x = np.array([1.0, -2.0])
    with pytest.raises(error, match=match):
        if transform == "jacobian":
            symgrad.jacobian(f)(x)
        elif transform == "vjp":
            symgrad.vjp(f, x)
        else:
            symgrad.jvp(f, (x,), (x,))


def test_none_and_constant_leaves_of_an_output():
    # JAX: None is an empty subtree (stays None), a constant has a zero Jacobian
    jac = symgrad.jacobian(lambda x: {"a": x * 2, "none": None, "const": (1.0, np.ones(2))})(np.array([1.0, 2.0]))
    assert jac["none"] is None
    close(jac["a"], 2 * np.eye(2))
    assert isinstance(jac["const"], tuple)
    close(jac["const"][0], np.zeros(2))
    close(jac["const"][1], np.zeros((2, 2)))


def test_names_made_for_output_leaves_never_meet_the_arguments():
    # the seeds, weights and tangents made per output leaf are named g_a, u_a, value_a,
    # tangent_a, v_...: parameters with those names are other symbols (issue 12, item 2)
    def f(g_a, value_a, u_a):
        return {"a": g_a * value_a * u_a, "b": (g_a ** 2).sum()}

    g, v, u = np.array([1.0, 2.0]), np.array([2.0, 4.0]), np.array([3.0, 6.0])
    with symgrad.backward_engine("both"):
        jac = symgrad.jacobian(f, argnums=(0, 1, 2))(g, v, u)
    same_tree(jac, {"a": (np.diag(v * u), np.diag(g * u), np.diag(g * v)), "b": (2 * g, np.zeros(2), np.zeros(2))})
    _, back = symgrad.vjp(f, g, v, u)
    same_tree(back({"a": np.ones(2), "b": np.array(1.0)}), (v * u + 2 * g, g * u, g * v))
    _, tangent = symgrad.jvp(f, (g, v, u), (g, g, g))
    same_tree(tangent, {"a": (v * u + g * u + g * v) * g, "b": 2 * g @ g})
    h = symgrad.hessian(lambda u_a, v_u_a: {"a": (u_a ** 2 * v_u_a).sum(), "b": (u_a * 3).sum()}, argnums=(0, 1))(u, v)
    same_tree(h["a"], ((np.diag(2 * v), np.diag(2 * u)), (np.diag(2 * u), np.zeros((2, 2)))))


# ============================================================ the output structure in the key
def _structured(kind, a, b):
    return {"tuple": lambda: (a, b), "list": lambda: [a, b], "dict": lambda: {"a": a, "b": b},
            "namedtuple": lambda: Out(a, b), "nested": lambda: (a, (b, None))}[kind]()


KINDS = ["tuple", "list", "dict", "namedtuple", "nested"]


def test_output_structure_chosen_by_a_static_argument_follows_each_call(traces):
    jac = symgrad.jacobian(lambda x, kind: _structured(kind, x * 2.0, x.sin()))
    x = np.array([0.2, 0.9])
    for kind in KINDS + KINDS[::-1]:
        got = jac(x, kind)
        same_tree(got, _structured(kind, 2 * np.eye(2), np.diag(np.cos(x))))
    assert len(traces) == len(KINDS)  # one trace per structure, reused after


AS_DICT = False


def test_output_structure_chosen_by_a_global_retraces():
    global AS_DICT

    def f(x):
        return {"a": x * 3.0, "b": x ** 2} if AS_DICT else (x * 3.0, x ** 2)

    x = np.array([1.0, 2.0])
    value, back = symgrad.vjp(f, x)
    assert isinstance(value, tuple)
    jac = symgrad.jacobian(f)
    assert isinstance(jac(x), tuple)
    try:
        AS_DICT = True
        got = jac(x)
        same_tree(got, {"a": 3 * np.eye(2), "b": np.diag(2 * x)})
        value, back = symgrad.vjp(f, x)
        close(back({"a": np.ones(2), "b": np.ones(2)})[0], 3 + 2 * x)
    finally:
        AS_DICT = False
    same_tree(jac(x), (3 * np.eye(2), np.diag(2 * x)))


def test_one_graph_in_other_structures_shares_no_compiled_function():
    # the same recorded graph (x * 2, sin x) returned as a tuple, a list, a dict, a
    # namedtuple, with a None, or split into an output and aux: interleaved through one
    # warm compile cache, every call gets its own structure and values
    x = np.array([0.4, -0.8])
    d2, dsin = 2 * np.eye(2), np.diag(np.cos(x))
    transforms = {kind: (symgrad.jacobian(lambda v, kind=kind: _structured(kind, v * 2.0, v.sin())),
                         _structured(kind, d2, dsin)) for kind in KINDS}
    transforms["aux"] = (symgrad.jacobian(lambda v: (v * 2.0, [v.sin()]), has_aux=True), (d2, [np.sin(x)]))
    transforms["no aux"] = (symgrad.jacobian(lambda v: (v * 2.0, [v.sin()])), (d2, [dsin]))
    transforms["one"] = (symgrad.jacobian(lambda v: v * 2.0), d2)
    for _ in range(2):
        for jac, expected in transforms.values():
            same_tree(jac(x), expected)


def _returning(kind):
    """A new function returning (v * 2, sin v) in the structure ``kind``."""
    return lambda v: _structured(kind, v * 2.0, v.sin())


def test_vjp_and_jvp_in_other_structures_through_a_warm_cache():
    x = np.array([0.4, -0.8])
    for _ in range(2):
        for kind in KINDS:
            f = _returning(kind)
            value, back = symgrad.vjp(f, x)
            same_tree(value, _structured(kind, 2 * x, np.sin(x)))
            ones = _structured(kind, np.ones(2), np.ones(2))
            close(back(ones)[0], 2 + np.cos(x))
            _, tangent = symgrad.jvp(f, (x,), (np.ones(2),))
            same_tree(tangent, _structured(kind, 2 * np.ones(2), np.cos(x)))


# ============================================================ random programs
@pytest.mark.parametrize("k", range(8))
def test_random_programs_with_pytree_outputs_against_the_tape(k, rng):
    program = random_program(rng, max_steps=4)
    arrays = [np.array(a, dtype=float) for a in program.inputs]

    def f(*xs):
        out = program(*xs)
        return {"out": out, "pair": ((out * 2.0).sum(), None), "first": [xs[0] * 1.5]}

    for point in (arrays, [a * (1 + 1e-3 * rng.uniform(-1, 1, size=a.shape)) for a in arrays]):
        n = len(point)
        tape = [_tape_jacobian(f, point, i) for i in range(n)]
        with symgrad.backward_engine("both"):
            jac = symgrad.jacobian(f, argnums=tuple(range(n)))(*point)
        same_tree(jac, _by_argnums(tape, tuple(range(n))), rtol=1e-9, atol=1e-9)
        value, back = symgrad.vjp(f, *point)
        same_tree(value, _eager(f, point), rtol=1e-12, atol=1e-12)
        cotangent = _random_like(value, rng)
        for g, t in zip(back(cotangent), tape):
            close(g, _contract(cotangent, t), rtol=1e-9, atol=1e-9)
        tangents = [rng.standard_normal(a.shape) for a in point]
        _, tangent = symgrad.jvp(f, point, tangents)
        leaves = [pytree.flatten(t) for t in tape]
        structure = leaves[0][1]
        expected = structure.unflatten([
            None if leaves[0][0][j] is None else
            np.asarray(sum(np.tensordot(leaves[i][0][j], tangents[i], axes=tangents[i].ndim) for i in range(n)))
            for j in range(structure.n_leaves)])
        same_tree(tangent, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_random_dags_with_pytree_outputs_against_jax(seed, jax64):
    jax, jnp = jax64

    def f(m, x, y):
        dag = elementwise_dag(m, [x, y], 8, seed=seed)
        return {"dag": dag, "sum": [(dag * x).sum()], "y": (y * 2.0, None)}

    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
    same_tree(symgrad.jacobian(lambda x, y: f(symgrad, x, y), argnums=(0, 1))(x, y),
              _numpy_tree(jax.jacrev(lambda x, y: f(jnp, x, y), argnums=(0, 1))(x, y)))
    tangents = (rng.standard_normal(3), rng.standard_normal(3))
    same_tree(symgrad.jvp(lambda x, y: f(symgrad, x, y), (x, y), tangents)[1],
              _numpy_tree(jax.jvp(lambda x, y: f(jnp, x, y), (x, y), tangents)[1]))


# ============================================================ chunked
def test_chunked_jacobian_of_a_dict_output():
    rng = np.random.default_rng(10)
    w, X = rng.standard_normal(3), rng.standard_normal((7, 3))
    jac = symgrad.jacobian(lambda w, X: {"pred": X @ w, "loss": [((X @ w) ** 2).sum()], "none": None})
    whole = jac(w, X)
    chunks = symgrad.chunked(jac, chunk_size=3, batch_argnums=1)(w, X)  # pred concatenated, loss summed
    same_tree(chunks, whole, rtol=1e-12, atol=1e-12)
    close(whole["pred"], X)
    close(whole["loss"][0], 2 * X.T @ (X @ w))


def test_chunked_value_and_grad_of_a_dict_of_parameters():
    rng = np.random.default_rng(11)
    params = {"w": rng.standard_normal(3), "b": np.array(0.5), "frozen": None}
    X = rng.standard_normal((9, 3))
    loss = symgrad.value_and_grad(lambda p, X: ((X @ p["w"] + p["b"]).tanh() ** 2).sum())
    value, g = symgrad.chunked(loss, chunk_size=4, batch_argnums=1)(params, X)
    whole_value, whole = loss(params, X)
    close(value, whole_value, rtol=1e-12)
    same_tree(g, whole, rtol=1e-12, atol=1e-12)
    assert g["frozen"] is None


def test_chunked_hessian_of_a_dict_of_scalar_outputs():
    rng = np.random.default_rng(12)
    w, X = rng.standard_normal(2), rng.standard_normal((5, 2))
    h = symgrad.hessian(lambda w, X: {"l2": ((X @ w) ** 2).sum(), "l4": ((X @ w) ** 4).sum()})
    same_tree(symgrad.chunked(h, chunk_size=2, batch_argnums=1)(w, X), h(w, X), rtol=1e-10, atol=1e-12)
    close(h(w, X)["l2"], 2 * X.T @ X)


def test_chunked_names_the_leaf_that_is_not_a_sum():
    X = np.arange(12.0).reshape(6, 2)
    jac = symgrad.jacobian(lambda w, X: {"mean": [((X @ w) ** 2).mean()], "pred": X @ w})
    with pytest.raises(symgrad.NotAdditiveError, match=r"output 0 \(at \['mean'\]\[0\]\) is not a sum"):
        symgrad.chunked(jac, chunk_size=4, batch_argnums=1)(np.array([1.0, 0.5]), X)
