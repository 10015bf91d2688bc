"""``symgrad.linalg``: PyTorch's ``torch.linalg`` names for the linear-algebra ops.

``det``, ``inv`` and ``solve`` are the op table's ``det``, ``inverse`` and ``solve``
(``symgrad/ops/linalg.py``); ``Tensor.det()``, ``.logdet()`` and ``.inverse()`` and
``symgrad.det``/``logdet``/``inverse`` are the same ops.
"""
from __future__ import annotations

from .tape.tensor import Tensor, apply_op, as_tensor

__all__ = ["det", "inv", "solve"]


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
