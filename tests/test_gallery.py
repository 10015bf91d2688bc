"""``docs/gallery.md``: every printed gradient of the gallery is fit to print.

The page's python blocks run (as ``tests/test_docs.py`` runs them) and register each
model's loss and parameter in ``GALLERY``.  For each, the gradient as symgrad prints it --
text, pretty, LaTeX and Python's ``str`` -- contains no engine helper, names nothing but
tensors the model named, and its text computes what ``backward()`` computes.
"""
from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

import symgrad
from symgrad.symbolic import diff, latex, pretty, tensor_graph, text
from symgrad.symbolic.codegen.read_text import evaluate_text
from symgrad.symbolic.printing.display import ENGINE_HELPERS
from tests.test_docs import DOCS, blocks


@pytest.fixture(scope="module")
def page() -> dict:
    """The namespace the page's python blocks leave."""
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for code, _, line in blocks((DOCS / "gallery.md").read_text(encoding="utf-8")):
            exec(compile(code, f"gallery.md:{line}", "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace


@pytest.fixture(scope="module")
def gallery(page) -> list:
    return page["GALLERY"]


def test_the_gallery_shows_at_least_ten_models(gallery):
    assert len(gallery) >= 10


def _names_in(shown: str) -> set:
    """The names a printed text form reads (not the functions it calls, nor the names its
    ``where`` lines define)."""
    import ast

    form, *definitions = shown.split("\n")
    defined = {line.removeprefix("where").split(" = ")[0].strip() for line in definitions}
    names = set()
    for line in [form] + [line.split(" = ", 1)[1] for line in definitions]:
        tree = ast.parse(line, mode="eval")
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in called}
    return names - defined - {"s_", "None"}


def test_every_printed_gradient_is_defined_free_of_helpers_and_right(gallery):
    for loss, wrt in gallery:
        gradient = diff(loss, wrt)
        named = {}
        for source in tensor_graph(loss)[1].values():
            if getattr(source, "name", None):
                named[source.name] = source.detach().numpy()
            for axis, size in enumerate(getattr(source, "dims", None) or ()):
                if size is not None:
                    named[size] = source.shape[axis]
        shown = text(gradient)
        assert _names_in(shown) <= set(named), f"the gradient of {wrt.name} reads names no one gave: {shown}"
        for printed in (shown, pretty(gradient), latex(gradient), str(gradient)):
            leaked = [h for h in ENGINE_HELPERS if h in printed]
            assert not leaked, f"the gradient of {wrt.name} prints {leaked}: {printed}"
        (expected,) = symgrad.autograd.grad(loss, [wrt], retain_graph=True)
        value = evaluate_text(shown, named)
        np.testing.assert_allclose(np.broadcast_to(value, expected.shape), expected.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=f"the gradient of {wrt.name} shown as {shown}")


def test_a_name_no_one_gave_is_caught():
    assert _names_in("X.T @ (t0*sigmoid(X @ w))") == {"X", "t0", "w"}
    assert _names_in("2*t0 @ w\nwhere t0 = 1 - y") == {"w", "y"}


def _explained_as_longer() -> list[str]:
    """The models the page's list after the comparison explains (``* **Least squares,
    ridge**: ...``), lower case, one per name."""
    text_of_page = (DOCS / "gallery.md").read_text(encoding="utf-8")
    section = text_of_page.split("## Against matrixcalculus.org", 1)[1]
    reasons = section.split("Where symgrad's form is longer", 1)[1]
    return [name.strip().lower() for bold in re.findall(r"^\* \*\*(.+?)\*\*", reasons, re.M)
            for name in bold.split(",")]


def test_each_form_is_no_longer_than_the_transcribed_textbook_form_or_the_page_says_why(page):
    explained = _explained_as_longer()
    assert len(page["COMPARED"]) >= 6, "the comparison lost models"
    for model, printed, textbook in page["COMPARED"]:
        if len(printed) <= len(textbook):
            continue
        first_word = model.split(",")[0].split()[0].lower()
        assert any(name.split()[0] == first_word for name in explained), (
            f"{model}: symgrad prints {len(printed)} characters, the textbook form {len(textbook)}, and the page's "
            f"list of reasons ({explained}) does not explain it: {printed}")


def test_the_page_says_where_the_compared_forms_come_from():
    section = (DOCS / "gallery.md").read_text(encoding="utf-8").split("## Against matrixcalculus.org", 1)[1]
    assert "transcribed by hand" in section and "None of them is the tool's output" in section
