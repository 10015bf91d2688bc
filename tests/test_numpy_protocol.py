"""NumPy functions on tensors (``symgrad/tape/numpy_protocol.py``): each routed function
against the Tensor method or op it stands for, and the refusals.

``CASES`` has one row per NumPy function that runs on tensors: the ufuncs and functions of
the op table's ``numpy`` fields are derived from the records (one- and two-input ops draw
from the op's domains), the ones with attributes or adapted arguments are written out.
Each row is checked three ways against its method form: values and ``grad_fn``, gradients
through ``backward()``, and gradients inside ``symgrad.grad`` (traced, compiled).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import symgrad
from symgrad.ops import OPS, Domain
from symgrad.ops.linalg import POSITIVE_DEFINITE, SEPARATED_SINGULAR_VALUES, SQUARE
from symgrad.tape.numpy_protocol import numpy_functions
from symgrad.tape.tensor import apply_op


@dataclass(frozen=True)
class Case:
    function: str  # the NumPy name
    shapes: tuple
    numpy_call: Callable  # on tensors, through NumPy
    method_call: Callable  # the same, written with symgrad's methods and ops
    domains: tuple = ()

    def __str__(self) -> str:
        return f"{self.function}[{','.join('x'.join(map(str, s)) or '()' for s in self.shapes)}]"


def _op_case(op) -> Case:
    """The row of an op whose NumPy function takes just its inputs (``np.exp(t)``); the
    inputs of a logical op are masks made from the drawn floats (``x > 0``)."""
    ufunc = getattr(np, op.numpy)
    masks = any(d.boolean for d in op.domains)
    operands = (lambda tensors: [t > 0 for t in tensors]) if masks else list

    def method(*tensors):
        tensors = operands(tensors)
        return getattr(tensors[0], op.name)(*tensors[1:]) if op.public else apply_op(op.name, *tensors)

    shapes = [(2, 3)] + [(3,)] * (op.arity - 1)
    return Case(op.numpy, tuple(shapes), lambda *tensors: ufunc(*operands(tensors)), method,
                () if masks else op.domains)


PLAIN = [op for op in OPS.values() if op.numpy is not None and op.kind in ("elementwise", "mask")
         and op.arity in (1, 2) and op.numpy not in ("clip",)]
POSITIVE = (Domain(0.5, 2.0),)

CASES = [_op_case(op) for op in PLAIN] + [
    Case("clip", ((2, 3),), lambda x: np.clip(x, -0.5, 0.5), lambda x: x.clamp(-0.5, 0.5),
         (Domain(avoid=(-0.5, 0.5)),)),
    Case("where", ((2, 3), (3,)), lambda a, b: np.where(a > 0, a, b), lambda a, b: symgrad.where(a > 0, a, b),
         (Domain(avoid=(0.0,)), Domain())),
    Case("sum", ((2, 3),), lambda x: np.sum(x, axis=0, keepdims=True), lambda x: x.sum(0, keepdim=True)),
    Case("mean", ((2, 3),), lambda x: np.mean(x, axis=(0, 1)), lambda x: x.mean((0, 1))),
    Case("max", ((2, 3),), lambda x: np.max(x, axis=1), lambda x: x.amax(1)),
    Case("max", ((2, 3, 2),), lambda x: np.max(x, axis=(0, 2), keepdims=True), lambda x: x.amax((0, 2), keepdim=True)),
    Case("min", ((2, 3),), lambda x: np.min(x), lambda x: x.amin()),
    Case("amax", ((2, 3),), lambda x: np.amax(x, axis=0, keepdims=True), lambda x: x.amax(0, keepdim=True)),
    Case("amin", ((2, 3),), lambda x: np.amin(x, axis=-1), lambda x: x.amin(-1)),
    Case("amin", ((2, 3, 2),), lambda x: np.amin(x, axis=(2, 0)), lambda x: x.amin((2, 0))),
    Case("prod", ((2, 3),), lambda x: np.prod(x, axis=1), lambda x: x.prod(1)),
    Case("prod", ((2, 1, 3),), lambda x: np.prod(x, axis=(0, -1), keepdims=True),
         lambda x: x.prod(2, keepdim=True).prod(0, keepdim=True)),
    Case("cumsum", ((2, 3),), lambda x: np.cumsum(x, axis=1), lambda x: x.cumsum(1)),
    Case("cumsum", ((2, 3),), np.cumsum, lambda x: x.reshape(-1).cumsum(0)),
    Case("cumprod", ((2, 3),), lambda x: np.cumprod(x, axis=0), lambda x: x.cumprod(0)),
    Case("cumprod", ((2, 3),), np.cumprod, lambda x: x.reshape(-1).cumprod(0)),
    Case("matmul", ((2, 3), (3, 4)), np.matmul, lambda a, b: a @ b),
    Case("dot", ((2, 3), (3,)), np.dot, lambda a, b: a.matmul(b)),
    Case("reshape", ((2, 3),), lambda x: np.reshape(x, (3, 2)), lambda x: x.reshape(3, 2)),
    Case("expand_dims", ((2, 3),), lambda x: np.expand_dims(x, 1), lambda x: x.unsqueeze(1)),
    Case("squeeze", ((2, 1, 3),), lambda x: np.squeeze(x, axis=1), lambda x: x.squeeze(1)),
    Case("broadcast_to", ((3,),), lambda x: np.broadcast_to(x, (2, 3)), lambda x: x.expand(2, 3)),
    Case("transpose", ((2, 3, 4),), np.transpose, lambda x: x.permute(2, 1, 0)),
    Case("concatenate", ((2, 3), (1, 3)), lambda a, b: np.concatenate([a, b]), lambda a, b: symgrad.cat([a, b])),
    Case("stack", ((2, 3), (2, 3)), lambda a, b: np.stack((a, b), axis=1), lambda a, b: symgrad.stack([a, b], 1)),
    Case("square", ((2, 3),), np.square, lambda x: x.square()),
    # NumPy 2's names, and the compositions of ops (tape/composites.py) with NumPy's arguments
    Case("cumulative_sum", ((2, 3),), lambda x: np.cumulative_sum(x, axis=1), lambda x: x.cumsum(1)),
    Case("cumulative_sum", ((4,),), np.cumulative_sum, lambda x: x.cumsum(0)),
    Case("cumulative_prod", ((2, 3),), lambda x: np.cumulative_prod(x, axis=0), lambda x: x.cumprod(0)),
    Case("var", ((2, 3),), lambda x: np.var(x, axis=1), lambda x: symgrad.var(x, 1, correction=0)),
    Case("var", ((2, 3),), lambda x: np.var(x, ddof=1, keepdims=True), lambda x: symgrad.var(x, None, keepdim=True)),
    Case("std", ((2, 3),), lambda x: np.std(x, axis=0, ddof=1), lambda x: symgrad.std(x, 0)),
    Case("flip", ((2, 3),), np.flip, lambda x: symgrad.flip(x, (0, 1))),
    Case("flip", ((2, 3),), lambda x: np.flip(x, 1), lambda x: symgrad.flip(x, 1)),
    Case("roll", ((2, 3),), lambda x: np.roll(x, 1, axis=1), lambda x: symgrad.roll(x, 1, 1)),
    Case("roll", ((2, 3),), lambda x: np.roll(x, -2), lambda x: symgrad.roll(x, -2)),
    Case("moveaxis", ((2, 3, 4),), lambda x: np.moveaxis(x, 0, -1), lambda x: symgrad.movedim(x, 0, -1)),
    Case("ravel", ((2, 3),), np.ravel, lambda x: symgrad.ravel(x)),
    Case("outer", ((2, 3), (3,)), np.outer, lambda a, b: symgrad.outer(a.reshape(-1), b)),
    Case("inner", ((2, 3), (3,)), np.inner, lambda a, b: symgrad.inner(a, b)),
    Case("kron", ((2, 3), (2, 2)), np.kron, lambda a, b: symgrad.kron(a, b)),
    Case("einsum", ((2, 3), (3, 4)), lambda a, b: np.einsum("ij,jk->ik", a, b),
         lambda a, b: symgrad.einsum("ij,jk->ik", a, b)),
    Case("tensordot", ((2, 3, 4), (3, 4, 2)), lambda a, b: np.tensordot(a, b, axes=2),
         lambda a, b: symgrad.tensordot(a, b, 2)),
    Case("trace", ((3, 3),), np.trace, lambda x: symgrad.diagonal(x).sum(dim=-1)),
    Case("trace", ((2, 3, 3),), lambda x: np.trace(x, 1, axis1=1, axis2=2),
         lambda x: symgrad.diagonal(x, 1, 1, 2).sum(dim=-1)),
    Case("diagonal", ((3, 4),), lambda x: np.diagonal(x, 1), lambda x: symgrad.diagonal(x, 1)),
    Case("diag", ((3,),), lambda x: np.diag(x, k=1), lambda x: symgrad.diag(x, 1)),
    Case("triu", ((3, 4),), lambda x: np.triu(x, k=1), lambda x: symgrad.triu(x, 1)),
    Case("tril", ((3, 4),), lambda x: np.tril(x, -1), lambda x: symgrad.tril(x, -1)),
    Case("tile", ((2, 3),), lambda x: np.tile(x, (2, 1)), lambda x: symgrad.tile(x, (2, 1))),
    Case("repeat", ((2, 3),), lambda x: np.repeat(x, 2, axis=1), lambda x: symgrad.repeat_interleave(x, 2, 1)),
    Case("take_along_axis", ((2, 3),), lambda x: np.take_along_axis(x, np.array([[2, 0], [1, 1]]), axis=1),
         lambda x: symgrad.take_along_dim(x, np.array([[2, 0], [1, 1]]), 1)),
    Case("atleast_1d", ((),), np.atleast_1d, lambda x: symgrad.atleast_1d(x)),
    Case("atleast_2d", ((3,),), np.atleast_2d, lambda x: symgrad.atleast_2d(x)),
    Case("atleast_3d", ((2, 3),), np.atleast_3d, lambda x: symgrad.atleast_3d(x)),
    Case("sort", ((2, 3),), np.sort, lambda x: symgrad.sort(x, -1).values),
    Case("count_nonzero", ((2, 3),), lambda x: x * np.count_nonzero(x, axis=0),
         lambda x: x * symgrad.count_nonzero(x, 0)),
    *[Case(name, ((2, 3),), (lambda name: lambda x: x * getattr(np, name)(x, axis=0))(name),
           (lambda name: lambda x: x * getattr(symgrad, name)(x, 0))(name)) for name in ["argmax", "argmin"]],
    Case("linalg.det", ((3, 3),), np.linalg.det, lambda a: symgrad.linalg.det(a), (SQUARE,)),
    Case("linalg.inv", ((3, 3),), np.linalg.inv, lambda a: symgrad.linalg.inv(a), (SQUARE,)),
    Case("linalg.solve", ((3, 3), (3, 2)), np.linalg.solve, lambda a, b: symgrad.linalg.solve(a, b),
         (SQUARE, Domain())),
    Case("linalg.cholesky", ((3, 3),), np.linalg.cholesky, lambda a: symgrad.linalg.cholesky(a),
         (POSITIVE_DEFINITE,)),
    Case("linalg.slogdet", ((3, 3),), lambda a: np.linalg.slogdet(a).logabsdet,
         lambda a: symgrad.linalg.slogdet(a).logabsdet, (SQUARE,)),
    Case("linalg.svdvals", ((3, 2),), np.linalg.svdvals, lambda a: symgrad.linalg.svdvals(a),
         (SEPARATED_SINGULAR_VALUES,)),
    Case("linalg.norm", ((2, 3),), lambda x: np.linalg.norm(x, 2, axis=1, keepdims=True),
         lambda x: symgrad.linalg.norm(x, 2, dim=1, keepdim=True)),
    Case("linalg.norm", ((3, 2),), lambda x: np.linalg.norm(x, "nuc"), lambda x: symgrad.linalg.norm(x, "nuc"),
         (SEPARATED_SINGULAR_VALUES,)),
    Case("linalg.matrix_norm", ((2, 3),), lambda x: np.linalg.matrix_norm(x, ord=1),
         lambda x: symgrad.linalg.matrix_norm(x, 1)),
    Case("linalg.vector_norm", ((2, 3),), lambda x: np.linalg.vector_norm(x, ord=3, axis=0),
         lambda x: symgrad.linalg.vector_norm(x, 3, dim=0)),
]
METADATA = {"shape": np.shape, "ndim": np.ndim, "size": np.size}  # read shapes, record nothing


def draw(case: Case, rng) -> list[np.ndarray]:
    domains = case.domains or (Domain(),) * len(case.shapes)
    return [d.sample(rng, shape) for d, shape in zip(domains, case.shapes)]


def loss_of(out, first):
    """A scalar from an output (a mask selects between two functions of the first input)."""
    if out.dtype == bool:
        return symgrad.where(out, first * first, 2.0 * first).sum()
    return (out * out).sum()


def test_every_routed_function_has_a_case():
    assert {c.function for c in CASES} | set(METADATA) == set(numpy_functions())


@pytest.mark.parametrize("case", [pytest.param(c, id=str(c)) for c in CASES])
def test_numpy_function_gives_numpys_value(case, rng):
    """The routed function on tensors has the value NumPy's own gives on the arrays."""
    arrays = draw(case, rng)
    out = case.numpy_call(*[symgrad.tensor(a, requires_grad=True) for a in arrays])
    np.testing.assert_allclose(out.detach().numpy(), case.numpy_call(*arrays), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", [pytest.param(c, id=str(c)) for c in CASES])
def test_numpy_function_is_the_method(case, rng):
    arrays = draw(case, rng)
    via_numpy = [symgrad.tensor(a, requires_grad=True) for a in arrays]
    via_method = [symgrad.tensor(a, requires_grad=True) for a in arrays]
    out, expected = case.numpy_call(*via_numpy), case.method_call(*via_method)
    assert isinstance(out, symgrad.Tensor)
    np.testing.assert_array_equal(out.numpy() if not out.requires_grad else out.detach().numpy(),
                                  expected.detach().numpy())
    assert type(out.grad_fn) is type(expected.grad_fn) and (
        out.grad_fn is None or out.grad_fn.name() == expected.grad_fn.name())
    if out.requires_grad:  # the same closed form
        assert str(out.expr) == str(expected.expr)
    loss_of(out, via_numpy[0]).backward()
    loss_of(expected, via_method[0]).backward()
    for mine, theirs in zip(via_numpy, via_method):
        if theirs.grad is None:  # the second operand of a mask: no gradient either way
            assert mine.grad is None
            continue
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [pytest.param(c, id=str(c)) for c in CASES])
def test_numpy_function_inside_a_transform(case, rng):
    arrays = draw(case, rng)
    argnums = tuple(range(len(arrays)))
    traced = symgrad.grad(lambda *xs: loss_of(case.numpy_call(*xs), xs[0]), argnums=argnums)
    reference = symgrad.grad(lambda *xs: loss_of(case.method_call(*xs), xs[0]), argnums=argnums)
    tensors = [symgrad.tensor(a) for a in arrays]
    for mine, theirs in zip(traced(*tensors), reference(*tensors)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(METADATA))
def test_shape_functions_read_the_shape(name):
    x = symgrad.ones(2, 3, requires_grad=True)
    assert METADATA[name](x) == METADATA[name](np.ones((2, 3)))


def test_a_numpy_scalar_or_array_meets_a_tensor_as_the_operator_does():
    x = symgrad.tensor([1.0, 2.0], dtype=symgrad.float32, requires_grad=True)
    for out in [np.float64(2.0) * x, np.ones(2, np.float32) + x, np.ones(2, np.float32) @ x, np.ones(2) < x]:
        assert isinstance(out, symgrad.Tensor)
    assert (np.float64(2.0) * x).dtype == np.float32  # a NumPy scalar is a number, as 2.0 * x


REFUSED = [
    (lambda x: np.median(x), "np.median has no op"),
    (lambda x: np.allclose(x, x), "np.allclose has no op"),
    (lambda x: np.cbrt(x), "np.cbrt has no op"),
    (lambda x: np.exp(x, out=np.zeros(3)), "np.exp with out="),
    (lambda x: np.sum(x, out=np.zeros(())), "np.sum with out="),
    (lambda x: np.add.reduce(x), "np.add.reduce is a ufunc method"),
    (lambda x: np.exp(x, dtype=np.float32), "np.exp got the keyword dtype="),
    (lambda x: np.sum(x, where=x > 0), "np.sum got the keyword where="),
    (lambda x: np.where(x > 0), "np.where with one argument gives positions"),
    (lambda x: np.dot(x.reshape(1, 1, 3), x), "np.dot of arrays of shapes (1, 1, 3) and (3,)"),
    (lambda x: np.linalg.eigvalsh(x.reshape(1, 3) * x.reshape(3, 1)), "np.linalg.eigvalsh has no op"),
    (lambda x: np.var(x, dtype=np.float32), "np.var got the keyword dtype="),
]


@pytest.mark.parametrize("call, message", REFUSED, ids=[m for _, m in REFUSED])
def test_functions_without_an_op_are_refused_naming_them(call, message):
    x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call(x)


def test_refused_inside_a_transform_too():
    with pytest.raises(TypeError, match="np.median has no op"):
        symgrad.grad(lambda x: np.median(x))(symgrad.tensor([1.0, 2.0]))


TIES = np.array([[2.0, 5.0, 5.0, 1.0], [3.0, 3.0, 3.0, 1.0], [-1.0, 5.0, 3.0, -1.0]])
"""Tied maxima in rows 0 and 1, columns 1 and 3 and overall; tied minima in row 2, column 2
and overall."""


@pytest.mark.parametrize("function", [np.max, np.amax, np.min, np.amin], ids=["max", "amax", "min", "amin"])
@pytest.mark.parametrize("axis", [None, 1, 0, (0, 1)], ids=["all", "1", "0", "01"])
def test_numpy_max_and_its_alias_amax_split_the_gradient_between_ties(function, axis):
    """np.max is np.amax: the tied extremes of each slice share the gradient evenly (JAX's
    jnp.max and autograd's np.max), on both engines and traced (np.max along an axis gave it
    all to the first extreme, as Tensor.max(dim); a tuple of axes raised TypeError)."""
    extreme = function(TIES, axis=axis, keepdims=True)
    g = np.linspace(0.5, 1.5, extreme.size).reshape(np.shape(function(TIES, axis=axis)))
    hit = TIES == extreme
    expected = g.reshape(extreme.shape) * hit / hit.sum(axis=axis, keepdims=True)
    for engine in ("tape", "symbolic"):
        x = symgrad.tensor(TIES, requires_grad=True)
        with symgrad.backward_engine(engine):
            (function(x, axis=axis) * symgrad.tensor(g)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-15, err_msg=engine)
    traced = symgrad.grad(lambda x: (function(x, axis=axis) * symgrad.tensor(g)).sum())(symgrad.tensor(TIES))
    np.testing.assert_allclose(np.asarray(traced), expected, rtol=1e-15)


@pytest.mark.parametrize("axis", [None, 1, (0, 1)])
def test_numpy_max_gradient_is_torch_amax(axis):
    torch = pytest.importorskip("torch")
    x = symgrad.tensor(TIES, requires_grad=True)
    np.max(x, axis=axis).sum().backward()
    reference = torch.tensor(TIES, requires_grad=True)
    torch.amax(reference, dim=() if axis is None else axis).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), reference.grad.numpy())


def test_numpy_max_over_no_axis_is_refused_not_read_as_all_axes():
    with pytest.raises(ValueError, match=r"dim=\(\) is ambiguous"):
        np.max(symgrad.tensor([1.0, 2.0], requires_grad=True), axis=())


def test_numpy_cumprod_is_the_op_also_at_zeros():
    """np.cumprod was refused although cumprod is an op: it runs it, PyTorch's gradient at zeros included."""
    values = np.array([[2.0, 0.0, 3.0], [0.5, -1.0, 0.0]])
    x, y = symgrad.tensor(values, requires_grad=True), symgrad.tensor(values, requires_grad=True)
    np.cumprod(x, axis=1).sum().backward()
    y.cumprod(1).sum().backward()
    assert np.cumprod(x, axis=1).grad_fn.name() == "CumprodBackward0"
    np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())


def test_numpy_cumulative_sum_of_a_matrix_needs_an_axis_as_in_numpy():
    with pytest.raises(ValueError, match="axis must be given"):
        np.cumulative_sum(symgrad.ones(2, 3, requires_grad=True))
    with pytest.raises(ValueError):
        np.cumulative_sum(np.ones((2, 3)))


def test_asarray_keeps_its_meaning():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    np.testing.assert_array_equal(np.asarray(x.detach()), [1.0, 2.0])
    with pytest.raises(symgrad.UntraceableError):
        symgrad.grad(lambda x: (x * np.asarray(x)).sum())(symgrad.tensor([1.0, 2.0]))
