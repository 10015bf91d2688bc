"""Compile generated C to a shared library and load it with ctypes.

The one place that finds a C compiler, runs it and loads its output, for every backend
that generates C:

* **The compiler** is ``$CC`` when it is set (split like a shell word list, so
  ``CC="ccache gcc"`` works), else ``cc``, else ``gcc`` on ``PATH``.  A ``CC`` that is set
  must name an executable program, never silently replaced by another compiler.  None
  found: :class:`~symgrad.symbolic.codegen.backends.CompilerNotFoundError`, saying what was looked
  for and how to set ``CC``.
* **The build directory** is ``$SYMGRAD_BUILD_DIR``, else ``$XDG_CACHE_HOME/symgrad``, else
  ``~/.cache/symgrad``; created with mode 0700.  It is opened once per load with
  ``O_DIRECTORY | O_NOFOLLOW`` and checked on that descriptor (not on the path, so nothing
  can be swapped in between): a symbolic link, a directory owned by another user, or one
  that the group or others may write is refused with
  :class:`~symgrad.symbolic.codegen.backends.UnsafeBuildDirError`.  Every later step works on the
  descriptor: files are created and renamed relative to it, and the compiler and
  ``dlopen`` are given paths through ``/proc/self/fd/<descriptor>``, so a directory above
  the build directory that someone else can change cannot redirect them.
* **A library is loaded only if this process built it, or if it is unchanged since it
  was built**: next to ``sg_<hash>.so`` the build writes ``sg_<hash>.so.sha256``, the
  SHA-256 of the library's bytes; a library is reused only when both are regular files of
  this user that the group and others cannot write and the recorded hash is that of the
  library's bytes.  Anything else (no record, another hash, another owner, a symbolic
  link) is compiled again and replaced.  A library is named by a hash of its source, its
  flags, the compiler and the CPU (its model and instruction-set flags: code built with
  ``-march=native`` must never be loaded on another CPU sharing the directory), so the same
  code compiles once per machine and later processes just load it.
* **Thread-safe**: one lock per hash, so concurrent requests for the same source compile
  it once; each compilation writes to private names and is renamed into place
  atomically, so no process ever loads a half-written library.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import platform
import secrets
import shlex
import shutil
import stat
import subprocess
import threading
from typing import Sequence

from . import CCompileError, CompilerNotFoundError, UnsafeBuildDirError

__all__ = ["find_compiler", "build_dir", "library_name", "load_c"]

FD_PATHS = "/proc/self/fd"
"""Where an open descriptor has a path (Linux); elsewhere the directory's own path is used."""


def find_compiler() -> list[str]:
    """The C compiler command (a list: the program, then any arguments ``CC`` carries).

    A ``CC`` that is set must name a program: empty, blank, unbalanced quotes
    (``CC='gcc "'``), a directory or a missing program raise
    :class:`~symgrad.symbolic.codegen.backends.CompilerNotFoundError` naming ``CC`` and its value.

    >>> os.access(find_compiler()[0], os.X_OK)
    True
    """
    cc = os.environ.get("CC")
    if cc is not None:
        fix = ("set CC to a C compiler (CC=gcc or CC=/usr/bin/cc), unset it to use cc or gcc from PATH, "
               "or use backend='numpy'")
        try:
            words = shlex.split(cc)
        except ValueError as err:  # unbalanced quotes, a trailing backslash
            raise CompilerNotFoundError(f"CC={cc!r} cannot be split into words like a shell command ({err}); "
                                        f"{fix}") from None
        if not words:
            raise CompilerNotFoundError(f"CC={cc!r} is set but names no program; {fix}")
        program = shutil.which(words[0])
        if program is None:
            raise CompilerNotFoundError(f"CC={cc!r} does not name an executable program; {fix}")
        return [program, *words[1:]]
    for name in ("cc", "gcc"):
        program = shutil.which(name)
        if program is not None:
            return [program]
    raise CompilerNotFoundError(
        "no C compiler found: CC is not set and neither cc nor gcc is on PATH; install one "
        "(e.g. `apt install gcc`) or point CC at it (CC=/path/to/gcc), or use backend='numpy'")


def build_dir() -> str:
    """The directory compiled libraries are kept in, created private (0700) on first use
    and checked (see the module docstring): ``$SYMGRAD_BUILD_DIR``, else
    ``$XDG_CACHE_HOME/symgrad``, else ``~/.cache/symgrad``.

    >>> os.path.isdir(build_dir())
    True
    """
    path = _build_path()
    os.close(_open_build_dir(path))
    return path


def _build_path() -> str:
    explicit = os.environ.get("SYMGRAD_BUILD_DIR")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):  # the XDG spec: an unset, empty or relative value is ignored
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "symgrad")


def _open_build_dir(path: str) -> int:
    """A descriptor of the build directory ``path`` (created if missing), checked: not a
    symbolic link, owned by this user, not writable by the group or others."""
    path = path.rstrip(os.sep) or os.sep  # a trailing slash would make open() follow a link
    fix = ("set SYMGRAD_BUILD_DIR to a directory of your own that only you can write "
           "(it is created with mode 0700 if missing), or use backend='numpy'")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:  # a dangling symbolic link, or a file: refused below
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        what = "a symbolic link" if os.path.islink(path) else "not a directory"
        raise UnsafeBuildDirError(f"the C build directory {path} is {what}; symgrad loads compiled code from "
                                  f"it, so it must be a real directory; {fix}") from None
    info = os.fstat(fd)
    reason = None
    if info.st_uid != os.geteuid():
        reason = f"belongs to user {info.st_uid}, not to you (user {os.geteuid()})"
    elif info.st_mode & 0o022:
        reason = (f"has mode {stat.filemode(info.st_mode)} ({info.st_mode & 0o777:o}): the group or others may "
                  f"write into it (fix it with `chmod go-w {path}`)")
    if reason is not None:
        os.close(fd)
        raise UnsafeBuildDirError(f"the C build directory {path} {reason}; symgrad refuses to load compiled code "
                                  f"from a directory someone else controls; {fix}")
    return fd


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def library_name(source: str, flags: Sequence[str], compiler: Sequence[str] | None = None) -> str:
    """The file name of the library ``source`` compiles to with ``flags`` and ``compiler``
    (by default :func:`find_compiler`'s): a hash of them and the CPU.

    >>> library_name("int f(void) { return 1; }", ["-O0"])[:3]
    'sg_'
    """
    key = "\0".join([source, *flags, *(compiler or find_compiler()), _cpu()])
    return f"sg_{hashlib.sha256(key.encode()).hexdigest()[:24]}.so"


def load_c(source: str, flags: Sequence[str]) -> tuple[ctypes.CDLL, str]:
    """Compile ``source`` with ``flags`` (once per machine) and load it: ``(library, path)``.

    >>> lib, path = load_c("int sg_answer(void) { return 42; }", ["-O0", "-shared", "-fPIC"])
    >>> lib.sg_answer()
    42
    """
    compiler = find_compiler()
    name = library_name(source, flags, compiler)
    directory = _build_path()
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(name, threading.Lock())
    with lock:
        fd = _open_build_dir(directory)
        try:
            at = f"{FD_PATHS}/{fd}" if os.path.isdir(FD_PATHS) else directory
            if not _unchanged(fd, name):
                _compile(compiler, source, list(flags), fd, at, directory, name)
            return ctypes.CDLL(f"{at}/{name}"), os.path.join(directory, name)
        finally:
            os.close(fd)


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


def _record(library: bytes) -> bytes:
    """The content of a library's ``.sha256`` file."""
    return (hashlib.sha256(library).hexdigest() + "\n").encode()


def _read_own(fd: int, name: str) -> bytes | None:
    """The bytes of ``name`` in the directory ``fd`` if it is a regular file (not a link)
    of this user that the group and others cannot write, else None."""
    try:
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)  # NONBLOCK: a FIFO
    except OSError:
        return None
    with os.fdopen(f, "rb") as stream:
        info = os.fstat(f)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None
        return stream.read()


def _unchanged(fd: int, name: str) -> bool:
    """Whether library ``name`` is there with the hash its ``.sha256`` file recorded."""
    library = _read_own(fd, name)
    return library is not None and _read_own(fd, name + ".sha256") == _record(library)


def _compile(compiler: list[str], source: str, flags: list[str], fd: int, at: str, directory: str,
             name: str) -> None:
    """Compile ``source`` into ``name`` (and its ``.sha256``) in the directory ``fd``, which
    the compiler reaches as ``at``."""
    stem = f"tmp_{secrets.token_hex(8)}"  # private names, renamed into place when complete
    c_name, so_name, record_name = f"{stem}.c", f"{stem}.so", f"{stem}.sha256"
    try:
        with os.fdopen(os.open(c_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                               dir_fd=fd), "w") as f:
            f.write(source)
        command = [*compiler, *flags, f"{at}/{c_name}", "-o", f"{at}/{so_name}", "-lm"]
        shown = " ".join(command).replace(at + "/", os.path.join(directory, ""))
        proc = subprocess.run(command, capture_output=True, text=True, pass_fds=(fd,))
        if proc.returncode:
            raise CCompileError(
                f"the C compiler failed (exit {proc.returncode}) on generated code: {shown}\n"
                f"{proc.stderr.strip()[:4000]}\nThis is a bug in symgrad's C generation or an unsupported "
                "compiler; use backend='numpy' meanwhile")
        try:
            so = os.open(so_name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            raise CCompileError(f"the C compiler exited 0 but wrote no library: {shown}; set CC to a C compiler "
                                "(CC=gcc), or use backend='numpy'") from None
        with os.fdopen(so, "rb") as stream:
            os.fchmod(so, 0o700)
            library = stream.read()
        with os.fdopen(os.open(record_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                               dir_fd=fd), "wb") as f:
            f.write(_record(library))
        os.replace(so_name, name, src_dir_fd=fd, dst_dir_fd=fd)
        os.replace(record_name, name + ".sha256", src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        for leftover in (c_name, so_name, record_name):
            try:
                os.unlink(leftover, dir_fd=fd)
            except FileNotFoundError:
                pass
