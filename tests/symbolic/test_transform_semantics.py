"""The transforms' tracing semantics (issue 12): each way a traced-once transform used to
return a wrong result without an error, as a table, checked against a fresh eager run
of the same function on the tape engine.

* cache keys: two functions, or two calls of one, never share a trace or a compiled
  function they should not (argument order, unused parameters, closures, constants,
  static values, names, defaults, globals);
* engine-made symbols never meet a user's name;
* every way out of the graph raises ``UntraceableError`` naming the line;
* Python ``int``/``bool``/``str`` arguments are static, integer arrays are read per call;
* transforms compose, with each other and with eager ``backward()``;
* custom Functions with a SymPy form work inside transforms;
* ``jacobian``/``hessian`` keep float32; a transform keeps a bounded number of traces.
"""
from __future__ import annotations

import collections
import dataclasses
import operator
import random

import numpy as np
import pytest
import sympy

import symgrad
import symgrad.nn.functional as F
from symgrad import UntraceableError
from symgrad.symbolic import transforms, grad, hessian, jacobian, jvp, value_and_grad, vjp

A = np.array([1.0, 2.0])
B = np.array([3.0, 4.0])


def eager(f, args, argnums=(0,)):
    """``(value, grads)`` of ``f`` at ``args``, run eagerly on the tape engine."""
    tensors = [symgrad.tensor(np.asarray(a, dtype=float), requires_grad=True) if i in argnums else a
               for i, a in enumerate(args)]
    with symgrad.backward_engine("tape"):
        out = f(*tensors)
        grads = symgrad.autograd.grad(out, [tensors[i] for i in argnums], allow_unused=True)
    return out.detach().numpy(), [np.zeros(np.shape(args[i])) if g is None else g.numpy()
                                  for g, i in zip(grads, argnums)]


def assert_matches_eager(f, args, argnums=(0,), transform=None):
    transform = transform or value_and_grad(f, argnums=argnums)
    value, grads = transform(*args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    expected_value, expected_grads = eager(f, args, argnums)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


# ============================================================================ 1. cache keys
def _pair_argument_order():
    return (lambda a, b: (a * 2 + b).sum()), (lambda b, a: (a * 2 + b).sum())


def _pair_unused_parameter():
    return (lambda a, b: (a * 2 + b).sum()), (lambda u, a, b: (a * 2 + b).sum())


def _pair_closure_over_a_parameter_name():
    b_outer = symgrad.tensor(B)
    return (lambda a, b: (a * 2 + b).sum()), (lambda a, c: (a * 2 + b_outer).sum() + 0 * c.sum())


def _pair_constant():
    return (lambda a, b: (a * 2 + b).sum()), (lambda a, b: (a * 3 + b).sum())


def _pair_names():
    return (lambda a, b: (a * 2 + b).sum()), (lambda x, y: (x * 2 + y).sum())


def _pair_wiring():
    return (lambda a, b: (a * b).sum()), (lambda a, b: (a * a).sum() + 0 * b.sum())


PAIRS = {
    "argument order": _pair_argument_order,
    "an unused parameter": _pair_unused_parameter,
    "a closure over another function's parameter name": _pair_closure_over_a_parameter_name,
    "a constant": _pair_constant,
    "the names": _pair_names,
    "the wiring": _pair_wiring,
}


@pytest.mark.parametrize("transform", [grad, value_and_grad, jacobian])
@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("first", [0, 1])
def test_two_functions_never_share_a_compiled_transform(pair, first, transform, backend):
    functions = PAIRS[pair]()
    for f in (functions[first], functions[1 - first]):
        n = f.__code__.co_argcount
        args = (A, B) if n == 2 else (B, A, B)
        argnums = tuple(range(n))
        got = transform(f, argnums=argnums, backend=backend)(*args)
        expected_value, expected_grads = eager(f, args, argnums)
        grads = got[1] if transform is value_and_grad else got
        if transform is value_and_grad:
            np.testing.assert_allclose(got[0], expected_value)
        for g, e in zip(grads, expected_grads):
            np.testing.assert_allclose(g, e)


def test_a_rebound_closure_value_retraces():
    c = 2.0

    def f(x):
        return (x * c).sum()

    df = grad(f)
    np.testing.assert_allclose(df(A), [2.0, 2.0])
    c = 5.0  # noqa: F841  (read by f through its closure)
    np.testing.assert_allclose(df(A), [5.0, 5.0])


def test_a_rebound_closure_tensor_retraces():
    w = symgrad.tensor([1.0, 1.0])

    def f(x):
        return (x * w).sum()

    df = value_and_grad(f)
    assert df(A)[0] == 3.0
    w = symgrad.tensor([10.0, 100.0])  # noqa: F841
    value, g = df(A)
    assert value == 210.0
    np.testing.assert_allclose(g, [10.0, 100.0])


def test_a_closed_over_tensor_changed_in_place_is_read_at_each_call():
    w = symgrad.tensor([1.0, 1.0])
    df = value_and_grad(lambda x: (x * w).sum())
    assert df(A)[0] == 3.0
    w.data = symgrad.tensor([2.0, 3.0])
    assert df(A)[0] == 8.0


SCALE = 2.0


def test_a_changed_global_retraces():
    global SCALE
    df = grad(lambda x: (x * SCALE).sum())
    try:
        np.testing.assert_allclose(df(A), [2.0, 2.0])
        SCALE = 7.0
        np.testing.assert_allclose(df(A), [7.0, 7.0])
    finally:
        SCALE = 2.0


def test_changed_defaults_retrace():
    def f(x, k=2.0):
        return (x * k).sum()

    df = grad(f)
    np.testing.assert_allclose(df(A), [2.0, 2.0])
    f.__defaults__ = (3.0,)
    np.testing.assert_allclose(df(A), [3.0, 3.0])


def test_a_changed_helper_function_retraces():
    factor = [2.0]

    def helper(x):
        return x * factor[0]

    df = grad(lambda x: helper(x).sum())
    np.testing.assert_allclose(df(A), [2.0, 2.0])
    factor[0] = 4.0
    np.testing.assert_allclose(df(A), [4.0, 4.0])


# ------------------------------------------------------------- the repeat-call shortcut
# A repeat call with plain arrays of the same shapes skips sorting the arguments and
# walking the function (``Transformed._prepare``): it re-checks the function's bindings
# with a guard instead.  Every change below must still reach a fresh trace (or be read at
# the call), exactly as the full key does.
HELPER_SCALE = 2.0
HIDDEN_BY_A_GLOBAL = "abs"


def _helper(x):
    return x * HELPER_SCALE


def _change_code():
    def f(x):
        return (x * 2.0).sum()

    return f, lambda: setattr(f, "__code__", (lambda x: (x * 3.0).sum()).__code__)


def _change_a_cell():
    k = 2.0

    def f(x):
        return (x * k).sum()

    def change():
        nonlocal k
        k = 3.0

    return f, change


def _define_a_global_that_was_a_builtin():
    f = eval("lambda x: abs(x * 2.0).sum()", {"__builtins__": __builtins__})

    def change():
        f.__globals__["abs"] = lambda t: t * t
    return f, change


def _rebind_a_helper():
    f = eval("lambda x: helper(x).sum()", {"helper": _helper})
    return f, lambda: f.__globals__.__setitem__("helper", lambda x: x * 5.0)


def _change_a_helpers_global():
    def change():
        global HELPER_SCALE
        HELPER_SCALE = 4.0
    return (lambda x: _helper(x).sum()), change


def _change_a_helpers_cell():
    s = 2.0

    def helper(x):
        return x * s

    def change():
        nonlocal s
        s = 6.0
    return (lambda x: helper(x).sum()), change


def _reshape_a_captured_array_in_place():
    c = np.array([1.0, 2.0])

    def change():
        c.shape = (2, 1)
    return (lambda x: (x * c).sum()), change


def _view_a_captured_array_as_another_dtype():
    c = np.array([1.0, 2.0], dtype=np.float64)

    def change():
        c.dtype = np.int64  # the same bytes, read as integers
    return (lambda x: (x * c).sum()), change


def _a_captured_tensor_starts_requiring_grad():
    w = symgrad.tensor([1.0, 3.0])
    return (lambda x: (x * w).sum()), lambda: w.requires_grad_(True)


def _change_an_attribute():
    class Model:
        scale = 2.0
    m = Model()
    m.scale = 2.0
    return (lambda x: (x * m.scale).sum()), lambda: setattr(m, "scale", 9.0)


def _change_a_list_item():
    weights = [2.0, 1.0]
    return (lambda x: (x * weights[0]).sum()), lambda: weights.__setitem__(0, -1.0)


def _change_a_captured_arrays_values():
    c = np.array([1.0, 2.0])
    return (lambda x: (x * c).sum()), lambda: c.__setitem__(0, 10.0)


SHORTCUT_CHANGES = {f.__name__[1:]: f for f in (
    _change_code, _change_a_cell, _define_a_global_that_was_a_builtin, _rebind_a_helper,
    _change_a_helpers_global, _change_a_helpers_cell, _reshape_a_captured_array_in_place,
    _view_a_captured_array_as_another_dtype, _a_captured_tensor_starts_requiring_grad, _change_an_attribute,
    _change_a_list_item, _change_a_captured_arrays_values)}


@pytest.mark.parametrize("change", SHORTCUT_CHANGES)
def test_the_repeat_call_shortcut_sees_every_change(change, monkeypatch):
    monkeypatch.setitem(globals(), "HELPER_SCALE", HELPER_SCALE)
    f, make_the_change = SHORTCUT_CHANGES[change]()
    transform = value_and_grad(f)
    x = np.array([0.5, -1.5])
    for _ in range(2):  # the second call takes the shortcut
        assert_matches_eager(f, (x,), transform=transform)
    make_the_change()
    x = np.array([0.25, 2.0])  # a new array of the same shape and dtype
    assert_matches_eager(f, (x,), transform=transform)
    assert_matches_eager(f, (x,), transform=transform)


ARGUMENT_CHANGES = {
    "another dtype": lambda: np.array([0.5, 2.0], dtype=np.float32),
    "another shape": lambda: np.array([[0.5, 2.0]]),
    "a tensor": lambda: symgrad.tensor([0.5, 2.0]),
    "a tensor that requires grad": lambda: symgrad.tensor([0.5, 2.0], requires_grad=True),
    "a list": lambda: [0.5, 2.0],
    "an integer array": lambda: np.array([1, 2]),
    "an ndarray subclass": lambda: np.array([0.5, 2.0]).view(np.recarray),
}


@pytest.mark.parametrize("change", ARGUMENT_CHANGES)
def test_the_repeat_call_shortcut_sees_another_kind_of_argument(change):
    def f(x, y):
        return (x * y.sum() + x ** 2).sum()

    transform = value_and_grad(f, argnums=(0, 1))
    x, y = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    transform(x, y)
    transform(x, y)
    other = ARGUMENT_CHANGES[change]()
    value, (gx, gy) = transform(x, other)
    plain = np.asarray(other.detach().numpy() if isinstance(other, symgrad.Tensor) else other, dtype=float)
    expected_value, (ex, ey) = eager(f, (x, plain), argnums=(0, 1))
    np.testing.assert_allclose(np.asarray(value.detach().numpy() if isinstance(value, symgrad.Tensor) else value),
                               expected_value, rtol=1e-6)
    as_array = [np.asarray(g.detach().numpy() if isinstance(g, symgrad.Tensor) else g) for g in (gx, gy)]
    np.testing.assert_allclose(as_array[0], ex, rtol=1e-6)
    np.testing.assert_allclose(as_array[1].reshape(ey.shape), ey, rtol=1e-6)


def test_a_repeat_call_takes_the_shortcut(monkeypatch):
    transform = grad(lambda x: (x * A).sum())
    transform(B)
    sorted_calls = []
    real = transforms._Arguments.__init__
    monkeypatch.setattr(transforms._Arguments, "__init__",
                        lambda self, *a, **k: (sorted_calls.append(1), real(self, *a, **k))[1])
    np.testing.assert_allclose(transform(B + 1.0), A)
    assert sorted_calls == []
    transform(B.astype(np.float32))  # another signature: sorted again
    assert sorted_calls == [1]


# ============================================================================ 2. engine names
NAMED = {
    "g": lambda g: g ** 2,
    "v_x": lambda v_x: v_x ** 2,
    "dx": lambda dx: dx ** 2,
    "unused0": lambda unused0: unused0 ** 2,
    "x": lambda x: x ** 2,
}


@pytest.mark.parametrize("name", list(NAMED))
def test_engine_made_symbols_never_meet_a_users_name_in_compiled_code(name, backend):
    np.testing.assert_allclose(jacobian(NAMED[name], backend=backend)(A), np.diag(2 * A))


@pytest.mark.parametrize("name", list(NAMED))
def test_engine_made_symbols_never_meet_a_users_name(name):
    f = NAMED[name]
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(jacobian(f)(x), np.diag(2 * x))
    value, back = vjp(f, x)
    np.testing.assert_allclose(value, x ** 2)
    np.testing.assert_allclose(back(np.ones(2))[0], 2 * x)
    np.testing.assert_allclose(hessian(lambda t: f(t).sum())(x), 2 * np.eye(2))
    value, tangent = jvp(f, (x,), (np.array([1.0, 0.5]),))
    np.testing.assert_allclose(tangent, 2 * x * [1.0, 0.5])
    np.testing.assert_allclose(grad(lambda t, u: (f(t) * 0 + t).sum(), argnums=1)(x, x), np.zeros(2))


# ============================================================================ 3. ways out of the graph
CAPTURED_GENERATOR = np.random.default_rng(11)


def _hooked(t):
    t.register_hook(lambda g: g * 10)  # would scale the gradient in an eager backward
    return t

CAPTURED_RANDOM_STATE = np.random.RandomState(12)
OUT_OF_GRAPH = {
    "item()": lambda x: x * x.sum().item(),
    "float()": lambda x: x * float(x.sum()),
    "int()": lambda x: x * int(x.sum()),
    "bool()": lambda x: x * 2 if x.sum() > 0 else x,
    "numpy.asarray() (__array__)": lambda x: x * np.asarray(x).sum(),
    "numpy.array (__array__)": lambda x: x * np.array(x)[0],
    "numpy()": lambda x: x * x.detach().numpy()[0],
    "numpy() of .data": lambda x: x * x.data.numpy()[0],
    "tolist()": lambda x: x * x.tolist()[0],
    "complex()": lambda x: x * complex(x.sum()).real,
    "format()": lambda x: x * float(f"{x.sum():.3f}"),
    "symgrad.tensor()": lambda x: x * symgrad.tensor(x).sum(),
    "symgrad.randn()": lambda x: x * symgrad.randn(2),
    "symgrad.rand()": lambda x: x * symgrad.rand(2),
    "np.random.normal()": lambda x: x * np.random.normal(size=2),
    "a captured np.random.Generator": lambda x: x * CAPTURED_GENERATOR.normal(size=2),
    "a captured np.random.RandomState": lambda x: x * CAPTURED_RANDOM_STATE.uniform(size=2),
    "random.random()": lambda x: x * random.random(),
    "register_hook()": lambda x: _hooked(x * 2),
    "register_hook() on the argument": lambda x: _hooked(x) * 2,
    "allclose()": lambda x: x * 2 if x.allclose(symgrad.ones(2)) else x,
    "equal()": lambda x: x * 2 if x.equal(symgrad.ones(2)) else x,
}


@pytest.mark.parametrize("way", list(OUT_OF_GRAPH))
@pytest.mark.parametrize("transform", [grad, value_and_grad, jacobian, hessian])
def test_every_way_out_of_the_graph_raises_naming_the_line(way, transform):
    f = OUT_OF_GRAPH[way]
    scalar = (lambda x: f(x).sum()) if transform is not jacobian else f
    with pytest.raises(UntraceableError) as info:
        transform(scalar)(np.array([1.0, 2.0]))
    message = str(info.value)
    assert "test_transform_semantics.py" in message  # the user's line
    assert "Instead," in message  # and the fix


def test_random_numbers_drawn_outside_and_passed_in_are_read_at_each_call():
    rng = np.random.default_rng(4)
    df = grad(lambda x, noise: (x * noise).sum())
    for _ in range(3):  # a captured generator that the function does not draw from is no draw
        noise = rng.normal(size=2)
        np.testing.assert_array_equal(df(np.ones(2), noise), noise)


def test_a_refused_random_draw_leaves_nothing_cached():
    f = grad(lambda x: (x * np.random.normal(size=2)).sum())
    for _ in range(2):  # the second call traces again and raises again: no frozen numbers were kept
        with pytest.raises(UntraceableError, match="NumPy's global random generator"):
            f(np.ones(2))


INDEX_WAYS = {
    "x[i.numpy()]": lambda x, i: x[i.numpy()],
    "x[i.tolist()]": lambda x, i: x[i.tolist()],
    "x[int(i[0])]": lambda x, i: x[int(i[0])],
    "x[:int(i.sum())]": lambda x, i: x[:int(i.sum())],
    "x[: i[0]] (__index__)": lambda x, i: x[: i[0]],
    "range(i[0])": lambda x, i: sum(x[k] for k in range(i[0])),
}


@pytest.mark.parametrize("way", list(INDEX_WAYS))
def test_an_index_argument_made_into_a_python_value_raises(way):
    f = INDEX_WAYS[way]
    with pytest.raises(UntraceableError, match="Instead"):
        grad(lambda x, i: f(x, i).sum())(np.array([1.0, 2.0, 3.0]), np.array([1, 0]))


def test_an_index_argument_used_as_a_tensor_is_read_at_each_call():
    df = value_and_grad(lambda x, i: (x[i] ** 2).sum())
    x = np.array([1.0, 2.0, 3.0])
    for i in ([0, 1], [2, 2], [1, 0]):
        assert_matches_eager(lambda x, i=np.array(i): (x[i] ** 2).sum(), (x,), transform=lambda x, i=i: df(
            x, np.array(i)))


def test_shapes_are_static_while_tracing():
    df = grad(lambda x: sum(x[k] * (k + 1) for k in range(len(x))) * x.shape[0])
    np.testing.assert_allclose(df(np.zeros(3)), [3.0, 6.0, 9.0])
    np.testing.assert_allclose(df(np.zeros(2)), [2.0, 4.0])


# ============================================================================ 4. static arguments
def test_python_ints_are_static(backend):
    f = value_and_grad(lambda x, k: (x * k).sum(), backend=backend)
    x = np.arange(5.0)
    assert f(x, 2)[0] == 20.0
    value, g = f(x, 3)
    assert value == 30.0
    np.testing.assert_allclose(g, 3.0)


@pytest.mark.parametrize("dim", [0, 1])
def test_an_int_dim_is_static(dim):
    f = value_and_grad(lambda x, d: (x.sum(dim=d) ** 2).sum())
    x = np.arange(6.0).reshape(2, 3)
    f(x, 1 - dim)
    assert_matches_eager(lambda x: (x.sum(dim=dim) ** 2).sum(), (x,), transform=lambda x: f(x, dim))


def test_strings_and_bools_are_static():
    def f(x, mode, square):
        y = x.sin() if mode == "sin" else x.cos()
        return (y * y if square else y).sum()

    df = grad(f)
    x = np.array([0.3, 0.7])
    for mode in ("sin", "cos"):
        for square in (True, False):
            np.testing.assert_allclose(df(x, mode, square), eager(lambda t: f(t, mode, square), (x,))[1][0])


def test_static_argnums_and_argnames():
    def f(x, table, scale=1.0):
        return (x * table["w"] * scale).sum()

    df = grad(f, static_argnums=1, static_argnames="scale")
    x = np.ones(2)
    with pytest.raises(TypeError, match="static argument 1 .* must be hashable"):
        df(x, {"w": 2.0})
    table = ("w", 2.0)
    g = grad(lambda x, t, scale=1.0: (x * t[1] * scale).sum(), static_argnums=1, static_argnames="scale")
    np.testing.assert_allclose(g(x, table), [2.0, 2.0])
    np.testing.assert_allclose(g(x, ("w", 5.0), scale=2.0), [10.0, 10.0])


KEYWORD_TRANSFORMS = {
    "grad": lambda f: grad(f),
    "value_and_grad": lambda f: value_and_grad(f),
    "jacobian": lambda f: jacobian(f),
    "hessian": lambda f: hessian(f),
}
KEYWORD_FUNCTIONS = {  # data passed by keyword (issue 19: it raised "unhashable type: 'numpy.ndarray'")
    "default None": lambda x, w=None: (w * x ** 3).sum(),
    "keyword only": lambda x, *, w: (w * x ** 3).sum(),
    "positional by name": lambda x, w: (w * x ** 3).sum(),
}


@pytest.mark.parametrize("kind", KEYWORD_TRANSFORMS)
@pytest.mark.parametrize("function", KEYWORD_FUNCTIONS)
def test_array_keyword_arguments_are_data_read_at_each_call(kind, function, traces):
    f = KEYWORD_FUNCTIONS[function]
    transform = KEYWORD_TRANSFORMS[kind](f)
    x = np.array([1.0, -2.0])
    for w in (np.array([2.0, 3.0]), np.array([-1.0, 0.5])):
        got = transform(x, w=w)
        xt = symgrad.tensor(x, requires_grad=True)
        (g,) = symgrad.autograd.grad(f(xt, w=symgrad.tensor(w)), [xt], create_graph=True)
        expected = {"grad": g.detach().numpy(), "value_and_grad": g.detach().numpy(),
                    "jacobian": 3 * w * x ** 2, "hessian": np.diag(6 * w * x)}[kind]
        np.testing.assert_allclose(got[1] if kind == "value_and_grad" else got, expected)
    assert len(traces) == 1  # a keyword array is dynamic: a new value is not a new trace


def test_a_python_float_argument_is_read_at_each_call_not_retraced(traces):
    df = grad(lambda x, lr: (x * lr).sum())
    for lr in (0.1, 0.2, 0.3):
        np.testing.assert_allclose(df(A, lr), [lr, lr])
    assert len(traces) == 1


@pytest.mark.parametrize("bad, error, match", [
    (dict(argnums=0, static_argnums=0), ValueError, "both differentiated"),
    (dict(argnums=1.5), TypeError, "argnums takes argument positions"),
    (dict(argnums=-2), TypeError, "argnums=-2 but"),
    (dict(argnums=3), TypeError, "argnums=3 but"),
    (dict(argnums=0, static_argnums="x"), TypeError, "static_argnums takes argument positions"),
    (dict(argnums=()), ValueError, "argnums is empty"),
])
def test_bad_transform_arguments_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        grad(lambda x: x.sum(), **bad)(A)


def test_an_argument_that_is_not_numeric_names_static_argnums():
    with pytest.raises(TypeError, match="static_argnums"):
        grad(lambda x, o: x.sum())(A, object())


LABEL_CASES = [(loss, kwargs) for loss in ("cross_entropy", "nll_loss")
               for kwargs in ({}, {"ignore_index": 1}, {"label_smoothing": 0.2, "ignore_index": 2},
                              {"weight": np.array([1.0, 2.0, 3.0])}, {"weight": np.array([1.0, 2.0, 3.0]), "ignore_index": 0})
               if loss == "cross_entropy" or "label_smoothing" not in kwargs]


@pytest.mark.parametrize("loss, kwargs", LABEL_CASES)
def test_class_labels_are_read_at_each_call(loss, kwargs):
    fn = getattr(F, loss)
    X = np.random.default_rng(3).normal(size=(5, 3))
    df = value_and_grad(lambda X, y: fn(X, y, **kwargs))
    for y in ([0, 1, 2, 1, 0], [2, 2, 1, 0, 1], [0, 0, 0, 1, 1]):
        y = np.array(y)
        assert_matches_eager(lambda X: fn(X, symgrad.tensor(y), **kwargs), (X,), transform=lambda X: df(X, y))


def test_an_unrecorded_op_on_arrays_derived_from_labels_is_refused_not_frozen():
    """Arrays a function derives from an integer argument (``tracing.derived_array``: its
    labels, index arrays) are recomputed at each call only where they are used as they
    are; a sum of them alone is not recorded, so its first value would be reused at every
    later call (``cross_entropy``'s mean over the counted labels was, with ignore_index).
    It is refused, naming the op."""
    from symgrad.tape import tracing

    def f(x, y):
        counted = symgrad.Tensor(tracing.derived_array(symgrad.as_tensor(y), lambda c: (c != 1).astype(float)))
        return (x * counted).sum() / counted.sum()

    with pytest.raises(UntraceableError, match=r"unrecorded op sum \(from a tensor made by derived_array\(\)"):
        value_and_grad(f)(np.ones(3), np.array([0, 1, 2]))


def test_class_labels_out_of_range_raise_at_a_later_call():
    df = grad(lambda X, y: F.cross_entropy(X, y))
    X = np.zeros((2, 3))
    df(X, np.array([0, 1]))
    with pytest.raises(IndexError, match="target 7 is out of bounds"):
        df(X, np.array([0, 7]))


# ============================================================================ 5. composition
def test_a_transform_inside_an_eager_program_is_recorded():
    x = symgrad.tensor(1.0, requires_grad=True)
    y = x * grad(lambda y: x * y)(2.0)
    y.backward()
    assert x.grad.item() == 2.0


@pytest.mark.parametrize("outer, inner, point, expected", [
    (grad, lambda z: z ** 3, 2.0, 12.0),
    (grad, lambda z: z.sin(), 0.5, -np.sin(0.5)),
])
def test_grad_of_grad(outer, inner, point, expected):
    np.testing.assert_allclose(outer(lambda x: grad(inner)(x))(point), expected)


def test_nested_grads_with_a_closure_over_the_outer_tracer():
    # d/dx [ d/dy (x*y*y) at y=x ] = d/dx [2 x^2] = 4x
    f = grad(lambda x: grad(lambda y: x * y * y)(x))
    np.testing.assert_allclose(f(3.0), 12.0)


def test_hessian_from_nested_grad_and_jacobian_of_grad_agree():
    f = lambda x: (x.sin() * x ** 2).sum()  # noqa: E731
    x = np.array([0.3, -1.2, 2.0])
    h = hessian(f)(x)
    np.testing.assert_allclose(jacobian(grad(f))(x), h, rtol=1e-12)
    np.testing.assert_allclose(np.stack([grad(lambda t: grad(f)(t)[k])(x) for k in range(3)]), h, rtol=1e-12)


def test_a_grad_inside_a_loss_that_is_backwarded_agrees_with_the_tape():
    w = symgrad.tensor([0.5, -0.3], requires_grad=True)

    def penalty(w):
        return (grad(lambda v: (v.sin() * w).sum())(w) ** 2).sum()

    penalty(w).backward()
    symbolic = w.grad.numpy().copy()
    # the same on the tape: d/dw sum((cos(w) * w)^2)
    w2 = symgrad.tensor([0.5, -0.3], requires_grad=True)
    with symgrad.backward_engine("tape"):
        ((w2.cos() * w2) ** 2).sum().backward()
    np.testing.assert_allclose(symbolic, w2.grad.numpy(), rtol=1e-12)


def test_a_transform_of_an_indexed_function_inside_an_eager_program_is_recorded():
    w = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True)
    i = np.array([2, 0])
    y = grad(lambda v, i: (v[i] * w[i]).sum())(np.ones(3), i)  # = w at [2, 0], 0 elsewhere
    (y * y).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2 * 0.5, 0.0, 2 * 2.0])


def test_has_aux():
    def f(x):
        y = x.sin()
        return y.sum(), {"y": y, "label": "sin"}

    (value, aux), g = value_and_grad(f, has_aux=True)(A)
    np.testing.assert_allclose(value, np.sin(A).sum())
    np.testing.assert_allclose(aux["y"], np.sin(A))
    assert aux["label"] == "sin"
    np.testing.assert_allclose(g, np.cos(A))
    g2, aux2 = grad(f, has_aux=True)(B)
    np.testing.assert_allclose(aux2["y"], np.sin(B))
    np.testing.assert_allclose(g2, np.cos(B))
    jac, aux3 = jacobian(lambda x: (x.sin(), x.cos().sum()), has_aux=True)(A)
    np.testing.assert_allclose(jac, np.diag(np.cos(A)))
    np.testing.assert_allclose(aux3, np.cos(A).sum())
    with pytest.raises(TypeError, match="pair"):
        grad(lambda x: x.sum(), has_aux=True)(A)


# ============================================================================ 7. custom Functions
class Cube(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g

    @staticmethod
    def sympy(sp, x):
        return x ** 3


class Opaque(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_a_custom_function_with_a_sympy_form_works_inside_transforms():
    df = value_and_grad(lambda x: Cube.apply(x).sum())
    for x in (A, B):
        value, g = df(x)
        np.testing.assert_allclose(value, (x ** 3).sum())
        np.testing.assert_allclose(g, 3 * x ** 2)


def test_a_custom_function_without_a_sympy_form_is_refused_not_frozen():
    with pytest.raises(NotImplementedError, match="Opaque has no SymPy form"):
        grad(lambda x: Opaque.apply(x).sum())(A)


# ============================================================================ 9. dtypes and bounds
@pytest.mark.parametrize("transform", [jacobian, hessian])
def test_jacobian_and_hessian_keep_float32(transform):
    f = (lambda x: x ** 2) if transform is jacobian else (lambda x: (x ** 3).sum())
    assert transform(f)(A.astype(np.float32)).dtype == np.float32


def test_a_transform_keeps_a_bounded_number_of_traces():
    df = grad(lambda x: (x ** 2).sum())
    for n in range(1, transforms.TRACES_PER_TRANSFORM + 10):
        df(np.ones(n))
    assert len(df._traces) == transforms.TRACES_PER_TRANSFORM


# ============================================================================ "both"
def test_the_both_engine_cross_checks_every_transform(monkeypatch):
    from symgrad.ops import OPS
    from symgrad.symbolic import GradientMismatchError

    f = lambda x: (x.sin() * x).sum()  # noqa: E731
    with symgrad.backward_engine("both"):
        grad(f)(A)
        jacobian(lambda x: x.sin() * x)(A)
        hessian(f)(A)
        wrong = lambda xp, g, ans, a: (g * 2.0,)  # noqa: E731  (a deliberately wrong tape VJP)
        monkeypatch.setitem(OPS, "sin", dataclasses.replace(OPS["sin"], vjp=wrong))
        with pytest.raises(GradientMismatchError, match="grad_<lambda> for argument 0"):
            grad(f)(A)


def test_operator_index_of_a_static_int_is_fine():
    df = grad(lambda x, n: x[: operator.index(n)].sum())
    np.testing.assert_allclose(df(np.ones(3), 2), [1.0, 1.0, 0.0])


def test_labels_under_chunked_are_each_chunks_own():
    rng = np.random.default_rng(5)
    X, w = rng.normal(size=(6, 3)), rng.normal(size=(3, 4))
    y = np.array([0, 3, 1, 2, 2, 0])
    loss = value_and_grad(lambda w, X, y: F.cross_entropy(X @ w, y, reduction="sum"))
    value, g = symgrad.chunked(loss, chunk_size=2, batch_argnums=(1, 2))(w, X, y)
    expected_value, (expected_g,) = eager(lambda w: F.cross_entropy(symgrad.tensor(X) @ w, symgrad.tensor(y),
                                                                    reduction="sum"), (w,))
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(g, expected_g, rtol=1e-12)



# ============================================================================ 10. arrays paired with primals
# Every array a user passes as a direction beside a primal or an output -- jvp's tangents,
# vjp_fn's cotangents, torch.autograd.functional's v, the rows of chunked's batch
# arguments -- must match it exactly: a mismatch raises naming the argument (or pytree
# leaf) and both shapes; it is never broadcast into another direction.  The jvp rows
# with a "JAX" id port JAX's test_jvp_mismatched_arguments and test_jvp_non_tuple_arguments.
Layer = collections.namedtuple("Layer", ["w", "b"])
_THREE = np.array([1.0, 2.0, 3.0])


def _square(x):
    return x ** 2


def _layer_out(p):
    return (p.w * 2.0).sum() + p.b


def _af(name):
    return getattr(symgrad.autograd.functional, name)


PAIRED = [
    # jvp tangents against their primals
    pytest.param(lambda: jvp(_square, (_THREE,), (np.ones(4),)), ValueError,
                 r"tangent for argument 0 \(x\) has shape \(4,\), but its primal has shape \(3,\)",
                 id="jvp-JAX-shapes"),
    pytest.param(lambda: jvp(_square, (np.float32(10.0),), (_THREE.astype(np.float32),)), ValueError,
                 r"shape \(3,\), but its primal has shape \(\)", id="jvp-JAX-scalar-primal"),
    pytest.param(lambda: jvp(_square, (_THREE,), (20.0,)), ValueError,
                 r"shape \(\), but its primal has shape \(3,\)", id="jvp-JAX-scalar-tangent"),
    pytest.param(lambda: jvp(_square, (_THREE,), (np.ones(1),)), ValueError,
                 r"shape \(1,\), but its primal has shape \(3,\)", id="jvp-broadcastable-shape"),
    pytest.param(lambda: jvp(_square, (_THREE,), (np.ones((1, 3)),)), ValueError,
                 r"shape \(1, 3\), but its primal has shape \(3,\)", id="jvp-extra-axis"),
    pytest.param(lambda: jvp(_square, (_THREE,), (symgrad.ones(1),)), ValueError,
                 r"shape \(1,\), but its primal has shape \(3,\)", id="jvp-tensor-tangent"),
    pytest.param(lambda: jvp(lambda x, y: x * y, (_THREE, 2.0), (np.ones(3), np.ones(3))), ValueError,
                 r"tangent for argument 1 \(y\) has shape \(3,\), but its primal has shape \(\)",
                 id="jvp-second-argument"),
    pytest.param(lambda: jvp(lambda d: d["a"] ** 2, ({"a": _THREE},), ({"a": np.ones(1)},)), ValueError,
                 r"argument 0\['a'\] \(d_a\) has shape \(1,\), but its primal has shape \(3,\)",
                 id="jvp-dict-leaf"),
    pytest.param(lambda: jvp(_layer_out, (Layer(_THREE, 1.0),), (Layer(np.ones(3), np.ones(3)),)), ValueError,
                 r"argument 0\.b \(p_b\) has shape \(3,\), but its primal has shape \(\)", id="jvp-namedtuple-leaf"),
    pytest.param(lambda: jvp(lambda d: d["a"][1] ** 2, ({"a": (None, _THREE)},), ({"a": (_THREE, _THREE)},)),
                 ValueError, r"argument 0\['a'\]\[0\] must be None", id="jvp-None-leaf"),
    pytest.param(lambda: jvp(lambda d: d["a"] ** 2, ({"a": _THREE},), ((_THREE,),)), ValueError,
                 "has the structure", id="jvp-structure"),
    pytest.param(lambda: jvp(_square, (_THREE,), (np.ones(3, dtype=np.int64),)), TypeError,
                 "argument 0 \\(x\\) has dtype int64", id="jvp-JAX-int-tangent"),
    pytest.param(lambda: jvp(_square, (3.0,), (1,)), TypeError, "has dtype int64", id="jvp-python-int-tangent"),
    pytest.param(lambda: jvp(_square, (_THREE,), (np.ones(3, dtype=complex),)), TypeError, "has dtype complex128",
                 id="jvp-complex-tangent"),
    pytest.param(lambda: jvp(_square, (_THREE,), (np.ones(3, dtype=bool),)), TypeError, "has dtype bool",
                 id="jvp-bool-tangent"),
    pytest.param(lambda: jvp(_square, (_THREE,), ("a",)), TypeError, "has dtype <U1", id="jvp-string-tangent"),
    pytest.param(lambda: jvp(_square, _THREE, _THREE), TypeError, "tuples or lists", id="jvp-JAX-non-tuple"),
    pytest.param(lambda: jvp(_square, (_THREE,), [_THREE, _THREE]), ValueError, "one tangent per primal",
                 id="jvp-JAX-counts"),
    pytest.param(lambda: jvp(sympy.Symbol("x", real=True) ** 2, (_THREE,), (np.ones(1),)), ValueError,
                 r"argument 0 has shape \(1,\), but its primal has shape \(3,\)", id="jvp-expression"),
    # vjp_fn's cotangents against the outputs
    pytest.param(lambda: vjp(_square, _THREE)[1](np.ones(1)), ValueError,
                 r"cotangent of the value's shape \(3,\) for the output, got shape \(1,\)", id="vjp-shape"),
    pytest.param(lambda: vjp(lambda x: {"a": x}, _THREE)[1]({"a": np.ones(1)}), ValueError,
                 r"\(3,\) for the output\['a'\], got shape \(1,\)", id="vjp-dict-leaf"),
    pytest.param(lambda: vjp(_square, _THREE)[1](np.ones(3, dtype=complex)), TypeError, "dtype complex128",
                 id="vjp-complex"),
    # torch.autograd.functional's v against the inputs or outputs (RuntimeError, as torch raises)
    *[pytest.param(lambda name=name: _af(name)(lambda x: (x ** 3).sum() if name in ("hvp", "vhp") else x ** 2,
                                               symgrad.tensor(_THREE), symgrad.ones(1)),
                   RuntimeError, r"entry 0 of v has invalid size: should be \[3\].* got \[1\]",
                   id=f"autograd.functional.{name}")
      for name in ("jvp", "vjp", "hvp", "vhp")],
    # eager backward: the gradient against its output (RuntimeError, as torch raises)
    pytest.param(lambda: (symgrad.tensor(_THREE, requires_grad=True) * 2).backward(symgrad.ones(1)), RuntimeError,
                 r"gradient 0 has shape \[1\] and output 0 has shape \[3\]", id="Tensor.backward"),
    pytest.param(lambda: symgrad.autograd.grad([symgrad.tensor(_THREE, requires_grad=True) * 2], [],
                                               grad_outputs=[symgrad.ones(1)]), RuntimeError,
                 r"gradient 0 has shape \[1\] and output 0 has shape \[3\]", id="autograd.grad"),
    # chunked: the batch arguments' rows against each other
    pytest.param(lambda: symgrad.chunked(value_and_grad(lambda w, X, y: ((X @ w - y) ** 2).sum()), chunk_size=2,
                                         batch_argnums=(1, 2))(np.ones(2), np.ones((4, 2)), np.ones(3)),
                 ValueError, "different numbers of rows", id="chunked-rows"),
]


@pytest.mark.parametrize("call,error,match", PAIRED)
def test_an_array_paired_with_a_primal_must_match_it(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("primals,tangents,error", [
    pytest.param((_THREE,), (np.ones(4),), ValueError, id="shapes"),
    pytest.param((np.float32(10.0),), (_THREE.astype(np.float32),), ValueError, id="scalar-primal"),
    pytest.param((_THREE,), (20.0,), ValueError, id="scalar-tangent"),
    pytest.param((_THREE,), (np.ones(3, dtype=np.int32),), TypeError, id="int-tangent"),
    pytest.param(_THREE, _THREE, TypeError, id="non-tuple"),
])
def test_jvp_refuses_what_jax_refuses_with_the_same_exception(primals, tangents, error):
    # JAX's test_jvp_mismatched_arguments and test_jvp_non_tuple_arguments, run in both
    jax = pytest.importorskip("jax", exc_type=ImportError)
    with pytest.raises(error):
        jax.jvp(lambda x: x * 2.0, primals, tangents)
    with pytest.raises(error):
        jvp(lambda x: x * 2.0, primals, tangents)


@pytest.mark.parametrize("tangent", [
    pytest.param(np.array([1.0, -0.5, 2.0], dtype=np.float32), id="float32"),
    pytest.param([1.0, -0.5, 2.0], id="list"),
    pytest.param(symgrad.tensor([1.0, -0.5, 2.0]), id="tensor"),
])
def test_a_tangent_of_the_primals_shape_in_any_float_form_is_used_as_given(tangent):
    x = np.array([0.3, -1.2, 2.0])
    f = lambda x: symgrad.sin(x) * x  # noqa: E731
    value, out = jvp(f, (x,), (tangent,))
    direction = np.asarray(getattr(tangent, "_data", tangent), dtype=np.float64)
    eps = 1e-6
    central = (np.sin(x + eps * direction) * (x + eps * direction)
               - np.sin(x - eps * direction) * (x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(getattr(out, "_data", out)), central, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(value, np.sin(x) * x)
