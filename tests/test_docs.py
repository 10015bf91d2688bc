"""The documentation: the tutorials' code runs and prints what they show, and the site builds.

Each tutorial page (MyST Markdown) is run like a notebook: its ``python`` blocks execute
in order in one namespace per page, and a ``text`` block right after a ``python`` block is
what that block prints (compared line by line, trailing spaces ignored; a line ``...``
matches any number of lines, for output that varies, such as timings or file paths).
A ``{math}`` block (a formula Sphinx renders) shows the printed LaTeX of the output block
above it (its last paragraph), and is compared with it.

Every page with a ``$ symgrad`` block (the command line's pages ``docs/cli*.md``, and any
other) holds transcripts: in a plain fenced block, a line ``$ symgrad ...`` is a command, the lines after it are what it prints (standard
output, then standard error), and ``[exit N]`` its exit status when it is not 0.  Each
command runs in-process (``symgrad.cli.main``) in an empty directory and must print what
is shown.

The site build runs ``python -m sphinx -W --keep-going -b html docs <tmp>`` (warnings are
errors) when Sphinx, myst-parser and myst-nb are installed (``pip install '.[docs]'``), and
skips otherwise; the notebooks (``docs/notebooks``) appear with their stored outputs
(``tests/test_notebooks.py`` runs them).

Blocks made from the op table (``GENERATED``: the formula language's function table in
``docs/cli.md``, the NumPy functions that run on tensors in ``docs/api.md``) must equal
what the table gives now.

After a deliberate change of what the tutorials or the command print (a new printer,
say), run ``python tests/test_docs.py`` to rewrite every shown output that no longer
matches with what its block or command prints now, then read the diff before committing it.
"""
from __future__ import annotations

import contextlib
import io
import linecache
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import symgrad

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIALS = ["tutorial_from_pytorch.md", "tutorial_from_sympy.md"]
RUNNABLE = TUTORIALS + ["transforms.md", "printing.md", "gallery.md", "checking_a_library.md", "export.md",
                        "tensorboard.md"]
"""Pages whose python blocks run and must print what the page shows."""
NEEDS = {"checking_a_library.md": ("libs", ["scipy", "sklearn", "statsmodels"]),
         "export.md": ("export", ["torch", "jax"]),
         "tensorboard.md": ("tensorboard", ["tensorboard"])}
"""The extra and the optional libraries a page needs; its test skips without them."""
RUN_ELSEWHERE = {"testing.md": "tests/check/test_testing_page.py", "scaling.md": "tests/test_scaling.py"}
"""Pages whose python blocks another test runs, and that test."""
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str | None, int]]:
    """``(code, expected output or None, line number)`` for each python block of a page."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (kind, code, start, end) in enumerate(found):
        if kind != "python":
            continue
        expected = None
        if i + 1 < len(found) and found[i + 1][0] == "text" and not text[end:found[i + 1][2]].strip():
            expected = found[i + 1][1]
        out.append((code, expected, text.count("\n", 0, start) + 2))
    return out


def run_page(path: Path) -> list[tuple[str, str | None, str, int]]:
    """Run a page's python blocks in one namespace; ``(code, expected, printed, line)`` each."""
    namespace: dict = {"__name__": "__main__"}
    results = []
    for code, expected, line in blocks(path.read_text(encoding="utf-8")):
        filename = f"{path.name}:{line}"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, filename, "exec"), namespace)  # noqa: S102  (our own documentation)
        results.append((code, expected, printed.getvalue(), line))
    return results


def matches(expected: str, printed: str) -> bool:
    """Line-by-line equality (trailing spaces ignored); a ``...`` line matches any lines."""
    pattern = "\n".join(".*?" if line.strip() == "..." else re.escape(line.rstrip())
                        for line in expected.rstrip("\n").split("\n"))
    actual = "\n".join(line.rstrip() for line in printed.rstrip("\n").split("\n"))
    return re.fullmatch(pattern, actual, re.S) is not None


@pytest.fixture
def fresh_state():
    """A page changes global settings as a user would; put them back afterwards."""
    engine, dtype = symgrad.get_backward_engine(), symgrad.get_default_dtype()
    yield
    symgrad.set_backward_engine(engine)
    symgrad.set_default_dtype(dtype)


@pytest.mark.parametrize("page", RUNNABLE)
def test_tutorial_runs_and_prints_what_it_shows(page, fresh_state):
    extra, modules = NEEDS.get(page, ("", []))
    for module in modules:
        pytest.importorskip(module, reason=f"docs/{page} needs {module}: pip install '.[{extra}]'")
    results = run_page(DOCS / page)
    assert len(results) >= (10 if page in TUTORIALS else 5), f"{page} has only {len(results)} python blocks"
    for code, expected, printed, line in results:
        if expected is None:
            assert printed == "", f"{page}:{line}: the block prints, so show its output in a text block:\n{printed}"
            continue
        assert matches(expected, printed), (
            f"{page}:{line}\n--- block ---\n{code}\n--- shown ---\n{expected}\n--- printed ---\n{printed}")


TRANSCRIPT = re.compile(r"^```[ \t]*\n(\$ symgrad .*?)^```[ \t]*$", re.S | re.M)
def math_blocks(text: str) -> list[tuple[str, str, int, int]]:
    """``(math, the printed LaTeX before it, start, end)`` for each ``{math}`` block of a
    page: a rendered formula shows the last paragraph (after the last blank line) of the
    output block above it."""
    found = list(FENCE.finditer(text))
    out = []
    for k, fence in enumerate(found):
        if fence.group(1) == "{math}":
            before = [f for f in found[:k] if f.group(1) == "text"]
            printed = before[-1].group(2).strip().split("\n\n")[-1] + "\n" if before else ""
            out.append((fence.group(2), printed, fence.start(2), fence.end(2)))
    return out


@pytest.mark.parametrize("page", RUNNABLE)
def test_rendered_formulas_are_the_printed_latex_above_them(page):
    for math, printed, _, _ in math_blocks((DOCS / page).read_text(encoding="utf-8")):
        assert math.strip() == printed.strip(), f"{page}: a {{math}} block differs from the output above it"


def update_math(path: Path) -> int:
    """Rewrite each ``{math}`` block to the printed output above it; return how many changed."""
    text = path.read_text(encoding="utf-8")
    edits = [(start, end, printed) for math, printed, start, end in math_blocks(text) if math.strip() != printed.strip()]
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    path.write_text(text, encoding="utf-8")
    return len(edits)


CLI_PAGES = sorted(p.name for p in DOCS.glob("*.md") if TRANSCRIPT.search(p.read_text(encoding="utf-8")))
"""Pages that show ``$ symgrad`` transcripts (each command runs and must print what is shown)."""


def transcripts(text: str) -> list[tuple[str, str, int, int]]:
    """``(command, shown output, start, end)`` of each ``$ symgrad`` command of a page;
    start and end delimit the shown output in ``text``."""
    found = []
    for block in TRANSCRIPT.finditer(text):
        starts = [m.start() for m in re.finditer(r"^\$ symgrad ", block.group(1), re.M)]
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else len(block.group(1))
            command, _, shown = block.group(1)[start:end].partition("\n")
            offset = block.start(1) + start + len(command) + 1
            found.append((command[2:], shown, offset, block.start(1) + end))
    return found


class _Terminal(io.StringIO):
    """Captured output that says it is UTF-8, as the terminal the pages were made on (the
    pretty printer draws with Unicode there)."""

    encoding = "utf-8"


def run_command(command: str, where: Path) -> str:
    """What ``command`` prints (stdout, then stderr, then ``[exit N]`` unless 0), as a page shows it."""
    from symgrad.cli import main

    out, err = _Terminal(), _Terminal()
    before = os.getcwd()
    os.chdir(where)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(shlex.split(command)[1:])
    finally:
        os.chdir(before)
    text = out.getvalue() + err.getvalue()
    return text + (f"[exit {status}]\n" if status else "")


def _separated(shown: str) -> str:
    """A transcript's shown output without the blank line that separates it from the next command."""
    return shown[:-1] if shown.endswith("\n\n") else shown


@pytest.mark.parametrize("page", CLI_PAGES)
def test_command_line_pages_show_what_the_command_prints(page, tmp_path):
    found = transcripts((DOCS / page).read_text(encoding="utf-8"))
    assert found, f"{page} shows no $ symgrad command"
    for k, (command, shown, _, _) in enumerate(found):
        where = tmp_path / str(k)
        where.mkdir()
        if " -o " in command and not command.split(" -o ")[1].split()[0].endswith((".dot", ".gv")) \
                and not _has_dot():
            continue  # a picture needs Graphviz's dot
        printed = run_command(command, where)
        assert matches(_separated(shown), printed), (
            f"{page}: $ {command}\n--- shown ---\n{shown}\n--- printed ---\n{printed}")


def test_no_page_shows_a_command_or_an_output_that_no_test_runs():
    """A ``$ symgrad`` line outside a plain fenced transcript block (in a ``console`` or
    ``bash`` block, say) and a printed output after a python block of a page no test
    runs could drift from what the program prints: there are none."""
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        checked = sum(block.group(1).count("\n$ symgrad ") + 1 for block in TRANSCRIPT.finditer(text))
        assert len(re.findall(r"^\$ symgrad ", text, re.M)) == checked, \
            f"{page.name} shows a '$ symgrad' line outside a plain ``` transcript block"
        shows_output = any(expected is not None for _, expected, _ in blocks(text))
        if shows_output and page.name not in RUNNABLE:
            runner = RUN_ELSEWHERE.get(page.name)
            assert runner and page.name in (ROOT / runner).read_text(encoding="utf-8"), \
                f"{page.name} shows what python blocks print, but no test runs them: add it to RUNNABLE"


def _has_dot() -> bool:
    from symgrad import viz

    return viz.has_dot()


TOCTREE = re.compile(r"^```\{toctree\}[^\n]*\n(.*?)^```", re.S | re.M)


def test_every_page_is_in_a_table_of_contents():
    """Every page is listed in a toctree: index.md's, or a guide's own (the command's
    pages hang under cli.md)."""
    listed = set()
    for page in DOCS.glob("*.md"):
        for block in TOCTREE.findall(page.read_text(encoding="utf-8")):
            listed |= set(re.findall(r"^(\w+)\s*$", block, re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= listed, f"no toctree lists {sorted(pages - listed)}"


def test_the_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="the docs build needs the docs extra: pip install '.[docs]'")
    pytest.importorskip("myst_parser", reason="the docs build needs the docs extra: pip install '.[docs]'")
    pytest.importorskip("myst_nb", reason="the docs build needs the docs extra: pip install '.[docs]'")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
                             "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    for page in ["index", "api", "architecture", "cli", "cli_diff", "cli_check", "cli_graph", "testing",
                 *(Path(p).stem for p in TUTORIALS)]:
        assert (tmp_path / "html" / f"{page}.html").is_file(), f"{page}.html was not built"
    for notebook in (DOCS / "notebooks").glob("*.ipynb"):  # shown with their outputs: pictures and formulas
        shown = (tmp_path / "html" / "notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        assert "<img " in shown and r"\displaystyle" in shown, f"{notebook.name} shows no outputs"
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for name in ["symgrad.Tensor", "symgrad.autograd.Function", "symgrad.nn.Linear", "symgrad.nn.functional.mse_loss",
                 "symgrad.optim.SGD", "symgrad.check.gradcheck", "symgrad.testing.assert_grads_close",
                 "symgrad.symbolic.diff", "symgrad.viz.draw"]:
        assert f'id="{name}"' in api, f"the API reference does not document {name}"


def function_table() -> str:
    """The formula language's functions as ``docs/cli.md`` shows them: one row each, from
    the parser's whitelist (the op table's ``in_formulas`` ops and their summaries)."""
    from symgrad.parsing import FUNCTIONS

    rows = ["| function | meaning |", "|---|---|"]
    for name, spec in FUNCTIONS.items():
        rows.append(f"| `{spec.usage}` | {spec.doc} |")
    return "\n".join(rows) + "\n"


def numpy_function_list() -> str:
    """The NumPy functions that run on tensors, as ``docs/api.md`` lists them."""
    import textwrap

    from symgrad.tape.numpy_protocol import numpy_functions

    return textwrap.fill(", ".join(f"`{name}`" for name in numpy_functions()), 90) + "\n"


GENERATED = {  # page -> (what the block is, the function that makes it), between markers
    "cli.md": ("the function table", function_table),
    "api.md": ("the list of NumPy functions", numpy_function_list),
}
"""Blocks of pages made from the op table; ``python tests/test_docs.py`` rewrites them."""


def _markers(what: str) -> tuple[str, str]:
    return f"<!-- {what}: made from the op table; `python tests/test_docs.py` rewrites it -->\n", f"<!-- end of {what} -->"


def shown_block(text: str, what: str) -> tuple[int, int]:
    """Where a generated block of a page is: ``(start, end)`` of its text between the markers."""
    begin, finish = _markers(what)
    start = text.index(begin) + len(begin)
    return start, text.index(finish, start)


@pytest.mark.parametrize("page", sorted(GENERATED))
def test_blocks_made_from_the_op_table_are_current(page):
    what, make = GENERATED[page]
    text = (DOCS / page).read_text(encoding="utf-8")
    start, end = shown_block(text, what)
    assert text[start:end] == make(), f"docs/{page}: {what} is stale: run python tests/test_docs.py"


def update_generated_block(page: str) -> bool:
    """Rewrite the generated block of ``docs/<page>``; return whether it changed."""
    what, make = GENERATED[page]
    path = DOCS / page
    text = path.read_text(encoding="utf-8")
    start, end = shown_block(text, what)
    if text[start:end] == make():
        return False
    path.write_text(text[:start] + make() + text[end:], encoding="utf-8")
    return True


def update_page(path: Path) -> list[int]:
    """Rewrite the shown output of every block of ``path`` whose output no longer matches
    (adding a ``text`` block where a printing block has none); return their line numbers.
    Outputs with a ``...`` line are reported, never rewritten."""
    text = path.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    results = iter(run_page(path))
    edits, changed = [], []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        code, expected, printed, line = next(results)
        following = fences[i + 1] if i + 1 < len(fences) else None
        shown = following is not None and following.group(1) == "text" and not text[fence.end():following.start()].strip()
        new_block = "```text\n" + printed.rstrip("\n") + "\n```"
        if shown and not matches(expected, printed):
            if any(row.strip() == "..." for row in expected.splitlines()):
                print(f"{path.name}:{line}: output differs but has '...' lines: edit it by hand")
                continue
            edits.append((following.start(), following.end(), new_block))
        elif not shown and printed:
            edits.append((fence.end(), fence.end(), "\n\n" + new_block))
        else:
            continue
        changed.append(line)
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    path.write_text(text, encoding="utf-8")
    return changed


def update_transcripts(path: Path) -> list[str]:
    """Rewrite the shown output of every ``$ symgrad`` command of ``path`` that no longer
    matches; return those commands (outputs with a ``...`` line are reported, never rewritten)."""
    import tempfile

    text = path.read_text(encoding="utf-8")
    edits, changed = [], []
    with tempfile.TemporaryDirectory() as where:
        for command, shown, start, end in transcripts(text):
            printed = run_command(command, Path(where))
            if matches(_separated(shown), printed):
                continue
            if any(row.strip() == "..." for row in shown.splitlines()):
                print(f"{path.name}: $ {command}: output differs but has '...' lines: edit it by hand")
                continue
            edits.append((start, end, printed + ("\n" if shown.endswith("\n\n") else "")))
            changed.append(command)
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    path.write_text(text, encoding="utf-8")
    return changed


if __name__ == "__main__":
    for name in RUNNABLE:
        lines = update_page(DOCS / name)
        print(f"docs/{name}: " + (f"rewrote the output of the blocks at lines {lines}" if lines else "up to date"))
        if update_math(DOCS / name):
            print(f"docs/{name}: rewrote {{math}} blocks to the printed LaTeX above them")
    for name, (what, _) in GENERATED.items():
        print(f"docs/{name}: " + (f"rewrote {what}" if update_generated_block(name) else f"{what} up to date"))
    for name in CLI_PAGES:
        commands = update_transcripts(DOCS / name)
        print(f"docs/{name}: " + (f"rewrote the output of {commands}" if commands else "up to date"))
