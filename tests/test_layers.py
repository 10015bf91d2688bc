"""symgrad's modules import only downward: the layer table below is the one statement of
the order (``docs/architecture.md`` draws it), and every import of every module under
``symgrad/`` -- at module level, inside a function, or under ``TYPE_CHECKING`` -- is
checked against it by parsing the source with :mod:`ast` (nothing is imported).

A module may import modules of its own layer and of the layers below.  A new module
belongs to the entry whose dotted name is its longest prefix; a module that no entry
covers fails the test, so it must be placed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import symgrad

ROOT = Path(symgrad.__file__).parent

LAYERS: list[tuple[str, tuple[str, ...]]] = [  # bottom to top
    ("utilities", ("symgrad.pytree", "symgrad.progress", "symgrad.scaling")),
    ("op table", ("symgrad.ops",)),
    ("tape", ("symgrad.tape", "symgrad.autograd", "symgrad.linalg")),
    ("symbolic core", ("symgrad.symbolic.core",)),
    ("symbolic forms", ("symgrad.symbolic.forms",)),
    ("derivation", ("symgrad.symbolic.derive",)),
    ("printing", ("symgrad.symbolic.printing",)),
    ("code generation", ("symgrad.symbolic.codegen",)),
    ("symbolic engine and transforms", ("symgrad.symbolic.backward", "symgrad.symbolic.transforms",
                                        "symgrad.symbolic")),
    ("users of the engines", ("symgrad.check", "symgrad.exporters", "symgrad.nn", "symgrad.optim",
                              "symgrad.testing")),
    ("public API and front ends", ("symgrad.parsing", "symgrad.viz", "symgrad.tensorboard", "symgrad.cli",
                                   "symgrad.__main__")),
]
"""Each layer's name and the packages and modules it holds, bottom to top; the package
``symgrad`` itself (its ``__init__``, the public API) is in the top layer, whose front
ends use it.  Printing is below code generation, as in SymPy (``lambdify`` is built on
its printers): a compiled function shows its formulas, and reading a displayed form back
(``codegen/read_text.py``) evaluates through compiled code."""

LAZY_UPWARD = {
    ("symgrad.tape.tensor", "symgrad.symbolic.derive.graph"): "Tensor.expr() builds the closed form on demand",
}
"""The upward imports allowed, each inside a function only: the tape loads the symbolic
engine when it is first asked for (``tape/engine.py`` does so by name, through
``importlib``, for the ``symbolic`` backward engine)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def layer_of(name: str) -> int:
    """The index in ``LAYERS`` of a module of symgrad; the package itself is the top."""
    if name == "symgrad":
        return len(LAYERS) - 1
    best, where = -1, None
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if (name == member or name.startswith(member + ".")) and len(member) > best:
                best, where = len(member), index
    if where is None:
        raise LookupError(f"{name} is in no layer of tests/test_layers.py's LAYERS: add it")
    return where


def imports(name: str, path: Path):
    """``(imported symgrad module, line, inside a function)`` for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    functions = {id(node) for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for node in ast.walk(function) if node is not function}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "symgrad" or target.startswith("symgrad."):
                while target not in MODULES:  # ``import symgrad.ops.base as b`` names a module; a name inside one
                    target = target.rpartition(".")[0]
                yield target, node.lineno, id(node) in functions


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    upward = []
    for name, path in MODULES.items():
        for target, line, lazy in imports(name, path):
            if layer_of(target) <= layer_of(name):
                continue
            if lazy and (name, target) in LAZY_UPWARD:
                continue
            upward.append(f"{path.relative_to(ROOT.parent)}:{line}: {name} ({LAYERS[layer_of(name)][0]}) imports "
                          f"{target} ({LAYERS[layer_of(target)][0]})"
                          + (" in a function" if lazy else ""))
    assert not upward, f"{len(upward)} imports go up a layer:\n" + "\n".join(upward)


def test_the_allowed_lazy_imports_exist():
    """Each exception is still needed and still inside a function (else it is stale)."""
    found = {(name, target): lazy for name, path in MODULES.items() for target, _, lazy in imports(name, path)}
    for pair in LAZY_UPWARD:
        assert found.get(pair) is True, f"{pair[0]} no longer imports {pair[1]} inside a function: drop it from LAZY_UPWARD"


INTERNALS = ("numpy._core", "numpy.core", "mpmath", "sympy.core", "sympy.printing.defaults")
"""Library internals, imported only by ``symgrad/symbolic/core/_compat.py``, which lists
each name it takes (``tests/symbolic/test_compat.py`` checks them)."""


def test_library_internals_are_imported_in_one_place():
    found = []
    for name, path in MODULES.items():
        if name == "symgrad.symbolic.core._compat":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(ROOT.parent)}:{node.lineno}: {module}" for module in modules
                      if any(module == m or module.startswith(m + ".") for m in INTERNALS)]
    assert not found, "import these through symgrad/symbolic/core/_compat.py:\n" + "\n".join(found)


def test_nothing_test_only_ships_in_the_package():
    """The doctests' pytest set-up is the repository's root ``conftest.py``."""
    assert not sorted(ROOT.rglob("conftest.py"))


def test_the_checker_sees_upward_imports(tmp_path):
    """The parser finds imports in functions, under TYPE_CHECKING and relative ones."""
    path = tmp_path / "core_probe.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..forms import structural\n"
                    "def f():\n    from ...tape.tensor import apply_op\n    import symgrad.cli\n")
    name = "symgrad.symbolic.core.core_probe"
    assert sorted(imports(name, path)) == [("symgrad.cli", 6, True), ("symgrad.symbolic.forms.structural", 3, False),
                                           ("symgrad.tape.tensor", 5, True)]
    assert layer_of("symgrad.tape.tensor") < layer_of(name) < layer_of("symgrad.symbolic.forms.structural")
    with pytest.raises(LookupError, match="symgrad.nowhere"):
        layer_of("symgrad.nowhere")
