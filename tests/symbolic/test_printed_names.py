"""Nothing printed is ever undefined (issue 14): every name a printed gradient reads is one
a user gave, or is defined in its ``where`` part.

A table of programs that make the engine name arrays itself -- integer-array indexing,
``gather``, ``cross_entropy`` with labels (the row numbers and the labels become index
arrays; named labels print by their name), a convolution (``im2col``'s window indices), unnamed data, an unnamed leaf -- is
printed by every user-facing path: ``text``, ``latex``, ``pretty``, Python's ``str`` of the
``diff`` result and of ``Tensor.expr``, and SymPy's own ``latex`` and ``pretty``.  The text form is read back by ``evaluate_text``
(the ``where`` definitions included) and compared with ``backward()``'s gradient, so the
definitions are checked by value, not only by presence.
"""
from __future__ import annotations

import ast
import re

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import diff, latex, pretty, tensor_graph, text
from symgrad.symbolic.codegen.read_text import evaluate_text
from symgrad.symbolic.core.symbols import ArrayValue


def _leaf(rng, shape, name):
    return symgrad.tensor(rng.normal(size=shape), requires_grad=True, name=name)


def _indexing(rng):
    x = _leaf(rng, (5,), "x")
    return (x[np.array([0, 2, 2])] ** 2).sum(), x


def _mask(rng):
    x = _leaf(rng, (6,), "x")
    return symgrad.exp(x[x.detach().numpy() > 0]).sum(), x


def _gather(rng):
    z = _leaf(rng, (4, 3), "z")
    picked = symgrad.gather(z, 1, symgrad.tensor(np.array([[0], [2], [1], [1]])))
    return (picked ** 2).sum(), z


def _cross_entropy_unnamed_labels(rng):
    z = _leaf(rng, (4, 3), "z")
    return F.cross_entropy(z, symgrad.tensor(np.array([0, 2, 1, 1]))), z


def _cross_entropy_named_labels(rng):
    z = _leaf(rng, (16, 3), "z")
    labels = symgrad.tensor(rng.integers(0, 3, size=16), name="labels")
    return F.cross_entropy(z, labels), z, labels  # idx1 = labels, or labels itself


def _indexing_with_a_named_tensor(rng):
    x = _leaf(rng, (5,), "x")
    rows = symgrad.tensor(rng.integers(0, 5, size=12), name="rows")
    return (x[rows] ** 2).sum(), x, rows


def _convolution(rng):
    image = symgrad.tensor(rng.normal(size=(1, 1, 5, 5)), name="image")
    kernel = _leaf(rng, (2, 1, 3, 3), "K")
    return (F.conv2d(image, kernel) ** 2).sum(), kernel


def _small_cnn(rng):
    """The CNN example's closed form (examples/cnn_digits.py), on one 8x8 image."""
    image = symgrad.tensor(rng.normal(size=(1, 1, 8, 8)), name="x")
    kernel, bias = _leaf(rng, (2, 1, 3, 3), "K"), _leaf(rng, (2,), "b")
    weight, offset = _leaf(rng, (10, 2 * 3 * 3), "W"), _leaf(rng, (10,), "c")
    features = F.max_pool2d(F.relu(F.conv2d(image, kernel, bias)), 2)
    logits = features.reshape(1, -1) @ weight.T + offset
    return F.cross_entropy(logits, symgrad.tensor(np.array([3]))), kernel


def _unnamed_small_data(rng):
    w = _leaf(rng, (3,), "w")
    return (w * symgrad.tensor([1.0, -2.0, 0.5])).sum(), w


def _unnamed_large_data(rng):
    w = _leaf(rng, (3,), "w")
    return symgrad.tanh(symgrad.tensor(rng.normal(size=(20, 3))) @ w).sum(), w


def _unnamed_leaf(rng):
    w = _leaf(rng, (3,), "w")
    bias = symgrad.tensor(rng.normal(size=3), requires_grad=True)
    return (symgrad.sin(w + bias) ** 2).sum(), w


def _data_computed_from_named_data(rng):
    X = symgrad.tensor(rng.normal(size=(5, 3)), name="X")
    w = _leaf(rng, (3,), "w")
    centred = (X - X.mean(dim=0)) / (X ** 2).sum(dim=0)  # long: named t0 and defined
    return (symgrad.tanh(centred @ w) ** 2).sum(), w


def _embedding(rng):
    table = _leaf(rng, (6, 2), "E")
    return (F.embedding(symgrad.tensor(np.array([[1, 4], [4, 0]])), table) ** 2).sum(), table


PROGRAMS = [_indexing, _indexing_with_a_named_tensor, _mask, _gather, _cross_entropy_unnamed_labels, _cross_entropy_named_labels, _convolution,
            _small_cnn, _unnamed_small_data, _unnamed_large_data, _unnamed_leaf, _data_computed_from_named_data,
            _embedding]

SUMMARIZED = {_unnamed_large_data}
"""Programs with an array printed as a summary (first and last values, dtype, shape): defined
for a reader, but not computable from the printed text."""


def _user_names(y) -> dict:
    """The arrays of every tensor the program named, by name."""
    return {source.name: source.detach().numpy() for source in tensor_graph(y)[1].values()
            if getattr(source, "name", None)}


def _text_names(line: str) -> set:
    """The names a line of a text form reads: not the functions it calls, keywords, nor the
    dtype an array summary names."""
    tree = ast.parse(line, mode="eval")
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    dtypes = {id(k.value) for node in ast.walk(tree) if isinstance(node, ast.Call) for k in node.keywords
              if k.arg == "dtype"}
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and id(node) not in called and id(node) not in dtypes} - {"s_", "None"}


def _undefined_in_text(shown: str, users: set) -> set:
    """The names a text form (with its ``where`` lines) reads that are neither a user's nor
    defined by a ``where`` line."""
    form, *definitions = shown.split("\n")
    defined = {line.removeprefix("where").split(" = ")[0].strip() for line in definitions}
    read = _text_names(form)
    for line in definitions:
        read |= _text_names(line.split(" = ", 1)[1])
    return read - users - defined


def _engine_names(y, gradient, users: set) -> set:
    """The names of the symbols in ``y``'s graph and its gradient that no user gave."""
    symbols = set(tensor_graph(y)[1]) | {s for s in getattr(gradient, "free_symbols", ()) if isinstance(s, sp.Symbol)}
    return {s.name for s in symbols} - users


def test_the_test_catches_an_undefined_name():
    assert _undefined_in_text("X.T @ (t0*sigmoid(X @ w))", {"X", "w"}) == {"t0"}
    assert _undefined_in_text("x[idx0]\nwhere idx0 = arange(4)", {"x"}) == set()
    assert _undefined_in_text("2*t0\nwhere t0 = y[idx0]", {"y"}) == {"idx0"}


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.__name__.strip("_"))
def test_every_printed_name_is_a_users_or_defined(program, rng):
    y, x, *index_tensors = program(rng)  # named tensors the program indexes with (no input of the graph)
    gradient = diff(y, x)
    values = _user_names(y) | {t.name: t.numpy() for t in index_tensors}
    users = set(values)
    engine = _engine_names(y, gradient, users)
    assert engine, f"{program.__name__} names no array itself: it tests nothing here"

    shown = text(gradient)
    assert not _undefined_in_text(shown, users), f"undefined names in the text of d/d{x.name}:\n{shown}"
    for raw in (str(gradient), str(y.expr)):  # Python's str: no where part, so no engine name
        assert not _text_names(raw) - users, f"plain str shows an undefined name: {raw}"
    raw_latex, raw_pretty = sp.latex(gradient), sp.pretty(gradient, wrap_line=False)  # SymPy's own printers
    for name in engine:
        assert sp.latex(sp.Symbol(name)) not in raw_latex and sp.pretty(sp.Symbol(name)) not in raw_pretty, name
    for short in (repr(gradient), repr(y.expr)):  # symgrad's abbreviated text, where part included
        if "characters in all" not in short:
            assert not _undefined_in_text(short, users), f"repr shows an undefined name: {short}"

    shown_latex, shown_pretty = latex(gradient), pretty(gradient)
    head, _, where = shown_latex.partition(r"\text{where }")
    pretty_lines = shown_pretty.splitlines()
    for name in engine:
        written = sp.latex(sp.Symbol(name))
        if written in head or name in head:
            assert f"{written} = " in where, f"{written} is printed but not defined:\n{shown_latex}"
        if written != name:  # the engine's name may only be written as LaTeX writes a symbol
            assert not re.search(rf"(?<![\w\\]){re.escape(name)}(?!\w)", shown_latex), shown_latex
        in_pretty = sp.pretty(sp.Symbol(name))
        if any(in_pretty in line for line in pretty_lines):
            assert any(line.strip().removeprefix("where").strip().startswith(f"{in_pretty} = ")
                       for line in pretty_lines), f"{in_pretty} is printed but not defined:\n{shown_pretty}"

    (expected,) = symgrad.autograd.grad(y, [x], retain_graph=True)
    if program in SUMMARIZED:
        with pytest.raises(ValueError, match="has no value"):
            evaluate_text(shown, values)  # a summary describes an array; it computes nothing
        return
    np.testing.assert_allclose(np.broadcast_to(evaluate_text(shown, values), expected.shape), expected.numpy(),
                               rtol=1e-9, atol=1e-12, err_msg=f"d/d{x.name} shown as {shown}")


@pytest.mark.parametrize("array, printed", [
    (np.array([0, 2, 1, 1]), "array((0, 2, 1, 1))"),
    (np.arange(64), "arange(64)"),
    (np.indices((16, 3))[0], "indices((16, 3))[0]"),
    (np.arange(12)[:, None] + 2 * np.arange(3), "indices((12, 3))[0] + 2*indices((12, 3))[1]"),
    (np.array([[True, False], [False, True]]), "array(((True, False), (False, True)))"),
])
def test_an_unnamed_array_prints_what_computes_it_again(array, printed):
    shown = str(ArrayValue.of(array))
    assert shown == printed
    np.testing.assert_array_equal(evaluate_text(shown, {}), array)


def test_a_large_array_without_a_pattern_prints_as_a_summary():
    array = np.linspace(0.0, 1.0, 40) ** 2
    value = ArrayValue.of(array)
    assert str(value).startswith("array((0.0, ") and str(value).endswith(", 1.0), dtype=float64, size=(40,))")
    assert r"\text{float64, shape } 40" in sp.latex(value)
