"""Running notebooks in a real Jupyter kernel for the tests (nbclient + ipykernel, the
``notebook`` extra): the test skips where they are not installed.  The kernel imports
symgrad from this tree, whatever is installed."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def execute(notebook, timeout: int = 600, cwd: Path | None = None):
    """``notebook`` (an ``nbformat`` node) executed in a fresh kernel, errors kept in its
    outputs; a first cell puts this tree on the kernel's path and is removed afterwards."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    setup = nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(ROOT)!r})")
    notebook.cells.insert(0, setup)
    limit = sys.getrecursionlimit()  # running a client raises it (to 3,000), which changes other tests
    try:
        nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                                record_timing=False,  # stored notebooks: no timestamps in every diff
                                resources={"metadata": {"path": str(cwd or ROOT)}}).execute()
    finally:
        notebook.cells.remove(setup)
        sys.setrecursionlimit(limit)
    return notebook


def run_cells(sources: list[str], timeout: int = 600) -> list[list[dict]]:
    """The outputs of each of ``sources``, run as the cells of one notebook."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    return [cell.outputs for cell in execute(notebook, timeout).cells]


def tracebacks(outputs: list[dict]) -> list[str]:
    """The errors among ``outputs``: error outputs, and tracebacks written to stderr (a
    display formatter's failure is reported there, not raised)."""
    found = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    found += [o.text for o in outputs if o.output_type == "stream" and "Traceback" in o.text]
    return found
