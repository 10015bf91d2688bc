"""Compile generated C to a shared library and load it with ctypes.

The one place that finds a C compiler, runs it and loads its output, for every backend
that generates C:

* **The compiler** is ``$CC`` when it is set (split like a shell word list, so
  ``CC="ccache gcc"`` works), else ``cc``, else ``gcc`` on ``PATH``.  A ``CC`` that names
  nothing executable is an error, never silently replaced by another compiler.  None
  found: :class:`~symgrad.symbolic.backends.CompilerNotFoundError`, saying what was looked
  for and how to set ``CC``.
* **The build directory** is ``$SYMGRAD_BUILD_DIR``, else ``symgrad-build-<uid>`` in the
  temporary directory, created private (mode 0700) and refused if another user owns it.
  A library is named by a hash of its source, its flags, the compiler and the CPU (its
  model and instruction-set flags: code built with ``-march=native`` must never be loaded
  on another CPU sharing the directory), so the same code compiles once per machine and
  later processes just load it.
* **Thread-safe**: one lock per hash, so concurrent requests for the same source compile
  it once; each compilation writes to a private temporary name and is renamed into place
  atomically, so no process ever loads a half-written library.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from typing import Sequence

from . import CCompileError, CompilerNotFoundError

__all__ = ["find_compiler", "build_dir", "load_c"]


def find_compiler() -> list[str]:
    """The C compiler command (a list: the program, then any arguments ``CC`` carries).

    >>> os.access(find_compiler()[0], os.X_OK)
    True
    """
    cc = os.environ.get("CC", "").strip()
    if cc:
        words = shlex.split(cc)
        program = shutil.which(words[0])
        if program is None:
            raise CompilerNotFoundError(
                f"CC={cc!r} does not name an executable program; set CC to a C compiler (CC=gcc or "
                f"CC=/usr/bin/cc), unset it to use cc or gcc from PATH, or use backend='numpy'")
        return [program, *words[1:]]
    for name in ("cc", "gcc"):
        program = shutil.which(name)
        if program is not None:
            return [program]
    raise CompilerNotFoundError(
        "no C compiler found: CC is not set and neither cc nor gcc is on PATH; install one "
        "(e.g. `apt install gcc`) or point CC at it (CC=/path/to/gcc), or use backend='numpy'")


def build_dir() -> str:
    """The directory compiled libraries are kept in (created private on first use).

    >>> os.path.isdir(build_dir())
    True
    """
    path = os.environ.get("SYMGRAD_BUILD_DIR") or os.path.join(tempfile.gettempdir(), f"symgrad-build-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    owner = os.stat(path).st_uid
    if owner != os.getuid():
        raise PermissionError(f"the build directory {path} belongs to user {owner}, not to you ({os.getuid()}); "
                              "set SYMGRAD_BUILD_DIR to a directory of your own")
    return path


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def load_c(source: str, flags: Sequence[str]) -> tuple[ctypes.CDLL, str]:
    """Compile ``source`` with ``flags`` (once per machine) and load it: ``(library, path)``.

    >>> lib, path = load_c("int sg_answer(void) { return 42; }", ["-O0", "-shared", "-fPIC"])
    >>> lib.sg_answer()
    42
    """
    compiler = find_compiler()
    digest = hashlib.sha256("\0".join([source, *flags, *compiler, _cpu()]).encode()).hexdigest()[:24]
    directory = build_dir()
    target = os.path.join(directory, f"sg_{digest}.so")
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(digest, threading.Lock())
    with lock:
        if not os.path.exists(target):
            _compile(compiler, source, list(flags), directory, target)
        return ctypes.CDLL(target), target


@functools.lru_cache(maxsize=None)
def _cpu() -> str:
    """The machine, CPU model and instruction-set flags (what ``-march=native`` depends on)."""
    lines = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    lines.append(line.strip())
                elif not line.strip() and lines:
                    break  # the first processor describes them all
    except OSError:
        pass
    return "\n".join([platform.machine(), platform.processor(), *lines])


def _compile(compiler: list[str], source: str, flags: list[str], directory: str, target: str) -> None:
    fd, c_path = tempfile.mkstemp(suffix=".c", prefix="sg_", dir=directory)
    so_path = c_path[:-2] + ".so"
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        command = [*compiler, *flags, c_path, "-o", so_path, "-lm"]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode:
            raise CCompileError(
                f"the C compiler failed (exit {proc.returncode}) on generated code: {' '.join(command)}\n"
                f"{proc.stderr.strip()[:4000]}\nThis is a bug in symgrad's C generation or an unsupported "
                "compiler; use backend='numpy' meanwhile")
        os.replace(so_path, target)
    finally:
        for leftover in (c_path, so_path):
            if os.path.exists(leftover):
                os.remove(leftover)
