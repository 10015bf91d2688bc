"""Verified export: write a function's value and gradient as standalone code for another stack.

:func:`export` traces a function at example arguments, derives its value and gradient in
closed form, writes them for a target (``"numpy"``, ``"torch"``, ``"c"``, ``"jax"``: :data:`TARGETS`), loads (or
builds) what it wrote in a fresh namespace, checks it against symgrad's engines at the
examples and at random points (:mod:`.verify`), and only then moves the files into
place.  A disagreement raises :class:`ExportVerificationError` and writes nothing.

(The package is ``symgrad.exporters`` because ``symgrad.export`` is the function.)
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sympy as sp

from . import c_target, jax_target, numpy_target, torch_target
from .errors import ExportError, ExportVerificationError
from .program import Program, derive
from .verify import verify

__all__ = ["export", "Exported", "ExportError", "ExportVerificationError", "TARGETS"]

TARGETS = {"numpy": numpy_target, "torch": torch_target, "c": c_target, "jax": jax_target}
"""Target name -> its writer module (``SUFFIXES``, ``write(program)``, ``load(paths, program)``)."""


@dataclass
class Exported:
    """What :func:`export` wrote: the sources by suffix, the paths (empty when ``path`` was
    None), the closed forms, and how many points verification checked."""

    target: str
    sources: dict[str, str]
    paths: list[Path]
    closed_forms: dict[str, sp.Expr]
    points_checked: int
    program: Program = field(repr=False)

    @property
    def source(self) -> str:
        """The main source: the ``.py`` module, or the ``.c`` file."""
        return next(iter(self.sources.values()))


def _destinations(path: Any, suffixes: tuple, target: str, overwrite: bool) -> list[Path]:
    main = Path(path)
    if main.suffix != suffixes[0]:
        raise ExportError(f"the {target} target writes a {suffixes[0]} file, got the path {str(main)!r}")
    paths = [main.with_suffix(s) for s in suffixes]
    if not overwrite:
        for p in paths:
            if p.exists():
                raise ExportError(f"{str(p)!r} exists; pass overwrite=True (--overwrite) to replace it")
    if not main.parent.is_dir():
        raise ExportError(f"the directory {str(main.parent)!r} of the path {str(main)!r} does not exist")
    return paths


def export(f: Callable, *example_args: Any, target: str = "numpy", path: Any = None, argnums: Any = 0,
           static_argnums: Any = (), overwrite: bool = False) -> Exported:
    """Write the value and gradient of ``f`` as standalone ``target`` code, verified first.

    ``example_args`` fix the shapes and dtypes the code is derived for (as a transform's
    trace does); ``argnums`` and ``static_argnums`` mean what they mean for
    :func:`symgrad.value_and_grad`.  With ``path=None`` nothing is written: the verified
    sources are returned.  An existing file is replaced only with ``overwrite=True``.

    >>> import numpy as np, symgrad
    >>> ex = symgrad.export(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]))
    >>> print(ex.closed_forms["grad_x"])
    2*x
    >>> "import numpy" in ex.source.splitlines()
    True
    """
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; choose one of {sorted(TARGETS)}")
    writer = TARGETS[target]
    destinations = None if path is None else _destinations(path, writer.SUFFIXES, target, overwrite)
    program = derive(f, example_args, argnums, static_argnums)
    sources = writer.write(program)
    directory = None if destinations is None else destinations[0].parent
    with tempfile.TemporaryDirectory(dir=directory, prefix=".symgrad-export-") as scratch:
        stem = destinations[0].stem if destinations else program.name
        drafts = [Path(scratch) / f"{stem}{suffix}" for suffix in writer.SUFFIXES]
        for draft, suffix in zip(drafts, writer.SUFFIXES):
            draft.write_text(sources[suffix])
        try:
            points = verify(target, program, writer.load(drafts, program))
        except ExportError:
            raise
        except Exception as err:  # the written code itself fails: say so, and write nothing
            raise ExportError(f"the written {target} code failed while it was verified ({type(err).__name__}: "
                              f"{err}); nothing was written") from err
        if destinations is not None:
            for draft, destination in zip(drafts, destinations):
                os.replace(draft, destination)
    return Exported(target, sources, destinations or [], program.closed_forms(), points, program)
