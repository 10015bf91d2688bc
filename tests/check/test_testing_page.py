"""docs/testing.md runs: every ``python`` block executes (in order, sharing one namespace),
and a ``text`` block right after a ``python`` block is what that block prints.

A line ``...`` in an expected output matches any number of lines (used where the output
shows the caller's frames).  A python block whose first line names a test file
(``# test_something.py``) is a file for pytest, not a script, and is not executed here
(tests/check/test_plugin.py runs such a file with the plugin).
"""
from __future__ import annotations

import contextlib
import io
import linecache
import re
import warnings
from pathlib import Path

import pytest

import symgrad

PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
NAMES = ["gradcheck", "gradgradcheck", "check_function", "check_grad", "GradcheckError", "detect_anomaly", "check"]


def blocks(text: str) -> list[tuple[str, str, str | None]]:
    """``(kind, code, expected output or None)`` for each python block of the page."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (kind, code, _, end) in enumerate(found):
        if kind != "python":
            continue
        expected = None
        if i + 1 < len(found) and found[i + 1][0] == "text" and not text[end:found[i + 1][2]].strip():
            expected = found[i + 1][1]
        out.append((kind, code, expected))
    return out


def run_page(text: str) -> list[tuple[str, str | None, str]]:
    """Run the page's python blocks; ``(code, expected, printed)`` for each."""
    namespace: dict = {"__name__": "__main__"}
    results = []
    for _, code, expected in blocks(text):
        if re.match(r"# test_\w+\.py", code):
            continue
        filename = "example.py"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, filename, "exec"), namespace)  # noqa: S102  (our own documentation)
        results.append((code, expected, printed.getvalue()))
    return results


def matches(expected: str, printed: str) -> bool:
    """Line-by-line equality (trailing spaces ignored); a ``...`` line matches any lines."""
    pattern = "\n".join(".*?" if line.strip() == "..." else re.escape(line.rstrip())
                        for line in expected.rstrip("\n").split("\n"))
    actual = "\n".join(line.rstrip() for line in printed.rstrip("\n").split("\n"))
    return re.fullmatch(pattern, actual, re.S) is not None


def test_the_page_runs_and_prints_what_it_shows():
    missing = [name for name in NAMES if not hasattr(symgrad, name)]
    if missing:
        pytest.skip(f"symgrad/__init__.py does not re-export {missing} from symgrad.check yet")
    results = run_page(PAGE.read_text())
    assert len(results) >= 10
    for code, expected, printed in results:
        if expected is not None:
            assert matches(expected, printed), f"\n--- block ---\n{code}\n--- shown ---\n{expected}\n--- printed ---\n{printed}"
