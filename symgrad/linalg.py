"""``symgrad.linalg``: PyTorch's ``torch.linalg`` names for the linear-algebra ops.

``det``, ``inv``, ``solve``, ``cholesky`` and ``svdvals`` are the op table's ``det``,
``inverse``, ``solve``, ``cholesky`` and ``svdvals`` (``symgrad/ops/linalg.py``); ``slogdet``
is its ``det_sign`` and ``logabsdet``; ``Tensor.det()``, ``.logdet()`` and ``.inverse()`` and
``symgrad.det``/``logdet``/``inverse`` are the same ops; ``vector_norm`` is
``Tensor.norm`` for any order. ``matrix_norm`` and ``norm`` are compositions of ops
(like ``tape/composites.py``'s): ``"fro"`` is the op ``norm`` over two dims, the orders
``1``, ``-1``, ``inf`` and ``-inf`` are ``amax``/``amin`` of sums of ``abs``, ``"nuc"`` the
sum of the singular values, ``2``/``-2`` their ``amax``/``amin``, so their gradients are
PyTorch's (ties share evenly, ``abs``' gradient at 0 is 0).
"""
from __future__ import annotations

import builtins
import math
from typing import NamedTuple

from .ops.reductions import normalize_dims
from .tape.composites import vector_norm
from .tape.tensor import Tensor, apply_op, as_tensor

__all__ = ["SlogdetResult", "cholesky", "det", "inv", "matrix_norm", "norm", "slogdet", "solve", "svdvals",
           "vector_norm"]


def det(A) -> Tensor:
    """The determinant of a square matrix or of each matrix in a batch."""
    return apply_op("det", as_tensor(A))


def inv(A) -> Tensor:
    """The inverse of a square matrix or of each matrix in a batch."""
    return apply_op("inverse", as_tensor(A))


def solve(A, B) -> Tensor:
    """``X`` with ``A @ X = B``: ``B`` a vector (with one matrix ``A``) or a matrix (or batch)
    with ``A``'s number of dims."""
    return apply_op("solve", as_tensor(A), as_tensor(B))


def cholesky(A) -> Tensor:
    """``L``, lower triangular with a positive diagonal, with ``L @ L.mT`` equal to ``A``, a
    symmetric positive definite matrix (or each of a batch). It reads ``(A + A^T)/2``, as
    JAX does, so its gradient is symmetric (PyTorch's); a matrix that is not positive
    definite raises ``ValueError``.

    >>> import symgrad
    >>> cholesky(symgrad.tensor([[4.0, 2.0], [2.0, 5.0]]))
    tensor([[2., 0.],
            [1., 2.]])
    """
    return apply_op("cholesky", as_tensor(A))


def svdvals(A) -> Tensor:
    """The singular values of a matrix (``(m, n)``), or of each matrix of a batch, in
    descending order (``min(m, n)`` of them), as ``torch.linalg.svdvals``. Their gradient
    ``U diag(g) V^T`` holds where they are distinct and nonzero.

    >>> import symgrad
    >>> svdvals(symgrad.tensor([[3.0, 4.0]]))  # a 1 x 2 matrix: its one singular value is its length
    tensor([5.])
    >>> svdvals(symgrad.tensor([[0.0, 2.0], [-3.0, 0.0]])).numpy().round(12)
    array([3., 2.])
    """
    return apply_op("svdvals", as_tensor(A))


class SlogdetResult(NamedTuple):
    """``slogdet``'s result: the sign of the determinant (gradient zero) and ``log |det|``."""

    sign: Tensor
    logabsdet: Tensor


def slogdet(A) -> SlogdetResult:
    """``(sign, logabsdet)`` of the determinant of a square matrix (or of each of a batch),
    without over- or underflow; ``logabsdet``'s gradient is ``A^{-T}``.

    >>> import symgrad
    >>> slogdet(symgrad.tensor([[0.0, 2.0], [3.0, 0.0]]))
    SlogdetResult(sign=tensor(-1.), logabsdet=tensor(1.7918))
    """
    A = as_tensor(A)
    return SlogdetResult(apply_op("det_sign", A), apply_op("logabsdet", A))


MATRIX_ORDERS = ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)
"""The orders :func:`matrix_norm` computes."""


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False) -> Tensor:
    """The matrix norm of each matrix in dims ``dim`` of ``A``, as
    ``torch.linalg.matrix_norm``: ``ord="fro"`` (Frobenius), ``"nuc"`` (the sum of the
    singular values), ``2``/``-2`` (the largest/smallest singular value), ``1``/``-1`` (the
    largest/smallest column sum of ``|A|``), ``inf``/``-inf`` (the largest/smallest row sum).

    >>> import symgrad
    >>> A = symgrad.tensor([[1.0, -2.0], [3.0, 4.0]])
    >>> matrix_norm(A, 1), matrix_norm(A, float("inf"))
    (tensor(6.), tensor(7.))
    >>> B = symgrad.tensor([[0.0, 2.0], [-3.0, 0.0]])
    >>> [round(matrix_norm(B, ord).item(), 12) for ord in ("nuc", 2, -2)]
    [5.0, 3.0, 2.0]
    """
    A = as_tensor(A)
    if isinstance(ord, bool) or ord not in MATRIX_ORDERS:
        raise ValueError(f"matrix_norm: ord must be one of {MATRIX_ORDERS}, got {ord!r}")
    if A.ndim < 2:
        raise ValueError(f"matrix_norm: needs a matrix or a batch of them (at least 2 dims), got shape "
                         f"{tuple(A.shape)}")
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise ValueError(f"matrix_norm: dim must name two dims, got {dim!r}")
    normalize_dims(tuple(dim), A.ndim)  # refuses dims out of range or named twice
    rows, cols = (builtins.int(d) % A.ndim for d in dim)
    if ord == "fro":
        return apply_op("norm", A, dim=tuple(sorted((rows, cols))), keepdim=keepdim)
    if ord in ("nuc", 2, -2):
        matrices = A.permute(*[d for d in range(A.ndim) if d not in (rows, cols)], rows, cols)
        values = apply_op("svdvals", matrices)
        out = (values.sum(dim=-1) if ord == "nuc" else apply_op("amax" if ord == 2 else "amin", values, dim=-1))
        return out.reshape(*[1 if d in (rows, cols) else n for d, n in enumerate(A.shape)]) if keepdim else out
    summed, extreme = (rows, cols) if builtins.abs(ord) == 1 else (cols, rows)
    sums = builtins.abs(A).sum(dim=summed, keepdim=True)
    out = apply_op("amax" if ord > 0 else "amin", sums, dim=extreme, keepdim=True)
    if keepdim:
        return out
    return out.reshape(*[n for d, n in enumerate(out.shape) if d not in (rows, cols)])


def norm(A, ord=None, dim=None, keepdim: bool = False) -> Tensor:
    """``torch.linalg.norm``: with ``dim`` an int (or ``A`` a vector and ``dim=None``) the
    vector norm of order ``ord`` (2 when None), with ``dim`` two dims (or ``A`` a matrix and
    ``dim=None``) the matrix norm (``"fro"`` when None); ``ord=None, dim=None`` is the
    2-norm of all elements, whatever the shape.

    >>> import symgrad
    >>> norm(symgrad.tensor([[3.0, 0.0], [0.0, 4.0]])), norm(symgrad.tensor([3.0, -4.0]), 1)
    (tensor(5.), tensor(7.))
    """
    A = as_tensor(A)
    if isinstance(dim, builtins.int):
        dim = (dim,)
    if ord is None and dim is None:
        return apply_op("norm", A, dim=None, keepdim=keepdim)
    if dim is None:
        if A.ndim not in (1, 2):
            raise ValueError(f"norm: with ord={ord!r} and dim=None, A must be a vector or a matrix, got shape "
                             f"{tuple(A.shape)}; pass dim")
        dim = tuple(range(A.ndim))
    dim = tuple(dim)
    if len(dim) == 1:
        if isinstance(ord, str):
            raise ValueError(f"norm: ord={ord!r} is a matrix norm, but dim names one dim ({dim[0]})")
        return vector_norm(A, 2 if ord is None else ord, dim=dim, keepdim=keepdim)
    if len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim=dim, keepdim=keepdim)
    raise ValueError(f"norm: dim must name one or two dims, got {dim!r}")
