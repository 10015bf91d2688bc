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

Found by this port (fixed; each also has a row in the table of its own test file):
``std`` of one element (or of equal ones) had a NaN gradient where the function is
constant (and ``vector_norm`` of ``ord=3`` at a zero vector); ``np.prod`` refused a tuple of
axes; ``np.concatenate(..., axis=None)`` crashed in backward; ``np.expand_dims`` refused a
tuple of axes; ``np.atleast_3d`` was not routed; ``einsum``'s sublist form raised an
``AttributeError``; ``np.round(t, 1)`` was unclear, and ``t.sin(u)`` overwrote ``u``.

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
    """Check one case in one spelling. The NumPy spelling records the same ops as symgrad's
    (what it tests is the routing), so its forward mode, second order and torch are left to
    the other."""
    args = [draw(rng, spec) for spec in case["args"]]
    ours = spelling == "symgrad"
    check_case(case[spelling], args, argnums=case.get("argnums", (0,)), order=case.get("order", 2) if ours else 1,
               reference=case.get("reference") or case.get("numpy"), torch_f=case.get("torch") if ours else None,
               rng=rng, forward=ours)


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
BINARY_SHAPES = [None, (2,), (3, 2), (1, 2)]  # autograd's scalar, vector and matrices, every pair
BINARY_PAIRS = [(a, b) for a in BINARY_SHAPES for b in BINARY_SHAPES] + [((), (3, 2)), ((3, 2), ()), ((), None)]


@pytest.mark.parametrize("spelling", ["symgrad", "numpy"])
@pytest.mark.parametrize("shape_a,shape_b", BINARY_PAIRS, ids=[f"{a}-{b}" for a, b in BINARY_PAIRS])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ufuncs(name, shape_a, shape_b, spelling, rng):
    ours, numpy_f, torch_f, lims_a, lims_b = BINARY[name]
    case = {"args": [(shape_a, lims_a), (shape_b, lims_b)], "argnums": (0, 1),
            "symgrad": ours, "numpy": numpy_f, "torch": torch_f}
    run(case, spelling, rng)


# ---------------------------------------------------------------- array functions (combo_check)


def _case(shapes, ours, numpy_f=None, torch_f=None, reference=None, argnums=None, order=2):
    """One combo: ``shapes`` of the arguments (all differentiated unless ``argnums``), the symgrad
    spelling, the NumPy spelling (on tensors too, where symgrad routes it; else only the
    value's ``reference``) and the torch spelling."""
    return {"args": [(shape, STD) for shape in shapes], "argnums": tuple(range(len(shapes))) if argnums is None
            else argnums, "symgrad": ours, "numpy": numpy_f, "reference": reference, "torch": torch_f, "order": order}


def _combos():
    cases = {}
    for axes in [None, (0, 1, 2), (0, 2, 1), (2, 0, 1), (2, 1, 0), (1, 0, 2), (1, 2, 0)]:
        dims = (2, 1, 0) if axes is None else axes
        cases[f"transpose-{axes}"] = _case([(2, 3, 4)], lambda x, d=dims: x.permute(*d),
                                           lambda x, a=axes: np.transpose(x, a), lambda t, d=dims: t.permute(*d))
    for source in range(3):
        for destination in range(3):
            cases[f"moveaxis-{source}-{destination}"] = _case(
                [(2, 3, 4)], lambda x, s=source, d=destination: symgrad.moveaxis(x, s, d),
                lambda x, s=source, d=destination: np.moveaxis(x, s, d),
                lambda t, s=source, d=destination: t.movedim(s, d))
    for shape in [(2, 3, 4), (3, 1)]:
        for repeats in [1, 2]:
            for axis in [None, 0, 1]:
                cases[f"repeat-{shape}-{repeats}-{axis}"] = _case(
                    [shape], lambda x, r=repeats, a=axis: symgrad.repeat_interleave(x, r, dim=a),
                    lambda x, r=repeats, a=axis: np.repeat(x, r, axis=a),
                    lambda t, r=repeats, a=axis: t.repeat_interleave(r, dim=a))
    for shape, reps in [((2, 1, 3, 1), (1, 4, 1, 2)), ((1, 2), (1, 2)), ((1, 2), (2, 3)), ((1, 2), (3, 2, 1)),
                        ((1,), (2,)), ((1,), 2)]:
        cases[f"tile-{shape}-{reps}"] = _case([shape], lambda x, r=reps: symgrad.tile(x, r if isinstance(r, tuple)
                                                                                      else (r,)),
                                              lambda x, r=reps: np.tile(x, r),
                                              lambda t, r=reps: t.tile(r if isinstance(r, tuple) else (r,)))
    for a, b in [((3, 3), (2, 2)), ((2, 2), (3, 3)), ((3,), (2,)), ((3, 1), (1, 2)), ((1, 3), (2, 1)), ((), (2, 2)),
                 ((2, 2), ()), ((3,), (2, 2)), ((2, 1), (3,))]:
        cases[f"kron-{a}-{b}"] = _case([a, b], symgrad.kron, np.kron, lambda s, t: _torch().kron(s, t))
    for a, b in [(None, None), (None, (3,)), ((3,), None), ((3,), (3,)), ((3,), (4, 3)), ((2, 3), (3,)),
                 ((2, 3), (4, 3)), ((2, 3), None)]:
        cases[f"inner-{a}-{b}"] = _case([a, b], symgrad.inner, np.inner, lambda s, t: _torch().inner(s, t))
    for a, b in [(None, None), (None, (3, 4)), ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                 ((2, 3), None)]:
        cases[f"dot-{a}-{b}"] = _case([a, b], _symgrad_dot, np.dot, _torch_dot)
    cases["outer"] = _case([(3,), (3,)], symgrad.outer, np.outer, lambda s, t: _torch().outer(s, t))
    for a in [(3,), (2, 3), (2, 2, 3)]:
        for b in [(3,), (3, 4), (2, 3, 4)]:
            cases[f"matmul-{a}-{b}"] = _case([a, b], symgrad.matmul, np.matmul, lambda s, t: s @ t)
    cases["matmul-broadcast"] = _case([(1, 2, 2), (3, 2, 1)], symgrad.matmul, np.matmul, lambda s, t: s @ t)
    tensordots = [((1, 3), (3,), [(1,), (0,)]), ((2, 3, 2), (3, 4, 2), [(1,), (0,)]), ((1, 3), (3, 1), [(1,), (0,)]),
                  ((3, 4, 2), (2, 3, 2), [(0,), (1,)]), ((3,), (1, 3), [(0,), (1,)]),
                  ((2, 3), (1, 2, 3), [(0, 1), (1, 2)]), ((2, 3, 4), (2, 2, 3, 4), [(1, 0), (2, 1)]),
                  ((2, 2), (2, 2), 1), ((4, 2, 2), (2, 2, 4), 2), ((4, 2, 2), (2, 2), 1), ((4,), (), 0),
                  ((2, 6), (6, 3), [[-1], [0]]), ((2, 6), (6, 3), [-1, 0]), ((2,), (2, 2), [0, 1])]
    for a, b, axes in tensordots:
        cases[f"tensordot-{a}-{b}-{axes}"] = _case(
            [a, b], lambda s, t, x=axes: symgrad.tensordot(s, t, _torch_axes(x)),
            lambda s, t, x=axes: np.tensordot(s, t, x), lambda s, t, x=axes: _torch().tensordot(s, t, _torch_axes(x)))
    for name in ["maximum", "minimum"]:
        for a in [(1,), (1, 4), (3, 4)]:
            for b in [(1,), (1, 4), (3, 4)]:
                cases[f"{name}-{a}-{b}"] = _case([a, b], getattr(symgrad, name), getattr(np, name),
                                                 lambda s, t, n=name: getattr(_torch(), n)(s, t))
    for shape in [(1,), (7,)]:
        cases[f"sort-{shape}"] = _case([shape], lambda x: symgrad.sort(x).values, np.sort,
                                       lambda t: t.sort().values)
    for k in (1, 2, 3):
        shapes = [None, (1,), (7,), (1, 4), (2, 4), (2, 4, 5)] + ([(2, 4, 3, 5)] if k == 3 else [])
        for shape in shapes:
            cases[f"atleast_{k}d-{shape}"] = _case([shape], getattr(symgrad, f"atleast_{k}d"),
                                                   getattr(np, f"atleast_{k}d"),
                                                   lambda t, k=k: getattr(_torch(), f"atleast_{k}d")(t))
    einsums = [("ij->ji", [(1, 1)]), ("ij->ji", [(3, 4)]), ("ij,jk->ik", [(2, 3), (3, 4)]),
               ("ijk,lji->lki", [(3, 4, 4), (4, 4, 3)]), ("k,nk->", [(5,), (10, 5)]), ("abcd->bd", [(3, 2, 3, 2)]),
               ("ij,k", [(3, 4), (3,)])]
    for equation, shapes in einsums:
        cases[f"einsum-{equation}-{shapes[0]}"] = _case(
            shapes, lambda *a, e=equation: symgrad.einsum(e, *a), lambda *a, e=equation: np.einsum(e, *a),
            lambda *a, e=equation: _torch().einsum(e, *a))
    for shape in [(5, 5), (4, 5), (5, 4), (3, 4, 5)]:
        for offset in [-1, 0, 1]:
            cases[f"trace-{shape}-{offset}"] = _case(
                [shape], lambda x, o=offset: symgrad.diagonal(x, o).sum(-1), lambda x, o=offset: np.trace(x, o),
                lambda t, o=offset: t.diagonal(o).sum(-1))
    for k in [-1, 0, 1]:
        cases[f"diag-{k}"] = _case([(5, 5)], lambda x, k=k: symgrad.diag(x, k), lambda x, k=k: np.diag(x, k),
                                   lambda t, k=k: t.diag(k))
        cases[f"diag_flat-{k}"] = _case([(5,)], lambda x, k=k: symgrad.diag(x, k), lambda x, k=k: np.diag(x, k),
                                        lambda t, k=k: t.diag(k))
        for shape in [(5, 5), (5, 5, 4)]:
            for name in ["tril", "triu"]:
                cases[f"{name}-{shape}-{k}"] = _case(
                    [shape], lambda x, n=name, k=k: getattr(symgrad, n)(x, k),
                    lambda x, n=name, k=k: getattr(np, n)(x, k), lambda t, n=name, k=k: getattr(t, n)(k))
    for axis1 in range(3):
        for axis2 in range(3):
            cases[f"swapaxes-{axis1}-{axis2}"] = _case(
                [(3, 4, 5)], lambda x, a=axis1, b=axis2: symgrad.transpose(x, a, b),
                reference=lambda x, a=axis1, b=axis2: np.swapaxes(x, a, b),
                torch_f=lambda t, a=axis1, b=axis2: t.swapaxes(a, b))
    for shape, size, axis in [((1,), 1, 0), ((7,), 1, 0), ((4, 8), 1, 0), ((4, 8), 2, 1), ((4, 8), [1, 3], 0),
                              ((4, 4, 4), 2, 2), ((4, 4, 4), [1, 1, 2], 1)]:
        cases[f"split-{shape}-{size}-{axis}"] = _case(
            [shape], lambda x, s=size, a=axis: symgrad.split(x, s, a),
            reference=lambda x, s=size, a=axis: np.split(x, _split_indices(x.shape[a], s), axis=a),
            torch_f=lambda t, s=size, a=axis: t.split(s, a))
    for shapes, axis in [([(1,), (3,)], 0), ([(2, 2), (2, 2)], 0), ([(2, 2), (2, 2)], 1), ([(2, 2, 2), (2, 2, 2)], 2)]:
        cases[f"concatenate-{shapes[0]}-{axis}"] = _case(
            shapes, lambda *a, x=axis: symgrad.cat(list(a), x), lambda *a, x=axis: np.concatenate(a, axis=x),
            lambda *a, x=axis: _torch().cat(a, x))
    for count, axis in [(1, 0), (1, 1), (2, 0), (2, 1)]:
        cases[f"stack-{count}-{axis}"] = _case(
            [(2,)] * count, lambda *a, x=axis: symgrad.stack(list(a), x), lambda *a, x=axis: np.stack(a, axis=x),
            lambda *a, x=axis: _torch().stack(a, x))
    for width in [0, 3, (3,), (3, 2), ((3, 2),), ((1, 2), (3, 4)), ((0, 0), (0, 0))]:
        cases[f"pad-{width}"] = _case(
            [(2, 2)], lambda x, w=width: symgrad.nn.functional.pad(x, _torch_pad(w, 2)),
            reference=lambda x, w=width: np.pad(x, w, "constant"),
            torch_f=lambda t, w=width: _torch().nn.functional.pad(t, _torch_pad(w, 2)))
    return cases


def _symgrad_dot(a, b):
    """``np.dot`` in symgrad's names: a product with a scalar, else ``matmul``."""
    return a * b if a.ndim == 0 or b.ndim == 0 else symgrad.matmul(a, b)


def _torch_dot(a, b):
    return a * b if a.ndim == 0 or b.ndim == 0 else a @ b


def _torch_axes(axes):
    """NumPy's ``axes`` for ``tensordot`` in torch's spelling (an int, or two lists)."""
    if isinstance(axes, int):
        return axes
    first, second = axes
    return ([first] if isinstance(first, int) else list(first), [second] if isinstance(second, int) else list(second))


def _split_indices(n, size):
    """The split points NumPy wants for torch's ``split`` sizes (one size, or a list of them)."""
    sizes = [size] * (n // size) + ([n % size] if n % size else []) if isinstance(size, int) else size
    return list(np.cumsum(sizes)[:-1])


def _torch_pad(width, ndim):
    """``np.pad``'s widths (an int, a pair, or a pair per dim) as torch's flat list, last dim first."""
    pairs = np.broadcast_to(np.array(width, dtype=int).reshape(-1, 2) if np.size(width) > 1
                            else np.full((1, 2), np.ravel(width)[0]), (ndim, 2))
    return [int(v) for pair in pairs[::-1] for v in pair]


COMBOS = _combos()


@pytest.mark.parametrize("name,spelling", spellings(COMBOS))
def test_array_functions(name, spelling, rng):
    run(COMBOS[name], spelling, rng)


def test_repeat_zero_times_is_empty(rng):
    x = rng.standard_normal((2, 3))
    for axis in [None, 0, 1]:
        assert symgrad.repeat_interleave(symgrad.tensor(x), 0, dim=axis).shape == np.repeat(x, 0, axis=axis).shape


def test_dot_of_3d_arrays_refuses(rng):
    a, b = symgrad.tensor(rng.standard_normal((2, 2, 3))), symgrad.tensor(rng.standard_normal((3, 4)))
    with pytest.raises(TypeError, match="not matmul"):
        np.dot(a, b)


def test_einsum_forms_symgrad_does_not_parse_refuse(rng):
    a, b = symgrad.tensor(rng.standard_normal((2, 3))), symgrad.tensor(rng.standard_normal((3, 4)))
    with pytest.raises(TypeError, match="sublist form"):
        symgrad.einsum(a, [0, 1], b, [1, 2], [0, 2])
    with pytest.raises(NotImplementedError, match="ellipses"):
        symgrad.einsum("...ij,...jk->...ik", a, b)
    with pytest.raises(NotImplementedError, match="repeated within one operand"):
        symgrad.einsum("ii->i", symgrad.tensor(rng.standard_normal((3, 3))))


MISSING = {"logaddexp2": 2, "fmax": 2, "fmin": 2, "diff": 1, "gradient": 1, "partition": None, "rollaxis": None,
           "cross": 2, "vsplit": None, "hsplit": None, "dsplit": None, "array_split": None, "vstack": None,
           "hstack": None, "column_stack": None}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_numpy_functions_refuse(name, rng):
    t = symgrad.tensor(rng.standard_normal((4, 4, 3)))
    args = {1: (t,), 2: (t, t), None: None}[MISSING[name]]
    if args is None:
        args = {"partition": (t, 1), "rollaxis": (t, 1), "vsplit": (t, 2), "hsplit": (t, 2), "dsplit": (t, 3),
                "array_split": (t, 2),
                "vstack": ([t, t],), "hstack": ([t, t],), "column_stack": ([t, t],)}[name]
    with pytest.raises(TypeError, match=f"np.{name} has no op"):
        getattr(np, name)(*args)


# ---------------------------------------------------------------- NumPy's argument forms on tensors
# Beyond autograd's rows: the other ways its users call the same functions (operators with
# NumPy values on the left, tuple axes, axis=None, negative axes). Found here:
# np.concatenate(..., axis=None) gave the right value but its backward crashed on both
# engines (the cat op read dim=None as "every dim"), and np.expand_dims(t, (0, 2)) raised
# "int() argument must be ... not 'tuple'".

FORMS = {  # name: (shape, function of a tensor in NumPy's spelling)
    "float - t": ((2, 3), lambda t: 2.0 - t),
    "float / t": ((2, 3), lambda t: 2.0 / (t + 3.0)),
    "float % t": ((2, 3), lambda t: 2.5 % (t + 3.0)),
    "float ** t": ((2, 3), lambda t: 2.0 ** t),
    "ndarray - t": ((2, 3), lambda t: np.ones(3) - t),
    "ndarray / t": ((2, 3), lambda t: np.ones(3) / (t + 3.0)),
    "ndarray % t": ((2, 3), lambda t: np.full(3, 2.5) % (t + 3.0)),
    "ndarray ** t": ((2, 3), lambda t: np.full(3, 2.5) ** t),
    "ndarray @ t": ((2, 3), lambda t: np.ones((4, 2)) @ t),
    "np.float64 / t": ((2, 3), lambda t: np.float64(2.0) / (t + 3.0)),
    "0-d ndarray - t": ((2, 3), lambda t: np.array(2.0) - t),
    "np.remainder(float, t)": ((2, 3), lambda t: np.remainder(2.5, t + 3.0)),
    "np.logaddexp(float, t)": ((2, 3), lambda t: np.logaddexp(1.0, t)),
    "np.maximum(float, t)": ((2, 3), lambda t: np.maximum(0.1, t)),
    "np.sum of 0-d, keepdims": ((), lambda t: np.sum(t, keepdims=True)),
    "np.std, tuple axis, keepdims": ((2, 3), lambda t: np.std(t, axis=(0, 1), keepdims=True)),
    "np.var, ddof, axis -1": ((2, 3), lambda t: np.var(t, axis=-1, ddof=1)),
    "np.max, negative tuple axis": ((2, 3), lambda t: np.max(t, axis=(-1, -2))),
    "np.cumsum, axis -1": ((2, 3), lambda t: np.cumsum(t, axis=-1)),
    "np.cumprod, flattened": ((2, 3), lambda t: np.cumprod(t)),
    "np.clip, one bound": ((2, 3), lambda t: np.clip(t, None, 0.5)),
    "np.expand_dims, tuple axis": ((2, 3), lambda t: np.expand_dims(t, (0, 2))),
    "np.expand_dims, negative tuple axis": ((2, 3), lambda t: np.expand_dims(t, (-1, 0))),
    "np.transpose, negative axes": ((2, 3), lambda t: np.transpose(t, (-1, -2))),
    "np.moveaxis, negative": ((2, 3), lambda t: np.moveaxis(t, -1, 0)),
    "np.tile, int": ((2, 3), lambda t: np.tile(t, 2)),
    "np.repeat, per-element counts": ((2, 3), lambda t: np.repeat(t, [1, 2, 3], axis=1)),
    "np.roll, tuple": ((2, 3), lambda t: np.roll(t, (1, 2), axis=(0, 1))),
    "np.flip, tuple axis": ((2, 3), lambda t: np.flip(t, axis=(0, 1))),
    "np.sort, axis None": ((2, 3), lambda t: np.sort(t, axis=None)),
    "np.sort, axis 0": ((2, 3), lambda t: np.sort(t, axis=0)),
    "np.trace, axis1 and axis2": ((2, 3), lambda t: np.trace(np.stack([t, t * 2, t * 3]), axis1=1, axis2=2)),
    "np.tensordot, axes 0": ((2, 3), lambda t: np.tensordot(t, t, 0)),
    "np.stack, axis -1": ((2, 3), lambda t: np.stack([t, t * 2], axis=-1)),
    "np.concatenate, axis -1": ((2, 3), lambda t: np.concatenate([t, t * 2], axis=-1)),
    "np.concatenate, axis None": ((2, 3), lambda t: np.concatenate([t, t * 2], axis=None)),
    "np.broadcast_to": ((2, 3), lambda t: np.broadcast_to(t, (4, 2, 3))),
}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_numpy_argument_forms(name, rng):
    shape, f = FORMS[name]
    check_case(f, [rng.uniform(-2.0, 2.0, shape)], reference=f, order=2, rng=rng)


def test_cat_refuses_dim_none(rng):
    t = symgrad.tensor(rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match="dim must be an int, got None"):
        symgrad.cat([t, t], None)
