"""Port of PyTorch's ``test/test_autograd.py``: the eager semantics the PyTorch tutorials
teach -- ``.grad`` accumulating until it is zeroed, ``retain_graph`` and the error of a
second backward, ``backward()`` of a non-scalar, ``.grad`` of a non-leaf (``None`` and a
warning) and ``retain_grad``, tensor hooks, ``no_grad``/``enable_grad``/
``set_grad_enabled`` (nested, as decorators, on generators), ``detach``/``detach_``,
``requires_grad_``, in-place changes and the version counter, custom ``Function`` s and
``torch.autograd.grad`` (``grad_outputs``, ``allow_unused``, ``create_graph``, several
outputs, double and triple backward).  The names in the comments are PyTorch's tests.

Every test runs the same steps through a ``lib`` fixture: symgrad with its symbolic
engine, symgrad with its tape engine, and -- when it is installed -- PyTorch itself, all
checked against closed forms derived by hand (PyTorch's run shows that the expectation is
PyTorch's; it skips cleanly without torch).  Errors are compared by kind (the exception
type), not by message.

Deliberate differences from PyTorch, each tested for symgrad alone and said at its test:

1. A graph is freed as a whole by a backward without ``retain_graph``: a second backward
   through ``b + 1`` raises in symgrad, where PyTorch allows it because ``AddBackward``
   saves nothing (``test_backward_twice_without_saved_values``).  The symbolic engine
   evaluates one closed form of the whole graph, from the values the graph holds.
2. ``t.data`` is ``t.detach()``: it shares the version counter, so an in-place change
   through ``.data`` of a tensor saved for backward raises instead of silently giving a
   gradient computed at the new values as PyTorch does.
3. A custom ``Function``'s ``grad_fn`` is a graph node whose ``name()`` is
   ``<Name>Backward``, not an instance of a generated ``<Name>Backward`` class.

Not applicable: ``once_differentiable`` (a custom ``backward`` written with symgrad ops is
differentiated with ``create_graph=True``, which is tested here; symgrad has no decorator
forbidding it), ``inference_mode``, ``mark_dirty`` and ``set_materialize_grads`` (symgrad
has none of them; unused outputs' gradients are always materialized as zeros, tested
here), devices, CUDA streams, views' base and ``_version`` integers, forward-mode AD
(``torch.autograd.forward_ad``), ``saved_tensors_hooks``, anomaly mode
(``symgrad.detect_anomaly`` is tested with ``check``), multithreading and profiling.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad


class Lib:
    """The module under test (symgrad or torch) with float64 tensor creation."""

    def __init__(self, module):
        self.module = module
        self.name = module.__name__

    def __getattr__(self, name):
        return getattr(self.module, name)

    def t(self, data, requires_grad=False):
        return self.module.tensor(data, dtype=self.module.float64, requires_grad=requires_grad)


@pytest.fixture(params=["symbolic", "tape", "torch"])
def lib(request):
    """symgrad with each backward engine, and PyTorch (skipped when it is not installed)."""
    if request.param == "torch":
        yield Lib(pytest.importorskip("torch", exc_type=ImportError))
        return
    previous = symgrad.get_backward_engine()
    symgrad.set_backward_engine(request.param)
    yield Lib(symgrad)
    symgrad.set_backward_engine(previous)


def values(tensor):
    return np.asarray(tensor.detach().numpy(), dtype=float)


def close(tensor, expected):
    np.testing.assert_allclose(values(tensor), np.asarray(expected, dtype=float), rtol=1e-12, atol=1e-12)


# ============================================================ .grad accumulation
def test_accumulate_grad(lib):
    # test_accumulate_grad: two backward calls through a retained graph add up
    x = lib.t([1.0, -2.0, 0.5], requires_grad=True)
    y = (x * x * x).sum()  # dy/dx = 3 x^2
    y.backward(retain_graph=True)
    close(x.grad, 3 * np.array([1.0, 4.0, 0.25]))
    y.backward()
    close(x.grad, 6 * np.array([1.0, 4.0, 0.25]))


def test_accumulate_grad_across_graphs_keeps_the_grad_object(lib):
    # test_accumulate_grad_tensor_reference: accumulation adds into the same .grad tensor
    x = lib.t([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad is first
    close(first, [5.0, 5.0])


def test_grad_zero_and_reset_to_none(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad.zero_()
    (x * 3).sum().backward()
    close(x.grad, [3.0, 3.0])
    x.grad = None
    (x * 5).sum().backward()
    close(x.grad, [5.0, 5.0])


def test_assigned_grad_is_accumulated_into(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    x.grad = lib.t([10.0, 20.0])
    (x * x).sum().backward()
    close(x.grad, [12.0, 24.0])


def test_assigning_grad_of_another_shape_raises(lib):
    # test_grad_assignment / "assigned grad has data of a different size"
    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        x.grad = lib.t([1.0, 2.0, 3.0])


def test_grad_has_the_shape_of_a_broadcast_input(lib):
    # the .grad shape checks: a broadcast operand's gradient is summed back to its shape
    m = lib.t([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    b = lib.t([0.5, -1.0], requires_grad=True)
    s = lib.t(2.0, requires_grad=True)
    ((m + b) * s).sum().backward()
    assert tuple(m.grad.shape) == (3, 2) and tuple(b.grad.shape) == (2,) and tuple(s.grad.shape) == ()
    close(m.grad, np.full((3, 2), 2.0))
    close(b.grad, [6.0, 6.0])
    close(s.grad, 21.0 + 3 * (0.5 - 1.0))


def test_requires_grad_propagation(lib):
    # test_requires_grad: a result requires grad when any input does; results of data are
    # leaves without a grad_fn, and so are results computed under no_grad
    x = lib.t([1.0, 2.0], requires_grad=True)
    y, z = lib.t([1.0, 2.0]), lib.t([3.0, 4.0])
    assert (x + y).requires_grad and not (x + y).is_leaf
    assert not (y + z).requires_grad and (y + z).is_leaf and (y + z).grad_fn is None
    with lib.no_grad():
        w = x * 2
    assert w.is_leaf and not w.requires_grad


def test_grad_is_a_plain_leaf_tensor(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    (x.clone() * x).sum().backward()
    assert x.grad.is_leaf and not x.grad.requires_grad
    close(x.grad, [2.0, 4.0])


def test_accumulation_under_create_graph_is_recorded(lib):
    x = lib.t(2.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns of the reference cycle .grad makes
        (x ** 3).backward(create_graph=True)
        (x ** 2).backward(create_graph=True)
    assert x.grad.requires_grad
    close(x.grad, 12.0 + 4.0)


# ============================================================ retain_graph
def test_backward_twice_with_saved_values_raises(lib):
    # test_backward_twice_with_saved_values
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()
    close(x.grad, [2.0, 4.0])  # the failed call added nothing


def test_backward_twice_retained_graph(lib):
    # test_backward_twice_retained_graph_with_saved_values
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    close(x.grad, [4.0, 8.0])


def test_backward_twice_without_saved_values_raises_in_symgrad():
    # test_backward_twice_without_saved_values: PyTorch allows a second backward through
    # b + 1 (nothing saved); symgrad frees the whole graph (difference 1 of the docstring).
    b = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = b + 1
    c.backward(symgrad.ones(3))
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        c.backward(symgrad.ones(3))
    close(b.grad, [1.0, 1.0, 1.0])


def test_autograd_grad_twice_needs_retain_graph(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    z = (x ** 2).sum()
    (first,) = lib.autograd.grad(z, x, retain_graph=True)
    (second,) = lib.autograd.grad(z, x)
    close(first, [2.0, 4.0])
    close(second, [2.0, 4.0])
    with pytest.raises(RuntimeError):
        lib.autograd.grad(z, x)
    assert x.grad is None


def test_retained_then_freed(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=False)
    with pytest.raises(RuntimeError):
        y.backward()
    close(x.grad, [4.0, 8.0])


# ============================================================ non-scalar outputs
def test_backward_of_non_scalar_needs_gradient(lib):
    x = lib.t([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    with pytest.raises(RuntimeError):
        y.backward()
    y.backward(lib.t([1.0, 0.1, 0.01]))  # v^T J with J = diag(2 x)
    close(x.grad, [2.0, 0.4, 0.06])


def test_autograd_grad_of_non_scalar_needs_grad_outputs(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        lib.autograd.grad(x * x, x)
    (g,) = lib.autograd.grad(x * x, x, grad_outputs=lib.t([1.0, 10.0]))
    close(g, [2.0, 40.0])


def test_backward_with_gradient_of_wrong_shape_raises(lib):
    # test_grad_badcalls-style "Mismatch in shape"
    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        (x * 2).backward(lib.t([1.0, 2.0, 3.0]))


def test_backward_of_one_element_non_scalar(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    (x * x).sum().reshape(1, 1).backward()
    close(x.grad, [2.0, 4.0])


def test_backward_of_tensor_without_grad_fn_raises(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        (lib.t([1.0, 2.0]) * 2).sum().backward()
    with lib.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError):
        y.backward()


# ============================================================ non-leaf tensors
def test_grad_of_non_leaf_is_none_with_a_warning(lib):
    # test_grad_nonleaf
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    (y * y).sum().backward()
    with pytest.warns(UserWarning, match="not a leaf"):
        assert y.grad is None
    close(x.grad, 8 * np.array([1.0, 2.0]))


def test_retain_grad(lib):
    # test_retain_grad: accumulates over retained backwards; a no-op on leaves
    x = lib.t([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    h.retain_grad()
    out = (h * h).sum()  # d out / d h = 2 h
    out.backward(retain_graph=True)
    close(h.grad, [4.0, 8.0])
    out.backward(retain_graph=True)
    close(h.grad, [8.0, 16.0])
    with lib.no_grad():
        x.grad.zero_()
    x.retain_grad()
    out.backward()
    close(x.grad, [8.0, 16.0])  # d out / d x = 8 x
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaf's .grad never warns
        assert x.grad is not None


def test_retain_grad_then_inplace_keeps_grad_of_current_value():
    # test_retain_grad_inplace (PyTorch gives 1 for both halves)
    a = symgrad.tensor([1.0], requires_grad=True).clone()
    a.retain_grad()
    a.mul_(2)
    a.sum().backward()
    close(a.grad, [1.0])
    b = symgrad.tensor([1.0], requires_grad=True).clone()
    b.retain_grad()
    b.mul_(2)
    b.mul_(2)
    b.sum().backward()
    close(b.grad, [1.0])


def test_autograd_grad_with_respect_to_non_leaf(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = (y ** 2).sum()
    gy, gx = lib.autograd.grad(z, [y, x])
    close(gy, [4.0, 8.0])  # 2 y
    close(gx, [8.0, 16.0])  # 8 x


# ============================================================ hooks
def test_hook_on_non_leaf_changes_the_gradient(lib):
    # test_hooks
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.register_hook(lambda g: g * 2)
    (y * y).sum().backward()  # 2 * (2 y) * 3
    close(x.grad, 36 * np.array([1.0, 2.0]))


def test_hook_on_leaf_replaces_what_is_accumulated(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(values(g)) or g * 0 + 7)
    (x * 3).sum().backward()
    close(x.grad, [7.0, 7.0])
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])


def test_hook_handle_remove(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    handle = x.register_hook(lambda g: g * 10)
    (x * 1).sum().backward()
    close(x.grad, [10.0, 10.0])
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    close(x.grad, [1.0, 1.0])


def test_hooks_run_in_registration_order_and_chain(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 1
    seen = []
    y.register_hook(lambda g: seen.append(("first", values(g).tolist())) or g * 2)
    y.register_hook(lambda g: seen.append(("second", values(g).tolist())))  # None: unchanged
    y.sum().backward()
    assert seen == [("first", [1.0, 1.0]), ("second", [2.0, 2.0])]
    close(x.grad, [2.0, 2.0])


def test_hook_sees_a_gradient_for_an_output_that_backward_returns_none_for(lib):
    # test_hook_none: a custom Function returning None for an input that needs no gradient
    class NoneGradient(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            assert ctx.needs_input_grad == (True, False)
            return x * 1, y * 1

        @staticmethod
        def backward(ctx, grad_x, grad_y):
            return grad_x, None

    called = []
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = lib.t([3.0, 4.0])
    rx, ry = NoneGradient.apply(x, y)
    rx.register_hook(lambda g: called.append(g is not None))
    (rx.sum() + ry.sum()).backward()
    assert called == [True]
    close(x.grad, [1.0, 1.0])


def test_hook_returning_another_shape_raises(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: lib.t([1.0, 2.0, 3.0]))
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_hook_runs_at_every_backward(lib):
    calls = []
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: calls.append(values(g).tolist()))
    z = (y * y).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert calls == [[4.0, 8.0], [4.0, 8.0]]
    close(x.grad, [16.0, 32.0])


def test_hooks_registered_before_and_after_an_in_place_op(lib):
    # test_tensor_hooks_inplace: a hook registered before b.mul_(2) sees the gradient of
    # the old b (10), one registered after sees the new b's (5); the newer runs first
    seen = []
    a = lib.t(1.0, requires_grad=True)
    b = a.clone()
    b.register_hook(lambda g: seen.append(("before", values(g).item())))
    b.mul_(2)
    b.register_hook(lambda g: seen.append(("after", values(g).item())))
    (b * 5).backward()
    assert seen == [("after", 5.0), ("before", 10.0)]
    close(a.grad, 10.0)


def test_hook_removing_itself(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 1
    handles = []

    def once(g):
        handles[0].remove()
        return g * 3

    handles.append(y.register_hook(once))
    z = y.sum()
    z.backward(retain_graph=True)
    z.backward()
    close(x.grad, [3.0 + 1.0, 3.0 + 1.0])


def test_register_hook_needs_requires_grad(lib):
    with pytest.raises(RuntimeError):
        lib.t([1.0]).register_hook(lambda g: g)


def test_retained_grad_sees_the_hooked_gradient(lib):
    # retains_grad and hooks (which PyTorch's test_retain_grad leaves to its C++ tests): the
    # retained gradient is the hooked one, whichever was registered first
    for retain_first in (True, False):
        x = lib.t([1.0, 2.0], requires_grad=True)
        y = x * 1
        if retain_first:
            y.retain_grad()
        y.register_hook(lambda g: g * 2)
        if not retain_first:
            y.retain_grad()
        y.sum().backward()
        close(y.grad, [2.0, 2.0])
        close(x.grad, [2.0, 2.0])


# ============================================================ grad mode
def test_no_grad_enable_grad_set_grad_enabled_nesting(lib):
    # test_no_grad, test_set_grad_enabled, test_enable_grad nesting
    x = lib.t([1.0, 2.0], requires_grad=True)
    with lib.no_grad():
        with lib.enable_grad():
            inner = x * 2
        blocked = x * 2
        with lib.set_grad_enabled(True):
            switched_on = x * 2
        assert not lib.is_grad_enabled()
    with lib.set_grad_enabled(False):
        switched_off = x * 2
    assert lib.is_grad_enabled()
    assert [t.requires_grad for t in (inner, blocked, switched_on, switched_off)] == [True, False, True, False]
    assert blocked.grad_fn is None and inner.grad_fn is not None
    inner.sum().backward()
    close(x.grad, [2.0, 2.0])


def test_set_grad_enabled_as_a_function_call(lib):
    x = lib.t([1.0], requires_grad=True)
    lib.set_grad_enabled(False)
    try:
        y = x * 2
        assert not lib.is_grad_enabled()
    finally:
        lib.set_grad_enabled(True)
    assert not y.requires_grad and (x * 2).requires_grad


def test_grad_mode_decorators(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)

    @lib.no_grad()
    def without():
        return x * 2

    @lib.enable_grad()
    def with_grad():
        return x * 2

    @lib.set_grad_enabled(False)
    def switched_off():
        return x * 2

    with lib.no_grad():
        inside = with_grad()
    assert not without().requires_grad and inside.requires_grad and not switched_off().requires_grad
    assert lib.is_grad_enabled()


def test_grad_mode_decorators_on_methods_and_nested(lib):
    x = lib.t([1.0], requires_grad=True)

    class Model:
        @lib.no_grad()
        def predict(self):
            @lib.enable_grad()
            def inner():
                return (x * 2).requires_grad

            return inner(), (x * 2).requires_grad

    assert Model().predict() == (True, False)
    assert lib.is_grad_enabled()


def test_no_grad_on_a_generator(lib):
    # test_grad_mode_decorator_generator: the mode holds while the generator runs, and the
    # caller's mode between its steps
    x = lib.t([1.0, 2.0], requires_grad=True)
    between = []

    @lib.no_grad()
    def steps():
        for k in range(3):
            yield (x * k).requires_grad, lib.is_grad_enabled()

    for step in steps():
        assert step == (False, False)
        between.append(lib.is_grad_enabled())
    assert between == [True, True, True]


def test_grad_mode_restored_after_an_exception(lib):
    with pytest.raises(ValueError):
        with lib.no_grad():
            raise ValueError
    assert lib.is_grad_enabled()
    with lib.no_grad():
        with pytest.raises(ValueError):
            with lib.enable_grad():
                raise ValueError
        assert not lib.is_grad_enabled()


def test_in_place_update_of_leaf_under_no_grad(lib):
    # test_no_grad_assignment-like: an optimizer step, then backward uses the new values
    x = lib.t([1.0, 2.0], requires_grad=True)
    with lib.no_grad():
        x.mul_(2)
    assert x.is_leaf and x.requires_grad
    (x * x).sum().backward()
    close(x.grad, [4.0, 8.0])


# ============================================================ detach, requires_grad_
def test_detach_stops_the_gradient(lib):
    # test_detach
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2 + (x * 3).detach() * x.detach()
    assert not x.detach().requires_grad and x.detach().is_leaf
    y.sum().backward()
    close(x.grad, [2.0, 2.0])


def test_detach_shares_memory_and_version_counter(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y * y  # saves y
    d = y.detach()
    d.add_(1)
    close(y, [2.0, 3.0])
    with pytest.raises(RuntimeError):
        z.sum().backward()


def test_detach_in_place_makes_a_leaf(lib):
    # test_detach_
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.detach_()
    assert not y.requires_grad and y.is_leaf and y.grad_fn is None
    z = x * y
    z.sum().backward()
    close(x.grad, [2.0, 4.0])


def test_requires_grad_on_non_leaf_raises(lib):
    # test_requires_grad_
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError):
        y.requires_grad_(False)
    y.requires_grad_(True)  # already true: allowed


def test_requires_grad_on_leaf_records_later_ops_only(lib):
    x = lib.t([1.0, 2.0])
    before = x * 2
    assert x.requires_grad_() is x
    after = x * 3
    assert not before.requires_grad and after.requires_grad and x.is_leaf and not after.is_leaf
    after.sum().backward()
    close(x.grad, [3.0, 3.0])


def test_integer_tensor_cannot_require_grad(lib):
    with pytest.raises(RuntimeError):
        lib.tensor([1, 2], requires_grad=True)


def test_detached_then_requires_grad_is_a_new_leaf(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = (x * 2).detach().requires_grad_()
    assert y.is_leaf
    (y * y).sum().backward()
    close(y.grad, [4.0, 8.0])
    assert x.grad is None


def test_requires_grad_setter_on_non_leaf_raises(lib):
    x = lib.t([1.0, 2.0])
    x.requires_grad = True
    y = x * 2
    with pytest.raises(RuntimeError):
        y.requires_grad = False


# ============================================================ in-place and versions
def test_in_place_on_leaf_that_requires_grad_raises(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        x.add_(1)
    close(x, [1.0, 2.0])


def test_in_place_chain_on_non_leaf_is_differentiated(lib):
    # test_inplace: y = ((2 x) + 1) * 3 written in place
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.add_(1)
    y.mul_(3)
    assert y.grad_fn.name() == "MulBackward0"
    (y * y).sum().backward()  # 2 y * 6
    close(x.grad, 12 * (6 * np.array([1.0, 2.0]) + 3))


def test_setitem_on_a_clone(lib):
    x = lib.t([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y[1] = 10.0
    (y * y).sum().backward()
    close(x.grad, [2.0, 0.0, 6.0])


def test_assigning_a_tensor_that_requires_grad_into_data(lib):
    # test_leaf_assignment: x[1:2] = 3 y records the write, x stops being a leaf
    x = lib.t([0.0, 0.0, 0.0])
    y = lib.t([2.0], requires_grad=True)
    x[1:2] = y * 3
    assert x.requires_grad and not x.is_leaf
    (x * x).sum().backward()
    close(y.grad, [36.0])  # d/dy (3 y)^2


def test_in_place_on_data_with_a_tensor_that_requires_grad(lib):
    # test_no_requires_grad_inplace
    x = lib.t([1.0, 2.0])
    y = lib.t([3.0, 4.0], requires_grad=True)
    x.mul_(y)
    assert not x.is_leaf
    x.sum().backward()
    close(y.grad, [1.0, 2.0])


@pytest.mark.parametrize("case", ["input of mul", "output of exp", "output of sigmoid"])
def test_saved_tensor_modified_in_place_raises(lib, case):
    # test_saved_variable_version_counter / "modified by an inplace operation"
    x = lib.t([1.0, 2.0], requires_grad=True)
    if case == "input of mul":
        y = x * 1
        z = y * y
    elif case == "output of exp":
        y = z = x.exp()
    else:
        y = x.sigmoid()
        z = y * 1
    y.add_(1)
    with pytest.raises(RuntimeError):
        z.sum().backward()


def test_in_place_change_of_a_tensor_not_saved_is_fine(lib):
    # exp saves its output, not its input: changing the input afterwards is allowed
    x = lib.t([0.0, 1.0], requires_grad=True)
    y = x * 1
    z = y.exp()
    y.mul_(2)
    z.sum().backward()
    close(x.grad, np.exp([0.0, 1.0]))


def test_data_in_place_is_version_checked_in_symgrad():
    # difference 2 of the docstring: PyTorch's y.data.add_(1) bypasses the check and gives
    # 2 * (y + 1); symgrad's .data shares the version counter and refuses
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y * y
    y.data.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


# ============================================================ custom Function
def _scaled_product(lib):
    class ScaledProduct(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, k):
            ctx.save_for_backward(x, y)
            ctx.k = k
            return x * y * k

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            return (g * y * ctx.k if ctx.needs_input_grad[0] else None,
                    g * x * ctx.k if ctx.needs_input_grad[1] else None, None)

    return ScaledProduct


def test_custom_function_save_for_backward_and_none_for_non_tensors(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = lib.t([3.0, 4.0], requires_grad=True)
    out = _scaled_product(lib).apply(x, y, 2.0)
    assert out.grad_fn.name() == "ScaledProductBackward"
    out.sum().backward()
    close(x.grad, [6.0, 8.0])
    close(y.grad, [2.0, 4.0])


def test_custom_function_needs_input_grad(lib):
    seen = []

    class Record(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, k):
            seen.append(tuple(ctx.needs_input_grad))
            return x * y * k

        @staticmethod
        def backward(ctx, g):
            seen.append(tuple(ctx.needs_input_grad))
            return g * 3, None, None

    x = lib.t([1.0, 2.0], requires_grad=True)
    Record.apply(x, lib.t([1.0, 2.0]), 3).sum().backward()
    assert seen == [(True, False, False), (True, False, False)]
    close(x.grad, [3.0, 3.0])


def test_custom_function_mark_non_differentiable(lib):
    # test_mark_non_differentiable (a float output) and an integer output
    class Sorted(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            doubled = x * 2
            mask = (x > 0).to(x.dtype)
            positions = lib.tensor([0, 1])
            ctx.mark_non_differentiable(mask, positions)
            return doubled, mask, positions

        @staticmethod
        def backward(ctx, g, g_mask, g_positions):
            return g * 2

    x = lib.t([1.0, -2.0], requires_grad=True)
    doubled, mask, positions = Sorted.apply(x)
    assert doubled.requires_grad and not mask.requires_grad and not positions.requires_grad
    assert mask.grad_fn is None
    (doubled.sum() + mask.sum()).backward()
    close(x.grad, [2.0, 2.0])


def test_custom_function_returning_its_input(lib):
    # test_function_returns_input: the output is a new tensor, the gradient goes through backward
    class Identity(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = lib.t([1.0, 2.0], requires_grad=True)
    y = Identity.apply(x)
    assert y is not x and y.grad_fn is not None and x.grad_fn is None
    y.sum().backward()
    close(x.grad, [2.0, 2.0])


def test_custom_function_unused_output_gets_zero_gradient(lib):
    # materialized gradients: backward receives zeros for an output the loss did not use
    received = []

    class TwoOutputs(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2, x * x

        @staticmethod
        def backward(ctx, g_double, g_square):
            (x,) = ctx.saved_tensors
            received.append(values(g_double))
            return g_double * 2 + g_square * 2 * x

    x = lib.t([1.0, 2.0], requires_grad=True)
    _, square = TwoOutputs.apply(x)
    square.sum().backward()
    np.testing.assert_array_equal(received[0], [0.0, 0.0])
    close(x.grad, [2.0, 4.0])


def test_custom_function_with_two_differentiable_outputs(lib):
    class Twice(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 2

        @staticmethod
        def backward(ctx, g_first, g_second):
            return g_first * 2 + g_second * 2

    x = lib.t([1.0, 2.0], requires_grad=True)
    first, second = Twice.apply(x)
    (first.sum() + 3 * second.sum()).backward()
    close(x.grad, [8.0, 8.0])


def test_custom_function_none_gradient_for_an_input_that_requires_grad(lib):
    # test_function_returns_undefined_tensor: None means no gradient, .grad stays None
    class SecondOnly(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return None, g

    x = lib.t([1.0, 2.0], requires_grad=True)
    y = lib.t([3.0, 4.0], requires_grad=True)
    SecondOnly.apply(x, y).sum().backward()
    assert x.grad is None
    close(y.grad, [1.0, 1.0])


def test_custom_function_saves_none(lib):
    # test_save_none_for_backward
    class Square(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(None, x, None)
            return x * x

        @staticmethod
        def backward(ctx, g):
            first, x, last = ctx.saved_tensors
            assert first is None and last is None
            return 2 * x * g

    x = lib.t([1.0, 2.0], requires_grad=True)
    Square.apply(x).sum().backward()
    close(x.grad, [2.0, 4.0])


def test_custom_function_extra_gradients(lib):
    # test_too_many_grads: trailing None gradients are accepted, a trailing tensor is not
    class Double(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, None, None

    class TooMany(Double):
        @staticmethod
        def backward(ctx, g):
            return g * 2, g

    x = lib.t([1.0, 2.0], requires_grad=True)
    Double.apply(x).sum().backward()
    close(x.grad, [2.0, 2.0])
    with pytest.raises(RuntimeError):
        TooMany.apply(x).sum().backward()


def test_custom_function_wrong_number_of_gradients_raises(lib):
    class Product(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        Product.apply(x, x).sum().backward()


def test_custom_function_gradient_of_wrong_shape_raises(lib):
    # test_invalid_gradients
    class Double(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return lib.t([1.0, 2.0, 3.0])

    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        Double.apply(x).sum().backward()


def test_custom_function_saved_tensor_modified_in_place_raises(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 1
    out = _scaled_product(lib).apply(y, y, 1.0)
    y.add_(1)
    with pytest.raises(RuntimeError):
        out.sum().backward()


def test_custom_function_saved_tensors_freed_after_backward(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    out = _scaled_product(lib).apply(x, x, 1.0).sum()
    out.backward()
    with pytest.raises(RuntimeError):
        out.backward()
    close(x.grad, [2.0, 4.0])


def test_custom_function_forward_and_backward_run_without_grad(lib):
    modes = []

    class Double(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            modes.append(lib.is_grad_enabled())
            return x * 2

        @staticmethod
        def backward(ctx, g):
            modes.append(lib.is_grad_enabled())
            return g * 2

    x = lib.t([1.0, 2.0], requires_grad=True)
    Double.apply(x).sum().backward()
    assert modes == [False, False]
    plain = Double.apply(lib.t([1.0]))
    with lib.no_grad():
        blocked = Double.apply(x)
    assert plain.grad_fn is None and not plain.requires_grad and not blocked.requires_grad


def test_custom_function_double_backward(lib):
    # a backward written with differentiable ops is differentiated under create_graph
    class Square(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = lib.t([1.0, 3.0], requires_grad=True)
    (g,) = lib.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
    close(g, [2.0, 6.0])
    g.sum().backward()
    close(x.grad, [2.0, 2.0])


# ============================================================ autograd.grad
def test_autograd_grad_allow_unused(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    unused = lib.t([1.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        lib.autograd.grad((x * 2).sum(), [x, unused])
    gx, gu = lib.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    close(gx, [2.0, 2.0])
    assert gu is None


def test_autograd_grad_bad_calls(lib):
    # test_grad_badcalls / test_grad_empty_inputs: an output without a graph, no inputs,
    # grad_outputs of another shape
    x = lib.t([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        lib.autograd.grad((lib.t([1.0, 2.0]) * 2).sum(), [x])
    with pytest.raises(RuntimeError):
        lib.autograd.grad((x * 2).sum(), [])
    with pytest.raises(RuntimeError):
        lib.autograd.grad(x * 2, x, grad_outputs=lib.t([1.0, 2.0, 3.0]))


def test_autograd_grad_of_several_inputs(lib):
    x = lib.t(2.0, requires_grad=True)
    y = lib.t(3.0, requires_grad=True)
    gx, gy = lib.autograd.grad(x * y + x ** 2, (x, y))
    close(gx, 3.0 + 4.0)
    close(gy, 2.0)


def test_autograd_grad_input_must_require_grad(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    data = lib.t([3.0, 4.0])
    with pytest.raises(RuntimeError):
        lib.autograd.grad((x * data).sum(), [data])


def test_autograd_grad_of_several_outputs_with_grad_outputs(lib):
    # torch.autograd.grad on multiple outputs: sum_k grad_outputs[k] . d outputs[k]
    x = lib.t([1.0, 2.0], requires_grad=True)
    a = (x * x).sum()
    b = (x * 3).sum()
    (g,) = lib.autograd.grad([a, b], [x], grad_outputs=[lib.t(1.0), lib.t(2.0)])
    close(g, 2 * np.array([1.0, 2.0]) + 6)
    assert x.grad is None


def test_autograd_grad_without_create_graph_gives_constants(lib):
    x = lib.t([1.0, 2.0], requires_grad=True)
    (g,) = lib.autograd.grad((x ** 3).sum(), x)
    assert not g.requires_grad and g.grad_fn is None


def test_double_backward_through_autograd_grad(lib):
    # test_grad (create_graph=True) and Hessian-vector products
    x = lib.t([1.0, 2.0], requires_grad=True)
    (g,) = lib.autograd.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    close(g, [3.0, 12.0])
    v = lib.t([1.0, -1.0])
    (hv,) = lib.autograd.grad((g * v).sum(), x, retain_graph=True)
    close(hv, 6 * np.array([1.0, 2.0]) * [1.0, -1.0])
    g.sum().backward()
    close(x.grad, [6.0, 12.0])


def test_triple_backward(lib):
    x = lib.t(2.0, requires_grad=True)
    (g1,) = lib.autograd.grad(x ** 4, x, create_graph=True)
    (g2,) = lib.autograd.grad(g1, x, create_graph=True)
    (g3,) = lib.autograd.grad(g2, x)
    close(g1, 4 * 8.0)
    close(g2, 12 * 4.0)
    close(g3, 24 * 2.0)


def test_backward_create_graph_makes_grad_differentiable(lib):
    x = lib.t(2.0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns of the reference cycle .grad makes
        (x ** 3).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    close(g, 12.0)
    x.grad = None
    g.backward()
    close(x.grad, 12.0)  # d/dx 3 x^2 = 6 x


def test_backward_with_inputs_accumulates_only_into_them(lib):
    # test_backward_with_inputs
    x = lib.t([1.0, 2.0], requires_grad=True)
    w = lib.t([3.0, 4.0], requires_grad=True)
    (x * w).sum().backward(inputs=[x])
    close(x.grad, [3.0, 4.0])
    assert w.grad is None


def test_backward_with_non_leaf_inputs(lib):
    # test_backward_with_nonleaf_inputs: a non-leaf in inputs= retains its gradient (a
    # regression test: symgrad left its .grad None), the leaves not listed get nothing
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = (y * y).sum()
    z.backward(inputs=[y], retain_graph=True)
    assert y.retains_grad
    close(y.grad, [4.0, 8.0])
    assert x.grad is None
    z.backward(inputs=[y, x])
    close(y.grad, [8.0, 16.0])
    close(x.grad, [8.0, 16.0])


def test_assigned_grad_of_non_leaf_does_not_warn():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.grad = symgrad.tensor([4.0, 8.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        close(y.grad, [4.0, 8.0])


def test_autograd_backward_of_several_roots(lib):
    # test_multi_backward
    x = lib.t([1.0, 2.0], requires_grad=True)
    lib.autograd.backward([x * x, (x * 3).sum()], [lib.t([1.0, 1.0]), lib.t(2.0)])
    close(x.grad, 2 * np.array([1.0, 2.0]) + 6)


def test_grad_fn_next_functions_reach_the_leaf(lib):
    # test_grad_fn / AccumulateGrad.variable
    x = lib.t([1.0, 2.0], requires_grad=True)
    y = (x * 2 + 1).sum()
    assert y.grad_fn.name() == "SumBackward0"
    (add, _), = y.grad_fn.next_functions
    assert add.name() == "AddBackward0"
    mul = add.next_functions[0][0]
    accumulate = mul.next_functions[0][0]
    assert accumulate.variable is x and x.grad_fn is None


def test_random_gradients_against_the_closed_form(lib, rng):
    # test_accumulate_grad with random data: two graphs, one leaf, grads add up
    data = rng.standard_normal(5)
    weights = rng.standard_normal(5)
    x = lib.t(data, requires_grad=True)
    (x.tanh() * lib.t(weights)).sum().backward()
    (x * x).sum().backward()
    close(x.grad, weights * (1 - np.tanh(data) ** 2) + 2 * data)
