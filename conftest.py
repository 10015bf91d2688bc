"""pytest, for the examples in the package's docstrings (``testpaths`` runs the doctests of
``symgrad`` too); it lives outside the package, so nothing test-only ships with it.

* The examples of the C backends compile C, so they skip (with the reason) on a machine
  without a C compiler, like ``tests/symbolic/test_backends.py``.
* ``symgrad/exporters/torch_helpers.py`` and ``jax_helpers.py`` are source the torch and
  jax export targets copy, importing torch and JAX; they are not collected where that
  library is not installed (both are in the optional ``export`` extra).
* The doctests of ``symgrad/tensorboard.py`` write event files with the ``tensorboard``
  package (the optional ``tensorboard`` extra); they are not collected without it.
"""
from __future__ import annotations

import importlib.util

import pytest

collect_ignore = [f"symgrad/exporters/{library}_helpers.py" for library in ("torch", "jax")
                  if importlib.util.find_spec(library) is None]
if importlib.util.find_spec("tensorboard") is None:
    collect_ignore.append("symgrad/tensorboard.py")

NEEDS_COMPILER = {f"symgrad.symbolic.codegen.backends.{name}" for name in
                  ("c_fused.FusedFunction", "c_scalar.ScalarFunction", "cbuild.load_c", "cbuild.find_compiler",
                   "cbuild.library_name")}
"""The doctests that compile C."""


@pytest.fixture(autouse=True)
def _skip_without_compiler(request) -> None:
    if request.node.name in NEEDS_COMPILER:
        from symgrad.symbolic.codegen.backends import CompilerNotFoundError
        from symgrad.symbolic.codegen.backends.cbuild import find_compiler

        try:
            find_compiler()
        except CompilerNotFoundError as err:
            pytest.skip(f"no C compiler: {err}")
