"""Every way symgrad evaluates a program gives the eager forward's value, also where one
rounding decides a jump: ``1.0 % 0.1`` is 0.0999... (the exact remainder) although
``1.0/0.1`` rounds to 10.0, and ``x/x`` is exactly 1 although ``x * (1/x)`` can be
``1 - 2**-53``, whose floor is 0.

Found by the random programs: ``value_and_grad(lambda q: (c % c + 0*q.sum()).sum())`` with a
captured ``c`` that requires grad returned 1.9 (eager: 0), because evaluating the closed form
with tensor ops multiplied by a reciprocal where the compiled code divides; and the
remainder's closed form ``a - b*floor(a/b)`` was 0 where NumPy's remainder is 0.0999....
Then: the closed forms are built as recorded (``(a*3)/3`` stays a quotient of a product),
but the compiled code did not compute them so: ``((a*3)/3)/a`` printed as
``0.3333333333333333*a*3/a`` (a nested product lost its parentheses, a division by 3 became
a product with 1/3), ``a*(1/a)`` as ``a/a``, ``a + (b + c)`` as ``a + b + c``, ``3*a + 3*b``
as ``3*(a + b)``, and a shared ``1/a`` was multiplied in where the tape divides.
Each row runs through: the eager tape, the symbolic backward engine, ``create_graph=True``
(the closed form evaluated with tensor ops), a compiled transform, and a transform whose
function captures a tensor that requires grad (tensor ops again).
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

A = np.array([1.0, 0.3, 7.0, -1.0, 1.9, -1.5, 2.5])
B = np.array([0.1, 0.1, 0.7, 0.1, 1.9, -1.5, -0.5])


def _thirds(x):
    """``(x*3)/3``: ``x`` up to one rounding (not ``x`` at 1.9), which compiled code printed
    as ``0.3333333333333333*3*x``, that is ``x``."""
    return (x * 3) / 3


PROGRAMS = {  # name -> f(a, b) on tensors: values with a jump where a rounding decides
    "remainder": lambda a, b: a % b,
    "fmod": lambda a, b: symgrad.fmod(a, b),
    "floor_divide": lambda a, b: (a // b) * a,
    "floor of a quotient": lambda a, b: symgrad.floor(a / b) * a,
    "trunc of a quotient": lambda a, b: symgrad.trunc(a / b) * b,
    "floor of x/x": lambda a, b: symgrad.floor(b / b) * a,
    "remainder of itself": lambda a, b: b % b + a,
    "fmod of itself": lambda a, b: symgrad.fmod(b, b) * a + a,
    # forms built as recorded and printed as recorded: (a*3)/3 is not a, a*(1/a) is not a/a,
    # (a*0.1)*10 is not (0.1*10)*a, a + (b + c) is not (a + b) + c, 3*a + 3*b is not 3*(a + b)
    "a thirds ratio": lambda a, b: symgrad.floor(_thirds(a) / a) * a + b,
    "a product with a reciprocal": lambda a, b: symgrad.floor(a * symgrad.reciprocal(a)) * b,
    "a product with a power -1": lambda a, b: symgrad.floor(a * a ** -1) * b,
    "a tenth times ten": lambda a, b: symgrad.ceil((10 * (a * 0.1)) / a) * b,
    "a sum of a sum": lambda a, b: symgrad.floor(a * 10 + (b * 1e16 - b * 1e16 + 0.5)) * b,
    "thrice a plus thrice b": lambda a, b: symgrad.floor((3 * a + 3 * b) / (a + b)) * a,
    "a tie of maximum": lambda a, b: symgrad.maximum(_thirds(a), b) * b,
    "a tie of minimum": lambda a, b: symgrad.minimum(b, _thirds(a)) * a,
    "a comparison": lambda a, b: (_thirds(a) == a) * b + (_thirds(a) < a) * a,
    "a selection": lambda a, b: symgrad.where(_thirds(a) >= a, a, b),
    "round at a half": lambda a, b: symgrad.round(_thirds(a) / a * 1.5) * b + a,
    "remainder of a ratio": lambda a, b: (_thirds(a) / a) % 1 * b,
    "ceil of a ratio": lambda a, b: symgrad.ceil(a / _thirds(a)) * b,
    "sign of a difference": lambda a, b: symgrad.sign(_thirds(a) - a) * b + a,
}


def _eager(f, engine: str, create_graph: bool = False):
    a = symgrad.tensor(A, requires_grad=True)
    b = symgrad.tensor(B, requires_grad=True)
    with symgrad.backward_engine(engine):
        y = f(a, b).sum()
        if create_graph:
            ga, gb = symgrad.autograd.grad(y, [a, b], create_graph=True)
            return y.item(), ga.detach().numpy(), gb.detach().numpy()
        y.backward()
    return y.item(), a.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_path_agrees_with_the_eager_tape(name):
    f = PROGRAMS[name]
    value, grad_a, grad_b = _eager(f, "tape")
    np.testing.assert_array_equal(value, f(symgrad.tensor(A), symgrad.tensor(B)).sum().item())
    paths = {
        "symbolic backward": _eager(f, "symbolic"),
        "create_graph (tensor ops)": _eager(f, "symbolic", create_graph=True),
    }
    v, (ga, gb) = symgrad.value_and_grad(lambda a, b: f(a, b).sum(), argnums=(0, 1))(A, B)
    paths["compiled transform"] = (float(v), ga, gb)
    captured = symgrad.tensor(B, requires_grad=True)  # the function reads it: tensor ops, recorded
    v, ga = symgrad.value_and_grad(lambda a: f(a, captured).sum())(A)
    paths["transform over a captured tensor"] = (v.item(), ga.detach().numpy(), grad_b)
    for path, (v, ga, gb) in paths.items():
        np.testing.assert_allclose(v, value, rtol=1e-12, atol=1e-12, err_msg=f"{name}: value by {path}")
        np.testing.assert_allclose(ga, grad_a, rtol=1e-12, atol=1e-12, err_msg=f"{name}: d/da by {path}")
        np.testing.assert_allclose(gb, grad_b, rtol=1e-12, atol=1e-12, err_msg=f"{name}: d/db by {path}")


def test_the_remainders_gradient_is_pytorchs_at_a_rounded_quotient():
    """d(a % b)/db = -floor_divide(a, b): 9 for 1.0 % 0.1, not floor(1.0/0.1) = 10."""
    torch = pytest.importorskip("torch")
    for ours, theirs in [(lambda a, b: a % b, lambda a, b: a % b),
                         (symgrad.fmod, torch.fmod)]:
        a, b = symgrad.tensor(A, requires_grad=True), symgrad.tensor(B, requires_grad=True)
        ta, tb = torch.tensor(A, requires_grad=True), torch.tensor(B, requires_grad=True)
        ours(a, b).sum().backward()
        theirs(ta, tb).sum().backward()
        np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())
        np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
