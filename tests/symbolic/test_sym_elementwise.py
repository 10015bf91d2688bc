"""Every elementwise op through the symbolic engine: recorded on the tape, translated to
SymPy, differentiated by SymPy's own ``diff`` of the op's form, compiled, run.

For each case (op, input shapes with broadcasting, attrs), inputs come from the op's
sampling domains with a seeded generator; ``backward()`` on the symbolic engine must
match central differences of the op's NumPy forward (the reference), and the tape
engine (an extra check).  Stable forms are checked at extreme values too.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad.ops import OPS
from symgrad.symbolic import tensor_expr
from symgrad.tape import apply_op

ATTRS = {
    "pow_scalar": [dict(exponent=3), dict(exponent=0.5), dict(exponent=-2)],
    "clamp": [dict(min=-0.5, max=0.5), dict(min=0.3), dict(max=-0.2)],
    "softplus": [dict(beta=1.0, threshold=20.0), dict(beta=2.0, threshold=1.0)],
    "cast": [dict(dtype="float64")],
}

SHAPES = {1: [[(3, 4)]], 2: [[(3, 4), (3, 4)], [(3, 4), (4,)], [(1, 4), (3, 1)]], 3: [[(3, 4), (3, 4), (4,)]]}
SAME_SHAPE = {"binary_cross_entropy_with_logits"}


def _cases():
    for name, op in OPS.items():
        if op.kind != "elementwise":
            continue
        for attrs in ATTRS.get(name, [{}]):
            shapes_list = SHAPES[op.arity]
            if name in SAME_SHAPE:
                shapes_list = shapes_list[:1]
            for shapes in shapes_list:
                yield name, shapes, attrs


CASES = list(_cases())


def _ident(case):
    name, shapes, attrs = case
    return f"{name}-{'_'.join('x'.join(map(str, s)) for s in shapes)}-{zlib.crc32(repr(attrs).encode()) % 9973}"


def _draw(name, shapes, rng):
    op = OPS[name]
    domains = op.domains if len(op.domains) == len(shapes) else op.domains * len(shapes)
    arrays = [d.sample(rng, s) for d, s in zip(domains, shapes)]
    differentiable = op.differentiable or (True,) * len(shapes)
    return arrays, differentiable


def _grads(engine, name, arrays, differentiable, attrs, g):
    tensors = [symgrad.tensor(a, requires_grad=d, name=f"x{i}") for i, (a, d) in enumerate(zip(arrays, differentiable))]
    with symgrad.backward_engine(engine):
        y = apply_op(name, *tensors, **attrs)
        (y * symgrad.tensor(g, name="g")).sum().backward()
    return [t.grad.numpy() if d else None for t, d in zip(tensors, differentiable)]


def _central(name, arrays, attrs, g, i, eps=1e-6):
    forward = OPS[name].forward
    x = arrays[i].astype(np.float64)
    out = np.zeros_like(x)
    for k in np.ndindex(*x.shape):
        plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
        plus[i][k] += eps
        minus[i][k] -= eps
        out[k] = (np.sum(g * forward(*plus, **attrs)) - np.sum(g * forward(*minus, **attrs))) / (2 * eps)
    return out


@pytest.mark.parametrize("case", CASES, ids=_ident)
def test_symbolic_gradient_matches_central_differences(case, rng):
    name, shapes, attrs = case
    arrays, differentiable = _draw(name, shapes, rng)
    out_shape = np.broadcast_shapes(*shapes)
    g = rng.uniform(-1, 1, size=out_shape)
    symbolic = _grads("symbolic", name, arrays, differentiable, attrs, g)
    tape = _grads("tape", name, arrays, differentiable, attrs, g)
    for i, (s, t) in enumerate(zip(symbolic, tape)):
        if s is None:
            continue
        np.testing.assert_allclose(s, _central(name, arrays, attrs, g, i), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name} input {i} against central differences")
        np.testing.assert_allclose(s, t, rtol=1e-9, atol=1e-12, err_msg=f"{name} input {i} against the tape")


def test_every_elementwise_op_is_covered():
    covered = {case[0] for case in CASES}
    assert covered == {name for name, op in OPS.items() if op.kind == "elementwise"}


STABLE = [
    ("sigmoid", {}, lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    ("softplus", {}, lambda z: np.logaddexp(0, z), lambda z: 1 / (1 + np.exp(-z))),
]


@pytest.mark.parametrize("name,attrs,value,slope", STABLE, ids=[s[0] for s in STABLE])
def test_stable_forms_do_not_overflow(name, attrs, value, slope):
    z = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    t = symgrad.tensor(z, requires_grad=True)
    with symgrad.backward_engine("symbolic"):
        apply_op(name, t, **attrs).sum().backward()
    grad = t.grad.numpy()
    assert np.all(np.isfinite(grad))
    with np.errstate(over="ignore", invalid="ignore"):
        reference = np.nan_to_num(slope(z))
    np.testing.assert_allclose(grad, reference, atol=1e-12)


def test_bce_with_logits_is_stable_and_compact():
    z = symgrad.tensor([-1000.0, 0.0, 1000.0], requires_grad=True, name="z")
    y = symgrad.tensor([0.0, 1.0, 1.0], name="y")
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="sum")
    assert str(tensor_expr(loss)) == "sum(-y*z + softplus(z))"
    with symgrad.backward_engine("symbolic"):
        loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [0.0, -0.5, 0.0], atol=1e-12)
