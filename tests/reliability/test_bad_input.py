"""Bad input: every error names the op and the shapes or dtypes involved, unsupported data
is refused when a tensor is made, and a call that fails changes nothing -- no ``.grad``, no
version counter, no compile-cache entry -- on either engine."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad.check import AnomalyError, detect_anomaly
from symgrad.ops import OPS
from symgrad.symbolic import compile_cache_info
from symgrad.tape import apply_op


def ones(*shape, dtype=None, requires_grad=False):
    return symgrad.ones(*shape, dtype=dtype, requires_grad=requires_grad)


def leaf(*shape):
    return symgrad.tensor(np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape), requires_grad=True)


class Bad(symgrad.autograd.Function):
    """A custom Function whose backward returns a gradient of the wrong shape."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return symgrad.ones(5, 7)


# ---------------------------------------------------------------------------- messages
# (id, call, exception type, fragments the message must contain)
FORWARD_ERRORS = [
    ("matmul", lambda: leaf(2, 3) @ leaf(4, 5), ValueError, ["matmul", "[2, 3]", "[4, 5]"]),
    ("matmul-1d", lambda: leaf(4) @ leaf(5), ValueError, ["matmul", "[4]", "[5]"]),
    ("matmul-0d", lambda: leaf(2, 3) @ symgrad.tensor(2.0), ValueError, ["matmul", "[2, 3]", "[]"]),
    ("add", lambda: leaf(2, 3) + leaf(4, 5), ValueError, ["add", "[2, 3]", "[4, 5]"]),
    ("mul", lambda: leaf(3) * leaf(4), ValueError, ["mul", "[3]", "[4]"]),
    ("sub", lambda: leaf(2, 1, 3) - leaf(4, 2), ValueError, ["sub", "[2, 1, 3]", "[4, 2]"]),
    ("div", lambda: leaf(2, 3) / leaf(2), ValueError, ["div", "[2, 3]", "[2]"]),
    ("pow", lambda: leaf(2, 3) ** leaf(4), ValueError, ["pow", "[2, 3]", "[4]"]),
    ("maximum", lambda: leaf(2, 3).maximum(leaf(4)), ValueError, ["maximum", "[2, 3]", "[4]"]),
    ("where", lambda: symgrad.where(symgrad.tensor([True, False]), leaf(2, 3), 0.0), ValueError,
     ["where", "[2]", "[2, 3]"]),
    ("cat", lambda: symgrad.cat([leaf(2, 3), leaf(4, 5)]), ValueError, ["cat", "[2, 3]", "[4, 5]"]),
    ("stack", lambda: symgrad.stack([leaf(2, 3), leaf(3, 2)]), ValueError, ["stack", "[2, 3]", "[3, 2]"]),
    ("expand", lambda: leaf(2, 3).expand(4, 3), ValueError, ["broadcast_to", "[2, 3]", "(4,3)"]),
    ("reshape", lambda: leaf(2, 3).reshape(5), RuntimeError, ["[5]", "size 6", "[2, 3]"]),
    ("sum-dim", lambda: leaf(2, 3).sum(dim=4), IndexError, ["sum", "[2, 3]", "dim 4"]),
    ("softmax-dim", lambda: leaf(2, 3).softmax(dim=3), IndexError, ["softmax", "[2, 3]", "dim 3"]),
    ("index", lambda: leaf(2, 3)[5], IndexError, ["getitem", "[2, 3]", "index 5"]),
    ("mse-shape", lambda: F.mse_loss(leaf(2, 3), leaf(3, 2)), Exception, ["[2, 3]", "[3, 2]"]),
    ("bce-shape", lambda: F.binary_cross_entropy_with_logits(leaf(2, 3), ones(3)), ValueError,
     ["binary_cross_entropy_with_logits", "[3]", "[2, 3]"]),
    ("ce-targets", lambda: F.cross_entropy(leaf(2, 3), symgrad.tensor([0, 1, 2])), ValueError,
     ["[3]", "[2, 3]"]),
    ("inplace-shape", lambda: leaf(2, 3).exp().add_(ones(4, 2, 3)), RuntimeError, ["add", "(2, 3)", "(4, 2, 3)"]),
    # dtypes
    ("requires-grad-int", lambda: symgrad.tensor([1, 2], requires_grad=True), RuntimeError, ["int64"]),
    ("requires-grad-bool", lambda: symgrad.tensor([True]).requires_grad_(), RuntimeError, ["bool"]),
    ("grad-assign-dtype", lambda: setattr(leaf(2, 3), "grad", ones(2, 3, dtype=symgrad.float32)), RuntimeError,
     ["float32", "float64"]),
    ("grad-assign-shape", lambda: setattr(leaf(2, 3), "grad", ones(3, 2)), RuntimeError, ["(3, 2)", "(2, 3)"]),
    ("inplace-cast", lambda: symgrad.tensor([1, 2]).add_(0.5), RuntimeError, ["float64", "int64"]),
    ("bce-int-target", lambda: F.binary_cross_entropy_with_logits(leaf(3), symgrad.tensor([1, 0, 1])), TypeError,
     ["int64", "float64"]),
    ("to-str", lambda: leaf(3).to(str), TypeError, ["<U", "not supported"]),
    ("to-complex", lambda: leaf(3).to(np.complex128), TypeError, ["complex128", "not supported"]),
    ("mean-int", lambda: symgrad.tensor([1, 2]).mean(), RuntimeError, ["int64"]),
    ("set-default-dtype", lambda: symgrad.set_default_dtype(symgrad.int32), TypeError, ["int32"]),
    ("iterate-0-d", lambda: list(leaf()), TypeError, ["iteration over a 0-d tensor", "item()"]),
    ("diff-order-float", lambda: symgrad.diff((leaf(2) ** 2).sum(), leaf(2), n=1.5), ValueError,
     ["order of the derivative", "1.5"]),
    ("diff-order-negative", lambda: symgrad.diff((leaf(2) ** 2).sum(), leaf(2), n=-1), ValueError,
     ["order of the derivative", "-1"]),
    # a hook that could only fail in the middle of a later backward
    ("hook-not-callable", lambda: leaf(2).register_hook(3), TypeError, ["hook", "callable", "int 3"]),
]


@pytest.mark.parametrize("call, error, fragments", [c[1:] for c in FORWARD_ERRORS], ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_errors_name_the_op_and_the_shapes_or_dtypes(call, error, fragments, figures):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    figures.add("bad-input cases (messages checked)", 1)


def _custom_backward_wrong_shape():
    v = leaf(2, 3)
    Bad.apply(v).sum().backward()


def _hook_wrong_shape():
    v = leaf(2, 3)
    v.register_hook(lambda g: symgrad.ones(3, 2))
    (v * 2).sum().backward()


def _create_graph_custom_backward():
    v = leaf(2, 3)
    Bad.apply(v).sum().backward(create_graph=True)


BACKWARD_ERRORS = [
    ("gradient-shape", lambda: (leaf(2, 3) * 2).backward(gradient=ones(3, 2)), RuntimeError,
     ["gradient", "[3, 2]", "[2, 3]"]),
    ("gradient-dtype", lambda: (leaf(2, 3) * 2).backward(gradient=symgrad.tensor(np.ones((2, 3), np.int64))),
     TypeError, ["gradient", "int64"]),
    ("gradient-count", lambda: symgrad.autograd.backward([leaf(2).sum()], [ones(()), ones(())]), RuntimeError,
     ["2 gradients", "1 outputs"]),
    ("no-grad", lambda: ones(2, 3).sum().backward(), RuntimeError, ["does not require grad"]),
    ("no-grad-under-no_grad", lambda: _under_no_grad(), RuntimeError, ["does not require grad", "no_grad"]),
    ("non-scalar", lambda: (leaf(2, 3) * 2).backward(), RuntimeError, ["scalar", "[2, 3]"]),
    ("custom-backward-shape", _custom_backward_wrong_shape, RuntimeError, ["BadBackward", "[5, 7]", "[2, 3]"]),
    ("custom-backward-shape-create-graph", _create_graph_custom_backward, RuntimeError,
     ["BadBackward", "[5, 7]", "[2, 3]"]),
    ("hook-shape", _hook_wrong_shape, RuntimeError, ["hook", "[3, 2]", "[2, 3]"]),
    ("grad-input-no-grad", lambda: symgrad.autograd.grad(leaf(2).sum(), ones(2)), RuntimeError,
     ["does not require grad", "[2]"]),
    ("grad-unused", lambda: symgrad.autograd.grad(leaf(2).sum(), leaf(3)), RuntimeError,
     ["not used", "[3]", "allow_unused"]),
]


def _under_no_grad():
    x = leaf(2)
    with symgrad.no_grad():
        y = (x * 2).sum()
    y.backward()


@pytest.mark.parametrize("call, error, fragments", [c[1:] for c in BACKWARD_ERRORS],
                         ids=[c[0] for c in BACKWARD_ERRORS])
def test_backward_errors_name_shapes_and_dtypes_on_both_engines(engine, call, error, fragments, figures):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    figures.add("bad-input cases (messages checked)", 1)


# ---------------------------------------------------------------------------- refused at creation
BAD_DATA = [
    ("str", "1.0"),
    ("str-list", ["a", "b"]),
    ("mixed-list", [1.0, "2"]),
    ("bytes", b"ab"),
    ("none", None),
    ("dict", {"a": 1}),
    ("set", {1.0, 2.0}),
    ("object-array", np.array([1.0, 2.0], dtype=object)),
    ("object-array-none", np.array([1.0, None], dtype=object)),
    ("ragged", [[1.0], [1.0, 2.0]]),
    ("ragged-deep", [[1.0, [2.0]], [3.0, 4.0]]),
    ("complex", [1j, 2.0]),
    ("datetime", np.array(["2020-01-01"], dtype="datetime64[D]")),
    ("void", np.zeros(2, dtype="V8")),
    ("function", len),
]

CREATION_PATHS = [
    ("tensor", lambda data: symgrad.tensor(data)),
    ("tensor-requires-grad", lambda data: symgrad.tensor(data, requires_grad=True)),
    ("as_tensor", lambda data: symgrad.as_tensor(data)),
    ("operand", lambda data: symgrad.ones(2) + data),
    ("reflected-operand", lambda data: symgrad.ones(2).__rmul__(data)),
    ("full", lambda data: symgrad.full((2,), data)),
    ("loss-target", lambda data: F.mse_loss(symgrad.ones(2), data)),
]


@pytest.mark.parametrize("path", [p[1] for p in CREATION_PATHS], ids=[p[0] for p in CREATION_PATHS])
@pytest.mark.parametrize("data", [d[1] for d in BAD_DATA], ids=[d[0] for d in BAD_DATA])
def test_unsupported_data_is_refused_at_creation(path, data, figures):
    with pytest.raises((TypeError, ValueError)) as caught:
        path(data)
    message = str(caught.value)
    assert re.search(r"cannot build a tensor|ragged|not supported|numbers or booleans", message), message
    figures.add("bad-input cases (unsupported data refused)", 1)


BAD_DTYPES = [str, object, np.complex128, "U3", "datetime64[s]", "V8", bytes]
DTYPE_PATHS = [
    ("tensor", lambda dtype: symgrad.tensor([1.0, 2.0], dtype=dtype)),
    ("as_tensor", lambda dtype: symgrad.as_tensor([1.0, 2.0], dtype=dtype)),
    ("zeros", lambda dtype: symgrad.zeros(2, dtype=dtype)),
    ("full", lambda dtype: symgrad.full((2,), 1.0, dtype=dtype)),
    ("arange", lambda dtype: symgrad.arange(3, dtype=dtype)),
    ("to", lambda dtype: symgrad.ones(2).to(dtype)),
    ("ones_like", lambda dtype: symgrad.ones_like(symgrad.ones(2), dtype=dtype)),
]


@pytest.mark.parametrize("path", [p[1] for p in DTYPE_PATHS], ids=[p[0] for p in DTYPE_PATHS])
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=[str(d) for d in BAD_DTYPES])
def test_unsupported_dtypes_are_refused_at_creation(path, dtype, figures):
    """``dtype=str`` (object, complex, ...) used to slip past the data check and make a
    string tensor; the dtype itself is refused now, naming it."""
    with pytest.raises(TypeError, match="not supported|not a dtype"):
        path(dtype)
    figures.add("bad-input cases (unsupported dtypes refused)", 1)


def test_setting_unsupported_data_into_a_tensor_changes_nothing():
    t = symgrad.tensor([1.0, 2.0])
    before = (t._version.value, t._data.copy())
    for bad in ("x", None, [[1.0], [1.0, 2.0]], np.array([1.0, 2.0], dtype=object)):
        for assign in (lambda: t.__setitem__(0, bad), lambda: t.copy_(bad), lambda: setattr(t, "data", bad),
                       lambda: t.add_(bad), lambda: t.fill_(bad)):
            with pytest.raises((TypeError, ValueError)):
                assign()
    assert (t._version.value, t._data.tolist()) == (before[0], before[1].tolist())
    assert t.dtype == np.float64


# ---------------------------------------------------------------------------- nothing half-changed
class World:
    """Leaves with gradients from an earlier backward, a retained non-leaf, a warm cache."""

    def __init__(self) -> None:
        self.w = symgrad.tensor(np.linspace(0.5, 1.5, 6).reshape(2, 3), requires_grad=True, name="w")
        self.v = symgrad.tensor(np.linspace(-1.0, 1.0, 6).reshape(2, 3), requires_grad=True, name="v")
        self.u = self.w * 3
        self.u.retain_grad()
        (self.u * self.v).sum().backward(retain_graph=True)  # every .grad exists, the cache has an entry

    def tensors(self) -> list:
        return [self.w, self.v, self.u]

    def snapshot(self) -> dict:
        state = {}
        for i, t in enumerate(self.tensors()):
            g = t._grad
            state[i] = (t._version.value, t._data.copy(), g, None if g is None else (g._version.value, g._data.copy()))
        return state

    def cache(self):
        return compile_cache_info()


def _same(before: dict, after: dict) -> None:
    for i in before:
        version, data, grad, grad_state = before[i]
        version2, data2, grad2, grad_state2 = after[i]
        assert version2 == version, f"tensor {i}: version {version} -> {version2}"
        np.testing.assert_array_equal(data2, data)
        assert grad2 is grad, f"tensor {i}: .grad was replaced"
        if grad is not None:
            assert grad_state2[0] == grad_state[0], f"tensor {i}: .grad version {grad_state[0]} -> {grad_state2[0]}"
            np.testing.assert_array_equal(grad_state2[1], grad_state[1])


# Each case: setup(world) -> the failing call.  In every case with two leaves, the leaf
# that is *not* the cause (w) is reached by backward before the failure is found.
@dataclass
class Failure:
    name: str
    setup: Callable
    error: type
    mid_backward: bool = False  # the failure is found after some gradients were computed


def _wrong_gradient_shape(world):
    out = world.u * world.v
    return lambda: out.backward(gradient=ones(3, 2))


def _int_gradient(world):
    out = world.u * world.v
    return lambda: out.backward(gradient=symgrad.tensor(np.ones((2, 3), np.int64)))


def _no_grad_root(world):
    with symgrad.no_grad():
        out = (world.u * world.v).sum()
    return out.backward


def _custom_function_after_a_leaf(world):
    loss = Bad.apply(world.v).sum() + (world.u * 2).sum()
    return loss.backward


def _hook_after_a_leaf(world):
    world.v.register_hook(lambda g: symgrad.ones(3, 2))
    loss = (world.v * 2).sum() + (world.u * 5).sum()
    return loss.backward


def _hook_raises_after_a_leaf(world):
    def hook(g):
        raise ValueError("a user's hook failed")

    world.v.register_hook(hook)
    loss = (world.v * 2).sum() + (world.u * 5).sum()
    return loss.backward


def _modified_after_recording(world):
    h = world.v.exp()
    loss = h.sum() + (world.u * 2).sum()
    with symgrad.no_grad():
        h.mul_(2)
    return loss.backward


def _freed_graph(world):
    shared = world.v * 2
    shared.sum().backward()  # frees MulBackward0 (the setup's own gradients are part of the snapshot)
    loss = shared.sum() + (world.u * 7).sum()
    return loss.backward


def _anomaly(world):
    root = (world.v - world.v.detach()).sqrt()  # sqrt'(0) = inf
    loss = root.sum() + (world.u * 2).sum()

    def call():
        with detect_anomaly(), np.errstate(divide="ignore"):
            loss.backward()
    return call


def _matmul_forward(world):
    return lambda: world.u @ world.v


def _inplace_forward(world):
    return lambda: world.u.add_(ones(4, 2, 3))


def _leaf_inplace(world):
    return lambda: world.w.mul_(2)


def _string_into_tensor(world):
    return lambda: world.u.copy_("nan")


FAILURES = [
    Failure("gradient-shape", _wrong_gradient_shape, RuntimeError),
    Failure("gradient-dtype", _int_gradient, TypeError),
    Failure("root-without-grad", _no_grad_root, RuntimeError),
    Failure("custom-backward-shape", _custom_function_after_a_leaf, RuntimeError, mid_backward=True),
    Failure("hook-shape", _hook_after_a_leaf, RuntimeError, mid_backward=True),
    Failure("hook-raises", _hook_raises_after_a_leaf, ValueError, mid_backward=True),
    Failure("modified-in-place", _modified_after_recording, RuntimeError, mid_backward=True),
    Failure("freed-graph", _freed_graph, RuntimeError, mid_backward=True),
    Failure("anomaly", _anomaly, AnomalyError, mid_backward=True),
    Failure("matmul-shapes", _matmul_forward, ValueError),
    Failure("inplace-shape", _inplace_forward, RuntimeError),
    Failure("leaf-inplace", _leaf_inplace, RuntimeError),
    Failure("string-into-tensor", _string_into_tensor, TypeError),
]


@pytest.mark.parametrize("failure", FAILURES, ids=[f.name for f in FAILURES])
def test_a_failed_call_leaves_grads_and_versions_as_they_were(engine, failure, figures):
    world = World()
    call = failure.setup(world)
    before = world.snapshot()
    with pytest.raises(failure.error):
        call()
    _same(before, world.snapshot())
    figures.add("failing calls checked for leftover state", 1)


def test_a_failed_backward_can_be_retried_after_the_fix(engine):
    """The failure frees nothing: once the cause is gone, the same graph runs backward."""
    world = World()
    hooks = []
    world.v.register_hook(lambda g: hooks[0](g) if hooks else None)
    hooks.append(lambda g: symgrad.ones(3, 2))
    loss = (world.v * 2).sum() + (world.u * 5).sum()
    grad_w = world.w.grad.numpy().copy()
    with pytest.raises(RuntimeError, match="hook"):
        loss.backward()
    hooks.clear()
    loss.backward()
    np.testing.assert_allclose(world.w.grad.numpy(), grad_w + 15.0)
    np.testing.assert_allclose(world.v.grad.numpy(), world.u.detach().numpy() + 2.0)


@pytest.mark.parametrize("failure", FAILURES, ids=[f.name for f in FAILURES])
def test_a_failed_call_leaves_the_compile_cache_as_it_was(engine, failure):
    """The symbolic engine compiles the segments above the failure point before it reaches
    it; those entries enter the cache only when the whole backward succeeds."""
    world = World()
    call = failure.setup(world)
    before = world.cache()
    with pytest.raises(failure.error):
        call()
    after = world.cache()
    assert (after.hits, after.misses, after.currsize) == (before.hits, before.misses, before.currsize)


class WrongBackward(symgrad.autograd.Function):
    """``2x`` with a SymPy form, and a backward that forgets the 2: the engines disagree."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g

    @staticmethod
    def sympy(sp, x):
        return 2 * x


def test_a_cross_check_mismatch_leaves_grads_and_the_compile_cache_as_they_were():
    """Engine ``"both"`` compiles the symbolic gradients before comparing them; a mismatch
    commits none of it."""
    world = World()
    loss = WrongBackward.apply(world.v).sum() + (world.u * 4).sum()
    before, cache = world.snapshot(), world.cache()
    with symgrad.backward_engine("both"), pytest.raises(symgrad.GradientMismatchError, match="differs"):
        loss.backward()
    _same(before, world.snapshot())
    assert world.cache() == cache


def test_a_cache_build_that_looks_up_its_own_key_raises_instead_of_waiting_forever():
    from symgrad.symbolic.codegen.compile import cached

    key = ("test", "a build that needs itself")
    with pytest.raises(RuntimeError, match="its own key"):
        cached(key, lambda: cached(key, lambda: "inner"))
    assert cached(key, lambda: "built") == "built"  # the failed build released the key


FIXED_ARITY = sorted(name for name, op in OPS.items() if op.arity is not None)


@pytest.mark.parametrize("name", FIXED_ARITY)
def test_an_extra_operand_is_refused_and_left_unchanged(name):
    # found porting autograd's test_systematic: t.sin(u) (and symgrad.exp(t, u), np.round(t, 1))
    # handed u to the NumPy ufunc as its out= array, so u was silently overwritten with sin(t)
    operands = [symgrad.tensor([0.25, 0.5]) for _ in range(OPS[name].arity + 1)]
    extra = operands[-1]._data.copy()
    with pytest.raises(TypeError, match=f"{name} takes {OPS[name].arity} tensor input"):
        apply_op(name, *operands)
    np.testing.assert_array_equal(operands[-1]._data, extra)


@pytest.mark.parametrize("call", [lambda t, u: t.sin(u), lambda t, u: symgrad.exp(t, u), lambda t, u: t.floor(u),
                                  lambda t, u: np.round(t, 1), lambda t, u: t.abs(2.0)],
                         ids=["Tensor.sin(u)", "symgrad.exp(t, u)", "Tensor.floor(u)", "np.round(t, 1)", "abs(2.0)"])
def test_a_one_input_op_called_with_two_refuses(call):
    t, u = symgrad.tensor([0.25, 0.5], requires_grad=True), symgrad.tensor([5.0, 6.0])
    with pytest.raises(TypeError, match="takes 1 tensor input, got 2"):
        call(t, u)
    assert u.tolist() == [5.0, 6.0]
