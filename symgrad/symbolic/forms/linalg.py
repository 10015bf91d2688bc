"""SymPy forms of the linear-algebra ops (``symgrad/ops/linalg.py``): ``det``, ``logdet``,
``inverse``, ``solve``, ``cholesky``, ``det_sign``, ``logabsdet``, ``tril``, ``svdvals``,
``svd_u`` and ``svd_v`` over the last two dims, with their shape rules and adjoints.

They print in matrix notation (``det(A)``, ``inverse(A)`` as ``A^{-1}`` in LaTeX), and the
adjoints are the textbook ones in the same functions, so a closed form reads as a textbook
does: the gradient of ``logdet(A)`` is ``inverse(A).T`` (``A^{-T}``).
"""
from __future__ import annotations

import sympy as sp

from ..core.symbols import shape_of
from .structural import (Matmul, Reshape, StructuralFunction, _matrix_transpose, _new_axis, _register, exact,
                         reduce_to)


def _square_rule(name: str, shape: tuple) -> None:
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name} needs a square matrix or a batch of them (shape (..., n, n)), got shape {shape}")


def _per_matrix(s: sp.Expr) -> sp.Expr:
    """A batch of scalars (one per matrix) shaped to scale the matrices: ``s[..., None, None]``."""
    shape = shape_of(s)
    return s if not shape else Reshape.of(s, shape=tuple(shape) + (1, 1))


class _PerMatrix(StructuralFunction):
    """One number per square matrix of a ``(..., n, n)`` batch."""

    @classmethod
    def shape_rule(cls, shapes, attrs):
        _square_rule(cls.op_name, shapes[0])
        return shapes[0][:-2]


@_register
class Det(_PerMatrix):
    """``det(A)``: the determinant of each matrix."""

    op_name = "det"
    latex_name = r"\det"

    def adjoint(self, g, index):
        return _per_matrix(g * self) * _matrix_transpose(Inverse.of(self.arrays[0]))


@_register
class Logdet(_PerMatrix):
    """``logdet(A)``: the log of each matrix's determinant (NaN where it is negative)."""

    op_name = "logdet"
    latex_name = r"\log\det"

    def adjoint(self, g, index):
        return _per_matrix(g) * _matrix_transpose(Inverse.of(self.arrays[0]))


@_register
class Inverse(StructuralFunction):
    """``inverse(A)``: each matrix's inverse, ``A^{-1}`` in LaTeX."""

    op_name = "inverse"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        _square_rule("inverse", shapes[0])
        return shapes[0]

    def adjoint(self, g, index):
        inverse_T = _matrix_transpose(self)
        return -Matmul.of(inverse_T, Matmul.of(g, inverse_T))

    def _latex_body(self, printer) -> str:
        return "{%s}^{-1}" % printer.parenthesize(self.arrays[0], sp.printing.precedence.PRECEDENCE["Pow"],
                                                   strict=True)


@_register
class Solve(StructuralFunction):
    """``solve(A, B)``: ``X`` with ``A X = B`` (``A^{-1} B``), ``B`` a matrix or a vector."""

    op_name = "solve"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        from ...ops.linalg import solve_shapes

        return tuple(solve_shapes(tuple(shapes[0]), tuple(shapes[1])))

    def adjoint(self, g, index):
        a, b = self.arrays
        grad_b = Solve.of(_matrix_transpose(a), g)
        if index == 1:
            return reduce_to(grad_b, shape_of(b))
        if len(shape_of(b)) == 1:
            column = Reshape.of(grad_b, shape=shape_of(b) + (1,))
            row = Reshape.of(self, shape=(1,) + shape_of(b))
            return -Matmul.of(column, row)
        return reduce_to(-Matmul.of(grad_b, _matrix_transpose(self)), shape_of(a))

    def _latex_body(self, printer) -> str:
        a, b = self.arrays
        left = printer.parenthesize(a, sp.printing.precedence.PRECEDENCE["Pow"], strict=True)
        return r"{%s}^{-1} \cdot %s" % (left, printer._print(b))


@_register
class Logabsdet(_PerMatrix):
    """``logabsdet(A)``: ``log |det A|`` of each matrix (``slogdet``'s second half)."""

    op_name = "logabsdet"
    latex_name = r"\log\left|\det\right|"

    def adjoint(self, g, index):
        return _per_matrix(g) * _matrix_transpose(Inverse.of(self.arrays[0]))


@_register
class DetSign(_PerMatrix):
    """``det_sign(A)``: the sign of each matrix's determinant (``slogdet``'s first half);
    piecewise constant, its derivative is zero."""

    op_name = "det_sign"
    latex_name = r"\operatorname{sign}\det"

    def differentiable_args(self):
        return (False,)

    def adjoint(self, g, index):
        return sp.Integer(0)


@_register
class Cholesky(StructuralFunction):
    """``cholesky(A)``: ``L`` lower triangular with ``L L^T = (A + A^T)/2``; its adjoint is the
    symmetric one, ``L^{-T} (P + P^T)/2 L^{-1}`` with ``P = (tril(M) + tril(M, -1))/2``,
    ``M = L^T G``: the lower triangle of ``M`` with its diagonal halved."""

    op_name = "cholesky"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        _square_rule("cholesky", shapes[0])
        return shapes[0]

    def adjoint(self, g, index):
        m = Matmul.of(_matrix_transpose(self), exact(g, shape_of(self)))
        phi = (Tril.of(m) + Tril.of(m, diagonal=-1)) / 2
        inverse = Inverse.of(self)
        return Matmul.of(_matrix_transpose(inverse), Matmul.of((phi + _matrix_transpose(phi)) / 2, inverse))


@_register
class Tril(StructuralFunction):
    """``tril(x, diagonal)``: the lower triangle of each matrix (on and below ``diagonal``),
    zeros above; a projection, so its adjoint is itself."""

    op_name = "tril"
    hidden_defaults = {"diagonal": 0}

    @classmethod
    def shape_rule(cls, shapes, attrs):
        if len(shapes[0]) < 2:
            raise ValueError(f"tril needs a matrix or a batch of them (at least 2 dims), got shape {shapes[0]}")
        return shapes[0]

    def adjoint(self, g, index):
        return Tril.of(exact(g, shape_of(self)), diagonal=self.attrs.get("diagonal", 0))


def _svd_shape(name: str, shape: tuple) -> tuple:
    """``(*batch, m, n)`` checked: a matrix or a batch of them."""
    if len(shape) < 2:
        raise ValueError(f"{name} needs a matrix or a batch of them (at least 2 dims), got shape {shape}")
    return tuple(shape)


@_register
class Svdvals(StructuralFunction):
    """``svdvals(A)``: the ``min(m, n)`` singular values of each matrix, descending; its
    adjoint is ``U diag(G) V^T`` (``d s_i = u_i^T dA v_i``)."""

    op_name = "svdvals"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        *batch, m, n = _svd_shape("svdvals", shapes[0])
        return (*batch, min(m, n))

    def adjoint(self, g, index):
        (a,) = self.arrays
        return Matmul.of(SvdU.of(a) * _new_axis(exact(g, shape_of(self)), -2), _matrix_transpose(SvdV.of(a)))


def _svd_gaps(s: sp.Expr) -> sp.Expr:
    """``s_j^2 - s_i^2`` off the diagonal, ``s_i^2`` on it: ``P - P^T`` (0 on its diagonal)
    divided by it is ``F o (P - P^T)``, ``F_ij = 1/(s_j^2 - s_i^2)``."""
    gaps = _new_axis(s ** 2, -2) - _new_axis(s ** 2, -1)
    return gaps + Tril.of(_matrix_transpose(Tril.of(_new_axis(s, -1) * _new_axis(s, -2))))


class _SingularVectors(StructuralFunction):
    """The thin SVD's ``U`` (``m x k``) or ``V`` (``n x k``), ``k = min(m, n)``, each column
    pair's sign fixed so that ``U``'s entry of largest magnitude is positive."""

    @classmethod
    def shape_rule(cls, shapes, attrs):
        *batch, m, n = _svd_shape(cls.op_name, shapes[0])
        return (*batch, m if cls.op_name == "svd_u" else n, min(m, n))


@_register
class SvdU(_SingularVectors):
    """``svd_u(A)``; its adjoint is the SVD's for ``U``:
    ``[U (F o (P - P^T)) S + (G - U P) S^{-1}] V^T``, ``P = U^T G``."""

    op_name = "svd_u"

    def adjoint(self, g, index):
        (a,) = self.arrays
        g = exact(g, shape_of(self))
        s = Svdvals.of(a)
        p = Matmul.of(_matrix_transpose(self), g)
        left = (Matmul.of(self, (p - _matrix_transpose(p)) / _svd_gaps(s)) * _new_axis(s, -2)
                + (g - Matmul.of(self, p)) / _new_axis(s, -2))
        return Matmul.of(left, _matrix_transpose(SvdV.of(a)))


@_register
class SvdV(_SingularVectors):
    """``svd_v(A)``; its adjoint is the SVD's for ``V``:
    ``U [S (F o (P - P^T)) V^T + S^{-1} (G - V P)^T]``, ``P = V^T G``."""

    op_name = "svd_v"

    def adjoint(self, g, index):
        (a,) = self.arrays
        g = exact(g, shape_of(self))
        s = Svdvals.of(a)
        p = Matmul.of(_matrix_transpose(self), g)
        right = (Matmul.of((p - _matrix_transpose(p)) / _svd_gaps(s), _matrix_transpose(self)) * _new_axis(s, -1)
                 + _matrix_transpose(g - Matmul.of(self, p)) / _new_axis(s, -1))
        return Matmul.of(SvdU.of(a), right)
