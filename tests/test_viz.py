"""Graph pictures: DOT text always (tape graphs and SymPy expression DAGs, node styles,
escaping of hostile names, adjoint labels, a 100,000-op chain without recursion), SVG and
PNG through Graphviz when ``dot`` is installed, and a clean refusal when it is not."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import viz
from symgrad.parsing import parse

needs_dot = pytest.mark.skipif(not viz.has_dot(), reason="Graphviz 'dot' is not installed")


def nodes(source: str) -> dict:
    """``{node id: attribute text}`` of a DOT source written by viz."""
    return dict(re.findall(r"^  (n\d+) \[(.*)\];$", source, flags=re.M))


def edges(source: str) -> list:
    return re.findall(r"^  (n\d+) -> (n\d+);$", source, flags=re.M)


def label(attributes: str) -> list:
    return re.match(r'label="((?:[^"\\]|\\.)*)"', attributes).group(1).split("\\n")


# ---------------------------------------------------------------------------- tape graphs
def linear_model():
    x = symgrad.tensor([[1.0, 2.0]])  # data: a constant
    w = symgrad.tensor([[0.5], [-0.25]], requires_grad=True)
    w.name = "weight"  # a parameter
    b = symgrad.tensor([0.1], requires_grad=True)  # an unnamed leaf
    loss = ((x @ w + b) ** 2).sum()
    return loss, w, b


def test_tape_graph_labels_and_kinds():
    loss, _, _ = linear_model()
    source = viz.tensor_graph(loss).source
    found = {tuple(label(attrs)): attrs for attrs in nodes(source).values()}
    assert ("output", "scalar") in found and "doubleoctagon" in found[("output", "scalar")]
    assert ("weight", "(2, 1)") in found and 'fillcolor="#ffe08a"' in found[("weight", "(2, 1)")]
    assert ("leaf", "(1,)") in found and "ellipse" in found[("leaf", "(1,)")]
    assert ("matmul", "MmBackward0", "(1, 1)") in found
    assert ("pow_scalar", "PowBackward0", "exponent=2", "(1, 1)") in found
    constant = [attrs for lines, attrs in found.items() if "constant" in lines or lines == ("constant", "(1, 2)")]
    assert constant and all("dashed" in attrs for attrs in constant)
    assert len(edges(source)) == len(nodes(source)) - 1  # a tree here: every node feeds one consumer


def test_tape_graph_shares_a_leaf_used_twice_and_can_hide_constants():
    x = symgrad.tensor(2.0, requires_grad=True)
    y = x * x + 3
    source = viz.tensor_graph(y).source
    leaf_ids = [n for n, attrs in nodes(source).items() if label(attrs)[0] == "leaf"]
    assert len(leaf_ids) == 1
    assert sum(1 for a, _ in edges(source) if a == leaf_ids[0]) == 2
    assert any(label(a) == ["3"] for a in nodes(source).values())
    hidden = viz.tensor_graph(y, show_constants=False).source
    assert not any(label(a) == ["3"] for a in nodes(hidden).values())


def test_tape_graph_of_a_leaf_and_of_several_outputs():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    assert [label(a)[0] for a in nodes(viz.tensor_graph(x).source).values()] == ["output", "leaf"]
    a, b = x.sin(), x.cos()
    source = viz.tensor_graph(a, b).source
    names = [label(attrs)[0] for attrs in nodes(source).values()]
    assert names.count("leaf") == 1 and "output 0" in names and "output 1" in names


def test_tape_graph_after_backward_still_draws():
    loss, w, _ = linear_model()
    loss.backward()
    assert "MmBackward0" in viz.tensor_graph(loss).source


def test_tape_graph_adjoint_labels_are_closed_forms():
    x = symgrad.tensor(1.5, requires_grad=True)
    x.name = "x"
    y = symgrad.tensor(-2.0, requires_grad=True)
    y.name = "y"
    out = ((x * y + x) + y).sin()
    found = {label(a)[0] + "/" + label(a)[1]: a for a in nodes(viz.tensor_graph(out, adjoints=True).source).values()
             if len(label(a)) > 2}
    assert "grad: 1" in found["sin/SinBackward0"]
    # the inner sum (x*y + x) is merged away by SymPy; its adjoint is still exact:
    assert "grad: cos(x*y + x + y)" in found["add/AddBackward0"]
    assert "grad: cos(x*y + x + y)" in found["mul/MulBackward0"]


def test_tape_adjoint_labels_name_index_arrays_as_the_whole_graph_does():
    # each label is a closed form over the whole graph's symbols; the graph cut at one
    # getitem names its only index array idx0, which must become the whole graph's name
    x = symgrad.tensor([0.5, -1.0, 1.5], requires_grad=True, name="x")
    out = (x[[0, 1]] * x[[2, 0]]).sum()
    found = {label(a)[2]: label(a)[-1] for a in nodes(viz.tensor_graph(out, adjoints=True).source).values()
             if label(a)[0] == "getitem"}
    # d out / d x[[0, 1]] is the other factor, x[[2, 0]]: the whole graph's second index array
    assert found == {"index=(array([0, 1]),)": "grad: x[idx1]", "index=(array([2, 0]),)": "grad: x[idx0]"}


def test_tape_adjoints_need_a_scalar_output():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="scalar output"):
        viz.tensor_graph(x * 2, adjoints=True)


def test_hostile_names_are_escaped():
    x = symgrad.tensor(1.0, requires_grad=True)
    x.name = 'a"];\nn9 -> n9; evil [label="\\N'
    source = viz.tensor_graph(x * 2).source
    assert "n9 -> n9" not in re.sub(r'"(?:[^"\\]|\\.)*"', '""', source)  # only inside a quoted label
    assert 'a\\"];?n9 -> n9; evil [label=\\"\\\\N' in source
    for line in source.splitlines()[4:-1]:
        assert re.fullmatch(r'  n\d+ \[label="(?:[^"\\]|\\.)*",.*\];|  n\d+ -> n\d+;', line), line


# ---------------------------------------------------------------------------- expression graphs
def test_expression_graph_with_adjoints():
    parsed = parse("sin(x)*exp(-y**2)")
    source = viz.expression_graph(parsed.expr, adjoints=True).source
    found = {label(a)[0]: label(a) for a in nodes(source).values()}
    assert found["x"][-1] == "grad: exp(-y**2)*cos(x)"
    assert found["y"][-1] == "grad: -2*y*exp(-y**2)*sin(x)"
    assert found["sin"][-1] == "grad: exp(-y**2)"
    output = [a for a in nodes(source).values() if "doubleoctagon" in a]
    assert len(output) == 1 and label(output[0])[-1] == "grad: 1"


def test_expression_graph_shares_subexpressions_and_shows_shapes():
    parsed = parse("sum(sigmoid(x @ w) * sigmoid(x @ w))", {"x": (4, 2), "w": (2, 3)})
    source = viz.expression_graph(parsed.expr).source
    labels = [label(a) for a in nodes(source).values()]
    assert sum(1 for lines in labels if lines[0] == "@") == 1  # x @ w drawn once
    assert ["w", "(2, 3)"] in labels and ["@", "(4, 3)"] in labels


def test_expression_graph_draws_a_formulas_constant_arrays_as_constants():
    parsed = parse("sum(index_select(x, 0, [2, 0]) ** 2)", {"x": (3,)})
    attributes = [a for a in nodes(viz.draw(parsed, adjoints=True).source).values() if label(a)[0] == "idx0"]
    assert len(attributes) == 1 and "dashed" in attributes[0]  # grey and dashed, as numbers are
    assert label(attributes[0])[:3] == ["idx0", "= array((2, 0))", "(2,)"]


def test_draw_dispatches_and_refuses_others():
    x = symgrad.tensor(1.0, requires_grad=True)
    assert viz.draw(x * 2).kind == "tensor"
    assert viz.draw(sp.Symbol("x") + 1).kind == "expression"
    assert viz.draw(parse("x + 1")).kind == "expression"
    assert viz.draw("x*y").kind == "expression"  # text goes through the safe parser
    with pytest.raises(Exception, match="attribute access"):
        viz.draw("__import__('os').system('echo pwned')")
    with pytest.raises(TypeError):
        viz.draw(object())
    assert viz.to_dot(sp.Symbol("x") * 2).startswith("digraph")


# ---------------------------------------------------------------------------- scale
def chain(n: int):
    x = symgrad.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0000001
    return y


def test_a_100000_op_chain_exports_without_recursion():
    y = chain(100_000)
    source = viz.tensor_graph(y, show_constants=False).source
    assert source.count("MulBackward0") == 100_000
    assert len(edges(source)) == 100_001


def test_dot_export_work_is_linear(work_counter):
    sizes = (5_000, 20_000)
    calls = tuple(work_counter.count(lambda y=chain(n): viz.tensor_graph(y).source)[0] for n in sizes)
    work_counter.linear("DOT export", sizes, calls)


def test_a_deep_expression_exports_without_recursion():
    x = sp.Symbol("x", real=True)
    expr = x
    for _ in range(5000):
        expr = sp.sin(expr, evaluate=False)
        hash(expr)  # SymPy hashes lazily and recursively; build the cache bottom-up
    source = viz.expression_graph(expr).source
    assert source.count('label="sin') == 5000


# ---------------------------------------------------------------------------- rendering
def test_save_dot_always(tmp_path):
    graph = viz.draw(parse("x*y"))
    path = graph.save(tmp_path / "g.dot")
    assert path.read_text() == graph.source
    with pytest.raises(ValueError, match="cannot tell the graph format"):
        graph.save(tmp_path / "g.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot"]


@needs_dot
def test_svg_and_png_when_dot_is_installed(tmp_path):
    loss, _, _ = linear_model()
    graph = viz.draw(loss)
    svg = graph.svg()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "MmBackward0" in svg
    assert graph.png().startswith(b"\x89PNG")
    assert graph.save(tmp_path / "g.svg").read_text().count("<svg") == 1


@needs_dot
def test_hostile_names_render():
    x = symgrad.tensor(1.0, requires_grad=True)
    x.name = 'a"]; <script>alert(1)</script> \\N'
    svg = viz.draw(x * 2).svg()
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_without_dot_rendering_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    graph = viz.draw(parse("x*y"))
    assert graph._repr_mimebundle_() == {"text/plain": repr(graph)}
    with pytest.raises(viz.GraphvizNotFound, match="apt install graphviz"):
        graph.svg()
    with pytest.raises(viz.GraphvizNotFound):
        graph.save(tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []
    assert graph.save(tmp_path / "g.dot").exists()  # DOT needs no Graphviz


@needs_dot
def test_a_notebook_gets_a_png_and_an_svg_that_fits_the_cell():
    """Untrusted and exported notebooks drop SVG but show PNG; the SVG shrinks to the cell."""
    loss, _, _ = linear_model()
    graph = viz.draw(loss)
    bundle = graph._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/svg+xml", "image/png"}
    assert bundle["text/plain"] == repr(graph) and graph.preview is None
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    svg = bundle["image/svg+xml"]
    assert re.search(r'<svg style="max-width:100%;height:auto" width="[0-9.]+pt"', svg) and "MmBackward0" in svg
    assert svg.replace(' style="max-width:100%;height:auto"', "", 1) == graph.svg()


def _long_chain(n: int):
    x = symgrad.tensor([0.5, 1.0], requires_grad=True, name="x")
    y = x
    for i in range(n):
        y = y * 1.0001 if i % 2 else y + 0.001
    return y.sum()


def test_a_large_graph_previews_its_top_levels_and_counts_the_rest():
    graph = viz.draw(_long_chain(2_000))
    whole, preview = nodes(graph.source), nodes(graph.preview)
    assert len(whole) == 4_003 and len(preview) == viz.MAX_DRAWN_NODES
    (note,) = re.findall(r'^  hidden \[label="([^"]*)"', graph.preview, flags=re.M)
    assert note.startswith(f"{len(whole) - len(preview):,} more nodes not drawn\\n(4,003 in all)")
    consumers: dict = {}
    for a, b in edges(graph.source):
        consumers.setdefault(a, set()).add(b)
    assert all(consumers.get(n, set()) <= set(preview) for n in preview)  # the top levels: closed upwards
    assert set(edges(graph.preview)) == {(a, b) for a, b in edges(graph.source) if a in preview and b in preview}
    assert "the picture draws the top" in graph._repr_mimebundle_()["text/plain"]
    assert viz.draw(_long_chain(50)).preview is None


@needs_dot
def test_a_large_graphs_pictures_are_small():
    bundle = viz.draw(_long_chain(2_000))._repr_mimebundle_()
    assert len(bundle["image/svg+xml"]) < 200_000 and len(bundle["image/png"]) < 200_000


def test_graph_repr_counts_nodes():
    assert repr(viz.draw(parse("x + 1"))) == "<symgrad.viz.Graph expression with 3 nodes>"
    np.testing.assert_equal(viz.np_prod((2, 3)), 6)
