"""pytest: the doctests of ``tensorboard.py`` write event files with the ``tensorboard``
package (the optional ``tensorboard`` extra); they are not collected without it."""
from __future__ import annotations

import importlib.util

collect_ignore = ["tensorboard.py"] if importlib.util.find_spec("tensorboard") is None else []
