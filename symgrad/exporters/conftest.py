"""pytest: ``torch_helpers.py`` is source the torch export target copies, importing torch;
its doctest collection is skipped where torch is not installed (torch is the optional
``export`` extra)."""
from __future__ import annotations

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["torch_helpers.py"]
