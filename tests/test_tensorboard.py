"""TensorBoard event files (symgrad.tensorboard, symgrad.viz.add_graph), read back with
TensorBoard's own event reader: the graph's nodes and edges against the recorded graph (and
against the graph PyTorch records for the same program), shapes, leaves, inputs, the local
derivatives; scalars and histograms (against what torch's SummaryWriter writes); errors."""
from __future__ import annotations

import collections
import re
import sys

import numpy as np
import pytest

import symgrad
import symgrad.nn as nn
from symgrad import viz

pytest.importorskip("tensorboard", reason="writing event files needs tensorboard: pip install '.[tensorboard]'")
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

from symgrad.tensorboard import SummaryWriter, TensorBoardNotInstalled  # noqa: E402


def read(logdir) -> event_accumulator.EventAccumulator:
    """Every event in ``logdir``, as TensorBoard loads it."""
    accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0, event_accumulator.GRAPH: 1})
    accumulator.Reload()
    return accumulator


def nodes_of(logdir) -> dict:
    """``{name: NodeDef}`` of the graph in ``logdir``."""
    return {node.name: node for node in read(logdir).Graph().node}


def shapes(node) -> list:
    return [tuple(d.size for d in shape.dim) for shape in node.attr["_output_shapes"].list.shape]


def text(node, attr: str) -> str:
    return node.attr[attr].s.decode("utf-8")


class Net(nn.Module):
    """The tutorial's model (seed 002, section 6): ``x @ w + b``."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(symgrad.randn(2, 1))
        self.b = nn.Parameter(symgrad.zeros(1, 1))

    def forward(self, x):
        return x @ self.w + self.b


# ---------------------------------------------------------------------------- graphs
def test_the_tutorials_net_as_tensorboard_reads_it(tmp_path):
    symgrad.manual_seed(0)
    with SummaryWriter(tmp_path) as writer:
        writer.add_graph(Net(), input_to_model=symgrad.randn(10, 2))
    nodes = nodes_of(tmp_path)
    assert {name: (node.op, list(node.input)) for name, node in nodes.items()} == {
        "input/x": ("IO Node", []),
        "Net/w": ("Parameter", []),
        "Net/b": ("Parameter", []),
        "Net/MmBackward0": ("matmul", ["input/x", "Net/w"]),
        "Net/AddBackward0": ("add", ["Net/MmBackward0", "Net/b"]),
        "output/output": ("IO Node", ["Net/AddBackward0"]),
    }
    assert {name: shapes(node) for name, node in nodes.items()} == {
        "input/x": [(10, 2)], "Net/w": [(2, 1)], "Net/b": [(1, 1)], "Net/MmBackward0": [(10, 1)],
        "Net/AddBackward0": [(10, 1)], "output/output": [(10, 1)]}
    assert {text(node, "dtype") for node in nodes.values()} == {"float64"}
    assert "local_derivative" not in nodes["Net/MmBackward0"].attr  # only on request


def test_the_local_derivatives_of_the_tutorials_net(tmp_path):
    symgrad.manual_seed(0)
    viz.add_graph(tmp_path, Net(), symgrad.randn(10, 2), derivatives=True)
    nodes = nodes_of(tmp_path)
    matmul, add = nodes["Net/MmBackward0"], nodes["Net/AddBackward0"]
    assert (text(matmul, "closed_form"), text(matmul, "local_derivative")) == ("x @ w", "w: x.T @ grad")
    assert text(add, "closed_form") == "b + matmul_out"
    assert text(add, "local_derivative") == "matmul_out: grad; b: sum(grad)"


def graph_programs():
    """Programs run on torch and on symgrad alike: ``f(lib, x, w, b)``."""
    return {
        "linear": lambda lib, x, w, b: (x @ w + b).sum(),
        "tanh layer": lambda lib, x, w, b: (((x @ w + b).tanh() * w.sum()).exp() - 2 * b).mean(),
        "shared leaf": lambda lib, x, w, b: (w * w).sum() + (lib.sin(x @ w) ** 2).mean() * b.sum(),
        "reshape and transpose": lambda lib, x, w, b: (x.T @ x @ w).reshape(6).relu().sum() / b.sum(),
    }


def torch_graph(out) -> collections.Counter:
    """Each op node of torch's recorded graph of ``out`` as ``(grad_fn name, sorted input
    kinds)``: another op's name, ``AccumulateGrad`` for a leaf, ``None`` for a constant."""
    found, stack, seen = collections.Counter(), [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node in seen or node.name().endswith("AccumulateGrad"):
            continue
        seen.add(node)
        inputs = [None if f is None else f.name().split("::")[-1] for f, _ in node.next_functions]
        found[(node.name(), tuple(sorted(inputs, key=str)))] += 1
        stack.extend(f for f, _ in node.next_functions if f is not None)
    return found


def event_graph(nodes: dict) -> collections.Counter:
    """The same view of a graph read back from an event file."""
    def kind(name):
        node = nodes[name.split(":")[0]]
        if node.op == "Parameter":
            return "AccumulateGrad"
        return None if node.op in ("Constant", "IO Node") else re.sub(r"_\d+$", "", name.split("/")[-1])

    return collections.Counter(
        (re.sub(r"_\d+$", "", name.split("/")[-1]), tuple(sorted(map(kind, node.input), key=str)))
        for name, node in nodes.items() if node.op not in ("Parameter", "Constant", "IO Node"))


@pytest.mark.parametrize("program", sorted(graph_programs()))
def test_nodes_and_edges_match_the_graph_torch_records(program, tmp_path, rng):
    torch = pytest.importorskip("torch")
    f = graph_programs()[program]
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2) + 3
    expected = torch_graph(f(torch, torch.tensor(x), torch.tensor(w, requires_grad=True),
                             torch.tensor(b, requires_grad=True)))
    out = f(symgrad, symgrad.tensor(x), symgrad.tensor(w, requires_grad=True), symgrad.tensor(b, requires_grad=True))
    viz.add_graph(tmp_path, out)
    assert event_graph(nodes_of(tmp_path)) == expected


def test_every_recorded_value_is_one_node_with_its_shape(tmp_path, rng):
    x = symgrad.tensor(rng.standard_normal((5, 3)))
    x.name = "data"
    w = symgrad.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w.name = "layer.weight"
    hidden = (x @ w).sigmoid()
    loss = (hidden * hidden).sum(dim=1).mean()
    viz.add_graph(tmp_path, loss)
    nodes = nodes_of(tmp_path)
    assert nodes["layer/weight"].op == "Parameter" and shapes(nodes["layer/weight"]) == [(3, 4)]
    assert nodes["data"].op == "Constant" and shapes(nodes["data"]) == [(5, 3)]
    assert list(nodes["MulBackward0"].input) == ["SigmoidBackward0", "SigmoidBackward0"]  # one node, used twice
    assert shapes(nodes["SumBackward1"]) == [(5,)] and text(nodes["SumBackward1"], "attr") == "dim=1"
    assert shapes(nodes["output/output"]) == [()]
    for node in nodes.values():  # every edge ends at a node of the graph
        assert all(name.split(":")[0] in nodes for name in node.input)


def test_local_derivatives_are_the_derivative_of_each_closed_form(tmp_path):
    sympy = pytest.importorskip("sympy")
    x = symgrad.tensor(0.7, requires_grad=True)
    x.name = "x"
    y = (x.sin() * x.exp()).log() ** 3
    viz.add_graph(tmp_path, y, derivatives=True)
    checked = 0
    for node in nodes_of(tmp_path).values():
        if "closed_form" not in node.attr:
            continue
        value = sympy.sympify(text(node, "closed_form"))
        for part in text(node, "local_derivative").split("; "):
            name, vjp = part.split(": ")
            expected = sympy.Symbol("grad") * sympy.diff(value, sympy.Symbol(name))
            assert sympy.simplify(sympy.sympify(vjp) - expected) == 0, (node.name, part)
            checked += 1
    assert checked == 6  # sin, exp, mul (two inputs), log, pow


def test_a_function_without_closed_form_says_so(tmp_path):
    class Clip(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            return g

    x = symgrad.tensor([1.0, -1.0], requires_grad=True)
    viz.add_graph(tmp_path, Clip.apply(x).sum(), derivatives=True)
    node = nodes_of(tmp_path)["ClipBackward"]
    assert node.op == "custom Function" and "closed_form" not in node.attr
    assert text(node, "local_derivative").startswith("no closed form: the custom Function Clip has no SymPy form")


def test_a_second_output_of_a_node_is_an_edge_from_its_slot(tmp_path):
    class SplitHalves(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x[:2] * 1.0, x[2:] * 1.0

        @staticmethod
        def backward(ctx, g0, g1):
            return symgrad.cat([g0, g1])

    x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    low, high = SplitHalves.apply(x)
    viz.add_graph(tmp_path, [low.sum(), high.sum()])
    nodes = nodes_of(tmp_path)
    assert shapes(nodes["SplitHalvesBackward"]) == [(2,), (1,)]
    assert sorted(nodes[name].input[0] for name in ("SumBackward0", "SumBackward0_1")) == [
        "SplitHalvesBackward", "SplitHalvesBackward:1"]
    assert list(nodes["output/output.0"].input) + list(nodes["output/output.1"].input) == [
        "SumBackward0", "SumBackward0_1"]


def test_a_function_and_its_input_as_a_model(tmp_path):
    w = symgrad.tensor([[1.0], [2.0]], requires_grad=True)
    w.name = "w"

    def predict(features):
        return (features @ w).tanh()

    viz.add_graph(tmp_path, predict, np.array([[1.0, 2.0]]))
    nodes = nodes_of(tmp_path)
    assert list(nodes["predict/MmBackward0"].input) == ["input/features", "predict/w"]


# ---------------------------------------------------------------------------- scalars, histograms
def test_scalars_read_back(tmp_path):
    with SummaryWriter(tmp_path) as writer:
        for step, value in enumerate([2.5, symgrad.tensor(1.25), np.float32(0.5), np.array([[0.125]])]):
            writer.add_scalar("loss", value, global_step=step, walltime=100.0 + step)
        writer.add_scalar("train/lr", 0.1)
    events = read(tmp_path)
    assert [(e.step, e.value, e.wall_time) for e in events.Scalars("loss")] == [
        (0, 2.5, 100.0), (1, 1.25, 101.0), (2, 0.5, 102.0), (3, 0.125, 103.0)]
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("train/lr")] == [(0, 0.1)]


def test_histograms_match_what_torchs_writer_writes(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    values = rng.standard_normal(1000)
    with SummaryWriter(tmp_path / "symgrad") as writer:
        writer.add_histogram("w", symgrad.tensor(values, requires_grad=True), global_step=3, bins="auto")
    torch_writer = TorchWriter(str(tmp_path / "torch"))
    torch_writer.add_histogram("w", torch.tensor(values), global_step=3, bins="auto")
    torch_writer.close()
    (ours,), (theirs,) = read(tmp_path / "symgrad").Histograms("w"), read(tmp_path / "torch").Histograms("w")
    assert ours.step == theirs.step == 3
    a, b = ours.histogram_value, theirs.histogram_value
    assert (a.min, a.max, a.num, a.bucket) == (b.min, b.max, b.num, b.bucket)
    np.testing.assert_allclose([a.sum, a.sum_squares, *a.bucket_limit], [b.sum, b.sum_squares, *b.bucket_limit])
    assert sum(a.bucket) == 1000 and a.max == values.max()


# ---------------------------------------------------------------------------- errors
def test_bad_arguments_raise_clear_errors_and_write_nothing(tmp_path):
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    with SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="recorded no graph: nothing it was computed from requires grad"):
            writer.add_graph(symgrad.tensor([1.0]) * 2)
        with pytest.raises(TypeError, match="without input_to_model"):
            writer.add_graph(x * 2, symgrad.tensor([1.0]))
        with pytest.raises(TypeError, match=r"add_graph\(Net\) needs input_to_model"):
            writer.add_graph(Net())
        with pytest.raises(TypeError, match="got str"):
            writer.add_graph("x * 2")
        with pytest.raises(ValueError, match=r"one real number, got float64 of shape \(2,\)"):
            writer.add_scalar("loss", x)
        with pytest.raises(ValueError, match="non-empty string"):
            writer.add_scalar("", 1.0)
        with pytest.raises(TypeError, match="global_step must be an integer, got 1.5"):
            writer.add_scalar("loss", 1.0, global_step=1.5)
        with pytest.raises(ValueError, match=r"add_histogram\('w'\) got 1 non-finite values"):
            writer.add_histogram("w", [1.0, np.nan])
        with pytest.raises(ValueError, match="got no values"):
            writer.add_histogram("w", [])
    events = read(tmp_path)
    assert events.Tags()["scalars"] == [] and events.Tags()["histograms"] == [] and not events.Tags()["graph"]
    with pytest.raises(ValueError, match="closed"):
        writer.add_histogram("w", [1.0])


def test_the_module_and_the_function_are_where_the_docs_say():
    assert symgrad.tensorboard.SummaryWriter is SummaryWriter
    assert viz.add_graph is symgrad.tensorboard.add_graph
    with pytest.raises(AttributeError, match="module 'symgrad.viz' has no attribute 'add_graphs'"):
        viz.add_graphs  # noqa: B018


def test_without_tensorboard_the_writer_says_what_to_install(monkeypatch, tmp_path):
    for name in [name for name in sys.modules if name == "tensorboard" or name.startswith("tensorboard.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(TensorBoardNotInstalled, match=r"pip install 'symgrad\[tensorboard\]'"):
        SummaryWriter(tmp_path)
    assert list(tmp_path.iterdir()) == []
