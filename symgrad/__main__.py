"""``python -m symgrad``: the ``symgrad`` command (see :mod:`symgrad.cli`)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
