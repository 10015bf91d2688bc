"""Port of HIPS autograd's ``tests/test_systematic.py`` (with its ``numpy_utils.py``): every
reduction, unary and binary ufunc and array function it covers, over many argument shapes.

autograd's ``stat_check`` runs each reduction on a Python float, a 0-d array, vectors and
matrices with ``axis`` in ``None``/``0``/``1`` and ``keepdims`` both ways; here the same
shapes are joined by negative and tuple axes on a 3-d array. ``unary_ufunc_check`` runs
each ufunc on a scalar, a vector and two matrices drawn from the function's domain;
``binary_ufunc_check`` runs each binary ufunc on every pair of those shapes, so scalars
and broadcasting against ``(1, 2)`` meet every other shape. ``combo_check`` of the array
functions runs every combination of the listed arguments (sampled below where the cross
product is large: transpose's axes, moveaxis, repeat, tensordot, einsum, trace...).

Each case is written with symgrad's names (``x.amax(dim, keepdim)``, ``symgrad.acosh``,
``symgrad.tensordot(a, b, dims)``) and, where NumPy spells it and symgrad routes it, with
NumPy's names on tensors (``np.sum(t, axis=..., keepdims=...)``); both spellings are checked
by :func:`.systematic.check_case`: the value against NumPy's, ``symgrad.grad`` and eager
``.backward()`` on each engine against central differences, the second derivative
(autograd's order 2) and torch's gradient where torch has the function.

Left out, each for a reason:

* the complex-valued rows (``test_complex``, ``real``, ``imag``, ``conj``, ``conjugate``,
  ``angle``, ``real_if_close``, the complex ``kron``/``dot``/``matmul``... arguments): symgrad
  is real-valued;
* ``logaddexp2``, ``fmax``/``fmin``, ``diff``, ``gradient``, ``partition``, ``rollaxis``,
  ``cross``, ``select``, ``vsplit``/``hsplit``/``dsplit``/``array_split``, ``vstack``/
  ``hstack``/``row_stack``/``column_stack``: symgrad has no such function (the NumPy
  spellings raise ``TypeError``, asserted in :func:`test_missing_numpy_functions_refuse`);
  ``split`` is covered with PyTorch's meaning (``symgrad.split``, sizes not indices);
* ``msort`` (removed in NumPy 2) and einsum's sublist form (``np.einsum(a, [0, 1], ...)``,
  which ``symgrad.einsum`` does not parse: asserted to raise);
* ``repeat`` with ``repeats=0`` (an empty result has no gradient to check; its value is
  checked) and ``np.dot`` of 3-d arrays (symgrad refuses it: asserted).
"""
from __future__ import annotations

import operator

import numpy as np
import pytest

import symgrad

from .systematic import check_case

# ---------------------------------------------------------------- inputs


def draw(rng, spec):
    """An argument from ``(shape, lims)``: uniform in ``lims`` as autograd's ``transform`` of
    ``rand``; a ``None`` shape is a Python float."""
    shape, (lo, hi) = spec
    if shape is None:
        return float(lo + (hi - lo) * rng.uniform())
    return lo + (hi - lo) * rng.uniform(size=shape)


def run(case, spelling, rng):
    args = [draw(rng, spec) for spec in case["args"]]
    f = case[spelling]
    check_case(f, args, argnums=case.get("argnums", (0,)), order=case.get("order", 2),
               reference=case.get("numpy"), torch_f=case.get("torch") if spelling == "symgrad" else None, rng=rng)


def _torch():
    return pytest.importorskip("torch", exc_type=ImportError)


def spellings(cases):
    """(case id, spelling) pairs: the symgrad spelling always, the NumPy one where it has one."""
    return [pytest.param(name, spelling, id=f"{name}-{spelling}") for name in cases
            for spelling in ("symgrad", "numpy") if cases[name].get(spelling) is not None]


# ---------------------------------------------------------------- reductions (stat_check)

STD = (-2.0, 2.0)


def _all(axis, ndim):
    """``None`` as the tuple of every dim (torch's ``amax`` and ``var`` spell "all dims" so)."""
    return tuple(range(ndim)) if axis is None else axis


REDUCTIONS = {  # name: (symgrad spelling, NumPy function, torch spelling or None)
    "sum": (lambda x, axis, k: x.sum(dim=axis, keepdim=k), np.sum,
            lambda t, axis, k: t.sum(dim=_all(axis, t.ndim), keepdim=k)),
    "mean": (lambda x, axis, k: x.mean(dim=axis, keepdim=k), np.mean,
             lambda t, axis, k: t.mean(dim=_all(axis, t.ndim), keepdim=k)),
    "max": (lambda x, axis, k: x.amax(dim=axis, keepdim=k), np.max,
            lambda t, axis, k: t.amax(dim=_all(axis, t.ndim), keepdim=k)),
    "min": (lambda x, axis, k: x.amin(dim=axis, keepdim=k), np.min,
            lambda t, axis, k: t.amin(dim=_all(axis, t.ndim), keepdim=k)),
    "prod": (lambda x, axis, k: x.prod(dim=axis, keepdim=k), np.prod, None),
    "var": (lambda x, axis, k: symgrad.var(x, axis, correction=0, keepdim=k), np.var,
            lambda t, axis, k: t.var(dim=_all(axis, t.ndim), correction=0, keepdim=k)),
    "std": (lambda x, axis, k: symgrad.std(x, axis, correction=0, keepdim=k), np.std,
            lambda t, axis, k: t.std(dim=_all(axis, t.ndim), correction=0, keepdim=k)),
}

STAT_SHAPES = (  # (shapes, axes, keepdims): autograd's stat_check, then negative and tuple axes
    [None, ()], [None], [False],
) + (
    [(3,), (2, 3), (1, 3)], [None, 0], [True, False],
) + (
    [(2, 3), (1, 3)], [None, 0, 1], [True, False],
) + (
    [(2, 1, 3)], [-1, -2, (0, 2), (-1, 0), (0, 1, 2)], [True, False],
)
STAT_CASES = sorted({(shape, axis, keep) for shapes, axes, keeps in zip(*[iter(STAT_SHAPES)] * 3)
                     for shape in shapes for axis in axes for keep in keeps}, key=repr)


def _stat_id(case):
    shape, axis, keep = case
    return f"{'float' if shape is None else shape}-axis={axis}-keepdims={keep}"


@pytest.mark.parametrize("spelling", ["symgrad", "numpy"])
@pytest.mark.parametrize("shape,axis,keep", STAT_CASES, ids=[_stat_id(c) for c in STAT_CASES])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions(name, shape, axis, keep, spelling, rng):
    ours, numpy_f, torch_f = REDUCTIONS[name]
    if name == "prod" and isinstance(axis, tuple):  # Tensor.prod takes one dim, as PyTorch's
        torch_f = None
        if spelling == "symgrad":
            with pytest.raises(TypeError, match="prod takes one int dim"):
                ours(symgrad.tensor(draw(rng, (shape, STD))), axis, keep)
            return
    case = {
        "args": [(shape, STD)],
        "symgrad": lambda x: ours(x, axis, keep),
        "numpy": lambda x: numpy_f(x, axis=axis, keepdims=keep),
        "torch": None if torch_f is None else (lambda t: torch_f(t, axis, keep)),
    }
    run(case, spelling, rng)


# ---------------------------------------------------------------- unary ufuncs (unary_ufunc_check)

UNARY = {  # NumPy name: (symgrad function, torch name, lims)
    "sin": (symgrad.sin, "sin", STD),
    "abs": (symgrad.abs, "abs", (0.1, 4.0)),
    "absolute": (symgrad.abs, "absolute", (0.1, 4.0)),
    "arccosh": (symgrad.acosh, "arccosh", (1.1, 4.0)),
    "arcsinh": (symgrad.asinh, "arcsinh", (-0.9, 0.9)),
    "arctanh": (symgrad.atanh, "arctanh", (-0.9, 0.9)),
    "ceil": (symgrad.ceil, "ceil", (-1.5, 1.5)),
    "cos": (symgrad.cos, "cos", STD),
    "cosh": (symgrad.cosh, "cosh", STD),
    "deg2rad": (symgrad.deg2rad, "deg2rad", STD),
    "exp": (symgrad.exp, "exp", STD),
    "exp2": (symgrad.exp2, "exp2", STD),
    "expm1": (symgrad.expm1, "expm1", STD),
    "floor": (symgrad.floor, "floor", (-1.5, 1.5)),
    "log": (symgrad.log, "log", (0.2, 2.0)),
    "log10": (symgrad.log10, "log10", (0.2, 2.0)),
    "log1p": (symgrad.log1p, "log1p", (0.2, 2.0)),
    "log2": (symgrad.log2, "log2", (0.2, 2.0)),
    "rad2deg": (lambda x: symgrad.rad2deg(x) / 50.0, "rad2deg", STD),
    "sign": (symgrad.sign, "sign", STD),
    "sinh": (symgrad.sinh, "sinh", STD),
    "sqrt": (symgrad.sqrt, "sqrt", (1.0, 3.0)),
    "square": (symgrad.square, "square", STD),
    "tan": (symgrad.tan, "tan", (-1.1, 1.1)),
    "tanh": (symgrad.tanh, "tanh", STD),
}
UNARY_SHAPES = [None, (), (2,), (3, 2), (1, 2)]


def _numpy_unary(name):
    if name == "rad2deg":  # autograd divides by 50 to keep the values in range
        return lambda x: np.rad2deg(x) / 50.0
    return getattr(np, name)


def _torch_unary(name):
    def call(t):
        torch = _torch()
        out = getattr(torch, name)(t)
        return out / 50.0 if name == "rad2deg" else out
    return call


@pytest.mark.parametrize("spelling", ["symgrad", "numpy"])
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ufuncs(name, shape, spelling, rng):
    ours, torch_name, lims = UNARY[name]
    case = {"args": [(shape, lims)], "symgrad": ours, "numpy": _numpy_unary(name), "torch": _torch_unary(torch_name)}
    run(case, spelling, rng)


# ---------------------------------------------------------------- binary ufuncs (binary_ufunc_check)

BINARY = {  # name: (symgrad function, NumPy function, torch function, lims of a, lims of b)
    "add": (symgrad.add, np.add, lambda a, b: a + b, STD, STD),
    "logaddexp": (symgrad.logaddexp, np.logaddexp, lambda a, b: _torch().logaddexp(a, b), STD, STD),
    "remainder": (symgrad.remainder, np.remainder, lambda a, b: _torch().remainder(a, b), (-0.9, 0.9), (0.7, 1.9)),
    "true_divide": (symgrad.div, np.true_divide, lambda a, b: a / b, STD, (0.8, 1.2)),
    "true_divide_neg": (symgrad.div, np.true_divide, lambda a, b: a / b, STD, (-0.3, -2.0)),
    "mod": (symgrad.remainder, np.mod, lambda a, b: _torch().remainder(a, b), STD, (0.8, 2.1)),
    "mod_neg": (symgrad.remainder, np.mod, lambda a, b: _torch().remainder(a, b), STD, (-0.3, -2.0)),
    "op_mul": (symgrad.mul, operator.mul, operator.mul, STD, STD),
    "op_add": (symgrad.add, operator.add, operator.add, STD, STD),
    "op_sub": (symgrad.sub, operator.sub, operator.sub, STD, STD),
    "op_mod": (symgrad.remainder, operator.mod, operator.mod, STD, (0.3, 2.0)),
    "op_mod_neg": (symgrad.remainder, operator.mod, operator.mod, STD, (-0.3, -2.0)),
}
BINARY_SHAPES = [None, (2,), (3, 2), (1, 2), ()]
BINARY_PAIRS = [(a, b) for a in BINARY_SHAPES for b in BINARY_SHAPES]


@pytest.mark.parametrize("spelling", ["symgrad", "numpy"])
@pytest.mark.parametrize("shape_a,shape_b", BINARY_PAIRS, ids=[f"{a}-{b}" for a, b in BINARY_PAIRS])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ufuncs(name, shape_a, shape_b, spelling, rng):
    ours, numpy_f, torch_f, lims_a, lims_b = BINARY[name]
    case = {"args": [(shape_a, lims_a), (shape_b, lims_b)], "argnums": (0, 1),
            "symgrad": ours, "numpy": numpy_f, "torch": torch_f}
    run(case, spelling, rng)
