"""The C build directory is safe (``symgrad.symbolic.codegen.backends.cbuild``): compiled code is
loaded only from a private directory of this user (not a symbolic link, not another
user's, not writable by the group or others), only when this process built it or its
recorded SHA-256 matches, and a directory above the build directory that someone swaps
cannot redirect the compiler or the loader.

A planted library has a constructor that writes a marker file, so "not loaded" is
observed, not assumed; the control case (a library with a valid record) shows the
marker does appear when a library is loaded.  Tests that need a C compiler skip, with
the reason, when none is found.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import secrets
import subprocess

import numpy as np
import pytest

import symgrad.symbolic as S
from symgrad.symbolic.codegen.backends import UnsafeBuildDirError
from symgrad.symbolic.codegen.backends import c_fused, cbuild
from symgrad.symbolic.core.symbols import ArrayVar

FLAGS = ["-O0", "-shared", "-fPIC"]
OTHER_UID = 12345


def twice_source() -> str:
    """A source no other test compiled (so ``dlopen`` has never seen its library's name)."""
    return f"/* {secrets.token_hex(8)} */\ndouble sg_twice(double x) {{ return 2 * x; }}\n"


def planted_library(cc: list[str], tmp_path: pathlib.Path, marker: pathlib.Path) -> bytes:
    """The bytes of a library whose constructor writes ``marker`` and whose ``sg_twice``
    returns 42: what an attacker would plant."""
    source = tmp_path / "planted.c"
    source.write_text(
        "#include <stdio.h>\n"
        f"__attribute__((constructor)) static void planted(void) {{ FILE* f = fopen(\"{marker}\", \"w\"); "
        "if (f) fclose(f); }\n"
        "double sg_twice(double x) { return 42; }\n")
    subprocess.run([*cc, *FLAGS, str(source), "-o", str(tmp_path / "planted.so")], check=True)
    return (tmp_path / "planted.so").read_bytes()


def record(data: bytes) -> bytes:
    return (hashlib.sha256(data).hexdigest() + "\n").encode()


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner to another user needs root")


# ============================================================================ the directory
def _symlink_to_private(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "build").symlink_to(tmp_path / "real")
    return tmp_path / "build", "symbolic link"


def _symlink_with_slash(tmp_path):
    path, reason = _symlink_to_private(tmp_path)
    return pathlib.Path(str(path) + "/"), reason


def _symlink_to_shared(tmp_path):  # /dev/shm's shape: root's, world-writable, sticky
    (tmp_path / "shm").mkdir()
    (tmp_path / "shm").chmod(0o1777)
    (tmp_path / "build").symlink_to(tmp_path / "shm")
    return tmp_path / "build", "symbolic link"


def _dangling_symlink(tmp_path):
    (tmp_path / "build").symlink_to(tmp_path / "not-yet")
    return tmp_path / "build", "symbolic link"


def _a_file(tmp_path):
    (tmp_path / "build").write_text("")
    return tmp_path / "build", "not a directory"


def _mode(mode):
    def make(tmp_path):
        (tmp_path / "build").mkdir()
        (tmp_path / "build").chmod(mode)
        return tmp_path / "build", f"({mode & 0o777:o})"
    make.__name__ = f"mode_{mode:o}"
    return make


def _other_owner(tmp_path):
    needs_root()
    (tmp_path / "build").mkdir(mode=0o700)
    os.chown(tmp_path / "build", OTHER_UID, -1)
    return tmp_path / "build", f"belongs to user {OTHER_UID}"


UNSAFE_DIRECTORIES = [_symlink_to_private, _symlink_with_slash, _symlink_to_shared, _dangling_symlink, _a_file,
                      _mode(0o777), _mode(0o770), _mode(0o1777), _mode(0o720), _mode(0o702), _other_owner]


@pytest.mark.parametrize("make", UNSAFE_DIRECTORIES, ids=lambda f: f.__name__.strip("_"))
def test_unsafe_build_directories_are_refused(make, tmp_path, monkeypatch):
    path, reason = make(tmp_path)
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(path))
    with pytest.raises(UnsafeBuildDirError) as info:
        cbuild.build_dir()
    message = str(info.value)
    for word in (str(path).rstrip("/"), reason, "SYMGRAD_BUILD_DIR", "backend='numpy'"):
        assert word in message


@pytest.mark.parametrize("make", UNSAFE_DIRECTORIES[:1] + UNSAFE_DIRECTORIES[5:6],
                         ids=lambda f: f.__name__.strip("_"))
def test_nothing_is_compiled_or_loaded_from_an_unsafe_directory(cc, make, tmp_path, monkeypatch):
    path, _ = make(tmp_path)
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(path))
    x = ArrayVar("x", (3,))
    with pytest.raises(UnsafeBuildDirError):
        S.compile_exprs([x], [2 * x], backend="c", cache=False)
    assert os.listdir(path) == []


def test_the_default_directory_is_the_users_cache(cc, tmp_path, monkeypatch):
    """``$XDG_CACHE_HOME/symgrad``; ``~/.cache/symgrad`` when it is unset, empty or relative
    (the XDG spec); created 0700, libraries 0700 with a 0600 record of their hash."""
    monkeypatch.delenv("SYMGRAD_BUILD_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = [("XDG_CACHE_HOME", str(tmp_path / "xdg"), tmp_path / "xdg" / "symgrad"),
             ("XDG_CACHE_HOME", "", tmp_path / "home" / ".cache" / "symgrad"),
             ("XDG_CACHE_HOME", "relative/cache", tmp_path / "home" / ".cache" / "symgrad"),
             (None, None, tmp_path / "home" / ".cache" / "symgrad")]
    for variable, value, expected in cases:
        if variable is None:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            monkeypatch.setenv(variable, value)
        assert cbuild.build_dir() == str(expected)
        assert expected.stat().st_mode & 0o777 == 0o700
        library, path = cbuild.load_c(twice_source(), FLAGS)
        library.sg_twice.restype, library.sg_twice.argtypes = ctypes.c_double, [ctypes.c_double]
        assert library.sg_twice(21.0) == 42.0 and os.path.dirname(path) == str(expected)
        assert os.stat(path).st_mode & 0o777 == 0o700 and os.stat(path + ".sha256").st_mode & 0o777 == 0o600
        assert pathlib.Path(path + ".sha256").read_bytes() == record(pathlib.Path(path).read_bytes())
        assert not pathlib.Path("relative").exists()


def test_a_library_is_compiled_once_and_then_reused(cc, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path / "build"))
    source = twice_source()
    _, path = cbuild.load_c(source, FLAGS)
    first = os.stat(path)
    _, again = cbuild.load_c(source, FLAGS)
    assert again == path and os.stat(path).st_ino == first.st_ino  # not compiled again
    name = os.path.basename(path)
    assert sorted(os.listdir(tmp_path / "build")) == [name, name + ".sha256"]


# ============================================================================ the libraries in it
def _no_record(lib, planted, tmp_path):
    lib.write_bytes(planted)


def _another_hash(lib, planted, tmp_path):
    lib.write_bytes(planted)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted + b"\0"))


def _a_malformed_record(lib, planted, tmp_path):
    lib.write_bytes(planted)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted).strip())


def _owned_by_another_user(lib, planted, tmp_path):
    needs_root()
    lib.write_bytes(planted)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted))
    os.chown(lib, OTHER_UID, -1)


def _record_owned_by_another_user(lib, planted, tmp_path):
    needs_root()
    lib.write_bytes(planted)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted))
    os.chown(str(lib) + ".sha256", OTHER_UID, -1)


def _writable_by_others(lib, planted, tmp_path):
    lib.write_bytes(planted)
    lib.chmod(0o777)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted))


def _a_symlink(lib, planted, tmp_path):
    (tmp_path / "elsewhere.so").write_bytes(planted)
    lib.symlink_to(tmp_path / "elsewhere.so")
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted))


def _a_fifo(lib, planted, tmp_path):
    os.mkfifo(lib, 0o600)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(b""))


def _a_valid_record(lib, planted, tmp_path):  # the control: as if this user had built it
    lib.write_bytes(planted)
    lib.chmod(0o700)
    pathlib.Path(str(lib) + ".sha256").write_bytes(record(planted))


PLANTED = [  # (how the library is planted, whether it is loaded)
    (_no_record, False), (_another_hash, False), (_a_malformed_record, False), (_owned_by_another_user, False),
    (_record_owned_by_another_user, False), (_writable_by_others, False), (_a_symlink, False), (_a_fifo, False),
    (_a_valid_record, True),
]


@pytest.mark.parametrize("plant, loaded", PLANTED, ids=lambda v: getattr(v, "__name__", str(v)).strip("_"))
def test_a_planted_library_is_never_loaded(cc, plant, loaded, tmp_path, monkeypatch):
    build = tmp_path / "build"
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(build))
    marker = tmp_path / "constructor-ran"
    planted = planted_library(cc, tmp_path, marker)
    source = twice_source()
    lib = build / cbuild.library_name(source, FLAGS)
    cbuild.build_dir()  # creates it
    plant(lib, planted, tmp_path)
    library, path = cbuild.load_c(source, FLAGS)
    library.sg_twice.restype, library.sg_twice.argtypes = ctypes.c_double, [ctypes.c_double]
    assert path == str(lib)
    assert library.sg_twice(3.0) == (42.0 if loaded else 6.0)
    assert marker.exists() == loaded
    assert pathlib.Path(path + ".sha256").read_bytes() == record(lib.read_bytes())  # replaced, and recorded


def test_the_issue_planted_library_does_not_change_a_result(cc, tmp_path, monkeypatch):
    """The report: a library planted under the name ``2*x``'s would load under returned
    [42, 42, 42] and ran its constructor."""
    build = tmp_path / "build"
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(build))
    marker = tmp_path / "constructor-ran"
    x = ArrayVar("x", (3,))
    expr = 2 * x + secrets.randbelow(10**6)  # a source no test loaded before
    names = []

    def learn_name(source, flags):  # the name the backend will load, without loading it
        names.append(cbuild.library_name(source, flags))
        raise LookupError("name learnt")

    monkeypatch.setattr(c_fused, "load_c", learn_name)
    with pytest.raises(LookupError):
        S.compile_exprs([x], [expr], backend="c_fused", cache=False)
    monkeypatch.setattr(c_fused, "load_c", cbuild.load_c)
    cbuild.build_dir()
    (build / names[0]).write_bytes(planted_library(cc, tmp_path, marker))
    native = S.compile_exprs([x], [expr], backend="c_fused", cache=False)
    assert os.path.basename(native.library_path) == names[0]
    values = np.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(native(values).out0, 2 * values + float(expr.args[0]))
    assert not marker.exists()


# ============================================================================ the path to it
def test_a_swapped_parent_cannot_redirect_the_loader(cc, tmp_path, monkeypatch):
    """A compiler wrapper swaps the build directory's parent for another one holding a
    planted library of the same name between compiling and loading: the loader reaches
    the build directory through its descriptor, so it loads what was compiled."""
    parent, evil = tmp_path / "parent", tmp_path / "evil"
    (evil / "build").mkdir(parents=True, mode=0o700)
    marker = tmp_path / "constructor-ran"
    wrapper = tmp_path / "cc-wrapper"
    wrapper.write_text(f"#!/bin/sh\n{' '.join(cc)} \"$@\" || exit 1\n"
                       f"mv {parent} {tmp_path / 'parent.real'} && mv {evil} {parent}\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(parent / "build"))
    source = twice_source()
    name = cbuild.library_name(source, FLAGS)
    planted = planted_library(cc, tmp_path, marker)
    (evil / "build" / name).write_bytes(planted)
    (evil / "build" / (name + ".sha256")).write_bytes(record(planted))
    library, _ = cbuild.load_c(source, FLAGS)
    library.sg_twice.restype, library.sg_twice.argtypes = ctypes.c_double, [ctypes.c_double]
    assert (parent / "build" / name).read_bytes() == planted  # the swap happened
    assert library.sg_twice(3.0) == 6.0 and not marker.exists()
    assert (tmp_path / "parent.real" / "build" / name).exists()


def test_without_descriptor_paths_the_directory_path_is_used(cc, tmp_path, monkeypatch):
    """Where ``/proc/self/fd`` does not exist the compiler and loader get the directory's
    path (the directories above it are then trusted, as docs/reliability.md says)."""
    monkeypatch.setattr(cbuild, "FD_PATHS", str(tmp_path / "no-proc"))
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path / "build"))
    library, path = cbuild.load_c(twice_source(), FLAGS)
    library.sg_twice.restype, library.sg_twice.argtypes = ctypes.c_double, [ctypes.c_double]
    assert library.sg_twice(4.0) == 8.0 and os.path.exists(path + ".sha256")


# ============================================================================ siblings
SHARED_TEMPORARY = ["tempfile", "gettempdir", "/tmp", "/dev/shm", "TMPDIR", "/var/tmp"]
PRIVATE_TEMPORARY = ("import tempfile", "tempfile.TemporaryDirectory(", "tempfile.mkdtemp(")
"""Lines that may name ``tempfile``: a directory made by ``mkdtemp`` is new, randomly
named and private (0700), so nobody else can put a file into it (the exporter verifies
its drafts in one)."""


def test_no_module_uses_a_shared_temporary_directory():
    """The sibling sweep: nothing in the package writes or reads files under a name in a
    directory other users can write (the C build directory was the one place)."""
    root = pathlib.Path(cbuild.__file__).parents[2]
    found = [f"{path.relative_to(root)}:{number}: {word}" for path in root.rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1)
             for word in SHARED_TEMPORARY if word in line and not line.strip().startswith(PRIVATE_TEMPORARY)
             and not any(private in line for private in PRIVATE_TEMPORARY[1:])]
    assert found == []
