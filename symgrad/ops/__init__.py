"""The op table: every primitive op declared once, with all its faces (see ``base.py``).

Importing this package registers every op in :data:`OPS`.
"""
from .base import NOT_IMPLEMENTED, OPS, STRUCTURAL, UNDEFINED, ArrayNamespace, Domain, Op, numpy_ops
from . import broadcast, elementwise  # noqa: F401  (registration)
from .broadcast import sum_to_shape

__all__ = [
    "OPS", "Op", "Domain", "ArrayNamespace", "numpy_ops", "sum_to_shape",
    "UNDEFINED", "NOT_IMPLEMENTED", "STRUCTURAL",
]
