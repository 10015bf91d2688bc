"""pytest: ``torch_helpers.py`` and ``jax_helpers.py`` are source the torch and jax export
targets copy, importing torch and JAX; their doctest collection is skipped where that
library is not installed (both are in the optional ``export`` extra)."""
from __future__ import annotations

import importlib.util

collect_ignore = [f"{library}_helpers.py" for library in ("torch", "jax") if importlib.util.find_spec(library) is None]
