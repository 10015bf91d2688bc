"""Port of JAX's ``tests/lax_autodiff_test.py``: forward and reverse gradients, to order 1 and
2, of ``jax.lax``'s primitives, written with symgrad's ops.

Each case is checked by :func:`.systematic.check_case` (value against NumPy's, ``symgrad.grad``
and eager ``.backward()`` on both engines against central differences, ``symgrad.jvp``, the
second derivative where JAX checks order 2, torch's gradient where torch has the op) at TWO
input points drawn one after the other, so a transform compiled and cached at the first
point has to give the right answer at the second; ``symgrad.jacobian`` and ``symgrad.vjp``
are checked at both points as well (:func:`check_at_two_points`). JAX's ``check_grads`` is
the model: order 2 means reverse-over-reverse and forward mode.

Mapping of ``lax`` names: ``rem`` is ``symgrad.fmod`` (C's remainder, the sign of the
dividend); ``logistic`` is ``sigmoid``; ``dot_general`` with batch dims is ``einsum`` /
batched ``matmul``; ``broadcast_in_dim`` is ``unsqueeze`` + ``broadcast_to``; ``pad`` is
``nn.functional.pad``; ``dynamic_slice`` is ``narrow``; ``index_take``/``gather`` are
advanced indexing, ``take_along_dim`` and ``gather``; ``scatter_add`` is ``scatter_add``;
``reduce_window`` is ``avg_pool2d``/``max_pool2d``; ``conv_general_dilated`` is ``conv1d``/
``conv2d``; ``clamp(lo, x, hi)`` is ``clamp(x, lo, hi)``; ``top_k`` is ``topk``.

Found by this port (fixed, both engines): the second derivative of ``prod`` at a zero (one
or two zeros in a slice) and of ``cumprod`` after a slice's first zero was 0 -- the
gradient there is 0 in value but not in its derivative, so ``grad`` of ``grad``, ``hessian``
and double backward were silently wrong (``prod_with_1_zeros``, ``cumprod_with_1_zeros``).
``prod``'s gradient is now the product of the others written without a division (right to
every order); ``cumprod``'s is right to second order (what JAX checks). ``sinc``'s second
derivative at 0 was 0 (PyTorch's, whose derivative is masked to 0 there) where it is
``-pi^2/3`` (JAX's): the derivative's form at 0 is now its Maclaurin series. Checked and agreeing
with torch's conventions: the gradient at ties and kinks (:func:`test_gradient_at_ties_matches_torch`).

Left out, each for a reason:

* complex dtypes (``real``, ``imag``, ``complex``, ``conj`` and every complex row): symgrad is
  real-valued; float32/float16 rows: the checks run in float64;
* ``cbrt``, ``convert_element_type``, ``cummax``/``cummin``, ``reduce_precision``,
  ``sort_key_val``, ``scatter`` (overwrite), ``scatter_max``/``scatter_min``, interior
  (strided) padding, lhs dilation of conv (transposed conv): symgrad has no such op;
* gather/scatter ``mode="clip"``/``"fill"`` with out-of-bounds indices: symgrad raises
  ``IndexError`` for an out-of-bounds index (asserted in :func:`test_out_of_bounds_index_refused`);
* ``stop_gradient`` of a dict, ``linear_transpose``, ``scatter_apply``: API tests, not lax
  gradients (``detach`` is covered by the ported JAX api suite).
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F

from .systematic import check_case, outputs


def _torch():
    return pytest.importorskip("torch", exc_type=ImportError)


def _tf(name):
    """torch's function of that name, looked up when called (so a missing torch skips)."""
    def call(*args, **kwargs):
        obj = _torch()
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj(*args, **kwargs)
    return call


def check_transforms_at(f, args, argnums, eps=1e-6):
    """``symgrad.jacobian`` and ``symgrad.vjp`` of ``f``'s first output at ``args`` against
    central differences (one column of the Jacobian per input element)."""
    first = lambda *a: outputs(f(*a))[0]

    def value(a):
        return first(*[symgrad.tensor(x) for x in a]).detach().numpy()

    out0 = value(args)
    cotangent = np.cos(np.arange(out0.size) + 0.25).reshape(out0.shape)
    primal_out, pullback = symgrad.vjp(first, *args)
    np.testing.assert_allclose(np.asarray(primal_out), out0, rtol=1e-12, atol=1e-12, err_msg="symgrad.vjp primal")
    pulled = pullback(cotangent)
    for i in argnums:
        columns = np.zeros(out0.shape + np.shape(args[i]))
        for k in np.ndindex(*np.shape(args[i])):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[i][k] += eps
            minus[i][k] -= eps
            columns[(...,) + k] = (value(plus) - value(minus)) / (2 * eps)
        jac = np.asarray(symgrad.jacobian(first, argnums=i)(*args))
        np.testing.assert_allclose(jac.reshape(columns.shape), columns, rtol=1e-5, atol=1e-7,
                                   err_msg=f"symgrad.jacobian, argnum {i}")
        expected = np.tensordot(cotangent, columns, axes=out0.ndim)
        np.testing.assert_allclose(np.asarray(pulled[i]).reshape(np.shape(args[i])), expected, rtol=1e-5, atol=1e-7,
                                   err_msg=f"symgrad.vjp, argnum {i}")


def check_at_two_points(case, rng, jacobian=True):
    """Every check of ``check_case`` plus jacobian/vjp, at a first and then a second draw."""
    for _ in range(2):
        args = [np.array(draw(rng), dtype=np.float64) for draw in case["draws"]]
        check_case(case["f"], args, argnums=case["argnums"], order=case["order"], reference=case["numpy"],
                   torch_f=case["torch"], rng=rng, rtol=case["rtol"], atol=case["atol"])
        if jacobian:
            check_transforms_at(case["f"], args, case["argnums"])


def normal(*shape, scale=1.0):
    return lambda rng: scale * rng.standard_normal(shape)


def uniform(low, high, *shape):
    return lambda rng: rng.uniform(low, high, shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(*shape):
    """A random permutation of ``0.5 * arange``: no ties, so sorts and maxima have one gradient."""
    return lambda rng: rng.permutation(np.arange(int(np.prod(shape))) * 0.5).reshape(shape)


def with_zeros(count, *shape):
    """Normal entries with ``count`` of them set to exactly zero (prod's special point)."""
    def draw(rng):
        x = rng.standard_normal(shape).ravel()
        x[rng.choice(x.size, count, replace=False)] = 0.0
        return x.reshape(shape)
    return draw


def case(draws, f, numpy_f=None, torch_f=None, argnums=(0,), order=2, rtol=1e-5, atol=1e-7):
    return {"draws": draws, "f": f, "numpy": numpy_f, "torch": torch_f, "argnums": argnums, "order": order,
            "rtol": rtol, "atol": atol}


# ---- elementwise (JAX's LAX_GRAD_OPS), on one shape from each of JAX's compatible groups ----

UNARY = {  # name: (symgrad function, NumPy, torch name, draw of a shape)
    "neg": (symgrad.neg, np.negative, "neg", lambda s: normal(*s)),
    "floor": (symgrad.floor, np.floor, "floor", lambda s: uniform(0.1, 0.4, *s)),
    "ceil": (symgrad.ceil, np.ceil, "ceil", lambda s: uniform(0.1, 0.4, *s)),
    "round": (symgrad.round, np.round, "round", lambda s: uniform(0.1, 0.4, *s)),
    "exp": (symgrad.exp, np.exp, "exp", lambda s: normal(*s, scale=0.5)),
    "exp2": (symgrad.exp2, np.exp2, "exp2", lambda s: normal(*s, scale=0.5)),
    "expm1": (symgrad.expm1, np.expm1, "expm1", lambda s: normal(*s)),
    "log": (symgrad.log, np.log, "log", lambda s: positive(*s)),
    "log1p": (symgrad.log1p, np.log1p, "log1p", lambda s: positive(*s)),
    "sinh": (symgrad.sinh, np.sinh, "sinh", lambda s: normal(*s)),
    "cosh": (symgrad.cosh, np.cosh, "cosh", lambda s: normal(*s)),
    "tanh": (symgrad.tanh, np.tanh, "tanh", lambda s: normal(*s)),
    "sin": (symgrad.sin, np.sin, "sin", lambda s: normal(*s)),
    "cos": (symgrad.cos, np.cos, "cos", lambda s: normal(*s)),
    "tan": (symgrad.tan, np.tan, "tan", lambda s: uniform(-1.3, 1.3, *s)),
    "asin": (symgrad.asin, np.arcsin, "asin", lambda s: uniform(-0.9, 0.9, *s)),
    "acos": (symgrad.acos, np.arccos, "acos", lambda s: uniform(-0.9, 0.9, *s)),
    "atan": (symgrad.atan, np.arctan, "atan", lambda s: normal(*s)),
    "asinh": (symgrad.asinh, np.arcsinh, "asinh", lambda s: normal(*s)),
    "acosh": (symgrad.acosh, np.arccosh, "acosh", lambda s: uniform(1.2, 3.0, *s)),
    "atanh": (symgrad.atanh, np.arctanh, "atanh", lambda s: uniform(-0.9, 0.9, *s)),
    "erf": (symgrad.erf, None, "erf", lambda s: normal(*s, scale=0.5)),
    "erfc": (symgrad.erfc, None, "erfc", lambda s: normal(*s, scale=0.5)),
    "erf_inv": (symgrad.erfinv, None, "erfinv", lambda s: uniform(-0.8, 0.8, *s)),
    "bessel_i0e": (symgrad.i0e, None, "special.i0e", lambda s: normal(*s)),
    "bessel_i1e": (symgrad.i1e, None, "special.i1e", lambda s: normal(*s)),
    "abs": (symgrad.abs, np.abs, "abs", lambda s: away_from_zero(*s)),
    "sqrt": (symgrad.sqrt, np.sqrt, "sqrt", lambda s: positive(*s)),
    "rsqrt": (symgrad.rsqrt, lambda x: 1 / np.sqrt(x), "rsqrt", lambda s: positive(*s)),
    "logistic": (symgrad.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "sigmoid", lambda s: normal(*s)),
    "square": (symgrad.square, np.square, "square", lambda s: normal(*s)),
    "reciprocal": (symgrad.reciprocal, np.reciprocal, "reciprocal", lambda s: away_from_zero(*s)),
    "lgamma": (symgrad.lgamma, None, "lgamma", lambda s: positive(*s)),
    "digamma": (symgrad.digamma, None, None, lambda s: positive(*s)),  # torch's trigamma: only to ~5e-10
}

BINARY = {  # name: (symgrad function, NumPy, torch name, draw of a shape, order)
    "add": (symgrad.add, np.add, "add", normal, 2),
    "sub": (symgrad.sub, np.subtract, "sub", normal, 2),
    "mul": (symgrad.mul, np.multiply, "mul", normal, 2),
    "div": (symgrad.div, np.divide, "div", away_from_zero, 1),
    "max": (symgrad.maximum, np.maximum, "maximum", normal, 2),
    "min": (symgrad.minimum, np.minimum, "minimum", normal, 2),
    "atan2": (symgrad.atan2, np.arctan2, "atan2", away_from_zero, 2),
    "pow": (symgrad.pow, np.power, "pow", positive, 2),
    "hypot": (symgrad.hypot, np.hypot, "hypot", away_from_zero, 2),
}

UNARY_SHAPES = [(), (3,), (2, 3, 4)]
BINARY_SHAPES = [((3,), (3,)), ((), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (2, 1, 4))]


def _unary_cases():
    cases = {}  # sampled: each op on one of the shapes, in turn
    for k, (name, (f, numpy_f, torch_name, draw)) in enumerate(UNARY.items()):
        shape = UNARY_SHAPES[k % len(UNARY_SHAPES)]
        cases[f"{name}_{shape}"] = case([draw(shape)], f, numpy_f, torch_name and _tf(torch_name))
    return cases


def _binary_cases():
    cases = {}  # sampled: each op on two of the shape pairs, in turn
    for k, (name, (f, numpy_f, torch_name, draw, order)) in enumerate(BINARY.items()):
        for shapes in (BINARY_SHAPES[k % len(BINARY_SHAPES)], BINARY_SHAPES[(k + 1) % len(BINARY_SHAPES)]):
            cases[f"{name}_{shapes}"] = case([draw(*shapes[0]), draw(*shapes[1])], f, numpy_f, _tf(torch_name),
                                             argnums=(0, 1), order=order)
    return cases


ELEMENTWISE = {**_unary_cases(), **_binary_cases()}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_op_grad(name, rng):
    check_at_two_points(ELEMENTWISE[name], rng, jacobian=False)


SPECIAL_VALUES = {  # JAX's LAX_GRAD_SPECIAL_VALUE_TESTS, plus the ops' own special points
    "sinh": (symgrad.sinh, [0.0]), "cosh": (symgrad.cosh, [0.0]), "tanh": (symgrad.tanh, [0.0, 1000.0]),
    "sin": (symgrad.sin, [0.0, np.pi, np.pi / 2, np.pi / 4]), "cos": (symgrad.cos, [0.0, np.pi, np.pi / 2, np.pi / 4]),
    "tan": (symgrad.tan, [0.0]), "asin": (symgrad.asin, [0.0]), "acos": (symgrad.acos, [0.0]),
    "atan": (symgrad.atan, [0.0, 1000.0]), "erf": (symgrad.erf, [0.0, 10.0]), "erfc": (symgrad.erfc, [0.0, 10.0]),
    "sigmoid": (symgrad.sigmoid, [0.0, 40.0, -40.0]), "softplus": (symgrad.softplus, [0.0, 40.0, -40.0]),
    "expm1": (symgrad.expm1, [0.0, 1e-8]), "log1p": (symgrad.log1p, [0.0, 1e-8]),
    "erfinv": (symgrad.erfinv, [0.0]), "sinc": (symgrad.sinc, [0.0, 0.5, 1.0]),
}


def _torch_of(name):
    return {"sigmoid": "sigmoid", "softplus": "nn.functional.softplus", "erfinv": "erfinv", "sinc": "sinc"}.get(name,
                                                                                                              name)


@pytest.mark.parametrize("name", sorted(SPECIAL_VALUES))
def test_op_grad_special_value(name, rng):
    f, values = SPECIAL_VALUES[name]
    # every special value in turn through the same compiled transforms: a frozen value shows
    for value in values + values[::-1]:
        check_case(f, [np.array(value)], rng=rng, torch_f=_tf(_torch_of(name)), rtol=1e-5, atol=1e-7)


# ---- the structural ops ----

def _index_cases():
    idx = np.array([0, 2, 1])
    return {
        "index_take_axis0": case([normal(3, 4, 5)], lambda x: x[idx], lambda x: x[idx], lambda x: x[idx]),
        "index_take_negative": case([normal(3, 4, 5)], lambda x: x[np.array([-1, -2])],
                                    lambda x: x[np.array([-1, -2])], lambda x: x[np.array([-1, -2])]),
        "index_take_axes_0_1": case([normal(3, 4, 5)], lambda x: x[np.array([0, 2]), np.array([1, 3])],
                                    lambda x: x[np.array([0, 2]), np.array([1, 3])],
                                    lambda x: x[np.array([0, 2]), np.array([1, 3])]),
        "index_take_axes_0_2": case([normal(3, 4, 5)], lambda x: x[np.array([0, 2]), :, np.array([1, 3])],
                                    lambda x: x[np.array([0, 2]), :, np.array([1, 3])],
                                    lambda x: x[np.array([0, 2]), :, np.array([1, 3])]),
        "gather_repeated_index": case([normal(10)], lambda x: x[np.array([0, 0, 0])],
                                      lambda x: x[np.array([0, 0, 0])], lambda x: x[np.array([0, 0, 0])]),
        "gather_windows": case([normal(10, 5)], lambda x: x[np.array([[0], [2], [1]]), np.arange(3)],
                               lambda x: x[np.array([[0], [2], [1]]), np.arange(3)],
                               lambda x: x[np.array([[0], [2], [1]]), np.arange(3)]),
        "take_along_dim": case([normal(4, 5)], lambda x: symgrad.take_along_dim(x, _tad(), 1),
                               lambda x: np.take_along_axis(x, _tad(), 1),
                               lambda x: _torch().take_along_dim(x, _torch().tensor(_tad()), 1)),
        "gather_dim0": case([normal(4, 5)], lambda x: symgrad.gather(x, 0, _tad0()),
                            lambda x: np.take_along_axis(x, _tad0(), 0),
                            lambda x: _torch().gather(x, 0, _torch().tensor(_tad0()))),
        "index_select_repeated": case([normal(4, 5)], lambda x: symgrad.index_select(x, 1, _sel()),
                                      lambda x: x[:, _sel()],
                                      lambda x: _torch().index_select(x, 1, _torch().tensor(_sel()))),
        "scatter_add_x_and_updates": case(
            [normal(4, 5), normal(2, 5)], lambda x, y: symgrad.scatter_add(x, 0, _scatter_index(), y),
            None, lambda x, y: _torch().scatter_add(x, 0, _torch().tensor(_scatter_index()), y), argnums=(0, 1)),
        "diag_set_as_where": case(  # JAX's testScatterGradSymbolicZeroUpdate: x.at[diag].set(arange)
            [normal(5, 5)], lambda x: symgrad.where(symgrad.tensor(np.eye(5, dtype=bool)),
                                                    symgrad.tensor(np.diag(np.arange(5.0))), x),
            lambda x: np.where(np.eye(5, dtype=bool), np.diag(np.arange(5.0)), x)),
        "boolean_mask": case([normal(3, 4)], lambda x: x[_mask()], lambda x: x[_mask()],
                             lambda x: x[_torch().tensor(_mask())]),
    }


def _tad():
    return np.array([[0, 4], [1, 1], [3, 0], [2, 2]])


def _tad0():
    return np.array([[0, 3, 3, 1, 0], [2, 2, 0, 0, 1]])


def _sel():
    return np.array([4, 0, 4, 2])


def _scatter_index():
    return np.array([[0, 1, 3, 3, 0], [3, 1, 0, 2, 0]])  # repeats: contributions add


def _mask():
    return np.array([[True, False, True, True], [False, False, True, False], [True, True, False, False]])


def _slice_cases():
    return {
        "slice": case([normal(5, 3)], lambda x: x[1:3, :2], lambda x: x[1:3, :2], lambda x: x[1:3, :2]),
        "slice_strided": case([normal(7, 5, 3)], lambda x: x[1:6:2, ::3, 1:], lambda x: x[1:6:2, ::3, 1:],
                              lambda x: x[1:6:2, ::3, 1:]),
        "slice_negative_step": case([normal(7, 4)], lambda x: x[::-2, 1], lambda x: x[::-2, 1],
                                    lambda x: x.flip(0)[::2, 1]),
        "dynamic_slice": case([normal(5, 3)], lambda x: symgrad.narrow(x, 0, 1, 3), lambda x: x[1:4],
                              lambda x: _torch().narrow(x, 0, 1, 3)),
        "dynamic_slice_dim1": case([normal(5, 6)], lambda x: x.narrow(1, 2, 2), lambda x: x[:, 2:4],
                                   lambda x: x.narrow(1, 2, 2)),
        "select_int": case([normal(3, 4, 5)], lambda x: symgrad.select(x, 1, 2), lambda x: x[:, 2],
                           lambda x: _torch().select(x, 1, 2)),
        "ellipsis_newaxis": case([normal(3, 4)], lambda x: x[..., None, 1:], lambda x: x[..., None, 1:],
                                 lambda x: x[..., None, 1:]),
    }


def _shape_cases():
    return {
        "transpose_perm": case([normal(2, 3, 4)], lambda x: x.permute(2, 0, 1),
                               lambda x: np.transpose(x, (2, 0, 1)), lambda x: x.permute(2, 0, 1)),
        "transpose_swap": case([normal(3, 4)], lambda x: x.T, lambda x: x.T, lambda x: x.T),
        "reshape": case([normal(2, 3, 4)], lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6),
                        lambda x: x.reshape(4, 6)),
        "reshape_infer": case([normal(2, 3, 4)], lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2),
                              lambda x: x.reshape(-1, 2)),
        "broadcast_in_dim": case([normal(3)], lambda x: symgrad.broadcast_to(x.unsqueeze(1), (2, 3, 4)),
                                 lambda x: np.broadcast_to(x[:, None], (2, 3, 4)),
                                 lambda x: x.unsqueeze(1).broadcast_to((2, 3, 4))),
        "broadcast_to_size1": case([normal(3, 1)], lambda x: x.expand(2, 3, 5),
                                   lambda x: np.broadcast_to(x, (2, 3, 5)), lambda x: x.expand(2, 3, 5)),
        "squeeze": case([normal(3, 1, 4)], lambda x: x.squeeze(1), lambda x: x[:, 0], lambda x: x.squeeze(1)),
        "pad": case([normal(3, 4)], lambda x: F.pad(x, (1, 2, 0, 3)), lambda x: np.pad(x, ((0, 3), (1, 2))),
                    lambda x: _torch().nn.functional.pad(x, (1, 2, 0, 3))),
        "pad_value": case([normal(3, 4)], lambda x: F.pad(x, (2, 0), value=1.5),
                          lambda x: np.pad(x, ((0, 0), (2, 0)), constant_values=1.5),
                          lambda x: _torch().nn.functional.pad(x, (2, 0), value=1.5)),
        "pad_negative": case([normal(4, 5)], lambda x: F.pad(x, (-1, 2, 1, -2)),
                             lambda x: np.pad(x[:-2, 1:], ((1, 0), (0, 2))),
                             lambda x: _torch().nn.functional.pad(x, (-1, 2, 1, -2))),
        "tile": case([normal(1, 1, 4)], lambda x: x.tile((1, 3, 1)), lambda x: np.tile(x, (1, 3, 1)),
                     lambda x: x.tile((1, 3, 1))),
        "tile_2d": case([normal(2, 3)], lambda x: symgrad.tile(x, (1, 2)), lambda x: np.tile(x, (1, 2)),
                        lambda x: x.tile((1, 2))),
        "repeat_interleave": case([normal(3, 2)], lambda x: x.repeat_interleave(2, dim=0),
                                  lambda x: np.repeat(x, 2, axis=0), lambda x: x.repeat_interleave(2, dim=0)),
        "roll": case([normal(3, 4)], lambda x: symgrad.roll(x, 2, 1), lambda x: np.roll(x, 2, 1),
                     lambda x: _torch().roll(x, 2, 1)),
        "flip": case([normal(3, 4)], lambda x: symgrad.flip(x, (0, 1)), lambda x: np.flip(x, (0, 1)),
                     lambda x: _torch().flip(x, (0, 1))),
    }


def _concat_split_cases():
    cases = {}
    for base in [(4,), (3, 4), (2, 3, 4)]:
        for dim in range(len(base)):
            shapes = [base[:dim] + (size,) + base[dim + 1:] for size in (3, 1, 4)]
            cases[f"concatenate_{base}_dim{dim}"] = case(
                [normal(*s) for s in shapes], lambda *a, d=dim: symgrad.cat(a, d),
                lambda *a, d=dim: np.concatenate(a, d), lambda *a, d=dim: _torch().cat(a, d), argnums=(0, 1, 2))
            length = 7
            shape = base[:dim] + (length,) + base[dim + 1:]
            cases[f"split_{base}_dim{dim}"] = case(
                [normal(*shape)], lambda x, d=dim: symgrad.split(x, [2, 0, 5], d),
                lambda x, d=dim: np.split(x, [2, 2], d), lambda x, d=dim: _torch().split(x, [2, 0, 5], d))
    cases["stack"] = case([normal(3, 2), normal(3, 2)], lambda a, b: symgrad.stack([a, b], 1),
                          lambda a, b: np.stack([a, b], 1), lambda a, b: _torch().stack([a, b], 1), argnums=(0, 1))
    return cases


def _dot_cases():
    return {  # JAX's testDotGrad / testDotGeneralContractAndBatchGrads
        "dot_vv": case([normal(3), normal(3)], symgrad.dot, np.dot, _tf("dot"), argnums=(0, 1)),
        "dot_mv": case([normal(4, 3), normal(3)], symgrad.matmul, np.matmul, _tf("matmul"), argnums=(0, 1)),
        "dot_vm": case([normal(3), normal(3, 4)], symgrad.matmul, np.matmul, _tf("matmul"), argnums=(0, 1)),
        "dot_mm": case([normal(5, 2), normal(2, 4)], symgrad.matmul, np.matmul, _tf("matmul"), argnums=(0, 1)),
        "dot_general_batch": case([normal(3, 3, 2), normal(3, 2, 4)], symgrad.matmul, np.matmul, _tf("matmul"),
                                  argnums=(0, 1)),
        "dot_general_batch_broadcast": case([normal(2, 3, 3, 2), normal(3, 2, 4)], symgrad.matmul, np.matmul,
                                            _tf("matmul"), argnums=(0, 1)),
        "dot_general_einsum_batch_first": case(
            [normal(3, 4, 2), normal(3, 2, 5)], lambda a, b: symgrad.einsum("bij,bjk->bik", a, b),
            lambda a, b: np.einsum("bij,bjk->bik", a, b), lambda a, b: _torch().einsum("bij,bjk->bik", a, b),
            argnums=(0, 1)),
        "dot_general_einsum_batch_last": case(
            [normal(4, 2, 3), normal(2, 5, 3)], lambda a, b: symgrad.einsum("ijb,jkb->ikb", a, b),
            lambda a, b: np.einsum("ijb,jkb->ikb", a, b), lambda a, b: _torch().einsum("ijb,jkb->ikb", a, b),
            argnums=(0, 1)),
        "dot_general_two_contractions": case(
            [normal(2, 3, 4), normal(4, 3, 5)], lambda a, b: symgrad.tensordot(a, b, ([1, 2], [1, 0])),
            lambda a, b: np.tensordot(a, b, ([1, 2], [1, 0])),
            lambda a, b: _torch().tensordot(a, b, ([1, 2], [1, 0])), argnums=(0, 1)),
        "dot_same_operand": case([normal(3, 3)], lambda a: a @ a, lambda a: a @ a, lambda a: a @ a),
        "outer": case([normal(3), normal(4)], symgrad.outer, np.outer, _tf("outer"), argnums=(0, 1)),
        "kron": case([normal(2, 2), normal(2, 3)], symgrad.kron, np.kron, _tf("kron"), argnums=(0, 1)),
    }


def _conv_cases():
    cases = {}
    for b, i, j, strides, padding in [(2, 2, 3, (1, 1), 0), (3, 2, 2, (1, 2), 1), (2, 3, 2, (2, 1), 1)]:  # sampled
                cases[f"conv2d_b{b}_i{i}_j{j}_s{strides}_p{padding}"] = case(
                    [normal(b, i, 3, 4), normal(j, i, 1, 2)],
                    lambda x, w, s=strides, p=padding: F.conv2d(x, w, stride=s, padding=p), None,
                    lambda x, w, s=strides, p=padding: _torch().nn.functional.conv2d(x, w, stride=s, padding=p),
                    argnums=(0, 1))
    cases["conv2d_rhs_dilation"] = case(
        [normal(1, 2, 4, 3), normal(2, 2, 2, 2)], lambda x, w: F.conv2d(x, w, dilation=(2, 1), padding=(1, 0)), None,
        lambda x, w: _torch().nn.functional.conv2d(x, w, dilation=(2, 1), padding=(1, 0)), argnums=(0, 1))
    cases["conv1d"] = case([normal(4, 2, 1), normal(3, 2, 1)], F.conv1d, None,
                           lambda x, w: _torch().nn.functional.conv1d(x, w), argnums=(0, 1))
    cases["conv1d_strided_padded"] = case(
        [normal(2, 3, 7), normal(2, 3, 3)], lambda x, w: F.conv1d(x, w, stride=2, padding=2, dilation=2), None,
        lambda x, w: _torch().nn.functional.conv1d(x, w, stride=2, padding=2, dilation=2), argnums=(0, 1))
    return cases


def _reduce_cases():
    cases = {}
    for name, f, numpy_f, torch_f, draw in [
        ("sum", lambda x, d: x.sum(d), np.sum, lambda x, d: x.sum(d), normal),
        ("mean", lambda x, d: x.mean(d), np.mean, lambda x, d: x.mean(d), normal),
        ("prod", lambda x, d: x.prod(d), np.prod, lambda x, d: x.prod(d), normal),
        ("amax", lambda x, d: x.amax(d), np.amax, lambda x, d: x.amax(d), distinct),
        ("amin", lambda x, d: x.amin(d), np.amin, lambda x, d: x.amin(d), distinct),
        ("logsumexp", lambda x, d: x.logsumexp(d), None, lambda x, d: x.logsumexp(d), normal),
    ]:
        for shape, dims in [((3, 4, 5), 0), ((3, 4, 5), 2), ((3, 4, 5), (0, 2)), ((4,), 0)]:
            if name == "prod" and not isinstance(dims, int):
                ours = lambda x, d=dims, f=f: x.prod(d[0]).prod(d[1] - 1)  # prod takes one dim
                tf = lambda x, d=dims: x.prod(d[0]).prod(d[1] - 1)
            else:
                ours = lambda x, d=dims, f=f: f(x, d)
                tf = lambda x, d=dims, t=torch_f: t(x, d)
            reference = None if numpy_f is None else (lambda x, d=dims, n=numpy_f: n(x, axis=d))
            cases[f"reduce_{name}_{shape}_{dims}"] = case([draw(*shape)], ours, reference, tf)
    cases["reduce_sum_all"] = case([normal(3, 4)], lambda x: x.sum(), np.sum, lambda x: x.sum())
    cases["reduce_max_dim_values"] = case([distinct(3, 4)], lambda x: x.max(1).values, lambda x: x.max(1),
                                          lambda x: x.max(1).values)
    for zeros in (1, 2, 3):  # JAX's testReduceGrad of prod at zeros (order 2)
        cases[f"prod_with_{zeros}_zeros"] = case([with_zeros(zeros, 6)], lambda x: x.prod(), np.prod,
                                                 lambda x: x.prod())
        cases[f"prod_dim_with_{zeros}_zeros"] = case([with_zeros(zeros, 3, 4)], lambda x: x.prod(1),
                                                     lambda x: x.prod(1), lambda x: x.prod(1))
    cases["std"] = case([normal(3, 4)], lambda x: x.std(1), lambda x: x.std(1, ddof=1), lambda x: x.std(1))
    cases["var"] = case([normal(3, 4)], lambda x: x.var(0), lambda x: x.var(0, ddof=1), lambda x: x.var(0))
    return cases


def _window_cases():
    return {  # JAX's testReduceWindowGrad: reduce_window add / max as pools
        "avg_pool2d": case([normal(1, 2, 3, 4)], lambda x: F.avg_pool2d(x, 2, stride=1), None,
                           lambda x: _torch().nn.functional.avg_pool2d(x, 2, stride=1)),
        "avg_pool2d_strided": case([normal(1, 2, 6, 6)], lambda x: F.avg_pool2d(x, (2, 3), stride=(2, 3)), None,
                                   lambda x: _torch().nn.functional.avg_pool2d(x, (2, 3), stride=(2, 3))),
        "max_pool2d": case([distinct(1, 2, 4, 4)], lambda x: F.max_pool2d(x, 2), None,
                           lambda x: _torch().nn.functional.max_pool2d(x, 2)),
        "max_pool2d_overlapping": case([distinct(1, 1, 5, 5)], lambda x: F.max_pool2d(x, 3, stride=1), None,
                                       lambda x: _torch().nn.functional.max_pool2d(x, 3, stride=1)),
    }


def _cumulative_cases():
    cases = {}
    ops = [("cumsum", "cumsum", np.cumsum), ("cumprod", "cumprod", np.cumprod), ("cumlogsumexp", "logcumsumexp", None)]
    for k, (name, op, numpy_f) in enumerate(ops):
        for shape, axis in [((10,), 0), ((3, 4, 5), k % 3), ((3, 4, 5), (k + 1) % 3)]:  # sampled axes
            for reverse in (False, True):
                if reverse:
                    ours = lambda x, a=axis, o=op: getattr(x.flip(a), o)(a).flip(a)
                    ref = None if numpy_f is None else (
                        lambda x, a=axis, n=numpy_f: np.flip(n(np.flip(x, a), a), a))
                else:
                    ours = lambda x, a=axis, o=op: getattr(x, o)(a)
                    ref = None if numpy_f is None else (lambda x, a=axis, n=numpy_f: n(x, a))
                cases[f"{name}_{shape}_axis{axis}_reverse{reverse}"] = case(
                    [normal(*shape, scale=0.5)], ours, ref, ours)
    for zeros in (1, 2):
        cases[f"cumprod_with_{zeros}_zeros"] = case([with_zeros(zeros, 6)], lambda x: x.cumprod(0),
                                                    lambda x: np.cumprod(x, 0), lambda x: x.cumprod(0))
    return cases


def _sort_cases():
    cases = {}
    for shape in [(5,), (5, 7), (4, 3, 2)]:
        for axis in sorted({len(shape) - 1, 0}):
            cases[f"sort_{shape}_axis{axis}"] = case(
                [distinct(*shape)], lambda x, a=axis: symgrad.sort(x, a).values, lambda x, a=axis: np.sort(x, a),
                lambda x, a=axis: _torch().sort(x, a).values)
            cases[f"sort_descending_{shape}_axis{axis}"] = case(
                [distinct(*shape)], lambda x, a=axis: symgrad.sort(x, a, descending=True).values,
                lambda x, a=axis: -np.sort(-x, a), lambda x, a=axis: _torch().sort(x, a, descending=True).values)
    for shape in [(4,), (5, 5), (3, 1, 4)]:
        for k in (1, 3):
            for axis in (0, -1):
                if shape[axis] < k:
                    continue
                cases[f"top_k_{shape}_k{k}_axis{axis}"] = case(
                    [distinct(*shape)], lambda x, k=k, a=axis: symgrad.topk(x, k, a).values, None,
                    lambda x, k=k, a=axis: _torch().topk(x, k, a).values)
    cases["sort_key_val_via_indices"] = case(  # lax.sort_key_val: values reordered by the keys' sort
        [normal(5, 3)], lambda v: symgrad.take_along_dim(v, symgrad.sort(symgrad.tensor(_keys()), 1).indices, 1),
        lambda v: np.take_along_axis(v, np.argsort(_keys(), 1), 1))
    return cases


def _keys():
    return np.array([[2.0, 0.0, 1.0], [0.5, 1.5, 0.0], [3.0, 1.0, 2.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]])


def _select_cases():
    return {
        "select_n": case([normal(3, 4), normal(3, 4)], lambda a, b: symgrad.where(a > b, a, b),
                         lambda a, b: np.where(a > b, a, b), lambda a, b: _torch().where(a > b, a, b),
                         argnums=(0, 1)),
        "select_broadcast": case([normal(3, 1), normal(4)], lambda a, b: symgrad.where(symgrad.tensor(_cond()), a, b),
                                 lambda a, b: np.where(_cond(), a, b),
                                 lambda a, b: _torch().where(_torch().tensor(_cond()), a, b), argnums=(0, 1)),
        "masked_fill": case([normal(3, 4)], lambda a: a.masked_fill(symgrad.tensor(_cond()), 2.0),
                            lambda a: np.where(_cond(), 2.0, a),
                            lambda a: a.masked_fill(_torch().tensor(_cond()), 2.0)),
        "clamp_operand": case([normal(2, 3), normal(2, 3), normal(2, 3)], lambda x, lo, hi: symgrad.clamp(x, lo - 10, hi + 10),
                              lambda x, lo, hi: np.clip(x, lo - 10, hi + 10),
                              lambda x, lo, hi: _torch().clamp(x, lo - 10, hi + 10), argnums=(0, 1, 2)),
        "clamp_low_wins": case([normal(2, 3), normal(2, 3), normal(2, 3)], lambda x, lo, hi: symgrad.clamp(x - 10, lo, hi + 10),
                               lambda x, lo, hi: np.clip(x - 10, lo, hi + 10),
                               lambda x, lo, hi: _torch().clamp(x - 10, lo, hi + 10), argnums=(0, 1, 2)),
        "clamp_high_wins": case([normal(2, 3), normal(2, 3), normal(2, 3)], lambda x, lo, hi: symgrad.clamp(x + 10, lo - 10, hi),
                                lambda x, lo, hi: np.clip(x + 10, lo - 10, hi),
                                lambda x, lo, hi: _torch().clamp(x + 10, lo - 10, hi), argnums=(0, 1, 2)),
        "clamp_scalar_bounds": case([normal()], lambda x: symgrad.clamp(x, -10.0, 10.0),
                                    lambda x: np.clip(x, -10.0, 10.0), lambda x: _torch().clamp(x, -10.0, 10.0)),
        "rem_x_5x8_y_1x8": case([uniform(-9, 9, 5, 8), _rem_divisor(1, 8)], symgrad.fmod, np.fmod, _tf("fmod"),
                                argnums=(0, 1)),
        "rem_x_1x8_y_5x8": case([uniform(-9, 9, 1, 8), _rem_divisor(5, 8)], symgrad.fmod, np.fmod, _tf("fmod"),
                                argnums=(0, 1)),
        "remainder_python_sign": case([uniform(-9, 9, 5, 8), _rem_divisor(1, 8)], symgrad.remainder, np.remainder,
                                      _tf("remainder"), argnums=(0, 1)),
        "pow_integer_exponent_negative_base": case([normal(3, 4)], lambda x: x ** 3, lambda x: x ** 3,
                                                   lambda x: x ** 3),
        "pow_integer_exponent_tensor": case([normal(3)], lambda x: symgrad.pow(x, symgrad.tensor(2.0)),
                                            lambda x: x ** 2.0, lambda x: x ** 2.0),
        "pow_negative_integer_exponent": case([away_from_zero(3)], lambda x: x ** -2, lambda x: x ** -2.0,
                                              lambda x: x ** -2),
        "pow_real_exponent": case([positive(4)], lambda x: x ** 1.7, lambda x: x ** 1.7, lambda x: x ** 1.7),
        "pow_scalar_base": case([normal(4)], lambda x: 2.5 ** x, lambda x: 2.5 ** x, lambda x: 2.5 ** x),
    }


def _cond():
    return np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])


def _rem_divisor(*shape):
    return lambda rng: rng.uniform(0.1, 5, shape) * rng.choice([-1.0, 1.0], shape)


STRUCTURAL = {**_index_cases(), **_slice_cases(), **_shape_cases(), **_concat_split_cases(), **_dot_cases(),
              **_conv_cases(), **_reduce_cases(), **_window_cases(), **_cumulative_cases(), **_sort_cases(),
              **_select_cases()}


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
def test_structural_op_grad(name, rng):
    check_at_two_points(STRUCTURAL[name], rng)


REFUSED = {  # what lax (or torch) computes and symgrad refuses with a clear error instead
    "pad in reflect mode": (lambda x: F.pad(x, (1, 1), mode="reflect"), (2, 4), NotImplementedError,
                            "mode 'reflect' is not implemented"),
    "out-of-bounds gather (mode clip/fill)": (lambda x: x[np.array([0, 7])], (5,), IndexError, "out of bounds"),
    "out-of-bounds scatter_add": (lambda x: symgrad.scatter_add(x, 0, np.array([5]), symgrad.ones(1)), (5,),
                                  IndexError, r"index values must be in \[0, 5\)"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_out_of_bounds_index_refused(name, rng):
    f, shape, error, message = REFUSED[name]
    with pytest.raises(error, match=message):
        f(symgrad.tensor(rng.standard_normal(shape), requires_grad=True))


def test_argmax_index_in_a_traced_function_is_refused(rng):
    # x[argmax] in a transformed function: the index would be frozen at the first call, so
    # symgrad refuses it and names the fix (JAX recomputes it per call under jit)
    x = rng.permutation(np.arange(12.0)).reshape(3, 4)
    f = lambda x: symgrad.take_along_dim(x, x.argmax(1, keepdim=True), 1).sum()
    with pytest.raises(symgrad.UntraceableError, match="argmax"):
        symgrad.grad(f)(x)
    for engine in ("symbolic", "tape"):  # eagerly it is fine: one at each row's maximum
        t = symgrad.tensor(x, requires_grad=True)
        with symgrad.backward_engine(engine):
            f(t).backward()
        np.testing.assert_array_equal(t.grad.numpy(), (x == x.max(1, keepdims=True)).astype(float))


TIES = {  # JAX's commented-out MaxSomeEqual/MinSomeEqual rows and the kinks of clamp/abs: not
    # differentiable there, so the convention is checked against torch's (the one symgrad follows)
    "maximum_ties": (lambda a, b: symgrad.maximum(a, b), lambda a, b: _torch().maximum(a, b)),
    "minimum_ties": (lambda a, b: symgrad.minimum(a, b), lambda a, b: _torch().minimum(a, b)),
    "amax_ties": (lambda a, b: (a * b).amax(1), lambda a, b: (a * b).amax(1)),
    "max_dim_ties": (lambda a, b: (a + b).max(1).values, lambda a, b: (a + b).max(1).values),
    "max_all_ties": (lambda a, b: (a - b).max(), lambda a, b: (a - b).max()),
    "clamp_at_bounds": (lambda a, b: symgrad.clamp(a, b, b + 1), lambda a, b: _torch().clamp(a, b, b + 1)),
    "abs_at_zero": (lambda a, b: symgrad.abs(a - b), lambda a, b: _torch().abs(a - b)),
    "sort_ties": (lambda a, b: symgrad.sort(a * b, 1).values, lambda a, b: _torch().sort(a * b, dim=1, stable=True).values),
}


@pytest.mark.parametrize("name", sorted(TIES))
def test_gradient_at_ties_matches_torch(name):
    torch = _torch()
    ours, theirs = TIES[name]
    a0 = np.array([[1.0, 2.0, 2.0, 0.0], [3.0, 3.0, 3.0, 1.0]])
    b0 = np.array([[1.0, 2.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # a == b in places, a * b tied in rows
    weights = np.cos(np.arange(theirs(torch.tensor(a0), torch.tensor(b0)).numel()) + 0.5)
    loss = lambda x, y: (ours(x, y).reshape(-1) * symgrad.tensor(weights)).sum()
    gradient = symgrad.grad(loss, argnums=(0, 1))
    for shift in (0.0, 0.25):  # the same compiled gradient at a second point, tied in the same places
        a, b = a0 + shift, b0 + shift
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
        (theirs(ta, tb).reshape(-1) * torch.tensor(weights)).sum().backward()
        expected = (ta.grad.numpy(), tb.grad.numpy())
        for k, got in enumerate(gradient(a, b)):
            np.testing.assert_allclose(got, expected[k], atol=1e-12, err_msg=f"symgrad.grad, shift {shift}")
        for engine in ("symbolic", "tape"):
            xa, xb = symgrad.tensor(a, requires_grad=True), symgrad.tensor(b, requires_grad=True)
            with symgrad.backward_engine(engine):
                loss(xa, xb).backward()
            for k, got in enumerate((xa.grad, xb.grad)):
                np.testing.assert_allclose(got.numpy(), expected[k], atol=1e-12,
                                           err_msg=f"{engine} backward, shift {shift}")


def test_higher_order_gradient_of_reciprocal_and_sinc():
    # JAX's testHigherOrderGradientOfReciprocal: six nested grads of 1/x (written 1/x) at 4,
    # 6!/4^7 exactly; and sinc's fourth derivative at 0, pi^4/5 (its series' x^4 term, JAX's
    # _sinc_maclaurin), then at a second point through the same nested transforms
    sixth = lambda x: 1 / x
    fourth = symgrad.sinc
    for _ in range(6):
        sixth = symgrad.grad(sixth)
    for _ in range(4):
        fourth = symgrad.grad(fourth)
    assert sixth(np.array(4.0)) == 720 / 4 ** 7
    np.testing.assert_allclose(sixth(np.array(2.0)), 720 / 2 ** 7, rtol=1e-14)
    np.testing.assert_allclose(fourth(np.array(0.0)), np.pi ** 4 / 5, rtol=1e-14)
    x = 0.05  # inside the series' range: against the closed form's 4th derivative at x
    import sympy as sp
    t = sp.Symbol("t")
    expected = float(sp.diff(sp.sin(sp.pi * t) / (sp.pi * t), t, 4).subs(t, sp.Rational(1, 20)).evalf(30))
    np.testing.assert_allclose(fourth(np.array(x)), expected, rtol=1e-9)
