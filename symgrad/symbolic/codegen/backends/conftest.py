"""pytest: the examples in these modules' docstrings compile C, so they skip (with the
reason) on a machine without a C compiler, like ``tests/symbolic/test_backends.py``."""
from __future__ import annotations

import pytest

NEEDS_COMPILER = {"c_fused.FusedFunction", "c_scalar.ScalarFunction", "cbuild.load_c", "cbuild.find_compiler"}


@pytest.fixture(autouse=True)
def _skip_without_compiler(request) -> None:
    name = request.node.name.rsplit("backends.", 1)[-1]
    if name in NEEDS_COMPILER:
        from . import CompilerNotFoundError
        from .cbuild import find_compiler

        try:
            find_compiler()
        except CompilerNotFoundError as err:
            pytest.skip(f"no C compiler: {err}")
