"""Pictures of computation graphs: Graphviz DOT text always, SVG/PNG when ``dot`` exists.

This module owns drawing.  Two kinds of graph can be drawn:

* the **tape graph** of one or more tensors (:func:`tensor_graph`): the recorded op nodes
  (``grad_fn``), walked through ``node.inputs[i].edge`` from the outputs down to the
  leaves, as PyTorch users know it;
* the **expression DAG** of a SymPy expression (:func:`expression_graph`): every distinct
  subexpression once, with the symbolic engine's closed-form adjoint of the output with
  respect to it on request (``adjoints=True``).

Nodes are labelled with the op and the shape; leaves (inputs that require grad),
parameters (leaves whose ``.name`` is set), constants and the output are drawn in
distinct styles.  Every walk is iterative, so a chain of 100,000 ops exports without a
``RecursionError``.  The DOT text is produced in pure Python; rendering to SVG, PNG or
PDF runs the Graphviz ``dot`` program when it is on ``PATH`` (``apt install graphviz``;
the ``viz`` extra installs the ``graphviz`` Python package for :meth:`Graph.to_graphviz`).
A :class:`Graph` displays itself in notebooks (``_repr_mimebundle_``): SVG scaled to the
width of the cell and PNG (which untrusted and exported notebooks show, SVG being
sanitised away there) when ``dot`` is installed, and text always.  A graph of more than
:data:`MAX_DRAWN_NODES` nodes shows its top levels (the nodes nearest the output) and one
node saying how many are not drawn; :meth:`Graph.save` and :meth:`Graph.svg` draw all.

>>> import symgrad
>>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
>>> g = draw((x * 2).sum())
>>> print(g.source.splitlines()[0])
digraph symgrad {
>>> "MulBackward0" in g.source and "SumBackward0" in g.source
True
"""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["Graph", "draw", "to_dot", "tensor_graph", "expression_graph", "dot_program", "has_dot",
           "GraphvizNotFound", "FORMATS", "MAX_DRAWN_NODES"]

FORMATS = ("dot", "gv", "svg", "png", "pdf")
"""File types :meth:`Graph.save` writes (``dot``/``gv`` are the DOT text itself)."""

MAX_DRAWN_NODES = 120
"""Nodes a notebook draws of a graph at most: the top levels, nearest the output."""

PNG_DOT_ARGS = ("-Gdpi=72", "-Gsize=12,30")
"""How a notebook's PNG is drawn: at 72 dpi, shrunk to fit 12 by 30 inches (a long chain
is tall; the SVG beside it scales without limit)."""

MAX_LABEL = 60
"""Longest label line; longer text is cut with '...' (the tooltip keeps the whole text)."""

_STYLES = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#eeeeee"',
    "leaf": 'shape=ellipse, style=filled, fillcolor="#cfe2ff"',
    "parameter": 'shape=box, style="filled,bold", fillcolor="#ffe08a"',
    "constant": 'shape=box, style="dashed", color="#999999", fontcolor="#666666"',
    "output": 'shape=doubleoctagon, style=filled, fillcolor="#b7e4c7"',
    "hidden": 'shape=note, style=filled, fillcolor="#fff3cd"',
}
"""How each kind of node is drawn (inputs that require grad are blue, parameters yellow,
constants grey and dashed, the output green)."""


class GraphvizNotFound(RuntimeError):
    """Rendering needs the Graphviz ``dot`` program, which is not on PATH."""


def dot_program() -> str | None:
    """The path of Graphviz's ``dot`` program, or None when it is not installed."""
    return shutil.which("dot")


def has_dot() -> bool:
    """True when SVG/PNG rendering is possible."""
    return dot_program() is not None


# ============================================================================ DOT text
def _escape(text: str) -> str:
    """Text as the inside of a DOT double-quoted string (no escape sequences survive)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _cut(text: str, limit: int = MAX_LABEL) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(lines: Iterable[str]) -> str:
    return "\\n".join(_escape(_cut(line)) for line in lines if line)


def _shape_text(shape: Any) -> str:
    if shape is None:
        return ""
    shape = tuple(int(n) for n in shape)
    return "scalar" if shape == () else str(shape)


@dataclass
class _Node:
    key: Any
    kind: str
    lines: list
    tooltip: str = ""


class _Builder:
    """Collects nodes and edges, then writes DOT text in one pass."""

    def __init__(self, name: str, rankdir: str) -> None:
        self.name = name
        self.rankdir = rankdir
        self.ids: dict = {}
        self.nodes: list[_Node] = []
        self.edges: list[tuple[str, str]] = []

    def node(self, key: Any, kind: str, lines: list, tooltip: str = "") -> tuple[str, bool]:
        """The DOT id of ``key``, adding the node the first time; and whether it is new."""
        if key in self.ids:
            return self.ids[key], False
        node_id = f"n{len(self.ids)}"
        self.ids[key] = node_id
        self.nodes.append(_Node(key, kind, lines, tooltip))
        return node_id, True

    def edge(self, source: str, target: str) -> None:
        self.edges.append((source, target))

    def dot(self, drawn: set[str] | None = None) -> str:
        """The DOT text of the graph, or of the nodes ``drawn`` (ids) only, with one node
        saying how many are not drawn, fed by every drawn node that has an input hidden."""
        out = [f'digraph {self.name} {{',
               f'  graph [rankdir={self.rankdir}, fontname="Helvetica"];',
               '  node [fontname="Helvetica", fontsize=11];',
               '  edge [color="#555555"];']
        for node_id, node in zip((f"n{i}" for i in range(len(self.nodes))), self.nodes):
            if drawn is None or node_id in drawn:
                tooltip = f', tooltip="{_escape(node.tooltip)}"' if node.tooltip else ""
                out.append(f'  {node_id} [label="{_label(node.lines)}", {_STYLES[node.kind]}{tooltip}];')
        if drawn is None:
            out.extend(f"  {a} -> {b};" for a, b in self.edges)
        else:
            hidden = len(self.nodes) - len(drawn)
            note = [f"{hidden:,} more nodes not drawn", f"({len(self.nodes):,} in all)", ".save('graph.svg') draws all"]
            out.append(f'  hidden [label="{_label(note)}", {_STYLES["hidden"]}];')
            out.extend(f"  {a} -> {b};" for a, b in self.edges if a in drawn and b in drawn)
            cut = dict.fromkeys(b for a, b in self.edges if b in drawn and a not in drawn)
            out.extend(f'  hidden -> {b} [style=dashed];' for b in cut)
        out.append("}")
        return "\n".join(out) + "\n"

    def graph(self, kind: str) -> "Graph":
        """The :class:`Graph`; past :data:`MAX_DRAWN_NODES` nodes, with a preview of the
        nodes nearest the outputs (breadth first, against the edges) for notebooks."""
        preview = None
        if len(self.nodes) > MAX_DRAWN_NODES:
            inputs: dict = {}
            for a, b in self.edges:
                inputs.setdefault(b, []).append(a)
            outputs = [f"n{i}" for i, node in enumerate(self.nodes) if node.kind == "output"] or ["n0"]
            drawn = dict.fromkeys(outputs)
            queue = list(outputs)
            for node_id in queue:  # grows as it goes: breadth first
                for source in inputs.get(node_id, ()):
                    if len(drawn) < MAX_DRAWN_NODES and source not in drawn:
                        drawn[source] = None
                        queue.append(source)
            preview = self.dot(set(drawn))
        return Graph(self.dot(), kind=kind, preview=preview)


# ============================================================================ tape graphs
def constant_text(tensor: Any) -> str | None:
    """The value of a constant tensor (one that does not require grad) as short text, when
    it is one number (``2``, ``0.5``); None for a constant array."""
    constant = getattr(tensor, "_constant", None)
    if constant is None and tensor.numel() == 1:
        constant = tensor.item()
    if constant is None:
        return None
    return f"{constant:g}" if isinstance(constant, float) else str(constant)


def _tensor_lines(tensor: Any, role: str) -> tuple[str, list]:
    name = getattr(tensor, "name", None)
    shape = _shape_text(tensor.shape)
    if role == "constant":
        constant = constant_text(tensor)
        return "constant", [constant] if constant is not None else ["constant", shape]
    kind = "parameter" if name else "leaf"
    return kind, [name or "leaf", shape]


def tensor_graph(*outputs: Any, adjoints: bool = False, show_constants: bool = True,
                 name: str = "symgrad") -> "Graph":
    """The recorded graph of ``outputs`` (symgrad tensors), from their ``grad_fn`` down.

    Data flows along the edges: leaves -> ops -> output.  With ``adjoints=True`` each op
    node also shows the symbolic engine's closed-form gradient of the (single, scalar)
    output with respect to the node's value.

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True); w.name = "w"
    >>> loss = (w * w).sum()
    >>> print(tensor_graph(loss).source.strip())  # doctest: +ELLIPSIS
    digraph symgrad {
    ...
      n0 [label="output\\nscalar", shape=doubleoctagon...];
      n1 [label="sum\\nSumBackward0\\nscalar", shape=box...];
      n2 [label="mul\\nMulBackward0\\n(2,)", shape=box...];
      n3 [label="w\\n(2,)", shape=box, style="filled,bold"...];
      n1 -> n0;
      n2 -> n1;
      n3 -> n2;
      n3 -> n2;
    }
    """
    if len(outputs) == 1 and isinstance(outputs[0], (list, tuple)):
        outputs = tuple(outputs[0])
    if not outputs:
        raise ValueError("tensor_graph needs at least one tensor")
    for out in outputs:
        if not hasattr(out, "grad_fn") or not hasattr(out, "shape"):
            raise TypeError(f"tensor_graph draws symgrad tensors, got {type(out).__name__}; "
                            "use expression_graph for SymPy expressions")
    adjoint_text = _tensor_adjoints(outputs) if adjoints else {}
    builder = _Builder(_dot_id(name), "BT")
    # stack of (producer key, producer object, consumer DOT id, shape of the value flowing)
    stack: list = []
    for index, out in enumerate(outputs):
        label = "output" if len(outputs) == 1 else f"output {index}"
        out_id, _ = builder.node(("output", id(out)), "output", [label, _shape_text(out.shape)])
        stack.append((out, out_id))
    keep_alive: list = []  # every drawn object stays alive, so no id() is reused
    while stack:
        item, consumer = stack.pop()
        producer = _producer(item)
        if producer is None:  # a tensor without grad_fn that does not require grad
            tensor = item.tensor if hasattr(item, "edge") else item
            if not show_constants:
                continue
            keep_alive.append(tensor)
            kind, lines = _tensor_lines(tensor, "constant")
            node_id, _ = builder.node(("tensor", id(tensor)), kind, lines)
            builder.edge(node_id, consumer)
            continue
        node, shape = producer
        keep_alive.append(node)
        if _is_accumulator(node):
            kind, lines = _tensor_lines(node.variable, "leaf")
            node_id, _ = builder.node(("tensor", id(node)), kind, lines)
            builder.edge(node_id, consumer)
            continue
        lines = _op_lines(node, shape)
        if id(node) in adjoint_text:
            lines.append("grad: " + adjoint_text[id(node)])
        node_id, new = builder.node(("node", id(node)), "op", lines,
                                    tooltip=adjoint_text.get(id(node), ""))
        builder.edge(node_id, consumer)
        if new:
            for saved in reversed(node.inputs):
                stack.append((saved, node_id))
    return builder.graph("tensor")


def _is_accumulator(obj: Any) -> bool:
    return hasattr(obj, "variable") and not hasattr(obj, "inputs")


def _producer(item: Any):
    """``(node, shape)`` that produced ``item`` (an output tensor or a node's SavedInput),
    or None for a tensor that does not require grad (a constant).  A leaf that requires
    grad resolves to its AccumulateGrad node, so every use of one leaf is one node."""
    if hasattr(item, "edge"):  # SavedInput: the edge was captured when the op ran
        if item.edge is None:
            return None
        return item.edge, tuple(item.tensor.shape)
    if item.grad_fn is not None:
        return item.grad_fn, tuple(item.shape)
    if item.requires_grad:
        return item._edge(), tuple(item.shape)
    return None


def op_name(node: Any) -> str:
    """The op-table name of a recorded node (``matmul``), or ``custom Function``."""
    op = getattr(node, "op", None)
    return op.name if op is not None else "custom Function"


def attrs_text(node: Any) -> str:
    """The attributes of a recorded node that are set, as text (``exponent=2``)."""
    attrs = getattr(node, "attrs", None) or {}
    return ", ".join(f"{k}={v!r}" for k, v in attrs.items() if v is not None and v is not False)


def _op_lines(node: Any, shape: tuple | None) -> list:
    return [op_name(node), node.name(), attrs_text(node), _shape_text(shape)]


def _tensor_adjoints(outputs: Sequence[Any]) -> dict:
    """The closed-form gradient of the (scalar) output with respect to the value of each
    op node of its tape graph, as text keyed by ``id(node)``.

    SymPy merges nodes (``(a + b) + c`` is one ``Add``), so an intermediate value need not
    exist in the output's expression.  Each node is therefore *cut* in turn with the
    symbolic engine's :class:`~symgrad.symbolic.derive.graph.Segment` (its value becomes a
    symbol), the engine differentiates the output with respect to that symbol, and the
    symbol is replaced by the node's own closed form.  Quadratic in the number of nodes:
    meant for pictures of small graphs.
    """
    if len(outputs) != 1:
        raise ValueError(f"adjoint labels need one scalar output, got {len(outputs)} tensors")
    out = outputs[0]
    if int(np_prod(out.shape)) != 1:
        raise ValueError(f"adjoint labels need a scalar output, got shape {tuple(out.shape)}; "
                         "draw out.sum() or out.mean() instead")
    if out.grad_fn is None:
        return {}
    from .symbolic.derive.graph import Segment
    from .symbolic.derive.reverse import gradient

    full = Segment([out])
    full_symbols, _ = full.build()
    texts: dict = {id(out.grad_fn): "1"}
    for node in full.nodes:
        if node is out.grad_fn:
            continue
        cut = Segment([out], boundary=frozenset([node]))
        symbols, (y,) = cut.build()
        mapping = {}
        for symbol, ref in zip(symbols, cut.inputs):
            expr = ref.expr_in(full, full_symbols)
            if expr is not None:
                mapping[symbol] = expr
        cuts = [p for p in (cut.cut_position(node, k) for k in range(node.n_outputs)) if p is not None]
        if not cuts:  # pragma: no cover  (every interior node can be cut)
            continue
        target = symbols[cuts[-1]]
        (g,) = gradient(y, [target])
        texts[id(node)] = str(g.xreplace(mapping))
    return texts


def np_prod(shape: Sequence[int]) -> int:
    """The number of elements of ``shape``."""
    count = 1
    for n in shape:
        count *= int(n)
    return count


# ============================================================================ SymPy graphs
def _expression_children(node: Any) -> tuple:
    from .symbolic.forms.structural import StructuralFunction
    from .symbolic.core.symbols import operands

    if isinstance(node, StructuralFunction):
        return tuple(node.arrays)
    if not node.args:
        return ()
    return operands(node)


_OPERATOR_NAMES = {"Add": "+", "Mul": "*", "Pow": "**", "Matmul": "@"}


def _expression_lines(node: Any, shape: Any) -> tuple[str, list]:
    import sympy as sp

    from .symbolic.core.symbols import ArrayValue, DataArray
    from .symbolic.forms.structural import StructuralFunction

    if isinstance(node, DataArray) and isinstance(node.definition, ArrayValue):  # an index array, a zero buffer
        return "constant", [node.name, f"= {node.definition}", _shape_text(shape)]
    if isinstance(node, sp.Symbol):
        return "leaf", [node.name, _shape_text(shape)]
    if not node.args or isinstance(node, sp.NumberSymbol) or node.is_Number:
        return "constant", [str(node)]
    if isinstance(node, StructuralFunction):
        shown = [a for a in node._shown_attrs()] if hasattr(node, "_shown_attrs") else []
        return "op", [_OPERATOR_NAMES.get(type(node).__name__, node.op_name), ", ".join(shown), _shape_text(shape)]
    name = type(node).__name__
    return "op", [_OPERATOR_NAMES.get(name, name), _shape_text(shape)]


def expression_graph(expr: Any, *, adjoints: bool = False, name: str = "symgrad") -> "Graph":
    """The DAG of a SymPy expression: each distinct subexpression once, operands -> node.

    With ``adjoints=True`` every node also shows the closed-form derivative of the
    (scalar) expression with respect to that node, from the symbolic engine's reverse pass.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y", real=True)
    >>> print(expression_graph(sp.sin(x) * y, adjoints=True).source.strip())  # doctest: +ELLIPSIS
    digraph symgrad {
    ...
      n0 [label="*\\nscalar\\ngrad: 1", shape=doubleoctagon...];
      n1 [label="sin\\nscalar\\ngrad: y", shape=box...];
      n2 [label="x\\nscalar\\ngrad: y*cos(x)", shape=ellipse...];
      n3 [label="y\\nscalar\\ngrad: sin(x)", shape=ellipse...];
      n3 -> n0;
      n1 -> n0;
      n2 -> n1;
    }
    """
    import sympy as sp

    from .symbolic.core.symbols import postorder, shape_of

    if isinstance(expr, str):  # text goes through the safe parser, never sympify
        from .parsing import parse

        expr = parse(expr).expr
    elif isinstance(expr, (int, float)) and not isinstance(expr, bool):
        expr = sp.Integer(expr) if isinstance(expr, int) else sp.Float(expr)
    elif not isinstance(expr, sp.Basic):
        raise TypeError(f"expression_graph draws SymPy expressions, got {type(expr).__name__}")
    order = postorder([expr])  # every distinct node, operands first, iteratively
    adjoint_text: dict = {}
    if adjoints:
        from .symbolic.derive.reverse import adjoints as reverse_adjoints

        targets = [n for n in order if not (n.is_Number or isinstance(n, sp.NumberSymbol))]
        for node, value in zip(targets, reverse_adjoints([(expr, sp.S.One)], targets)):
            adjoint_text[node] = str(value)
    builder = _Builder(_dot_id(name), "BT")
    ids: dict = {}
    for node in reversed(order):  # the output first, so it is n0
        try:
            shape = shape_of(node)
        except Exception:  # noqa: BLE001  (a shape the engine cannot infer is left out)
            shape = None
        kind, lines = _expression_lines(node, shape)
        if node is expr:
            kind = "output"
        if node in adjoint_text:
            lines.append("grad: " + adjoint_text[node])
        ids[node], _ = builder.node(node, kind, lines, tooltip=adjoint_text.get(node, ""))
    for node in reversed(order):
        for child in _expression_children(node):
            if child in ids:
                builder.edge(ids[child], ids[node])
    return builder.graph("expression")


# ============================================================================ Graph
class Graph:
    """A drawn graph: DOT ``source`` always, SVG/PNG/PDF through ``dot`` when installed;
    ``preview`` is the DOT text a notebook draws of a large graph (its top levels), or
    None where it draws all.

    >>> g = Graph('digraph g { a -> b; }')
    >>> g.source.startswith("digraph")
    True
    >>> str(g) == g.source
    True
    """

    def __init__(self, source: str, kind: str = "graph", preview: str | None = None) -> None:
        self.source = source
        self.kind = kind
        self.preview = preview

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        nodes = sum(1 for line in self.source.splitlines() if "[label=" in line)
        return f"<symgrad.viz.Graph {self.kind} with {nodes} nodes>"

    def render(self, fmt: str = "svg", *, timeout: float = 120.0, dot_args: Sequence[str] = ()) -> bytes:
        """The graph rendered by Graphviz in ``fmt`` (``svg``, ``png``, ``pdf``); ``dot_args``
        are passed to ``dot`` (``-Gdpi=72``)."""
        if fmt in ("dot", "gv"):
            return self.source.encode("utf-8")
        if fmt not in FORMATS:
            raise ValueError(f"unknown graph format {fmt!r}; choose one of {', '.join(FORMATS)}")
        program = dot_program()
        if program is None:
            raise GraphvizNotFound(
                f"rendering {fmt.upper()} needs the Graphviz 'dot' program, which is not on PATH; install "
                "Graphviz (e.g. 'apt install graphviz') or save the DOT text (.dot) instead")
        result = subprocess.run([program, f"-T{fmt}", *dot_args], input=self.source.encode("utf-8"),
                                capture_output=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"Graphviz dot failed: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def svg(self) -> str:
        """The SVG text (needs ``dot``)."""
        return self.render("svg").decode("utf-8")

    def png(self) -> bytes:
        """The PNG bytes (needs ``dot``)."""
        return self.render("png")

    def save(self, path: str | Path) -> Path:
        """Write the graph to ``path``; the suffix picks the format (``.dot``, ``.svg``...)."""
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"cannot tell the graph format from {path.name!r}; use one of "
                             + ", ".join("." + f for f in FORMATS))
        data = self.render(fmt)  # render first: a failure leaves no half-written file
        path.write_bytes(data)
        return path

    def to_graphviz(self):
        """A ``graphviz.Source`` (needs the ``graphviz`` package: ``pip install symgrad[viz]``)."""
        import graphviz

        return graphviz.Source(self.source)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """Notebook display: text always; with ``dot``, an SVG that shrinks to the width
        of the cell (``max-width:100%``) and a PNG (base64), of :attr:`preview` for a large
        graph.  A rendering that fails leaves the pictures out."""
        bundle = {"text/plain": repr(self) + ("" if self.preview is None else
                                               f" (the picture draws the top {MAX_DRAWN_NODES} nodes)")}
        if not has_dot():
            return bundle
        shown = self if self.preview is None else Graph(self.preview, kind=self.kind)
        try:
            svg, png = shown.svg(), shown.render("png", dot_args=PNG_DOT_ARGS)
        except (RuntimeError, subprocess.TimeoutExpired, OSError):
            return bundle
        bundle["image/svg+xml"] = _fit_to_cell(svg)
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle


def _fit_to_cell(svg: str) -> str:
    """Graphviz's SVG, shrinking to the width of its container where wider (its
    ``viewBox`` keeps the proportions)."""
    return re.sub(r"<svg\b", '<svg style="max-width:100%;height:auto"', svg, count=1)


def _dot_id(name: str) -> str:
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in str(name))
    return cleaned if cleaned and not cleaned[0].isdigit() else "g_" + cleaned


# ============================================================================ dispatch
def draw(obj: Any, *, adjoints: bool = False, **options: Any) -> Graph:
    """A :class:`Graph` of a tensor (or list of tensors), a SymPy expression, a
    :class:`~symgrad.parsing.ParsedExpression`, or formula text (read by the safe parser).

    >>> import sympy as sp
    >>> draw(sp.Symbol("x") + 1).kind
    'expression'
    """
    from .parsing import ParsedExpression

    if isinstance(obj, ParsedExpression):
        return expression_graph(obj.expr, adjoints=adjoints, **options)
    if hasattr(obj, "grad_fn") or (isinstance(obj, (list, tuple)) and obj and all(hasattr(t, "grad_fn") for t in obj)):
        return tensor_graph(*(obj if isinstance(obj, (list, tuple)) else (obj,)), adjoints=adjoints, **options)
    import sympy as sp

    if isinstance(obj, (sp.Basic, str)):
        return expression_graph(obj, adjoints=adjoints, **options)
    raise TypeError(f"draw() takes a symgrad tensor, a SymPy expression, a parsed expression or formula "
                    f"text, got {type(obj).__name__}")


def to_dot(obj: Any, **options: Any) -> str:
    """The DOT text of :func:`draw` ``(obj)``.

    >>> import sympy as sp
    >>> to_dot(sp.Symbol("x") * 2).count("->")
    2
    """
    return draw(obj, **options).source



# ============================================================================ TensorBoard
def __getattr__(name: str) -> Any:
    """``add_graph`` is :func:`symgrad.tensorboard.add_graph` (a TensorBoard event file of a
    recorded graph), loaded on first use: that module walks graphs with this one's helpers."""
    if name == "add_graph":
        from .tensorboard import add_graph

        return add_graph
    raise AttributeError(f"module 'symgrad.viz' has no attribute {name!r}")
