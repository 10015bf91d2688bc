"""The README's example runs and prints what its comments say."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_prints_its_comments():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {})  # noqa: S102  (our own README's example)
    lines = printed.getvalue().splitlines()
    assert lines[0] == "x.T @ (-y/3 + sigmoid(b + x @ w)/3)"
    assert " ".join(" ".join(lines[1:]).split()) == "tensor([[-0.0475], [ 0.0787]])"
