"""Every name symgrad takes from the internals of NumPy, mpmath and SymPy, in one place.

None of these names is in its library's public API, so a release may move one.  Each is
listed in :data:`INTERNAL_NAMES`, which ``tests/symbolic/test_compat.py`` checks against the
installed versions (so a move fails one test naming it, not the engine somewhere deep),
and no other module of symgrad imports from those internals (``tests/test_layers.py``).
"""
from __future__ import annotations

import mpmath.libmp as _mlib
import sympy as sp
from sympy.core.cache import cacheit, clear_cache
from sympy.core.function import Application, ArgumentIndexError
from sympy.core.operations import AssocOp
from sympy.core.parameters import evaluate, global_parameters
from sympy.core.relational import Relational
from sympy.matrices.utilities import dotprodsimp as matrix_simplification
from sympy.printing.defaults import Printable

try:
    from numpy._core._ufunc_config import _extobj_contextvar as numpy_error_state
    from numpy._core._ufunc_config import _make_extobj as numpy_error_settings
except ImportError:  # another NumPy layout (NumPy 1.x): callers fall back on numpy.errstate
    numpy_error_state = numpy_error_settings = None

__all__ = ["INTERNAL_NAMES", "Application", "ArgumentIndexError", "AssocOp", "Printable", "Relational", "cacheit",
           "clear_cache", "evaluate", "float_product", "global_parameters", "matrix_simplification",
           "numpy_error_settings", "numpy_error_state", "symbol_xnew"]

INTERNAL_NAMES: dict[str, tuple[str, ...]] = {
    "numpy._core._ufunc_config": ("_extobj_contextvar", "_make_extobj"),
    "mpmath.libmp": ("mpf_mul", "round_nearest"),
    "sympy.core.cache": ("cacheit", "clear_cache"),
    "sympy.core.function": ("Application", "ArgumentIndexError"),
    "sympy.core.operations": ("AssocOp",),
    "sympy.core.parameters": ("evaluate", "global_parameters", "global_parameters.evaluate"),
    "sympy.core.relational": ("Relational",),
    "sympy.core.symbol": ("Symbol.__xnew__",),
    "sympy.core.numbers": ("Float._new", "Float._as_mpf_val", "Float._prec"),
    "sympy.matrices.utilities": ("dotprodsimp",),  # matrix_simplification(False): no simplifying inside Matrix ops
    "sympy.printing.defaults": ("Printable", "Printable.__str__", "Printable.__repr__"),
}
"""The internal names used, by module (``Class.attribute`` for an attribute of a class)."""

symbol_xnew = sp.Symbol.__xnew__
"""SymPy's uncached constructor of a ``Symbol`` (``ArrayVar`` caches its own)."""


def float_product(a: sp.Expr, b: sp.Expr) -> sp.Float:
    """``a*b`` of two finite SymPy numbers, at least one a ``Float``, as one ``Float`` at
    the larger of their precisions, computed without SymPy's evaluation (which may be off).

    >>> float_product(sp.Float(1.5), sp.Rational(1, 3))
    0.500000000000000
    """
    precision = max(getattr(a, "_prec", 53), getattr(b, "_prec", 53))
    product = _mlib.mpf_mul(a._as_mpf_val(precision), b._as_mpf_val(precision), precision, _mlib.round_nearest)
    return sp.Float._new(product, precision)
