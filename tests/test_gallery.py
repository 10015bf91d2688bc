"""``docs/gallery.md``: every printed gradient of the gallery is fit to print.

The page's python blocks run (as ``tests/test_docs.py`` runs them) and register each
model's loss and parameter in ``GALLERY``.  For each, the gradient as symgrad prints it --
text, pretty, LaTeX and Python's ``str`` -- contains no engine helper, names nothing but
tensors the model named, and its text computes what ``backward()`` computes.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import symgrad
from symgrad.symbolic import diff, latex, pretty, tensor_graph, text
from symgrad.symbolic.printing.display import ENGINE_HELPERS, evaluate_text
from tests.test_docs import DOCS, blocks


@pytest.fixture(scope="module")
def gallery() -> list:
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for code, _, line in blocks((DOCS / "gallery.md").read_text(encoding="utf-8")):
            exec(compile(code, f"gallery.md:{line}", "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace["GALLERY"]


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
