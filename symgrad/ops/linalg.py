"""Linear algebra: ``det``, ``logdet``, ``inverse``, ``solve``, ``cholesky``, the two
halves of ``slogdet`` (``det_sign``, ``logabsdet``), ``tril``, and the singular values
``svdvals`` with the singular vectors ``svd_u`` and ``svd_v`` over the last two dims.

Each works on a square matrix or a batch of them (``(..., n, n)``), as PyTorch's
``torch.linalg`` functions, and its SymPy form stays array-level (``STRUCTURAL``: the
symbolic engine's ``Det``, ``Inverse``, ... in ``symbolic/forms/linalg.py``), so closed
forms print in matrix notation: ``d det(A) = det(A) A^{-T}``, ``d log det A = A^{-T}``,
``d A^{-1} = -A^{-T} G A^{-T}``.

The VJPs are the textbook ones, written with ``inverse`` and ``solve`` themselves, so they
hold where the matrix is invertible; at a singular matrix they give infinities or NaNs
(PyTorch's ``det`` switches to an SVD-based rule there; symgrad does not). ``solve(A, B)``
takes ``B`` as a matrix (or batch) of the same number of dims as ``A``, or as a vector
when ``A`` is one matrix; other mixes are refused, because NumPy and PyTorch read them
differently.

``cholesky`` reads the symmetric part ``(A + A^T)/2`` of its argument, as JAX's does
(PyTorch and NumPy read the lower triangle; all agree on a symmetric matrix, the op's
domain), so its gradient is the symmetric one PyTorch returns, and finite differences in
any direction check it. A matrix that is not positive definite is refused (ValueError).
``logabsdet`` is ``log |det A|`` (gradient ``A^{-T}``, like ``logdet``, also where the
determinant is negative); ``det_sign`` is the sign of the determinant, computed from the
same factorisation (so it does not under- or overflow as ``sign(det(A))`` can); it is
piecewise constant, so its gradient is zero (PyTorch's ``slogdet`` sign carries none).
``tril`` (the lower triangle, ``symgrad.tril``) is an op so that closed forms such as
``cholesky``'s adjoint name it instead of holding constant index arrays or masks.

``svdvals`` gives the ``k = min(m, n)`` singular values of each ``(..., m, n)`` matrix in
descending order (``torch.linalg.svdvals``). Where they are distinct and nonzero (the
domain ``Domain(separated_singular_values=True)``), ``d s_i = u_i^T dA v_i``, so its VJP
is ``U diag(g) V^T`` over the thin SVD ``A = U S V^T``, with the singular vectors from the
ops ``svd_u`` and ``svd_v`` (each column pair's sign fixed so that ``U``'s entry of largest
magnitude is positive, as scikit-learn's ``svd_flip`` does). Their own VJPs are the
textbook SVD adjoints for ``U`` and ``V`` (Townsend 2016, PyTorch's ``svd_backward``), so
second derivatives of ``svdvals`` exist on both engines; where two singular values meet or
one is zero those divide by zero (the matrix norms of order ``2``, ``-2`` and ``"nuc"``
have kinks there; ``svdvals``' own VJP has no division).
"""
from __future__ import annotations

import numpy as np

from .base import STRUCTURAL, Domain, Op, register

SQUARE = Domain(well_conditioned=True)
"""Square matrices made diagonally dominant, so inverses stay well conditioned in tests."""

POSITIVE_DEFINITE = Domain(positive_definite=True)
"""Symmetric positive definite matrices, ``cholesky``'s domain."""

SEPARATED_SINGULAR_VALUES = Domain(separated_singular_values=True)
"""Matrices whose singular values are at least 1 and at least 0.5 apart (``svdvals``' domain)."""


def _square(name: str, a) -> None:
    shape = np.shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name} needs a square matrix or a batch of them (shape (..., n, n)), got shape {shape}")


def _det_forward(a):
    _square("det", a)
    return np.asarray(np.linalg.det(a))


def _logdet_forward(a):
    _square("logdet", a)
    sign, logabs = np.linalg.slogdet(a)
    # PyTorch: nan for a negative determinant, -inf for a zero one
    return np.asarray(np.where(sign < 0, np.nan, logabs), dtype=logabs.dtype)


def _inverse_forward(a):
    _square("inverse", a)
    return np.linalg.inv(a)


def solve_shapes(a_shape: tuple, b_shape: tuple) -> tuple:
    """The shape of ``solve(A, B)``, refusing the mixes NumPy and PyTorch read differently."""
    if len(a_shape) < 2 or a_shape[-1] != a_shape[-2]:
        raise ValueError(f"solve needs a square matrix A (shape (..., n, n)), got shape {a_shape}")
    vector = len(b_shape) == 1 and len(a_shape) == 2
    if not vector and len(b_shape) != len(a_shape):
        raise ValueError(f"solve: B of shape {b_shape} must be a vector (with one matrix A) or have A's number of "
                         f"dims ({len(a_shape)}); A has shape {a_shape}")
    if b_shape[0 if vector else -2] != a_shape[-1]:
        raise ValueError(f"solve: A of shape {a_shape} and B of shape {b_shape} do not align")
    if vector:
        return b_shape
    return np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + b_shape[-2:]


def _solve_forward(a, b):
    solve_shapes(np.shape(a), np.shape(b))
    return np.linalg.solve(a, b)


def _tril_forward(x, *, diagonal=0):
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"tril needs a matrix or a batch of them (at least 2 dims), got shape {x.shape}")
    return np.tril(x, int(diagonal))


def _cholesky_forward(a):
    _square("cholesky", a)
    a = np.asarray(a)
    try:
        return np.linalg.cholesky((a + np.swapaxes(a, -1, -2)) / 2)
    except np.linalg.LinAlgError:
        raise ValueError("cholesky needs symmetric positive definite matrices: a matrix of the argument (its "
                         "symmetric part (A + A^T)/2) is not positive definite") from None


def _det_sign_forward(a):
    _square("det_sign", a)
    return np.asarray(np.linalg.slogdet(a)[0])


def _logabsdet_forward(a):
    _square("logabsdet", a)
    return np.asarray(np.linalg.slogdet(a)[1])


def _matrices(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name} needs a matrix or a batch of them (at least 2 dims), got shape {a.shape}")
    return a


def _svdvals_forward(a):
    return np.asarray(np.linalg.svd(_matrices("svdvals", a), compute_uv=False))


def _svd_factors(name: str, a) -> tuple[np.ndarray, np.ndarray]:
    """``U`` and ``V`` of the thin SVD, each column pair's sign fixed so that ``U``'s entry of
    largest magnitude is positive (``A = U S V^T`` still holds)."""
    u, _, vh = np.linalg.svd(_matrices(name, a), full_matrices=False)
    v = np.swapaxes(vh, -1, -2)
    if u.size == 0:
        return u, np.ascontiguousarray(v)
    largest = np.take_along_axis(u, np.argmax(np.abs(u), axis=-2)[..., None, :], axis=-2)
    signs = np.where(largest < 0, -1, 1).astype(u.dtype)
    return u * signs, v * signs


def _svd_u_forward(a):
    return _svd_factors("svd_u", a)[0]


def _svd_v_forward(a):
    return _svd_factors("svd_v", a)[1]


def _mT(xp, x):
    return xp.transpose(x, dim0=-1, dim1=-2)


def _lifted(xp, s):
    """A batch of scalars as a batch of 1x1 matrices, to scale matrices."""
    return xp.unsqueeze(xp.unsqueeze(s, dim=-1), dim=-1)


def _cholesky_vjp(xp, g, ans, a):
    # A = L L^T: the symmetric gradient (PyTorch's, Murray 2016), in matrix notation
    # L^{-T} (P + P^T)/2 L^{-1} with P = (tril(M) + tril(M, -1))/2, M = L^T G: the lower
    # triangle of M with its diagonal halved
    m = xp.matmul(_mT(xp, ans), g)
    phi = (xp.tril(m) + xp.tril(m, diagonal=-1)) * 0.5
    inverse = xp.inverse(ans)
    return (xp.matmul(_mT(xp, inverse), xp.matmul((phi + _mT(xp, phi)) * 0.5, inverse)),)


def _row(xp, s):
    """A batch of vectors as a batch of 1 x k rows, to scale a matrix's columns."""
    return xp.unsqueeze(s, dim=-2)


def _column(xp, s):
    """A batch of vectors as a batch of k x 1 columns, to scale a matrix's rows."""
    return xp.unsqueeze(s, dim=-1)


def _svdvals_vjp(xp, g, ans, a):
    # d s_i = u_i^T dA v_i
    return (xp.matmul(xp.svd_u(a) * _row(xp, g), _mT(xp, xp.svd_v(a))),)


def _svd_gaps(xp, s):
    """``s_j^2 - s_i^2`` off the diagonal and ``s_i^2`` on it: dividing a matrix that is
    exactly 0 on its diagonal (``P - P^T``) by it is ``F o (P - P^T)``,
    ``F_ij = 1 / (s_j^2 - s_i^2)``, without a mask."""
    squares = s * s
    gaps = _row(xp, squares) - _column(xp, squares)  # exactly 0 on the diagonal
    return gaps + xp.tril(_mT(xp, xp.tril(_column(xp, s) * _row(xp, s))))


def _svd_u_vjp(xp, g, ans, a):
    # the thin SVD's adjoint with only U's cotangent G, P = U^T G:
    # dA = [U (F o (P - P^T)) S + (I - U U^T) G S^{-1}] V^T
    s = xp.svdvals(a)
    p = xp.matmul(_mT(xp, ans), g)
    left = xp.matmul(ans, (p - _mT(xp, p)) / _svd_gaps(xp, s)) * _row(xp, s) + (g - xp.matmul(ans, p)) / _row(xp, s)
    return (xp.matmul(left, _mT(xp, xp.svd_v(a))),)


def _svd_v_vjp(xp, g, ans, a):
    # with only V's cotangent G, P = V^T G: dA = U [S (F o (P - P^T)) V^T + S^{-1} (G - V P)^T]
    s = xp.svdvals(a)
    p = xp.matmul(_mT(xp, ans), g)
    right = (xp.matmul((p - _mT(xp, p)) / _svd_gaps(xp, s), _mT(xp, ans)) * _column(xp, s)
             + _mT(xp, g - xp.matmul(ans, p)) / _column(xp, s))
    return (xp.matmul(xp.svd_u(a), right),)


def _solve_vjp(xp, g, ans, a, b):
    grad_b = xp.solve(_mT(xp, a), g)
    if np.ndim(b) == 1:
        grad_a = -xp.matmul(xp.unsqueeze(grad_b, dim=-1), xp.unsqueeze(ans, dim=0))
    else:
        grad_a = xp.sum_to(-xp.matmul(grad_b, _mT(xp, ans)), shape=np.shape(a))
    return grad_a, xp.sum_to(grad_b, shape=np.shape(b))


_LINALG = dict(sympy=STRUCTURAL, kind="structural", public=True)

det = register(Op(
    name="det", grad_fn_name="LinalgDetBackward0", forward=_det_forward,
    vjp=lambda xp, g, ans, a: (_lifted(xp, g * ans) * _mT(xp, xp.inverse(a)),),
    saves=frozenset({"inputs", "output"}), domains=(SQUARE,), **_LINALG,
))
logdet = register(Op(
    name="logdet", grad_fn_name="WhereBackward0", forward=_logdet_forward,
    vjp=lambda xp, g, ans, a: (_lifted(xp, g) * _mT(xp, xp.inverse(a)),),
    domains=(SQUARE,), **_LINALG,
))
inverse = register(Op(
    name="inverse", grad_fn_name="LinalgInvExBackward0", forward=_inverse_forward,
    vjp=lambda xp, g, ans, a: (-xp.matmul(_mT(xp, ans), xp.matmul(g, _mT(xp, ans))),),
    saves=frozenset({"output"}), domains=(SQUARE,), **_LINALG,
))
solve = register(Op(
    name="solve", grad_fn_name="LinalgSolveExBackward0", forward=_solve_forward, vjp=_solve_vjp, arity=2,
    saves=frozenset({"inputs", "output"}), domains=(SQUARE, Domain()), sympy=STRUCTURAL, kind="structural",
    public=False,
))
tril = register(Op(
    name="tril", grad_fn_name="TrilBackward0", forward=_tril_forward,
    vjp=lambda xp, g, ans, x, *, diagonal=0: (xp.tril(g, diagonal=diagonal),),  # a projection: its own adjoint
    saves=frozenset(), sympy=STRUCTURAL, kind="structural", public=False,
))
cholesky = register(Op(
    name="cholesky", grad_fn_name="LinalgCholeskyExBackward0", forward=_cholesky_forward, vjp=_cholesky_vjp,
    saves=frozenset({"output"}), domains=(POSITIVE_DEFINITE,), sympy=STRUCTURAL, kind="structural", public=False,
))
det_sign = register(Op(
    name="det_sign", grad_fn_name="LinalgSlogdetBackward0", forward=_det_sign_forward,
    # piecewise constant: its derivative is zero wherever it exists (as extremum_mask's)
    vjp=lambda xp, g, ans, a: (xp.broadcast_to(_lifted(xp, g * 0), shape=np.shape(a)),),
    saves=frozenset(), domains=(SQUARE,), sympy=STRUCTURAL, kind="structural", public=False,
))
logabsdet = register(Op(
    name="logabsdet", grad_fn_name="LinalgSlogdetBackward0", forward=_logabsdet_forward,
    vjp=lambda xp, g, ans, a: (_lifted(xp, g) * _mT(xp, xp.inverse(a)),),
    domains=(SQUARE,), sympy=STRUCTURAL, kind="structural", public=False,
))
svdvals = register(Op(
    name="svdvals", grad_fn_name="LinalgSvdBackward0", forward=_svdvals_forward, vjp=_svdvals_vjp,
    saves=frozenset({"inputs"}), domains=(SEPARATED_SINGULAR_VALUES,), sympy=STRUCTURAL,
    kind="structural", public=False,
))
svd_u = register(Op(
    name="svd_u", grad_fn_name="LinalgSvdBackward0", forward=_svd_u_forward, vjp=_svd_u_vjp,
    saves=frozenset({"inputs", "output"}), domains=(SEPARATED_SINGULAR_VALUES,), sympy=STRUCTURAL,
    kind="structural", public=False,
))
svd_v = register(Op(
    name="svd_v", grad_fn_name="LinalgSvdBackward0", forward=_svd_v_forward, vjp=_svd_v_vjp,
    saves=frozenset({"inputs", "output"}), domains=(SEPARATED_SINGULAR_VALUES,), sympy=STRUCTURAL,
    kind="structural", public=False,
))
