"""TensorBoard event files: a recorded graph, scalars and histograms, as PyTorch writes them.

:class:`SummaryWriter` is a small counterpart of ``torch.utils.tensorboard.SummaryWriter``
with the calls the tutorials use: :meth:`~SummaryWriter.add_graph` (a model and an input,
or a recorded output tensor), :meth:`~SummaryWriter.add_scalar`,
:meth:`~SummaryWriter.add_histogram`, :meth:`~SummaryWriter.flush` and
:meth:`~SummaryWriter.close`; it is also a context manager.  ``symgrad.viz.add_graph`` writes
(also ``symgrad.tensorboard.add_graph``) writes one graph in one call.

The graph is the tape graph :mod:`symgrad.viz` draws, as a TensorFlow ``GraphDef``:

* an **op node** per recorded op, named by its ``grad_fn`` (``MmBackward0``,
  ``AddBackward0``; a second one of a kind gets ``_1``), its ``op`` the op table's name
  (``matmul``), attributes ``attr`` (the op's attributes as text), ``dtype`` and
  ``_output_shapes`` (TensorBoard writes the shapes on the edges);
* a ``Parameter`` node per leaf that requires grad (named by its ``.name``, a module's
  dotted path becoming nested groups: ``Net/fc/weight``; ``leaf`` when unnamed);
* a ``Constant`` node per tensor that does not require grad (its value in ``value`` when it
  is one number), an ``IO Node`` per input given to :meth:`~SummaryWriter.add_graph`
  (``input/x``) and per output (``output/output``);
* with ``derivatives=True``, two more attributes per op node from the symbolic engine:
  ``closed_form``, the node's value in terms of its inputs (``x @ w``), and
  ``local_derivative``, the vector-Jacobian product of the node for each input that
  requires grad, in terms of ``grad``, the gradient arriving at the node's output
  (``x: grad @ w.T; w: x.T @ grad``).  A leaf, input or constant is named as its node, without
  the model's name (``Net/fc/weight`` is ``fc.weight``, ``input/x`` is ``x``), another op's
  output by that op (``matmul_out``).

Ops of a model are grouped under the model's class name (``Net/MmBackward0``), as PyTorch
groups them.  The protobuf messages and the event-file writer are the ``tensorboard``
package's own (``pip install symgrad[tensorboard]``); this module imports without it, and
a writer says what to install.  Read the files with ``tensorboard --logdir DIR``.

>>> import symgrad, tempfile; log_dir = tempfile.mkdtemp()
>>> w = symgrad.tensor([1.0, 2.0], requires_grad=True); w.name = "w"
>>> with SummaryWriter(log_dir) as writer:
...     writer.add_graph((w * w).sum())
...     writer.add_scalar("loss", 5.0, global_step=1)
>>> [node.name for node in graph_def((w * w).sum()).node]
['SumBackward0', 'output/output', 'MulBackward0', 'w']
"""
from __future__ import annotations

import inspect
import numbers
import os
import re
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .tape import Tensor, as_tensor, enable_grad
from .viz import _is_accumulator, _producer, attrs_text, constant_text, op_name

__all__ = ["SummaryWriter", "add_graph", "graph_def", "TensorBoardNotInstalled"]

UPSTREAM = "grad"
"""The name of the gradient arriving at a node's output in ``local_derivative`` texts."""


class TensorBoardNotInstalled(ImportError):
    """Writing event files needs the ``tensorboard`` package."""


def _protos():
    """TensorBoard's protobuf modules (``event_pb2``, ``graph_pb2``...), or a clear error."""
    try:
        from tensorboard.compat.proto import (attr_value_pb2, event_pb2, graph_pb2, node_def_pb2,
                                              summary_pb2, tensor_shape_pb2, versions_pb2)
    except ImportError as error:
        raise TensorBoardNotInstalled(
            "writing TensorBoard event files needs the tensorboard package: "
            "pip install 'symgrad[tensorboard]' (or pip install tensorboard)") from error
    return attr_value_pb2, event_pb2, graph_pb2, node_def_pb2, summary_pb2, tensor_shape_pb2, versions_pb2


# ============================================================================ the graph
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.\-/]")


class _GraphBuilder:
    """Walks the recorded graph of some outputs into TensorBoard ``NodeDef`` messages."""

    def __init__(self, scope: str, input_names: dict, derivatives: bool) -> None:
        protos = _protos()
        self.attr_value_pb2, self.node_def_pb2, self.shape_pb2 = protos[0], protos[3], protos[5]
        self.scope = scope
        self.input_names = input_names  # id(tensor) -> name, for the inputs given to the model
        self.derivatives = derivatives
        self.nodes: list = []
        self.names: dict = {}  # key of a graph object -> its NodeDef
        self.taken: set = set()
        self.pending: list = []  # op nodes whose inputs are not yet walked
        self.derived: list = []  # (recorded node, its output tensor, NodeDef) to derive

    # ------------------------------------------------------------------ names and attributes
    def _unique(self, name: str) -> str:
        name = _NAME_CHARACTERS.sub("_", name).strip("/") or "node"
        candidate, count = name, 0
        while candidate in self.taken:
            count += 1
            candidate = f"{name}_{count}"
        self.taken.add(candidate)
        return candidate

    def _shape(self, shape: Sequence[int] | None):
        if shape is None:
            return self.shape_pb2.TensorShapeProto(unknown_rank=True)
        return self.shape_pb2.TensorShapeProto(dim=[self.shape_pb2.TensorShapeProto.Dim(size=int(n)) for n in shape])

    def _text(self, text: str):
        return self.attr_value_pb2.AttrValue(s=str(text).encode("utf-8"))

    def _add(self, key: Any, name: str, op: str, tensor: Any, n_outputs: int = 1, **attrs: str):
        node = self.node_def_pb2.NodeDef(name=self._unique(name), op=op)
        node.attr["dtype"].CopyFrom(self._text(np.dtype(tensor.dtype).name))
        shapes = node.attr["_output_shapes"].list.shape
        shapes.extend(self._shape(None) for _ in range(n_outputs))
        for attr, text in attrs.items():
            node.attr[attr].CopyFrom(self._text(text))
        self.names[key] = node
        self.nodes.append(node)
        return node

    # ------------------------------------------------------------------ walking
    def value(self, item: Any) -> str:
        """The TensorBoard name of the value ``item`` (an output tensor or a node's
        ``SavedInput``), adding the node that makes it the first time it is met."""
        tensor = item.tensor if hasattr(item, "edge") else item
        producer = _producer(item)
        if producer is None:
            return self._constant(tensor).name
        node, shape = producer
        if _is_accumulator(node):
            return self._leaf(node).name
        index = item.index if hasattr(item, "edge") else getattr(tensor, "_output_nr", 0)
        made = self.names.get(("node", id(node)))
        if made is None:
            attrs = attrs_text(node)
            made = self._add(("node", id(node)), self.scope + node.name(), op_name(node), tensor,
                             n_outputs=node.n_outputs, **({"attr": attrs} if attrs else {}))
            self.pending.append((node, made))
            self.derived.append((node, tensor, made))
        made.attr["_output_shapes"].list.shape[index].CopyFrom(self._shape(shape))
        return made.name if index == 0 else f"{made.name}:{index}"

    def _constant(self, tensor: Any):
        key = ("tensor", id(tensor))
        if key in self.names:
            return self.names[key]
        if id(tensor) in self.input_names:
            node = self._add(key, "input/" + self.input_names[id(tensor)], "IO Node", tensor)
        else:
            value = constant_text(tensor)
            name = getattr(tensor, "name", None) or "constant"
            node = self._add(key, self.scope + name.replace(".", "/"), "Constant", tensor,
                             **({"value": value} if value is not None else {}))
        node.attr["_output_shapes"].list.shape[0].CopyFrom(self._shape(tensor.shape))
        return node

    def _leaf(self, accumulator: Any):
        tensor = accumulator.variable
        key = ("tensor", id(tensor))
        if key in self.names:
            return self.names[key]
        name = self.input_names.get(id(tensor))
        if name is not None:
            node = self._add(key, "input/" + name, "IO Node", tensor)
        else:
            name = getattr(tensor, "name", None) or "leaf"
            node = self._add(key, self.scope + name.replace(".", "/"), "Parameter", tensor)
        node.attr["_output_shapes"].list.shape[0].CopyFrom(self._shape(tensor.shape))
        return node

    def walk(self, outputs: Sequence[Any]) -> list:
        """Every node below ``outputs``, and one ``IO Node`` per output."""
        for position, out in enumerate(outputs):
            source = self.value(out)
            label = "output/output" if len(outputs) == 1 else f"output/output.{position}"
            node = self._add(("output", position), label, "IO Node", out)
            node.attr["_output_shapes"].list.shape[0].CopyFrom(self._shape(out.shape))
            node.input.append(source)
        while self.pending:
            recorded, made = self.pending.pop()
            made.input.extend(self.value(saved) for saved in recorded.inputs)
        if self.derivatives:
            for recorded, tensor, made in self.derived:
                for attr, text in _derivative_texts(recorded, tensor, self.symbol_name).items():
                    made.attr[attr].CopyFrom(self._text(text))
        return self.nodes

    def symbol_name(self, tensor: Any) -> str | None:
        """The name of a leaf, input or constant ``tensor`` in closed forms: its node's name
        without the scope (``Net/fc/weight`` is ``fc.weight``, ``input/x`` is ``x``)."""
        node = self.names.get(("tensor", id(tensor)))
        if node is None:
            return None
        name = node.name.removeprefix("input/") if node.op == "IO Node" else node.name.removeprefix(self.scope)
        return name.replace("/", ".")


def _derivative_texts(node: Any, tensor: Any, symbol_name) -> dict:
    """``closed_form`` and ``local_derivative`` of one recorded op node, from the symbolic
    engine: the node is built alone (its inputs become symbols, a leaf, input or constant
    named ``symbol_name(tensor)`` as in the graph), and its vector-Jacobian product with
    :data:`UPSTREAM` is taken for every input that requires grad.  A custom Function without a SymPy form has none: its
    ``local_derivative`` says so."""
    from .symbolic.derive.graph import CutInput, LeafInput, Segment
    from .symbolic.derive.reverse import adjoints
    from .symbolic.core.symbols import ArrayVar

    segment = Segment([(node, tensor)], keep=set(), own=node)
    try:
        symbols, (value,) = segment.build()
    except NotImplementedError as error:
        return {"local_derivative": f"no closed form: {error}"}
    taken = {symbol.name for symbol in symbols}
    renamed = {}
    for symbol, ref in zip(symbols, segment.inputs):
        name = symbol_name(ref.tensor) if ref.tensor is not None else None
        if name is not None and name != symbol.name and name not in taken:
            renamed[symbol] = ArrayVar(name, symbol.array_shape, symbol.array_dtype)
            taken.add(name)
    symbols = [renamed.get(symbol, symbol) for symbol in symbols]
    value = value.xreplace(renamed)
    upstream = UPSTREAM
    while upstream in taken:
        upstream += "_"
    grad = ArrayVar(upstream, tuple(tensor.shape), np.dtype(tensor.dtype))
    wrt = [(symbol, ref) for symbol, ref in zip(symbols, segment.inputs) if isinstance(ref, (LeafInput, CutInput))]
    vjps = adjoints([(value, grad)], [symbol for symbol, _ in wrt])
    return {"closed_form": str(value),
            "local_derivative": "; ".join(f"{symbol}: {vjp}" for (symbol, _), vjp in zip(wrt, vjps))}


def _as_outputs(value: Any) -> list:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(item, Tensor) for item in items):
        raise TypeError(f"add_graph draws symgrad tensors (or a list of them), got {type(value).__name__}")
    for item in items:
        if item.grad_fn is None and not item.requires_grad:
            raise ValueError(
                f"the output of shape {tuple(item.shape)} recorded no graph: nothing it was computed from "
                "requires grad (or it ran under no_grad); give a tensor computed from leaves with requires_grad=True")
    return items


def graph_def(model: Any, input_to_model: Any = None, *, derivatives: bool = False):
    """The TensorBoard ``GraphDef`` of ``model(*input_to_model)``, or of ``model`` when it is
    a recorded tensor (or a list of them) and ``input_to_model`` is None.

    >>> import symgrad
    >>> x = symgrad.tensor(2.0, requires_grad=True); x.name = "x"
    >>> graph = graph_def(x.sin() * 3, derivatives=True)
    >>> [(node.name, node.op, list(node.input)) for node in graph.node]  # doctest: +NORMALIZE_WHITESPACE
    [('MulBackward0', 'mul', ['SinBackward0', 'constant']), ('output/output', 'IO Node', ['MulBackward0']),
     ('SinBackward0', 'sin', ['x']), ('constant', 'Constant', []), ('x', 'Parameter', [])]
    >>> graph.node[2].attr["local_derivative"].s.decode()
    'x: grad*cos(x)'
    """
    protos = _protos()
    graph_pb2, versions_pb2 = protos[2], protos[6]
    if isinstance(model, Tensor) or (isinstance(model, (list, tuple)) and model):
        if input_to_model is not None:
            raise TypeError("add_graph takes either a model and its input, or recorded output tensors without "
                            "input_to_model; got tensors and an input_to_model")
        outputs, scope, names = _as_outputs(model), "", {}
    elif callable(model):
        if input_to_model is None:
            raise TypeError(f"add_graph({type(model).__name__}) needs input_to_model: the input(s) to run it on")
        inputs = tuple(input_to_model) if isinstance(input_to_model, (list, tuple)) else (input_to_model,)
        inputs = tuple(t if isinstance(t, Tensor) else as_tensor(t) for t in inputs)
        names = dict(zip(map(id, inputs), _input_names(model, inputs)))
        with enable_grad():
            outputs = _as_outputs(model(*inputs))
        scope = (getattr(model, "__name__", None) or type(model).__name__) + "/"
    else:
        raise TypeError(f"add_graph takes a model (a callable) or recorded symgrad tensors, got {type(model).__name__}")
    builder = _GraphBuilder(scope, names, derivatives)
    return graph_pb2.GraphDef(node=builder.walk(outputs), versions=versions_pb2.VersionDef(producer=22))


def _input_names(model: Any, inputs: tuple) -> list:
    """A name per input: its ``.name``, else the model's parameter name (``forward(self, x)``
    gives ``x``), else ``input.i``."""
    try:
        parameters = [p.name for p in inspect.signature(getattr(model, "forward", model)).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a callable without a signature
        parameters = []
    return [getattr(tensor, "name", None) or (parameters[i] if i < len(parameters) else f"input.{i}")
            for i, tensor in enumerate(inputs)]


# ============================================================================ the writer
def _default_log_dir(comment: str) -> Path:
    stamp = datetime.now().strftime("%b%d_%H-%M-%S")
    return Path("runs") / f"{stamp}_{socket.gethostname()}{comment}"


def _step(global_step: Any) -> int:
    if global_step is None:
        return 0
    if isinstance(global_step, bool) or not isinstance(global_step, numbers.Integral):
        raise TypeError(f"global_step must be an integer, got {global_step!r}")
    return int(global_step)


def _array(values: Any) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().numpy()
    return np.asarray(values)


class SummaryWriter:
    """Writes TensorBoard event files into ``log_dir`` (default ``runs/DATE_HOST{comment}``),
    as ``torch.utils.tensorboard.SummaryWriter`` does.

    >>> import tempfile; writer = SummaryWriter(tempfile.mkdtemp())
    >>> writer.add_histogram("weights", [0.1, 0.2, 0.2, 0.4], global_step=0)
    >>> writer.close()
    >>> writer.add_scalar("loss", 1.0)
    Traceback (most recent call last):
    ...
    ValueError: this SummaryWriter is closed; make a new one to write more
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, comment: str = "", flush_secs: int = 120,
                 filename_suffix: str = "") -> None:
        _, self._event_pb2, _, _, self._summary_pb2, _, _ = _protos()
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.log_dir = str(log_dir) if log_dir is not None else str(_default_log_dir(comment))
        self._writer = EventFileWriter(self.log_dir, flush_secs=flush_secs, filename_suffix=filename_suffix)
        self._closed = False

    def _event(self, walltime: float | None, **fields: Any) -> None:
        if self._closed:
            raise ValueError("this SummaryWriter is closed; make a new one to write more")
        self._writer.add_event(self._event_pb2.Event(wall_time=time.time() if walltime is None else walltime,
                                                     **fields))

    def _summary(self, tag: str, global_step: Any, walltime: float | None, **value: Any) -> None:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"a tag must be a non-empty string, got {tag!r}")
        summary = self._summary_pb2.Summary(value=[self._summary_pb2.Summary.Value(tag=tag, **value)])
        self._event(walltime, step=_step(global_step), summary=summary)

    def add_graph(self, model: Any, input_to_model: Any = None, verbose: bool = False, *,
                  derivatives: bool = False) -> None:
        """The graph of ``model(*input_to_model)`` (a module or function and its input, as
        in PyTorch), or of recorded output tensors; ``derivatives=True`` adds each op's
        closed form and local derivative (see the module docstring).  ``verbose`` prints
        the graph's nodes."""
        graph = graph_def(model, input_to_model, derivatives=derivatives)
        if verbose:
            print(graph)
        self._event(None, graph_def=graph.SerializeToString())

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None,
                   walltime: float | None = None) -> None:
        """One point of the curve ``tag`` (a number, or a tensor or array of one element)."""
        value = _array(scalar_value)
        if value.size != 1 or not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise ValueError(f"add_scalar takes one real number, got {value.dtype} of shape {value.shape}")
        if np.iscomplexobj(value):
            raise ValueError(f"add_scalar takes one real number, got the complex {value.item()!r}")
        self._summary(tag, global_step, walltime, simple_value=float(value.item()))

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None, bins: Any = "auto",
                      walltime: float | None = None) -> None:
        """The distribution of ``values`` (a tensor or array), counted in ``bins`` as
        :func:`numpy.histogram` counts them."""
        data = _array(values)
        if data.size == 0:
            raise ValueError(f"add_histogram({tag!r}) got no values")
        if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)
                or data.dtype == np.bool_):
            raise ValueError(f"add_histogram({tag!r}) takes real numbers, got dtype {data.dtype}")
        data = data.astype(np.float64).ravel()
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise ValueError(f"add_histogram({tag!r}) got {bad} non-finite values (nan or inf) of {data.size}")
        counts, edges = np.histogram(data, bins=bins)
        # TensorBoard's bucket i holds the values up to bucket_limit[i] above bucket_limit[i-1]:
        # a first, empty bucket ends at the left edge
        histogram = self._summary_pb2.HistogramProto(
            min=float(data.min()), max=float(data.max()), num=float(data.size), sum=float(data.sum()),
            sum_squares=float(np.dot(data, data)), bucket_limit=edges.tolist(), bucket=[0, *counts.tolist()])
        self._summary(tag, global_step, walltime, histo=histogram)

    def flush(self) -> None:
        """Write what is pending to disk now."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (closing twice does nothing)."""
        if not self._closed:
            self._writer.close()
            self._closed = True

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def add_graph(logdir: str | os.PathLike, model: Any, input_to_model: Any = None, *,
              derivatives: bool = False) -> Path:
    """Write the graph of ``model(*input_to_model)``, or of recorded tensors ``model``, to a
    new event file in ``logdir`` (one :meth:`SummaryWriter.add_graph`) and return ``logdir``;
    ``symgrad.viz.add_graph`` is this function.

    >>> import symgrad, tempfile; log_dir = tempfile.mkdtemp()
    >>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    >>> logdir = add_graph(log_dir, (x * 2).sum(), derivatives=True)
    >>> [p.name.startswith("events.out.tfevents.") for p in logdir.iterdir()]
    [True]
    """
    with SummaryWriter(logdir) as writer:
        writer.add_graph(model, input_to_model, derivatives=derivatives)
    return Path(logdir)
