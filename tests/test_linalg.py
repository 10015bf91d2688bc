"""The linear-algebra ops (``det``, ``logdet``, ``inverse``, ``solve``, ``cholesky``,
``slogdet``, ``svdvals``) and the matrix norms beyond the op table's rows: matrix-notation closed forms,
values against NumPy/SciPy, second derivatives on both engines against PyTorch, traced
transforms against a fresh eager run, and the refused shapes and orders."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.symbolic
from symgrad.tape import apply_op
from symgrad.ops.linalg import POSITIVE_DEFINITE, SEPARATED_SINGULAR_VALUES, SQUARE


def _matrix(rng, shape=(3, 3)):
    return SQUARE.sample(rng, shape)


def test_closed_forms_print_in_matrix_notation(rng):
    A = symgrad.tensor(_matrix(rng), requires_grad=True, name="A")
    assert symgrad.symbolic.text(symgrad.diff(A.logdet(), A)) == "inverse(A).T"
    assert symgrad.symbolic.text(symgrad.diff(A.det(), A)) == "det(A)*inverse(A).T"
    assert "A}^{-T}" in symgrad.latex(symgrad.diff(A.logdet(), A))
    assert r"\det" in symgrad.latex(A.det().expr)


LOSSES = {
    "det": lambda L, a, b: L.linalg.det(a),
    "logdet": lambda L, a, b: a.logdet() * 2,
    "inverse": lambda L, a, b: (L.linalg.inv(a) * b).sum(),
    "solve_matrix": lambda L, a, b: (L.linalg.solve(a, b) ** 2).sum(),
    "solve_vector": lambda L, a, b: (L.linalg.solve(a, b[:, 0]) ** 3).sum(),
}


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_second_derivatives_match_torch(loss, engine, rng):
    torch = pytest.importorskip("torch")
    a_data, b_data = _matrix(rng), rng.standard_normal((3, 3))
    direction = rng.standard_normal((3, 3))

    def hvp(L, tensor):
        a = tensor(a_data, requires_grad=True)
        b = tensor(b_data)
        (g,) = L.autograd.grad(LOSSES[loss](L, a, b), a, create_graph=True)
        (h,) = L.autograd.grad((g * tensor(direction)).sum(), a)
        return g.detach().numpy(), h.numpy()

    with symgrad.backward_engine(engine):
        got = hvp(symgrad, symgrad.tensor)
    expected = hvp(torch, torch.tensor)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_traced_gradient_matches_a_fresh_eager_run(loss, rng):
    b_data = rng.standard_normal((3, 3))
    f = symgrad.value_and_grad(lambda a: LOSSES[loss](symgrad, a, symgrad.tensor(b_data)))
    for _ in range(2):
        a_data = _matrix(rng)
        value, gradient = f(a_data)
        with symgrad.backward_engine("tape"):
            a = symgrad.tensor(a_data, requires_grad=True)
            eager = LOSSES[loss](symgrad, a, symgrad.tensor(b_data))
            eager.backward()
        np.testing.assert_allclose(value, eager.item(), rtol=1e-12)
        np.testing.assert_allclose(gradient, a.grad.numpy(), rtol=1e-10, atol=1e-12)


BAD = [
    (lambda: symgrad.linalg.det(symgrad.ones(2, 3)), "square matrix"),
    (lambda: symgrad.ones(3).logdet(), "square matrix"),
    (lambda: symgrad.linalg.inv(symgrad.ones(2, 2, 3)), "square matrix"),
    (lambda: symgrad.linalg.solve(symgrad.eye(3), symgrad.ones(2)), "do not align"),
    (lambda: symgrad.linalg.solve(symgrad.ones(2, 3, 3), symgrad.ones(3)), "must be a vector"),
]


@pytest.mark.parametrize("call, words", BAD)
def test_refused_shapes_name_the_problem(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def _negative_det(rng, shape=(3, 3)):
    return _matrix(rng, shape)[..., [1, 0, 2], :]  # two rows swapped: det < 0


INF = float("inf")


def _squared_matrix_norm(ord):
    return lambda L, a, b: L.linalg.matrix_norm(a * b, ord) ** 2


DRAWS = {"square": _matrix, "negative det": _negative_det,
         "positive definite": lambda rng, shape=(3, 3): POSITIVE_DEFINITE.sample(rng, shape),
         "any": lambda rng, shape=(3, 3): rng.uniform(-2, 2, size=shape),
         "separated singular values": lambda rng, shape=(3, 3): SEPARATED_SINGULAR_VALUES.sample(rng, shape)}
MORE_LOSSES = {  # name: (draw, loss)
    "cholesky": ("positive definite", lambda L, a, b: (L.linalg.cholesky(a) * b).sum()),
    "cholesky squared": ("positive definite", lambda L, a, b: (L.linalg.cholesky(a) ** 2 * b).sum()),
    "slogdet, det < 0": ("negative det", lambda L, a, b: L.linalg.slogdet(a).logabsdet * 3 + L.linalg.slogdet(a).sign),
    "slogdet": ("square", lambda L, a, b: L.linalg.slogdet(a * b).logabsdet ** 2),
    **{f"matrix_norm {ord}": ("any", _squared_matrix_norm(ord)) for ord in ["fro", 1, -1, INF, -INF]},
    **{f"matrix_norm {ord}": ("separated singular values", lambda L, a, b, ord=ord: L.linalg.matrix_norm(a, ord) ** 2)
       for ord in ["nuc", 2, -2]},
    "svdvals": ("separated singular values", lambda L, a, b: (L.linalg.svdvals(a) ** 2 * b[0]).sum()),
    "svdvals of a wide matrix": ("separated singular values",
                                 lambda L, a, b: (L.linalg.svdvals(a[:2] * 2) * b[1, :2]).sum() ** 2),
    "norm of a vector, ord 3": ("any", lambda L, a, b: L.linalg.norm(a[0] * b[1], 3) ** 2),
}


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("loss", sorted(MORE_LOSSES, key=str))
def test_more_second_derivatives_match_torch(loss, engine, rng):
    torch = pytest.importorskip("torch")
    draw, f = MORE_LOSSES[loss]
    a_data, b_data = DRAWS[draw](rng), rng.uniform(0.5, 1.5, size=(3, 3))
    direction = rng.standard_normal((3, 3))
    if draw == "positive definite":
        direction = direction + direction.T  # stays in the domain: symmetric matrices

    def hvp(L, tensor):
        a = tensor(a_data, requires_grad=True)
        (g,) = L.autograd.grad(f(L, a, tensor(b_data)), a, create_graph=True)
        (h,) = L.autograd.grad((g * tensor(direction)).sum(), a)
        return g.detach().numpy(), h.numpy()

    with symgrad.backward_engine(engine):
        got = hvp(symgrad, symgrad.tensor)
    for a, b in zip(got, hvp(torch, torch.tensor)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("loss", sorted(MORE_LOSSES, key=str))
def test_more_gradients_match_finite_differences(loss, rng):
    """Without torch: the gradient against central differences of the loss (float64), on
    both engines."""
    draw, f = MORE_LOSSES[loss]
    a_data, b_data = DRAWS[draw](rng), rng.uniform(0.5, 1.5, size=(3, 3))
    for engine in ("tape", "symbolic"):
        with symgrad.backward_engine(engine):
            result = symgrad.gradcheck(lambda a: f(symgrad, a, symgrad.tensor(b_data)),
                                       (symgrad.tensor(a_data, requires_grad=True),), raise_exception=False)
        assert result, result.report()


@pytest.mark.parametrize("loss", sorted(MORE_LOSSES, key=str))
def test_more_traced_gradients_match_a_fresh_eager_run(loss, rng):
    draw, f = MORE_LOSSES[loss]
    b_data = rng.uniform(0.5, 1.5, size=(3, 3))
    traced = symgrad.value_and_grad(lambda a: f(symgrad, a, symgrad.tensor(b_data)))
    for _ in range(2):
        a_data = DRAWS[draw](rng)
        _, gradient = traced(a_data)
        with symgrad.backward_engine("tape"):
            a = symgrad.tensor(a_data, requires_grad=True)
            f(symgrad, a, symgrad.tensor(b_data)).backward()
        np.testing.assert_allclose(gradient, a.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_match_numpy_and_scipy(dtype, rng):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    spd = POSITIVE_DEFINITE.sample(rng, (2, 4, 4), dtype=dtype)
    any_ = rng.uniform(-2, 2, size=(2, 3, 4)).astype(dtype)
    tol = {"rtol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}
    L = symgrad.linalg.cholesky(spd)
    assert L.dtype == dtype
    for k in range(2):
        np.testing.assert_allclose(L.numpy()[k], scipy_linalg.cholesky(spd[k], lower=True), **tol)
    sign, logabsdet = symgrad.linalg.slogdet(_negative_det(rng, (2, 3, 3)).astype(dtype))
    assert sign.dtype == logabsdet.dtype == dtype
    for ord in ["fro", "nuc", 1, -1, 2, -2, INF, -INF]:
        got = symgrad.linalg.matrix_norm(any_, ord)
        assert got.dtype == dtype
        np.testing.assert_allclose(got.numpy(), np.linalg.norm(any_, ord, axis=(-2, -1)), **tol)
        kept = symgrad.linalg.matrix_norm(any_, ord, dim=(0, 2), keepdim=True)
        np.testing.assert_allclose(kept.numpy(), np.linalg.norm(any_, ord, axis=(0, 2), keepdims=True), **tol)
    np.testing.assert_allclose(symgrad.linalg.norm(any_[0], INF).numpy(), np.linalg.norm(any_[0], INF), **tol)
    np.testing.assert_allclose(symgrad.linalg.norm(any_[0], 2).numpy(), np.linalg.norm(any_[0], 2), **tol)
    values = symgrad.linalg.svdvals(any_)
    assert values.dtype == dtype and values.shape == (2, 3)
    np.testing.assert_allclose(values.numpy(), np.stack([scipy_linalg.svdvals(m) for m in any_]), **tol)
    np.testing.assert_allclose(symgrad.linalg.norm(any_).numpy(), np.linalg.norm(any_.ravel()), **tol)


def test_slogdet_sign_and_closed_form(rng):
    a = _negative_det(rng)
    sign, logabsdet = symgrad.linalg.slogdet(a)
    expected_sign, expected_log = np.linalg.slogdet(a)
    assert sign.item() == expected_sign == -1
    np.testing.assert_allclose(logabsdet.item(), expected_log, rtol=1e-14)
    A = symgrad.tensor(a, requires_grad=True, name="A")
    assert symgrad.symbolic.text(symgrad.diff(symgrad.linalg.slogdet(A).logabsdet, A)) == "inverse(A).T"


def test_ties_in_matrix_norm_share_the_gradient_as_torch(rng):
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, -2.0, 0.0], [-3.0, 2.0, 0.0], [0.0, 0.0, 3.0]])  # column sums 4, 4, 3; row sums 3, 5, 3
    for ord in [1, -1, INF, -INF]:
        _norm_gradients_against_torch(torch, a, ord, rtol=1e-15, atol=0)


def _norm_gradients_against_torch(torch, a, ord, rtol: float, atol: float) -> None:
    """``matrix_norm(a, ord)``'s gradient on both engines equals torch's."""
    for engine in ("tape", "symbolic"):
        with symgrad.backward_engine(engine):
            x = symgrad.tensor(a, requires_grad=True)
            symgrad.linalg.matrix_norm(x, ord).backward()
        t = torch.tensor(a, requires_grad=True)
        torch.linalg.matrix_norm(t, ord).backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"ord {ord}, {engine}")


def test_ties_in_singular_values_share_the_gradient_as_torch():
    """Where singular values tie, ``U`` is any basis of their space; the gradients of the
    norms (``2`` splits evenly between tied maxima, as ``amax``) do not depend on it."""
    torch = pytest.importorskip("torch")
    # signed permutations of diagonal matrices: singular values tie exactly
    for a in ([[0.0, 3.0, 0.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
              [[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
              [[0.0, 0.0, -2.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]]):
        a = np.array(a)
        for ord in ["nuc", 2, -2]:
            _norm_gradients_against_torch(torch, a, ord, rtol=1e-10, atol=1e-12)


def test_rank_deficient_matrices_have_pytorchs_first_derivatives(rng):
    """No division in svdvals' VJP: at a rank-deficient matrix the 2-norm's gradient is
    u_1 v_1^T and the nuclear norm's U V^T, as PyTorch's (no 0/0 NaN)."""
    left, right = (np.linalg.qr(rng.standard_normal((3, 3)))[0] for _ in range(2))
    a = (left * [3.0, 1.0, 0.0]) @ right.T
    u, _, vh = np.linalg.svd(a)
    for engine in ("tape", "symbolic"):
        for ord, expected in [(2, np.outer(u[:, 0], vh[0])), ("nuc", u @ vh)]:
            with symgrad.backward_engine(engine):
                x = symgrad.tensor(a, requires_grad=True)
                symgrad.linalg.matrix_norm(x, ord).backward()
            np.testing.assert_allclose(x.grad.numpy(), expected, atol=1e-10, err_msg=f"ord {ord}, {engine}")


def test_svdvals_of_empty_matrices_are_empty():
    assert symgrad.linalg.svdvals(symgrad.ones(2, 0, 3)).shape == (2, 0)
    assert apply_op("svd_u", symgrad.ones(2, 0, 0)).shape == (2, 0, 0)
    assert apply_op("svd_u", symgrad.ones(3, 0)).shape == (3, 0)
    assert apply_op("svd_v", symgrad.ones(3, 0)).shape == (0, 0)


def test_svdvals_closed_form_names_the_singular_vectors(rng):
    A = symgrad.tensor(SEPARATED_SINGULAR_VALUES.sample(rng, (3, 2)), requires_grad=True, name="A")
    closed = symgrad.symbolic.text(symgrad.diff(symgrad.linalg.svdvals(A).sum(), A))
    assert closed == "svd_u(A) @ svd_v(A).T"


MORE_BAD = [
    (lambda: symgrad.linalg.cholesky(symgrad.ones(2, 3)), ValueError, "square matrix"),
    (lambda: symgrad.linalg.cholesky(symgrad.tensor([[1.0, 2.0], [2.0, 1.0]])), ValueError, "not positive definite"),
    (lambda: symgrad.linalg.slogdet(symgrad.ones(3)), ValueError, "square matrix"),
    (lambda: symgrad.linalg.matrix_norm(symgrad.ones(3)), ValueError, "at least 2 dims"),
    (lambda: symgrad.linalg.svdvals(symgrad.ones(3)), ValueError, "at least 2 dims"),
    (lambda: symgrad.linalg.matrix_norm(symgrad.ones(3, 3), "spectral"), ValueError, "ord must be one of"),
    (lambda: symgrad.linalg.matrix_norm(symgrad.ones(3, 3), 3), ValueError, "ord must be one of"),
    (lambda: symgrad.linalg.matrix_norm(symgrad.ones(3, 3), dim=(0, -2)), ValueError, "same dimension twice"),
    (lambda: symgrad.linalg.matrix_norm(symgrad.ones(3, 3), dim=(0, 2)), IndexError, "out of range"),
    (lambda: symgrad.linalg.norm(symgrad.ones(2, 3, 3), 1), ValueError, "pass dim"),
    (lambda: symgrad.linalg.norm(symgrad.ones(3, 3), "fro", dim=0), ValueError, "matrix norm"),
]


@pytest.mark.parametrize("call, error, words", MORE_BAD)
def test_more_refusals_name_the_problem(call, error, words):
    with pytest.raises(error, match=words):
        call()
