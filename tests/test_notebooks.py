"""The documentation's notebooks (``docs/notebooks/*.ipynb``) run in a real Jupyter kernel
without an error, every output within the notebook display budget, and are stored with
the outputs such a run gives (the docs site shows the stored outputs; it does not run
code).  Needs the ``notebook`` extra (nbclient, nbformat, ipykernel); skipped without.

After a change of what the notebooks show, run ``python tests/test_notebooks.py`` to run
them again and store their new outputs, then read the diff before committing it.
"""
from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from symgrad.symbolic.printing.notebook import DISPLAY_BUDGET  # noqa: E402
from symgrad.viz import has_dot  # noqa: E402
from tests.kernel import execute, tracebacks  # noqa: E402

NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
PICTURE_BUDGET = 200_000
"""Bytes of one picture (PNG or SVG) a notebook output may hold."""


def _run(path: Path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return execute(notebook, timeout=900, cwd=path.parent)


def _kinds(notebook) -> list[list[tuple]]:
    """Per code cell, its outputs' types and mime types (what a stored run must have)."""
    return [[(o.output_type, tuple(sorted(o.get("data", {})))) for o in cell.outputs]
            for cell in notebook.cells if cell.cell_type == "code"]


def _oversized(notebook) -> list[str]:
    """The outputs over the budget: text and LaTeX past DISPLAY_BUDGET characters, a
    picture past PICTURE_BUDGET bytes."""
    found = []
    for k, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            for mime, data in output.get("data", {}).items():
                size = len(base64.b64decode(data)) if mime == "image/png" else len(data)
                budget = PICTURE_BUDGET if mime.startswith("image/") else DISPLAY_BUDGET
                if size > budget:
                    found.append(f"cell {k}: {mime} of {size:,} characters")
            if output.output_type == "stream" and len(output.text) > DISPLAY_BUDGET:
                found.append(f"cell {k}: {output.name} of {len(output.text):,} characters")
    return found


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["logistic_regression_and_mlp.ipynb", "pytorch_tutorial.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_within_the_budget_and_is_stored_with_its_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    ran = _run(path)
    errors = [(k, tracebacks(cell.outputs)) for k, cell in enumerate(ran.cells) if cell.cell_type == "code"]
    assert not [e for e in errors if e[1]], errors
    assert not _oversized(ran)
    stored = nbformat.read(path, as_version=4)
    assert not _oversized(stored)
    missing = [what for what, present in (("matplotlib", importlib.util.find_spec("matplotlib") is not None),
                                          ("Graphviz 'dot'", has_dot())) if not present]
    if missing:  # the stored outputs have plots and graph pictures this run could not make
        pytest.skip(f"ran without errors within the budget; comparing with the stored outputs needs {missing}")
    assert _kinds(stored) == _kinds(ran), "stored outputs are stale: run python tests/test_notebooks.py"


def main() -> None:
    """Run every notebook and store it with its outputs."""
    import nbformat

    for path in NOTEBOOKS:
        ran = _run(path)
        problems = [tracebacks(cell.outputs) for cell in ran.cells if cell.cell_type == "code"]
        if any(problems) or _oversized(ran):
            raise SystemExit(f"{path.name}: {[p for p in problems if p]} {_oversized(ran)}")
        nbformat.write(ran, path)
        print(f"stored {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
