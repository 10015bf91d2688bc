"""The table-driven test of the op table: every op through every check.

``CASES`` lists (op, input shapes, attrs); each case draws seeded random inputs from the
op's domains and runs, in float64 and float32 where it applies:

1. ``test_forward_matches_sympy`` -- the NumPy forward against the op's SymPy form,
   lambdified to NumPy (elementwise and mask ops: STRUCTURAL ops are skipped here, their
   SymPy ``Function`` classes are tested by the symbolic engine's tests);
2. ``test_vjp_matches_finite_differences`` -- the VJP (through ``numpy_ops``) against
   central differences of the forward (float64); an input that is not differentiable
   (``where``'s condition, every input of a mask op) must get ``UNDEFINED`` and nothing is
   compared: a mask is piecewise constant, it has no derivative to check;
   ``test_float32_stays_float32`` -- dtypes are kept (a mask op gives booleans) and values
   agree with float64;
3. ``test_vjp_uses_only_operators_and_xp`` -- the VJP run on boxed arrays that refuse
   NumPy functions, so it will also run on tensors for ``create_graph=True``; it reads
   no value that the op's ``saves`` does not declare;
4. ``test_matches_torch`` / ``test_kinks_match_torch`` -- forward and VJP against PyTorch
   (skipped without torch), also at kinks, ties, bounds and |x| = 1e3;
   ``test_node_name_matches_torch`` -- ``op.node_name`` is PyTorch's ``grad_fn`` name
   (not for mask ops: PyTorch records no node for a comparison);
   ``test_stable_at_extreme_values`` -- no overflow at |x| = 1e3, in both dtypes;
5. ``test_second_derivatives_through_both_engines`` -- ``create_graph=True`` on the
   symbolic and the tape engine, against central differences of the VJP (smooth ops);
6. coverage -- every registered op has cases, a PyTorch spelling (or a reason why not)
   and a complete entry; the structural docstring table lists every STRUCTURAL op;
   importing the op table imports no SymPy.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from symgrad.ops import OPS, STRUCTURAL, UNDEFINED, ArrayNamespace, Domain, numpy_ops

DTYPES = [np.float64, np.float32]


# ============================================================================ the table


@dataclass(frozen=True)
class Case:
    op: str
    shapes: tuple
    attrs: dict = field(default_factory=dict)
    domains: tuple | None = None  # overrides the op's domains (attrs that move kinks)
    torch: bool = True  # False: no PyTorch counterpart for these attrs

    def __str__(self) -> str:
        shapes = ",".join("x".join(map(str, s)) or "()" for s in self.shapes)
        attrs = ",".join(f"{k}={_short(v)}" for k, v in self.attrs.items())
        return f"{self.op}[{shapes}]{'{' + attrs + '}' if attrs else ''}"


def _short(value) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    if isinstance(value, np.ndarray):
        return f"{'mask' if value.dtype == bool else 'idx'}{list(value.shape)}"
    if isinstance(value, slice):
        return f"{value.start}:{value.stop}:{value.step}".replace("None", "")
    return "..." if value is Ellipsis else str(value)


def case(op, *shapes, domains=None, torch=True, **attrs) -> Case:
    return Case(op, shapes, attrs, domains, torch)


WITH_ROWS_OF_THEIR_OWN = {"pow_scalar", "clamp", "cast", "clamp_tensor", "where", "polygamma", "bessel_i",
                          "bessel_ie", "lerp"}  # attrs, three inputs, an order
UNARY = [name for name, op in OPS.items() if op.kind == "elementwise" and op.arity == 1
         and name not in WITH_ROWS_OF_THEIR_OWN]
BINARY = [name for name, op in OPS.items() if op.kind == "elementwise" and op.arity == 2
          and name not in WITH_ROWS_OF_THEIR_OWN]
COMPARISONS = ["lt", "le", "gt", "ge", "eq", "ne"]
LOGICAL = ["logical_and", "logical_or"]
BROADCASTS = [((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4, 1, 3), (2, 1))]
MASK_4 = np.array([True, False, True, True])
MASK_4x5 = np.arange(20).reshape(4, 5) % 3 == 0
WIDE = (Domain(),)  # integer exponents are defined on negative bases

CASES = [
    *[case(name, shape) for name in UNARY for shape in [(), (5,), (2, 3)]],
    *[case(name, *shapes) for name in BINARY for shapes in BROADCASTS],
    *[case(name, *shapes) for name in COMPARISONS for shapes in BROADCASTS],
    # same shapes only: SymPy prints And/Or as logical_and.reduce((a, b)), which does not broadcast
    *[case(name, shape, shape) for name in LOGICAL for shape in [(), (5,), (2, 3)]],
    *[case("logical_not", shape) for shape in [(), (5,), (2, 3)]],
    case("pow_scalar", (2, 3), exponent=2, domains=WIDE),
    case("pow_scalar", (5,), exponent=3, domains=WIDE),
    case("pow_scalar", (5,), exponent=0, domains=WIDE),
    case("pow_scalar", (5,), exponent=1, domains=WIDE),
    case("pow_scalar", (2, 3), exponent=0.5),
    case("pow_scalar", (5,), exponent=-1.5),
    case("clamp", (2, 3), min=-0.5, max=0.5),
    case("clamp", (5,), min=-1.0),
    case("clamp", (5,), max=0.5),
    case("clamp", (5,), min=0.5, max=-0.5),
    *[case("clamp_tensor", *shapes) for shapes in [((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), ()),
                                                    ((2, 1), (1, 3), (2, 3)), ((4,), (), (4,))]],
    case("softplus", (2, 3), beta=2.0, threshold=1.0, domains=(Domain(-3, 3, avoid=(0.5,)),)),
    case("softplus", (5,), beta=0.5, threshold=20.0),
    case("gelu", (2, 3), approximate="tanh"),
    case("elu", (2, 3), alpha=0.5),
    case("leaky_relu", (2, 3), negative_slope=0.2),
    case("nan_to_num", (5,), nan=1.0, posinf=2.0, neginf=-2.0),
    *[case("lerp", *shapes) for shapes in [((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), ()), ((2, 1), (1, 3), (2, 3))]],
    *[case("polygamma", (), shape) for shape in [(), (5,), (2, 3)]],  # one order per call, as torch.polygamma
    *[case(name, orders, shape) for name in ["bessel_i", "bessel_ie"] for orders, shape in [((), (5,)), ((2, 3), (3,))]],
    case("where", (2, 3), (2, 3), (2, 3)),
    case("where", (2, 3), (3,), ()),
    case("where", (2, 1), (1, 3), (2, 3)),
    # reductions
    *[case(name, (2, 3, 4), **attrs) for name in ["sum", "mean"] for attrs in [
        {}, {"dim": 0}, {"dim": -1, "keepdim": True}, {"dim": (0, 2)}, {"dim": (-1, 1), "keepdim": True},
        {"dim": None, "keepdim": True}]],
    case("sum", ()),
    case("mean", (5,), dim=0),
    *[case(name, shape, **attrs) for name in ["max", "min"] for shape, attrs in [
        ((2, 3), {}), ((5,), {}), ((2, 3), {"dim": 1}), ((2, 3, 4), {"dim": -1, "keepdim": True}),
        ((4,), {"dim": 0})]],
    *[case("extremum_mask", (3, 4), dim=dim, mode=mode, torch=False)
      for dim in [None, 0, -1] for mode in ["max", "min"]],
    *[case(name, shape, **attrs) for name in ["argmax", "argmin"] for shape, attrs in [
        ((2, 3), {}), ((5,), {"dim": 0}), ((2, 3, 4), {"dim": -1, "keepdim": True}), ((2, 3), {"keepdim": True}),
        ((), {}), ((), {"dim": 0})]],
    *[case("logsumexp", shape, **attrs) for shape, attrs in [
        ((2, 3), {}), ((2, 3), {"dim": 1}), ((2, 3, 4), {"dim": (0, 2), "keepdim": True}), ((5,), {"dim": -1})]],
    *[case(name, shape, dim=dim) for name in ["softmax", "log_softmax"]
      for shape, dim in [((5,), 0), ((2, 3), -1), ((3, 4), 0), ((2, 3, 4), 1)]],
    *[case("norm", shape, **attrs) for shape, attrs in [
        ((5,), {}), ((2, 3), {}), ((2, 3), {"dim": 1}), ((2, 3, 4), {"dim": (0, -1), "keepdim": True})]],
    # structural
    *[case("matmul", a, b) for a, b in [
        ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((4, 2, 3), (4, 3, 2)),
        ((4, 2, 3), (3, 2)), ((2, 3), (4, 3, 2)), ((4, 2, 3), (3,)), ((3,), (4, 3, 2)), ((2, 1, 2, 3), (4, 3, 2))]],
    *[case(name, shape) for name in ["det", "logdet", "inverse"] for shape in [(1, 1), (3, 3), (2, 3, 3)]],
    *[case("cumsum", shape, dim=dim) for shape, dim in [((5,), 0), ((2, 3, 4), 1), ((2, 3), -1), ((), 0)]],
    *[case("prod", shape, **attrs) for shape, attrs in [
        ((2, 3), {}), ((5,), {"dim": 0}), ((2, 3, 4), {"dim": 1, "keepdim": True}), ((2, 3), {"dim": -1})]],
    *[case(name, shape, dim=dim) for name in ["cumprod", "logcumsumexp"]
      for shape, dim in [((5,), 0), ((2, 3, 4), 1), ((2, 3), -1), ((), 0)]],
    *[case(name, shape, **attrs) for name in ["amax", "amin"] for shape, attrs in [
        ((2, 3), {}), ((5,), {"dim": 0}), ((2, 3, 4), {"dim": (0, 2), "keepdim": True}), ((2, 3), {"dim": -1}),
        ((2, 3, 4), {"dim": 1})]],
    *[case(name, shape) for name in ["cholesky", "det_sign", "logabsdet"] for shape in [(1, 1), (3, 3), (2, 3, 3)]],
    *[case("sort_values", shape, dim=dim, descending=descending) for shape, dim in [((5,), 0), ((2, 3, 4), 1),
      ((2, 3), -1), ((), 0)] for descending in [False, True]],
    *[case("sort_by", shape, shape, dim=dim, descending=descending, inverse=inverse)
      for shape, dim in [((5,), 0), ((2, 3, 4), 1), ((2, 3), -1)] for descending in [False, True]
      for inverse in [False, True]],
    *[case(name, shape) for name in ["svdvals", "svd_u", "svd_v"] for shape in [(1, 1), (3, 3), (2, 3, 4), (4, 2)]],
    *[case("tril", shape, **attrs) for shape, attrs in [((3, 3), {}), ((2, 3, 4), {"diagonal": -1}), ((4, 2), {"diagonal": 1})]],
    *[case("solve", a, b) for a, b in [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 4)), ((2, 3, 3), (1, 3, 1))]],
    case("transpose", (2, 3), dim0=0, dim1=1),
    case("transpose", (2, 3, 4), dim0=-1, dim1=0),
    case("permute", (2, 3, 4), dims=(2, 0, 1)),
    case("permute", (2, 3), dims=(-1, 0)),
    case("reshape", (2, 3), shape=(3, 2)),
    case("reshape", (2, 3, 4), shape=(6, -1)),
    case("reshape", (6,), shape=(2, 1, 3)),
    case("reshape", (), shape=(1,)),
    case("unsqueeze", (2, 3), dim=0),
    case("unsqueeze", (2, 3), dim=-1),
    case("unsqueeze", (2, 3), dim=1),
    *[case("squeeze", (2, 1, 3, 1), **attrs) for attrs in [{}, {"dim": 1}, {"dim": -1}, {"dim": (1, 3)}, {"dim": 0}]],
    *[case("getitem", shape, index=index) for shape, index in [
        ((4, 5), (1,)), ((4, 5), (1, 2)), ((4, 5), (slice(1, 3),)), ((4, 5), (slice(None),)),
        ((4, 5), (slice(None), slice(1, None, 2))), ((4, 5), (None, 0)), ((4, 5), (Ellipsis, 1)),
        ((4, 5), (0, None, slice(None))), ((4, 5), (Ellipsis,)),
        ((4, 5), (np.array([0, 2, 0]),)), ((4, 5), (np.array([0, 0, 1]), np.array([1, 1, 4]))),
        ((4, 5), (MASK_4,)), ((4, 5), (MASK_4x5,)), ((4, 5), (slice(1, 3), np.array([0, 0]))),
        ((2, 3, 4), (Ellipsis, np.array([1, 1]), slice(None))), ((5,), (-1,))]],
    case("getitem", (4, 5), index=(slice(None, None, -1),), torch=False),  # torch has no negative steps
    *[case("index_put", values, shape=shape, index=index, torch=False) for values, shape, index in [
        ((3, 5), (4, 5), (np.array([0, 2, 0]),)), ((2, 5), (4, 5), (slice(1, 3),)), ((), (4, 5), (1, 2)),
        ((3,), (4, 5), (MASK_4, 1)), ((7,), (4, 5), (MASK_4x5,))]],
    case("cat", (2, 3), (1, 3), dim=0),
    case("cat", (2, 3), (2, 2), (2, 1), dim=-1),
    case("cat", (2, 3), dim=1),
    case("cat", (0,), (2, 3), (0,), dim=1),  # PyTorch skips 1-D empty inputs
    case("stack", (2, 3), (2, 3), dim=0),
    case("stack", (2, 3), (2, 3), dim=-1),
    case("stack", (3,), (3,), (3,), dim=1),
    case("broadcast_to", (3,), shape=(2, 3)),
    case("broadcast_to", (2, 1), shape=(2, 4)),
    case("broadcast_to", (), shape=(3,)),
    case("sum_to", (2, 3), shape=(3,)),
    case("sum_to", (2, 3), shape=(2, 1)),
    case("sum_to", (4, 2, 3), shape=(1, 3)),
    case("sum_to", (2, 3), shape=(2, 3)),
    # assign.py
    *[case("setitem", (4, 5), value, index=index) for value, index in [
        ((5,), (1,)), ((), (1, 2)), ((2, 5), (slice(1, 3),)), ((2, 1), (np.array([0, 2]),)),
        ((), (MASK_4x5,)), ((3,), (Ellipsis, slice(None, 3)))]],
    case("cast", (2, 3), dtype=np.float64),
]

# PyTorch's spelling of each op (tensors positional, attrs by keyword) where it is not
# torch.<name> or torch.special.<name> called on the tensors (see torch_function)
TORCH = {
    "add": lambda t, a, b: a + b,
    "sub": lambda t, a, b: a - b,
    "neg": lambda t, x: -x,
    "mul": lambda t, a, b: a * b,
    "div": lambda t, a, b: a / b,
    "pow_scalar": lambda t, x, exponent: x ** exponent,
    "clone": lambda t, x: x.clone(),
    "clamp": lambda t, x, min=None, max=None: t.clamp(x, min=min, max=max),
    "clamp_tensor": lambda t, x, min, max: t.clamp(x, min=min, max=max),
    "softplus": lambda t, x, **attrs: t.nn.functional.softplus(x, **attrs),
    **{name: (lambda name: lambda t, x, **attrs: getattr(t.nn.functional, name)(x, **attrs))(name)
       for name in ["gelu", "silu", "elu", "leaky_relu", "softsign"]},
    "polygamma": lambda t, n, x: t.polygamma(int(n), x),
    "betaln": lambda t, a, b: t.lgamma(a) + t.lgamma(b) - t.lgamma(a + b),
    "binary_cross_entropy_with_logits": lambda t, z, y: t.nn.functional.binary_cross_entropy_with_logits(
        *t.broadcast_tensors(z, y), reduction="none"),
    "sum": lambda t, x, dim=None, keepdim=False: x.sum() if dim is None and not keepdim else x.sum(dim, keepdim),
    "mean": lambda t, x, dim=None, keepdim=False: x.mean() if dim is None and not keepdim else x.mean(dim, keepdim),
    "max": lambda t, x, dim=None, keepdim=False: x.max() if dim is None else x.max(dim, keepdim).values,
    "min": lambda t, x, dim=None, keepdim=False: x.min() if dim is None else x.min(dim, keepdim).values,
    "logsumexp": lambda t, x, dim=None, keepdim=False: x.logsumexp(
        tuple(range(x.ndim)) if dim is None else dim, keepdim),
    "softmax": lambda t, x, dim: x.softmax(dim),
    "log_softmax": lambda t, x, dim: x.log_softmax(dim),
    "norm": lambda t, x, dim=None, keepdim=False: t.linalg.vector_norm(x, dim=dim, keepdim=keepdim),
    "matmul": lambda t, a, b: a @ b,
    "prod": lambda t, x, dim=None, keepdim=False: x.prod() if dim is None else x.prod(dim, keepdim),
    **{name: (lambda name: lambda t, x, dim=None, keepdim=False: getattr(x, name)(
        () if dim is None else dim, keepdim))(name) for name in ["amax", "amin"]},
    "sort_values": lambda t, x, dim, descending=False: t.sort(x, dim=dim, descending=descending, stable=True).values,
    "sort_by": lambda t, x, key, dim, descending=False, inverse=False: _sorted_by(t, x, key, dim, descending, inverse),
    "inverse": lambda t, a: t.linalg.inv(a),
    "cholesky": lambda t, a: t.linalg.cholesky(a),
    "tril": lambda t, x, diagonal=0: t.tril(x, diagonal),
    # PyTorch's sign carries no gradient; symgrad's is zero (piecewise constant), as 0 * logabsdet's
    "det_sign": lambda t, a: t.linalg.slogdet(a).sign + 0 * t.linalg.slogdet(a).logabsdet,
    "logabsdet": lambda t, a: t.linalg.slogdet(a).logabsdet,
    "solve": lambda t, a, b: t.linalg.solve(a, b),
    "svdvals": lambda t, a: t.linalg.svdvals(a),
    "svd_u": lambda t, a: _signs_fixed(t, t.linalg.svd(a, full_matrices=False))[0],
    "svd_v": lambda t, a: _signs_fixed(t, t.linalg.svd(a, full_matrices=False))[1],
    "transpose": lambda t, x, dim0, dim1: x.transpose(dim0, dim1),
    "permute": lambda t, x, dims: x.permute(dims),
    "reshape": lambda t, x, shape: x.reshape(shape),
    "unsqueeze": lambda t, x, dim: x.unsqueeze(dim),
    "squeeze": lambda t, x, dim=None: x.squeeze() if dim is None else x.squeeze(dim),
    "getitem": lambda t, x, index: x[torch_index(t, index)],
    "setitem": lambda t, x, value, index: _assigned(x.clone(), torch_index(t, index), value),
    "cast": lambda t, x, dtype: x.to(getattr(t, np.dtype(dtype).name), copy=True),
    "cat": lambda t, *xs, dim=0: t.cat(xs, dim),
    "stack": lambda t, *xs, dim=0: t.stack(xs, dim),
    "broadcast_to": lambda t, x, shape: t.broadcast_to(x, shape),
    "sum_to": lambda t, x, shape: x.sum_to_size(shape),
}


def _signs_fixed(t, svd):
    """``svd_u``'s and ``svd_v``'s convention on PyTorch's ``U`` and ``V``: each column pair's
    sign such that ``U``'s entry of largest magnitude is positive."""
    largest = t.gather(svd.U, -2, svd.U.abs().argmax(dim=-2, keepdim=True))
    signs = t.where(largest < 0, -1.0, 1.0).to(svd.U.dtype).detach()
    return svd.U * signs, svd.Vh.mT * signs


def _sorted_by(t, x, key, dim, descending, inverse):
    """``sort_by`` in PyTorch: ``x`` gathered at ``key``'s stable sort order, or scattered there."""
    order = t.sort(key, dim=dim, descending=descending, stable=True).indices
    return t.zeros_like(x).scatter(dim, order, x) if inverse else x.gather(dim, order)


def torch_function(t, name: str):
    """PyTorch's spelling of op ``name``: its entry in ``TORCH``, else ``torch.<name>`` or
    ``torch.special.<name>`` of the tensors (``lambda t, *tensors, **attrs``)."""
    if name in TORCH:
        return TORCH[name]
    function = getattr(t, name, None) or getattr(t.special, name)
    return lambda t, *tensors, **attrs: function(*tensors, **attrs)


def torch_index(t, index):
    """A normalized index for a torch tensor; a single item unwrapped, as users write ``x[:]``."""
    items = tuple(t.as_tensor(i) if isinstance(i, np.ndarray) else i for i in index)
    return items[0] if len(items) == 1 else items


def _assigned(x, index, value):
    x[index] = value
    return x


TORCH_FREE = {  # ops without a PyTorch counterpart, and why
    "extremum_mask": "PyTorch saves max/min indices instead of recomputing a mask",
    "index_put": "getitem's adjoint; torch.index_put_ takes no slices",
    "bessel_i": "PyTorch has I_nu for nu = 0 and 1 only (i0, special.i1), compared there",
    "bessel_ie": "PyTorch has scaled I_nu for nu = 0 and 1 only (special.i0e, special.i1e), compared there",
}
FORWARD_ONLY_IN_TORCH = {  # ops PyTorch has but does not differentiate, and what symgrad's gradient is
    "floor_divide": "PyTorch raises 'derivative for aten::floor_divide is not implemented'; symgrad's is 0, as floor's",
}
INT64_RESULTS = {"argmax": np.int64, "argmin": np.int64}  # positions, whatever the input's dtype
NOT_TORCH_NODES = {"sum_to", "betaln", "det_sign", "floor_divide", "svd_u", "svd_v"}  # PyTorch's sum_to_size records
# Sum/View nodes, betaln has no op, slogdet's sign has no node (it does not require grad), floor_divide's is
# NotImplemented, svd_u and svd_v are linalg.svd's U and V times the signs (Mul nodes)

# Kinks, ties, bounds and extreme values, compared with PyTorch (op, inputs, attrs).
STABLE = [
    ("sigmoid", [[-1e3, -50.0, 0.0, 50.0, 1e3]], {}),
    ("softplus", [[-1e3, -50.0, 0.0, 50.0, 1e3]], {}),
    ("binary_cross_entropy_with_logits", [[-1e3, -50.0, 0.0, 50.0, 1e3], [0.0, 1.0, 0.5, 0.0, 1.0]], {}),
    ("logsumexp", [[[-1e3, 1e3, 0.0], [1e3, 1e3, -1e3]]], {"dim": 1}),
    ("logsumexp", [[-1e3, -1e3, -1e3]], {}),
    ("logcumsumexp", [[[-1e3, 1e3, 0.0, 1e3], [1e3, -1e3, -1e3, 0.0]]], {"dim": 1}),
    ("logcumsumexp", [[-1e3, -1e3, -1e3]], {"dim": 0}),
    ("softmax", [[[-1e3, 1e3, 0.0], [1e3, 1e3, -1e3]]], {"dim": 1}),
    ("log_softmax", [[[-1e3, 1e3, 0.0], [-1e3, -1e3, -1e3]]], {"dim": 1}),
    ("tanh", [[-1e3, 0.0, 1e3]], {}),
    ("logaddexp", [[-1e3, 1e3, 0.0, 1e3], [1e3, -1e3, 0.0, 1e3]], {}),
    *[("gelu", [[-1e3, 0.0, 1e3]], attrs) for attrs in [{}, {"approximate": "tanh"}]],
    ("silu", [[-1e3, 0.0, 1e3]], {}),
    ("elu", [[-1e3, 0.0, 1e3]], {}),
]
KINKS = [
    ("relu", [[-1.0, 0.0, 2.0]], {}),
    ("abs", [[-1.0, 0.0, 2.0]], {}),
    ("sign", [[-1.0, 0.0, 2.0]], {}),
    ("sqrt", [[0.0, 1.0]], {}),
    *[("clamp", [[-1.0, -0.5, 0.0, 0.5, 1.0]], bounds) for bounds in [
        {"min": -0.5, "max": 0.5}, {"min": -0.5}, {"max": 0.5}, {"min": 0.5, "max": -0.5}]],
    # at and beyond both bounds, min > max, and one-sided (the other bound infinite)
    ("clamp_tensor", [[-1.0, -0.5, 0.0, 0.5, 1.0, 0.0, 2.0, 0.7], [-0.5, -0.5, -0.5, -0.5, -0.5, 1.0, 1.0, 0.7],
                      [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.8]], {}),
    ("clamp_tensor", [[-1.0, -0.5, 0.0, 0.5], [-0.5], [float("inf")]], {}),
    ("clamp_tensor", [[-1.0, -0.5, 0.0, 0.5], [-float("inf")], [-0.5, 0.0, -1.0, 1.0]], {}),
    ("maximum", [[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]], {}),
    ("minimum", [[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]], {}),
    ("maximum", [[[1.0, 2.0], [2.0, 2.0]], [2.0]], {}),
    *[(name, [[1.0, 3.0, 3.0, 2.0, 3.0, 1.0]], {}) for name in ["max", "min"]],
    *[(name, [[[1.0, 3.0, 3.0, 2.0, 3.0], [5.0, 5.0, 1.0, 5.0, 1.0]]], attrs) for name in ["max", "min"]
      for attrs in [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": -1}]],
    ("max", [[[2.0] * 40, [1.0] * 40]], {"dim": 1}),
    *[(name, [[[1.0, 3.0, 3.0, 2.0, 3.0], [5.0, 5.0, 1.0, 5.0, 1.0]]], attrs) for name in ["amax", "amin"]
      for attrs in [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": (0, 1)}]],
    *[("cumprod", [values], {"dim": -1}) for values in [
        [[1.5, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 2.0], [2.0, 0.5, 3.0, 0.0], [0.0, 1.0, 0.0, 2.0]], [0.0]]],
    # ties: each tied element's gradient is the one of the position torch's stable sort gives it
    *[("sort_values", [values], {"dim": dim, "descending": descending}) for values, dim in [
        ([1.0, 3.0, 3.0, 2.0, 3.0, 1.0], 0), ([[1.0, 3.0, 3.0, 2.0, 3.0], [5.0, 5.0, 1.0, 5.0, 1.0]], 1),
        ([[2.0, 2.0, 2.0], [2.0, 1.0, 2.0]], 0)] for descending in [False, True]],
    # positions: the first of tied extremes, a NaN's position (the first NaN), infinities
    *[(name, [values], attrs) for name in ["argmax", "argmin"] for values in [
        [[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, -1.0, -1.0]], [[1.0, np.nan, 3.0, np.nan], [np.nan, 2.0, np.nan, 1.0]],
        [[np.inf, np.inf, -np.inf, 0.0], [-np.inf, 1.0, -np.inf, np.inf]]]
      for attrs in [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"keepdim": True}]],
    ("norm", [[[0.0, 0.0], [3.0, 4.0]]], {"dim": 1}),
    ("norm", [[0.0, 0.0, 0.0]], {}),
    *[("pow_scalar", [[0.0, 1.0, -2.0]], {"exponent": e}) for e in [0, 1, 2, 3]],
    *[("pow_scalar", [[0.0, 1.0]], {"exponent": e}) for e in [0.5, -1.0]],
    ("pow", [[0.0, 0.0, 2.0, 0.0], [0.0, 2.0, 3.0, -1.0]], {}),
    ("softplus", [[19.99, 20.0, 20.01]], {}),
    ("softplus", [[0.99, 1.0, 1.01]], {"beta": 2.0, "threshold": 2.0}),
    ("where", [[True, False, True], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], {}),
    *[(name, [[-1.0, 0.0, 2.0]], attrs) for name, attrs in [
        ("elu", {}), ("elu", {"alpha": 0.5}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
        ("softsign", {})]],
    ("sinc", [[-1.0, 0.0, 0.5]], {}),
    *[(name, [[-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.5]], {}) for name in ["floor", "ceil", "round", "trunc", "frac"]],
    *[(name, [[-3.0, 3.0, 2.0, -2.0, 0.0], [2.0, -2.0, 1.0, 1.0, 1.5]], {}) for name in ["remainder", "fmod"]],
    # where the rounded quotient a/b is an integer the exact one is not: 1.0 = 9*0.1 + 0.0999...
    *[(name, [[1.0, 0.3, 7.0, -1.0, 1.0], [0.1, 0.1, 0.7, 0.1, -0.1]], {})
      for name in ["remainder", "fmod", "floor_divide"]],
    ("copysign", [[0.0, 0.0, 1.0, -1.0], [1.0, -1.0, -0.0, 0.0]], {}),
    # not at x = y = 0, where PyTorch's d/dy is 0/0 = NaN and symgrad's 0 (the value is the constant 0 there)
    ("xlogy", [[0.0, 0.0, 1.0], [-1.0, 2.0, 2.0]], {}),
    ("nan_to_num", [[float("nan"), float("inf"), -float("inf"), 1.0, float("inf")]], {}),
    ("nan_to_num", [[float("nan"), float("inf"), -float("inf"), 1.0]], {"nan": 1.0, "posinf": 2.0, "neginf": -2.0}),
    ("lerp", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 0.5, 1.0]], {}),
    *STABLE,
]


# ============================================================================ helpers


def differentiable(op, i: int) -> bool:
    return op.differentiable is None or op.differentiable[i]


def without_derivative(op) -> bool:
    """No input carries a gradient (masks, positions): PyTorch records no node for the op."""
    return op.differentiable is not None and not any(op.differentiable)


def draw(case: Case, dtype, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Inputs from the op's domains (booleans where the domain says so) and a g, drawn with
    ``rng`` (the plugin's fixture: new inputs every day, replayable by the seed)."""
    op = OPS[case.op]
    domains = case.domains or op.domains
    if op.arity is None:
        domains = domains * len(case.shapes)
    inputs = []
    for shape, domain in zip(case.shapes, domains):
        inputs.append(np.asarray(domain.sample(rng, shape, dtype=dtype)))
    ans = op.forward(*inputs, **case.attrs)
    g = np.asarray(rng.standard_normal(np.shape(ans))).astype(dtype)
    return inputs, g


def run(op, inputs, g, attrs, xp=numpy_ops):
    ans = op.forward(*inputs, **attrs)
    return ans, op.vjp(xp, g, ans, *inputs, **attrs)


def numeric_vjp(op, inputs, i, g, attrs, eps=1e-6) -> np.ndarray:
    """Central differences of sum(g * forward) with respect to input ``i``."""
    x = inputs[i]
    grad = np.zeros(x.shape)
    for j in range(x.size):
        total = []
        for step in (eps, -eps):
            moved = x.copy()
            moved.flat[j] += step
            args = [*inputs[:i], moved, *inputs[i + 1:]]
            total.append(np.sum(g * op.forward(*args, **attrs)))
        grad.flat[j] = (total[0] - total[1]) / (2 * eps)
    return grad


def tolerance(dtype) -> dict[str, float]:
    return {"rtol": 1e-9, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5, "atol": 2e-6}


def ids(cases) -> list[str]:
    return [str(c) for c in cases]


def params(cases) -> list:
    """``cases`` as pytest params with readable ids."""
    return [pytest.param(c, id=str(c)) for c in cases]


# ============================================================================ 1. SymPy form


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    pytest.param(c, id=str(c), marks=[] if OPS[c.op].kind in ("elementwise", "mask") else
                 [pytest.mark.skip(reason="STRUCTURAL: checked by the symbolic engine's tests")])
    for c in CASES])
def test_forward_matches_sympy(case, dtype, rng):
    sympy = pytest.importorskip("sympy")
    from symgrad.symbolic.forms import selections, stable
    from symgrad.symbolic.codegen.compile import SymgradNumPyPrinter

    op = OPS[case.op]
    inputs, _ = draw(case, dtype, rng)
    symbols = sympy.symbols(f"x0:{len(inputs)}", real=True)
    expr = op.sympy(sympy, *symbols, **case.attrs)  # the form the symbolic engine uses
    printer = SymgradNumPyPrinter(names={s: s.name for s in symbols})  # the engine's printer
    value = sympy.lambdify(symbols, expr, modules=[stable.NUMPY_HELPERS, selections.NUMPY_HELPERS, "numpy"],
                           printer=printer)(*inputs)
    out = op.forward(*inputs, **case.attrs)
    np.testing.assert_allclose(np.broadcast_to(value, out.shape), out, **tolerance(dtype))


# ============================================================================ 2. VJP and dtypes


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_vjp_matches_finite_differences(case, rng):
    op = OPS[case.op]
    inputs, g = draw(case, np.float64, rng)
    ans, grads = run(op, inputs, g, case.attrs)
    assert isinstance(ans, np.ndarray) and ans.flags.writeable
    assert not any(np.shares_memory(ans, x) for x in inputs), "forward returned a view of an input"
    assert len(grads) == len(inputs)
    for i, (x, grad) in enumerate(zip(inputs, grads)):
        if not differentiable(op, i):
            assert grad is UNDEFINED
            continue
        assert np.shape(grad) == x.shape, f"gradient of input {i} has the wrong shape"
        np.testing.assert_allclose(grad, numeric_vjp(op, inputs, i, g, case.attrs), rtol=1e-6, atol=1e-7,
                                   err_msg=f"input {i}")


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_float32_stays_float32(case, rng):
    op = OPS[case.op]
    inputs, g = draw(case, np.float32, rng)
    ans, grads = run(op, inputs, g, case.attrs)
    ans64, grads64 = run(op, [x.astype(np.float64) if x.dtype == np.float32 else x for x in inputs],
                         g.astype(np.float64), case.attrs)
    # masks give booleans, positions int64, cast its dtype attr; the others keep float32
    expected = bool if op.kind == "mask" else INT64_RESULTS.get(case.op, case.attrs.get("dtype", np.float32))
    assert ans.dtype == np.dtype(expected)
    scale = max(1.0, float(np.max(np.abs(ans64), initial=0)))
    np.testing.assert_allclose(ans, ans64, rtol=1e-5, atol=1e-5 * scale)
    for i, (grad, grad64) in enumerate(zip(grads, grads64)):
        if grad is UNDEFINED:
            continue
        assert grad.dtype == np.float32, f"gradient of input {i} is {grad.dtype}"
        scale = max(1.0, float(np.max(np.abs(grad64), initial=0)))
        np.testing.assert_allclose(grad, grad64, rtol=1e-4, atol=1e-5 * scale, err_msg=f"input {i}")


# ============================================================================ 3. VJPs stay differentiable


class Boxed:
    """An array stand-in that NumPy functions refuse: only operators and ``xp`` calls work.

    Comparisons give boxed boolean masks (not differentiable); there is no ``&``, ``|``,
    ``~`` or truth value, so VJPs combine masks by ``*`` and never branch on data.
    """

    __array_ufunc__ = None  # np.exp(boxed) raises TypeError instead of converting

    def __init__(self, value) -> None:
        self.value = np.asarray(value)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)

    def __bool__(self):
        raise TypeError("a VJP must not branch on array values")

    def __pow__(self, other):
        if isinstance(other, (int, float)):
            return boxed_ops.pow_scalar(self, exponent=other)
        return boxed_ops.pow(self, other)


def _operator(op_name, swap=False):
    def method(self, other):
        return getattr(boxed_ops, op_name)(*((other, self) if swap else (self, other)))
    return method


def _compare(ufunc):
    def method(self, other):
        return Boxed(ufunc(self.value, other.value if isinstance(other, Boxed) else other))
    return method


for _name, _op in [("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div")]:
    setattr(Boxed, f"__{_name}__", _operator(_op))
    setattr(Boxed, f"__r{_name}__", _operator(_op, swap=True))
for _name, _ufunc in [("gt", np.greater), ("ge", np.greater_equal), ("lt", np.less),
                      ("le", np.less_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(Boxed, f"__{_name}__", _compare(_ufunc))
Boxed.__neg__ = lambda self: boxed_ops.neg(self)
Boxed.__hash__ = None


def _boxed_call(op, *args, **attrs):
    for arg in args:
        if not isinstance(arg, (Boxed, int, float)):
            raise TypeError(f"xp.{op.name} got positional {arg!r}: tensors are positional, attrs by keyword")
    for key, value in attrs.items():
        if isinstance(value, Boxed):
            raise TypeError(f"xp.{op.name} got a tensor as attr {key}=")
    return Boxed(op.forward(*(a.value if isinstance(a, Boxed) else a for a in args), **attrs))


boxed_ops = ArrayNamespace(_boxed_call)


@pytest.mark.parametrize("case", params(CASES))
def test_vjp_uses_only_operators_and_xp(case, rng):
    op = OPS[case.op]
    inputs, g = draw(case, np.float64, rng)
    ans, grads = run(op, inputs, g, case.attrs)
    # what the op does not declare in ``saves`` is replaced by NaN: the VJP may only read its shape
    if "output" not in op.saves and ans.dtype.kind == "f":
        ans = np.full_like(ans, np.nan)
    if "inputs" not in op.saves:
        inputs = [np.full_like(x, np.nan) if x.dtype.kind == "f" else x for x in inputs]
    boxed = op.vjp(boxed_ops, Boxed(g), Boxed(ans), *map(Boxed, inputs), **case.attrs)
    for grad, box in zip(grads, boxed, strict=True):
        if grad is UNDEFINED:
            assert box is UNDEFINED
        else:
            assert isinstance(box, Boxed)
            np.testing.assert_allclose(box.value, grad, rtol=1e-12, atol=1e-14)


# ============================================================================ 4. PyTorch


def compare_with_torch(torch, name, inputs, g, attrs, dtype):
    op = OPS[name]
    ans, grads = run(op, inputs, g, attrs)
    forward_only = name in FORWARD_ONLY_IN_TORCH
    tensors = [torch.tensor(x, requires_grad=differentiable(op, i) and not forward_only) for i, x in enumerate(inputs)]
    out = torch_function(torch, name)(torch, *tensors, **attrs)
    tol = tolerance(dtype)
    np.testing.assert_allclose(ans, out.detach().numpy(), **tol, err_msg="forward")
    assert ans.dtype == out.detach().numpy().dtype, "forward dtype"
    if forward_only:
        assert all(np.all(grad == 0) for grad in grads), FORWARD_ONLY_IN_TORCH[name]
        return out
    wrt = [t for t in tensors if t.requires_grad]
    if not wrt:  # a mask op: no input carries a gradient, in PyTorch either
        assert all(grad is UNDEFINED for grad in grads) and not out.requires_grad
        return out
    expected = iter(torch.autograd.grad(out, wrt, torch.from_numpy(g), allow_unused=True))
    for i, grad in enumerate(grads):
        if grad is UNDEFINED:
            continue
        want = next(expected)
        want = np.zeros_like(inputs[i]) if want is None else want.numpy()
        np.testing.assert_allclose(grad, want, **tol, err_msg=f"gradient of input {i}")
    return out


TORCH_CASES = [c for c in CASES if c.torch and c.op not in TORCH_FREE]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_CASES, ids=ids(TORCH_CASES))
def test_matches_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    inputs, g = draw(case, dtype, rng)
    compare_with_torch(torch, case.op, inputs, g, case.attrs, dtype)


@pytest.mark.parametrize("case", params([c for c in TORCH_CASES if c.op not in NOT_TORCH_NODES
                                         and not without_derivative(OPS[c.op])]))
def test_node_name_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    inputs, _ = draw(case, np.float64, rng)
    tensors = [torch.tensor(x, requires_grad=differentiable(OPS[case.op], i)) for i, x in enumerate(inputs)]
    torch_name = torch_function(torch, case.op)(torch, *tensors, **case.attrs).grad_fn.name().removeprefix("torch::autograd::")
    assert OPS[case.op].node_name(*(x.shape for x in inputs), **case.attrs) == torch_name


def test_the_percent_operator_is_pytorchs_remainder():
    torch = pytest.importorskip("torch")
    import symgrad

    a, b = np.array([-3.0, 3.0, 2.5, -0.5]), np.array([2.0, -2.0, 1.0, 0.75])
    x, y = symgrad.tensor(a, requires_grad=True), symgrad.tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    assert (x % y).grad_fn.name() == (tx % ty).grad_fn.name()
    for ours, theirs in [(x % y, tx % ty), (x % 1.5, tx % 1.5)]:
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
        ours.sum().backward()
        theirs.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), ty.grad.numpy())
    # PyTorch has no derivative for number % tensor; symgrad's is remainder's, d/db = -floor_divide(a, b)
    np.testing.assert_array_equal((2.0 % y).detach().numpy(), (2.0 % ty).detach().numpy())
    (2.0 % y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy() - ty.grad.numpy(), -np.floor_divide(2.0, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, values, attrs", KINKS, ids=[f"{n}{a or ''}" for n, _, a in KINKS])
def test_kinks_match_torch(name, values, attrs, dtype):
    torch = pytest.importorskip("torch")
    inputs = [np.asarray(v, dtype=bool if isinstance(v[0], bool) else dtype) for v in values]
    with np.errstate(divide="ignore", invalid="ignore"):  # sqrt'(0) = inf, 0 ** -1 ...
        ans = OPS[name].forward(*inputs, **attrs)
        g = np.random.default_rng(0).standard_normal(ans.shape).astype(dtype)
        compare_with_torch(torch, name, inputs, g, attrs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, values, attrs", STABLE, ids=[f"{n}{a or ''}" for n, _, a in STABLE])
def test_stable_at_extreme_values(name, values, attrs, dtype):
    op = OPS[name]
    inputs = [np.asarray(v, dtype=dtype) for v in values]
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        ans = op.forward(*inputs, **attrs)
        grads = op.vjp(numpy_ops, np.ones(ans.shape, dtype), ans, *inputs, **attrs)
    assert ans.dtype == dtype and np.all(np.isfinite(ans))
    assert all(np.all(np.isfinite(grad)) for grad in grads)


# ============================================================================ 5. second derivatives


def _second_order_cases() -> list[Case]:
    """One case per smooth elementwise op (``NONSMOOTH_OPS`` have kinks or jumps, where
    second derivatives are PyTorch's conventions, not limits) whose inputs all carry
    gradients: its first broadcasting case, and every case with attributes."""
    from symgrad.testing.generator import NONSMOOTH_OPS

    chosen, seen = [], set()
    for c in CASES:
        op = OPS[c.op]
        if op.kind != "elementwise" or c.op in NONSMOOTH_OPS or op.differentiable is not None:
            continue
        if c.attrs or c.op not in seen:
            chosen.append(c)
            seen.add(c.op)
    return chosen


@pytest.mark.parametrize("engine", ["symbolic", "tape"])
@pytest.mark.parametrize("case", params(_second_order_cases()))
def test_second_derivatives_through_both_engines(case, engine, rng):
    """``create_graph=True``: the gradient of <grad, v> is the Hessian of sum(g * op)
    times v, which is the derivative of the VJP along v (central differences)."""
    import symgrad
    from symgrad.tape import apply_op

    op = OPS[case.op]
    inputs, g = draw(case, np.float64, rng)
    v = [rng.standard_normal(x.shape) for x in inputs]
    tensors = [symgrad.tensor(x, requires_grad=True) for x in inputs]
    with symgrad.backward_engine(engine):
        out = apply_op(case.op, *tensors, **case.attrs)
        grads = symgrad.autograd.grad((out * symgrad.tensor(g)).sum(), tensors, create_graph=True)
        along = sum((grad * symgrad.tensor(d)).sum() for grad, d in zip(grads, v))
        # a gradient that does not depend on the inputs (linear ops) has no graph: its derivative is 0
        second = symgrad.autograd.grad(along, tensors, allow_unused=True) if along.requires_grad else [None] * len(tensors)
    eps = 1e-5
    _, plus = run(op, [x + eps * d for x, d in zip(inputs, v)], g, case.attrs)
    _, minus = run(op, [x - eps * d for x, d in zip(inputs, v)], g, case.attrs)
    for i, (got, p, m) in enumerate(zip(second, plus, minus)):
        got = np.zeros(inputs[i].shape) if got is None else got.numpy()
        np.testing.assert_allclose(got, (p - m) / (2 * eps), rtol=1e-5, atol=1e-6, err_msg=f"input {i}")


# ============================================================================ 6. coverage


def test_every_op_has_cases():
    assert set(OPS) - {c.op for c in CASES} == set()


def test_every_op_is_compared_with_torch_or_says_why():
    torch = pytest.importorskip("torch")
    assert set(TORCH_FREE) <= set(OPS) and not set(TORCH_FREE) & set(TORCH)
    for name in set(OPS) - set(TORCH_FREE):
        assert name in TORCH or hasattr(torch, name) or hasattr(torch.special, name), (
            f"torch has no function {name}: spell it in TORCH, or say why there is none in TORCH_FREE")


@pytest.mark.parametrize("name", sorted(OPS))
def test_entry_is_complete(name):
    op = OPS[name]
    assert op.name == name
    assert re.fullmatch(r"([A-Z][a-z0-9]*)+(Backward\d)?", op.grad_fn_name)  # torch's spelling
    assert callable(op.forward) and callable(op.vjp)
    assert op.kind in ("elementwise", "reduction", "structural", "mask")
    assert op.saves <= {"inputs", "output"}
    assert all(isinstance(d, Domain) for d in op.domains)
    assert len(op.domains) == (1 if op.arity is None else op.arity)
    assert op.differentiable is None or len(op.differentiable) == op.arity
    if op.kind == "mask":  # the non-differentiable kind says so for every input
        assert op.differentiable == (False,) * op.arity
    if op.kind in ("elementwise", "mask"):
        assert callable(op.sympy)
    else:
        assert op.sympy is STRUCTURAL


def test_structural_docstring_lists_every_structural_op():
    from symgrad.ops import structural

    lines = structural.__doc__.splitlines()
    width = next(line for line in lines if line.startswith("=")).index(" ")  # the op column
    listed = {name for line in lines for name in line[:width].strip().split(", ")}
    assert {name for name, op in OPS.items() if op.sympy is STRUCTURAL} - listed == set()


def test_every_kink_op_is_a_torch_op():
    assert not {name for name, _, _ in KINKS} & set(TORCH_FREE)


def test_no_sympy_import_in_the_op_table():
    import subprocess
    import sys

    code = "import sys, symgrad.ops; assert 'sympy' not in sys.modules, 'symgrad.ops imported sympy'"
    subprocess.run([sys.executable, "-c", code], check=True)

