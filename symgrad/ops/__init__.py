"""The op table: every primitive op declared once, with all its faces (see ``base.py``).

Importing this package registers every op in :data:`OPS`: elementwise ops
(``elementwise.py``), reductions and the softmax family (``reductions.py``), structural
ops such as matmul, reshapes, indexing and concatenation (``structural.py``), the
comparisons and logical ops on masks, which have no derivative (``masks.py``), the special
functions (``special.py``: lgamma, digamma, polygamma, erf, erfc, erfinv, Bessel I, xlogy,
xlog1py, betaln),
linear algebra (``linalg.py``: det, logdet, inverse, solve, cholesky, det_sign, logabsdet, tril,
svdvals, svd_u, svd_v)
and the one unbroadcast helper ``sum_to`` with its adjoint ``broadcast_to`` (``broadcast.py``).

>>> sorted(OPS)[:3]
['abs', 'acos', 'acosh']
"""
from .base import (NOT_IMPLEMENTED, OPS, STRUCTURAL, UNDEFINED, ArrayNamespace, Domain, NamedForm, Op, numpy_ops,
                   sympy_function, sympy_number)
from . import assign, broadcast, elementwise, linalg, masks, reductions, special, structural  # noqa: F401  (registration)
from .broadcast import sum_to_shape
from .reductions import kept_shape, normalize_dims
from .structural import index_key, normalize_index

__all__ = [
    "OPS", "Op", "Domain", "NamedForm", "sympy_function", "sympy_number", "ArrayNamespace", "numpy_ops", "sum_to_shape",
    "UNDEFINED", "NOT_IMPLEMENTED", "STRUCTURAL",
    "normalize_dims", "kept_shape", "normalize_index", "index_key",
]
