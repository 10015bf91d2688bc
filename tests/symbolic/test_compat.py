"""The internal names of NumPy, mpmath and SymPy that symgrad uses (listed once, in
``symgrad/symbolic/core/_compat.py``) exist in the installed versions."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from symgrad.symbolic.core import _compat


def _lookup(module: str, dotted: str):
    found = importlib.import_module(module)
    for part in dotted.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("module, name", [(m, n) for m, names in _compat.INTERNAL_NAMES.items() for n in names])
def test_each_internal_name_exists(module, name):
    if module.startswith("numpy._core") and int(np.__version__.split(".")[0]) < 2:
        pytest.skip(f"NumPy {np.__version__} has no numpy._core; symgrad falls back on numpy.errstate")
    _lookup(module, name)


def test_a_missing_name_is_reported():
    with pytest.raises(AttributeError, match="no_such_name"):
        _lookup("sympy.core.cache", "no_such_name")


def test_the_numpy_error_state_is_the_one_errstate_sets():
    """The context variable read by the compiled code's quiet wrapper is NumPy's own."""
    if _compat.numpy_error_state is None:
        pytest.skip("this NumPy keeps its error state elsewhere")
    with np.errstate(divide="raise"):
        inside = _compat.numpy_error_state.get()
    assert inside is not _compat.numpy_error_state.get()
