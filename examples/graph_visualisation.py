"""Drawing the computation graph of a model (the tutorial's TensorBoard graph view).

The tutorial builds ``Net`` (a 2x1 weight ``w`` and a 1x1 bias ``b``, forward
``x @ w + b``) and hands it to TensorBoard's ``add_graph`` to look at its graph.  symgrad
draws the recorded graph itself with :mod:`symgrad.viz`: Graphviz DOT text always, and an
SVG picture when the Graphviz ``dot`` program is installed (``apt install graphviz``).
Inputs, parameters, ops and the output are drawn in distinct styles; with
``adjoints=True`` every op node also shows the closed-form gradient of the loss with
respect to its value.

The files go to the directory given as the first argument, or to a new temporary
directory; the script prints where.

Run: ``python examples/graph_visualisation.py [OUTPUT_DIR]``
"""
import sys
import tempfile
from pathlib import Path

import symgrad
import symgrad.nn as nn
import symgrad.nn.functional as F
import symgrad.viz

symgrad.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(symgrad.randn(2, 1))
        self.b = nn.Parameter(symgrad.zeros(1, 1))

    def forward(self, x):
        y = x @ self.w + self.b
        return y


net = Net()
print(net)
print("parameters:", ", ".join(f"{name} {tuple(p.shape)}" for name, p in net.named_parameters()))

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="symgrad-graph-"))
out_dir.mkdir(parents=True, exist_ok=True)


def save(graph, stem):
    """Write ``stem.dot`` always and ``stem.svg`` when Graphviz is installed."""
    dot_path = graph.save(out_dir / f"{stem}.dot")
    print(f"DOT written to {dot_path} ({dot_path.stat().st_size} bytes)")
    if symgrad.viz.has_dot():
        svg_path = graph.save(out_dir / f"{stem}.svg")
        print(f"SVG written to {svg_path} ({svg_path.stat().st_size} bytes)")
    else:
        print("SVG not written: the Graphviz 'dot' program is not on PATH (apt install graphviz); "
              "the DOT file opens in any Graphviz viewer")


print("\n== the graph of y = net(x), as add_graph(net, input_to_model=torch.randn(10, 2)) shows it")
x = symgrad.randn(10, 2)
x.name = "x"  # names show in the closed forms
y = net(x)
graph = symgrad.viz.draw(y)
print(repr(graph))
print("first lines of the DOT text:")
print("\n".join(graph.source.splitlines()[:8]))
save(graph, "net")

print("\n== with a loss, and the closed-form gradient of the loss at every op node")
target = symgrad.randn(10, 1)
target.name = "target"
loss = F.mse_loss(net(x), target)
graph = symgrad.viz.draw(loss, adjoints=True)
for line in graph.source.splitlines():
    if "grad: " in line:
        label = line.split('label="', 1)[1].split('"', 1)[0]
        print("  " + " | ".join(label.split("\\n")))
save(graph, "net_loss")
print("dloss/dw =", symgrad.diff(loss, net.w))
print("dloss/db =", symgrad.diff(loss, net.b))

print("\n== the same for a formula, from a terminal")
print(f'symgrad graph "sin(x) * exp(-y**2)" --adjoints -o {out_dir / "formula.svg"}')
