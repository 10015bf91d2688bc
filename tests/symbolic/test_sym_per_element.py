"""``per_element`` over every structural op: the per-element closed form of a tensor, and of
its gradient, evaluated at the tensor's values, is what the engines compute.

Issue 13: any integer-array or mask index (``X[[0, 2]]``) raised ``TypeError``: the view
passed the index's arrays to NumPy as operands; their values now fill the index (a
tensor's own graph holds them; a bare form takes them through ``indices=``).

``amax``/``amin``, ``logcumsumexp``, ``cholesky``, ``det_sign`` and ``logabsdet`` raised
``TypeError`` (their NumPy forwards ran on object arrays of symbols; strict xfail rows until
the view wrote them out); ``//``, ``%`` and ``fmod`` are SymPy functions that evaluate
numbers as NumPy does.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.ops import OPS
from symgrad.ops.base import STRUCTURAL
from symgrad.symbolic import per_element, tensor_graph
from symgrad.tape import apply_op

MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

# name: (program of x (3, 4) and w (4, 2), the structural ops it runs)
PROGRAMS = {
    "sum": (lambda x, w: x.sum(dim=1) * x[:, 0], {"sum", "getitem"}),
    "sum_all_keepdim": (lambda x, w: x.sum(dim=(0, 1), keepdim=True) * x, {"sum"}),
    "mean": (lambda x, w: x.mean(dim=0) ** 2, {"mean"}),
    "max_all": (lambda x, w: x.max() * x, {"max", "extremum_mask"}),
    "max_dim": (lambda x, w: x.max(dim=1)[0] ** 2, {"max", "extremum_mask"}),
    "min_dim_keepdim": (lambda x, w: x.min(dim=0, keepdim=True)[0] * x, {"min", "extremum_mask"}),
    "max_all_ties": (lambda x, w: symgrad.cat([x, x], dim=1).max() * x, {"max", "extremum_mask", "cat"}),
    "min_dim_ties": (lambda x, w: symgrad.cat([x, x], dim=0).min(dim=0)[0] ** 2, {"min", "extremum_mask", "cat"}),
    "logsumexp": (lambda x, w: x.logsumexp(dim=1), {"logsumexp"}),
    "softmax": (lambda x, w: x.softmax(dim=1), {"softmax"}),
    "log_softmax": (lambda x, w: x.log_softmax(dim=0), {"log_softmax"}),
    "norm": (lambda x, w: x.norm(), {"norm"}),
    "matmul": (lambda x, w: (x @ w).tanh(), {"matmul"}),
    "matmul_vector": (lambda x, w: x @ w[:, 1], {"matmul", "getitem"}),
    "transpose": (lambda x, w: x.t() * x.t().sin(), {"transpose"}),
    "permute": (lambda x, w: x.reshape(3, 2, 2).permute(2, 0, 1) ** 2, {"permute", "reshape"}),
    "reshape": (lambda x, w: x.reshape(2, 6).exp(), {"reshape"}),
    "unsqueeze_squeeze": (lambda x, w: x.unsqueeze(1).squeeze(1) * x.unsqueeze(0), {"unsqueeze", "squeeze"}),
    "getitem_basic": (lambda x, w: x[1:, None, -1] * x[..., 1:, 0:1], {"getitem"}),
    "getitem_int_array": (lambda x, w: x[[0, 2]] ** 2, {"getitem", "index_put"}),
    "getitem_repeated": (lambda x, w: x[[2, 0, 2], 1] * x[0, [3, 3, 1]], {"getitem", "index_put"}),
    "getitem_mask": (lambda x, w: x[MASK].exp(), {"getitem", "index_put"}),
    "getitem_row_mask": (lambda x, w: x[np.array([True, False, True]), 1:], {"getitem", "index_put"}),
    "setitem": (lambda x, w: _setitem(x), {"setitem", "getitem"}),
    "cat": (lambda x, w: symgrad.cat([x, x.t() @ x], dim=0), {"cat", "matmul", "transpose"}),
    "stack": (lambda x, w: symgrad.stack([x, x.sin()], dim=1), {"stack"}),
    "broadcast_to": (lambda x, w: x.sum(dim=0).expand(3, 4) * x, {"broadcast_to", "sum_to", "sum"}),
    "sum_to": (lambda x, w: (x[0] + x).sum(dim=0), {"sum_to", "sum"}),
    "cumsum": (lambda x, w: x.cumsum(1) ** 2, {"cumsum"}),
    "prod": (lambda x, w: x.prod(1) * x[:, 0], {"prod", "getitem"}),
    "tril": (lambda x, w: symgrad.tril(x, -1).exp(), {"tril"}),
    "cumprod": (lambda x, w: x.cumprod(1) * x, {"cumprod"}),
    "logcumsumexp": (lambda x, w: x.logcumsumexp(0) ** 2, {"logcumsumexp"}),
    "amax_amin": (lambda x, w: x.amax(1) * x.amin((0, 1)), {"amax", "amin"}),
    "amax_ties_keepdim": (lambda x, w: symgrad.cat([x, x], dim=1).amax((0, 1), keepdim=True) * x, {"amax", "cat"}),
    "amin_ties": (lambda x, w: symgrad.cat([x, x], dim=0).amin(0) ** 2, {"amin", "cat"}),
    "cholesky": (lambda x, w: symgrad.linalg.cholesky(_square(x) @ _square(x).t()).sin(),
                 {"cholesky", "getitem", "matmul", "transpose"}),
    "slogdet": (lambda x, w: symgrad.linalg.slogdet(_square(x)).logabsdet * symgrad.linalg.slogdet(-_square(x)).sign,
                {"det_sign", "logabsdet", "getitem"}),
    "det_logdet": (lambda x, w: _square(x).det() * _square(x).logdet(), {"det", "logdet", "getitem"}),
    "inverse": (lambda x, w: _square(x).inverse().sin(), {"inverse", "getitem"}),
    "solve": (lambda x, w: symgrad.linalg.solve(_square(x), x[:, 3]), {"solve", "getitem"}),
    "cholesky_batch": (lambda x, w: symgrad.linalg.cholesky(_spd_batch(x)) ** 2, {"cholesky", "reshape", "matmul"}),
    "slogdet_batch": (lambda x, w: _signed_logabsdet(_square(x) * symgrad.tensor([[[1.0]], [[-1.0]]])),
                      {"det_sign", "logabsdet", "getitem"}),
    # not structural: the rounding SymPy functions of forms/stable.py, which evaluate numbers as NumPy does
    "floor_divide_remainder_fmod": (lambda x, w: ((x * 10) // 1.0 * x + (x * 10) % 1.0 + symgrad.fmod(x, -0.3))[:, 1:3]
                                    + x[:, 1:3] % w[1:] + x[:, :2] // w[:3] * w[1:], {"getitem"}),
    "cross_entropy": (lambda x, w: symgrad.nn.functional.cross_entropy(x, symgrad.tensor([3, 0, 1])),
                      {"getitem", "log_softmax"}),
    "argmax_argmin": (lambda x, w: _traced(lambda: x * x.argmax(1, keepdim=True) + x.argmin(0) * x.argmax()
                                           + (w * w.argmin(keepdim=True)).sum()), {"argmax", "argmin"}),
}


def _traced(program):
    """``program()`` recorded as a transform records it: positions (argmax) too."""
    from symgrad.tape import tracing

    with tracing.tracing(()):
        return program()



def _square(x):
    """A well-conditioned 3x3 matrix made from x: its first three columns plus 4 I."""
    return x[:, :3] + 4 * symgrad.eye(3, dtype=x.dtype)


def _spd_batch(x):
    """Two symmetric positive definite 2x2 matrices made from x: ``M M^T + I`` per matrix."""
    m = x[:, :2].reshape(1, 3, 2).expand(2, 3, 2) * symgrad.tensor([[[1.0]], [[0.5]]])
    return m.transpose(1, 2) @ m + symgrad.eye(2, dtype=x.dtype)


def _signed_logabsdet(a):
    sign, logabsdet = symgrad.linalg.slogdet(a)
    return sign * logabsdet


def _setitem(x):
    out = x * 1.0
    out[[0, 2], 1] = x[1, :2] ** 2
    return out


def _leaves():
    x = symgrad.tensor(np.linspace(-1.1, 1.4, 12).reshape(3, 4), requires_grad=True, name="x")
    w = symgrad.tensor(np.linspace(0.3, -0.9, 8).reshape(4, 2), requires_grad=True, name="w")
    return x, w


def _evaluate(view, symbols: dict) -> np.ndarray:
    """A per-element view at the values of the tensors ``symbols`` maps its symbols to
    (element symbols are named ``x[i, j]``)."""
    values = {}
    for symbol, value in symbols.items():
        data = np.asarray(getattr(value, "_data", value))
        for k in np.ndindex(*data.shape):
            name = f"{symbol.name}[{', '.join(map(str, k))}]" if data.shape else symbol.name
            values[sp.Symbol(name, real=True)] = float(data[k])
    array = np.array(sp.Array(view).tolist() if not isinstance(view, sp.Expr) else view, dtype=object)
    return np.vectorize(lambda e: float(sp.sympify(e).xreplace(values)), otypes=[float])(array)


REFUSED = {  # op: a program running it, which per_element refuses (printers.NO_ELEMENTWISE_FORM says why)
    "svdvals": lambda x, w: symgrad.linalg.svdvals(x) ** 2,
    "svd_u": lambda x, w: apply_op("svd_u", x).exp(),
    "svd_v": lambda x, w: apply_op("svd_v", x).exp(),
    "sort_values": lambda x, w: symgrad.sort(x, 1).values ** 2,
    "sort_by": lambda x, w: apply_op("sort_by", x, x.detach().t().reshape(3, 4), dim=0).exp(),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_per_element_refuses_what_has_no_closed_form_per_element(name):
    x, w = _leaves()
    with pytest.raises(NotImplementedError, match=f"per_element: {name} has no closed form per element"):
        per_element(REFUSED[name](x, w))


def test_the_table_covers_every_structural_op():
    covered = set().union(*(ops for _, ops in PROGRAMS.values())) | set(REFUSED)
    structural = {name for name, op in OPS.items() if op.sympy is STRUCTURAL}
    assert structural - covered == set()


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_per_element_of_a_tensor_is_its_value(name):
    x, w = _leaves()
    out = PROGRAMS[name][0](x, w)
    symbols = tensor_graph(out)[1]
    np.testing.assert_allclose(_evaluate(per_element(out), symbols), out.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_per_element_of_a_gradient_is_the_engines(name):
    x, w = _leaves()
    out = PROGRAMS[name][0](x, w)
    loss = (out * symgrad.tensor(np.linspace(0.5, 1.5, out.numel()).reshape(out.shape))).sum()
    forms = symgrad.diff(loss, [x, w], allow_unused=True)  # some programs use x only
    loss.backward()
    symbols = tensor_graph(loss)[1]
    for leaf, form in zip((x, w), forms):
        view = per_element(form, indices=symbols)
        want = leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape)  # w unused: 0
        np.testing.assert_allclose(_evaluate(view, symbols) + np.zeros(leaf.shape), want,
                                   rtol=1e-11, atol=1e-13, err_msg=leaf.name)


def test_a_form_without_its_index_values_raises_naming_the_index():
    x, _ = _leaves()
    form = symgrad.diff((x[[0, 2]] ** 2).sum(), x)
    with pytest.raises(ValueError, match=r"idx0.*indices="):
        per_element(form)


def test_a_closed_form_takes_the_index_values_too():
    x, _ = _leaves()
    loss = (x[[0, 2, 0]] ** 2).sum()
    form = symgrad.diff(loss, x)
    indices = tensor_graph(loss)[1]
    assert symgrad.ClosedForm(form).per_element(indices) == per_element(form, indices=indices)
    loss.backward()
    np.testing.assert_allclose(_evaluate(per_element(form, indices=indices), indices), x.grad.numpy(), rtol=1e-13)
