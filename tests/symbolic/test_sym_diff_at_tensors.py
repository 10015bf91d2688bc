"""``symgrad.diff`` and ``symgrad.gradient`` with respect to any tensor a graph uses -- a
leaf, data, or an intermediate -- give what ``symgrad.autograd.grad`` computes on the
tape engine: an intermediate is a symbol of its own and what it was computed from is held
fixed.  Each closed form is evaluated at the tensors' values (its symbols are named after
the tensors) and compared with the tape."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import compile_exprs, latex, pretty, text
from symgrad.symbolic.core.symbols import free_symbols


def _leaf(values, name: str, grad: bool = True):
    return symgrad.tensor(values, requires_grad=grad, name=name)


def _named(tensor, name: str):
    tensor.name = name
    return tensor


W = [0.5, -1.5, 0.25]


# Each case: data_grad -> (loss, tensors to differentiate with respect to, named tensors).
# data_grad=True makes the data tensors leaves that require grad: the tape's reference
# for a derivative with respect to data (autograd.grad refuses a tensor without grad).
def used_twice(data_grad):
    w = _leaf(W, "w")
    h = _named(w * 2, "h")
    return (h * h).sum(), [h], [w, h]


def leaf_and_intermediate(data_grad):
    w = _leaf(W, "w")
    h = _named(w * 2, "h")
    return (h * h).sum() + (w * h).sum(), [w, h], [w, h]


def intermediate_above_another(data_grad):
    w = _leaf(W, "w")
    h1 = _named(w.sin(), "h1")
    h2 = _named(h1 * h1 + w, "h2")
    return (h2 * h1).sum() + h2.exp().sum(), [h1, h2, w], [w, h1, h2]


def slice_of_a_leaf(data_grad):
    w = _leaf(W, "w")
    h = _named(w[1:], "h")
    return (h * h).sum() + w.exp().sum(), [h, w], [w, h]


def transpose_of_a_leaf(data_grad):
    m = _leaf([[0.1, 0.2, -0.3], [0.4, -0.5, 0.6]], "m")
    h = _named(m.t(), "h")
    return (h @ m).tanh().sum(), [h, m], [m, h]


def equal_twin_computed_apart(data_grad):
    """``h`` and ``h2`` are both ``w*2``, one SymPy node: the derivative must still be h's."""
    w = _leaf(W, "w")
    h, h2 = _named(w * 2, "h"), _named(w * 2, "h2")
    return (h * h2 * h).sum(), [h, h2], [w, h, h2]


def data_used_directly(data_grad):
    w, v = _leaf(W, "w"), _leaf([2.0, 3.0, -1.0], "v", grad=data_grad)
    return ((1 - w) * v).sum(), [v, w], [w, v]


def data_made_by_an_unrecorded_op(data_grad):
    w, v = _leaf(W, "w"), _leaf([2.0, 3.0, -1.0], "v", grad=False)
    c = _leaf((1 - v).numpy(), "c", grad=True) if data_grad else _named(1 - v, "c")
    return (c * w).sum(), [c], [w, c]


def the_output_itself(data_grad):
    w = _leaf(W, "w")
    out = _named((w * w).sum(), "out")
    return out, [out], [w, out]


def logits_of_a_classifier(data_grad):
    x = _leaf([[1.0, 2.0], [0.5, -1.0], [0.0, 1.0]], "x", grad=False)
    w = _leaf([[0.3, -0.2, 0.1], [0.5, 0.4, -0.6]], "w")
    y = _leaf([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], "y", grad=False)
    z = _named(x @ w + 0.5, "z")
    return -(F.log_softmax(z, dim=1) * y).sum(dim=1).mean(), [z, w], [x, w, y, z]


CASES = [used_twice, leaf_and_intermediate, intermediate_above_another, slice_of_a_leaf, transpose_of_a_leaf,
         equal_twin_computed_apart, data_used_directly, data_made_by_an_unrecorded_op, the_output_itself,
         logits_of_a_classifier]


def _value(expr, named: list) -> np.ndarray:
    """The closed form evaluated at the named tensors' values."""
    values = {t.name: t.detach().numpy() for t in named}
    symbols = sorted(free_symbols(expr), key=str)
    assert {s.name for s in symbols} <= set(values), f"{expr} has symbols the case did not name"
    f = compile_exprs(symbols, [expr], cache=False)
    return np.asarray(f(*[values[s.name] for s in symbols])[0])


def _tape_grads(case) -> list:
    loss, xs, _ = case(True)
    with symgrad.backward_engine("tape"):
        return [g.detach().numpy() for g in symgrad.autograd.grad(loss, xs)]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_diff_and_gradient_at_any_tensor_are_what_autograd_grad_computes(case):
    """``diff`` at an intermediate printed ``broadcast_to(0, ...)`` (the symbol was looked
    up among the leaves, and a fresh one of the same name had gradient 0)."""
    expected = _tape_grads(case)
    loss, xs, named = case(False)
    together = symgrad.gradient(loss, xs)
    alone = [symgrad.diff(loss, x) for x in xs]
    for x, g, d, e in zip(xs, together, alone, expected):
        np.testing.assert_allclose(_value(g, named), e, rtol=1e-12, atol=1e-15, err_msg=f"gradient, {x.name}")
        np.testing.assert_allclose(_value(d, named), e, rtol=1e-12, atol=1e-15, err_msg=f"diff, {x.name}")


def test_an_intermediate_is_its_own_symbol_in_every_printer():
    w = _leaf(W, "w")
    h = _named(w * 2, "h")
    loss = (h * h).sum() + (w * h).sum()
    grad_w, grad_h = symgrad.gradient(loss, [w, h])
    assert text(grad_h) == "2*h + w" and pretty(grad_h) == "2⋅h + w" and latex(grad_h) == "2 h + w"
    assert "h" not in text(grad_w)  # the total gradient of the leaf is over the leaf
    unnamed = w * 2
    assert text(symgrad.diff((unnamed * unnamed).sum(), unnamed)) == "2*mul_out"


def test_engine_names_yield_to_the_names_users_gave():
    """An unnamed tensor met first took ``t0`` (or ``mul_out``), and the user's tensor of that
    name was printed as ``t0_1``."""
    a, b = symgrad.tensor([1.0, 2.0], requires_grad=True), _leaf([3.0, 4.0], "t0")
    assert (text(symgrad.diff((a * b).sum(), a)), text(symgrad.diff((a * b).sum(), b))) == (
        "t0", "t0_1\nwhere t0_1 = array((1.0, 2.0))")  # an unnamed leaf is defined by its value
    w = _leaf([1.0, 2.0], "w")
    user = _leaf([5.0, 6.0], "mul_out")
    h = w * 2
    assert text(symgrad.diff((h * user).sum(), h)) == "mul_out"  # the user's tensor
    assert text(symgrad.diff((h * h + user).sum(), h)) == "2*mul_out_1"  # the engine's cut


def _scalar_chain():
    s = _leaf(0.7, "s")
    q = _named(s * s, "q")
    return q ** 3 + q * s.sin(), s, q


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("wrt", ["leaf", "intermediate"])
def test_higher_derivatives_at_an_intermediate(order, wrt):
    loss, s, q = _scalar_chain()
    x = q if wrt == "intermediate" else s
    closed = symgrad.diff(loss, x, order)
    with symgrad.backward_engine("tape"):
        g = loss
        for _ in range(order):
            (g,) = symgrad.autograd.grad(g, x, create_graph=True)
    np.testing.assert_allclose(_value(closed, [s, q]), g.detach().numpy(), rtol=1e-12)


def _unused_leaf():
    w, u = _leaf(W, "w"), _leaf(W, "u")
    return (w * w).sum(), u, [u]


def _twin_of_a_used_leaf():
    """A different tensor with the used leaf's name and shape: it was given the used leaf's
    symbol, so its 'derivative' was the other tensor's gradient."""
    w, twin = _leaf(W, "w"), _leaf(W, "w")
    return (w * w).sum(), twin, [twin]


def _intermediate_not_used():
    w = _leaf(W, "w")
    h = w * 5
    return (w * w).sum(), h, [h]


def _intermediate_changed_in_place():
    w = _leaf(W, "w")
    h = w * 2
    loss = (h * h).sum()
    h.mul_(3)  # h is now the output of another node, which the loss does not use
    return loss, h, [h]


def _detached():
    w = _leaf(W, "w")
    h = w * 2
    return (h.detach() * w).sum(), h, [h]


def _data_through_an_unrecorded_op():
    w, v = _leaf(W, "w"), _leaf([2.0, 3.0, -1.0], "v", grad=False)
    return ((1 - v) * w).sum(), v, []


UNUSED = [_unused_leaf, _twin_of_a_used_leaf, _intermediate_not_used, _intermediate_changed_in_place, _detached,
          _data_through_an_unrecorded_op]


@pytest.mark.parametrize("case", UNUSED, ids=[c.__name__.strip("_") for c in UNUSED])
def test_a_tensor_the_graph_does_not_use_raises_as_autograd_grad_does(case):
    """``diff`` gave 0 (or, for a same-named twin, the other tensor's gradient) where
    ``autograd.grad`` raises; with ``allow_unused=True`` both give no gradient (0)."""
    loss, x, tape_inputs = case()
    hint = ["requires_grad_"] if not x.requires_grad else []
    for call in (lambda **kw: symgrad.diff(loss, x, **kw), lambda **kw: symgrad.gradient(loss, [x], **kw)[0]):
        with pytest.raises(RuntimeError, match="was not used") as info:
            call()
        for word in ["allow_unused", str(list(x.shape))] + hint:
            assert word in str(info.value)
        zero = call(allow_unused=True)
        np.testing.assert_array_equal(_value(zero, []), np.zeros(x.shape))
    if tape_inputs:  # the tape agrees (a tensor without grad it refuses outright)
        with symgrad.backward_engine("tape"), pytest.raises(RuntimeError, match="not used"):
            symgrad.autograd.grad(loss, tape_inputs, retain_graph=True)
        with symgrad.backward_engine("tape"):
            assert symgrad.autograd.grad(loss, tape_inputs, allow_unused=True) == (None,)


@pytest.mark.parametrize("product", ["vjp_expr", "jvp_expr"])
def test_vector_products_at_an_intermediate_are_the_tapes(product):
    from symgrad.symbolic import jvp_expr, vjp_expr
    from symgrad.symbolic.core.symbols import ArrayVar

    w = _leaf(W, "w")
    h = _named(w.exp(), "h")
    out = (h * h).sin() + h * w  # a vector: the products need an upstream or tangent vector
    g, v = np.array([1.0, -2.0, 0.5]), np.array([0.25, 3.0, -1.0])
    with symgrad.backward_engine("tape"):
        (tape_vjp,) = symgrad.autograd.grad(out, h, grad_outputs=[symgrad.tensor(g)], retain_graph=True)
        rows = [symgrad.autograd.grad(out, h, grad_outputs=[symgrad.tensor(np.eye(3)[k])], retain_graph=True)[0]
                for k in range(3)]
    jacobian = np.stack([r.numpy() for r in rows])
    named = [w, h, _leaf(g, "g", grad=False), _leaf(v, "v", grad=False)]
    if product == "vjp_expr":
        closed, expected = vjp_expr(out, h, ArrayVar("g", (3,))), tape_vjp.numpy()
    else:
        closed, expected = jvp_expr(out, h, ArrayVar("v", (3,))), jacobian @ v
    np.testing.assert_allclose(_value(closed, named), expected, rtol=1e-12)


class _SinCos(symgrad.autograd.Function):
    """Two outputs of one node: a cut must find the output it was asked for."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (x,) = ctx.saved_tensors
        return g_sin * x.cos() - g_cos * x.sin()

    @staticmethod
    def sympy(sp, x):
        return sp.sin(x), sp.cos(x)


@pytest.mark.parametrize("which", [0, 1, (0, 1)])
def test_an_output_of_a_node_with_two_is_cut_where_it_is(which):
    """Compared with the exact partials: ``autograd.grad`` at such an output is wrong on
    both engines today (the tape gives the sum over the node's outputs, the symbolic
    engine the first output's gradient for both)."""
    w = _leaf(W, "w")
    outs = [_named(o, n) for o, n in zip(_SinCos.apply(w * 1), ["s", "c"])]
    loss = (outs[0] * outs[1] * outs[1]).sum() + (outs[0] * w).sum()
    s, c = np.sin(W), np.cos(W)
    exact = [c * c + np.array(W), 2 * s * c]  # d/ds and d/dc of sum(s*c*c + s*w)
    positions = (which,) if isinstance(which, int) else which
    xs = [outs[k] for k in positions]
    for k, g in zip(positions, symgrad.gradient(loss, xs)):
        np.testing.assert_allclose(_value(g, [w] + outs), exact[k], rtol=1e-12, err_msg=outs[k].name)
