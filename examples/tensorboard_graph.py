"""The tutorial's model in TensorBoard: ``SummaryWriter.add_graph``, scalars and histograms.

The tutorial builds ``Net`` (a 2x1 weight ``w`` and a 1x1 bias ``b``, forward ``x @ w + b``)
and hands it to ``torch.utils.tensorboard.SummaryWriter.add_graph`` with
``input_to_model=torch.randn(10, 2)``.  ``symgrad.tensorboard.SummaryWriter`` takes the same
calls and writes an event file TensorBoard displays: the op nodes named by their
``grad_fn`` (``MmBackward0``, ``AddBackward0``) under ``Net``, the parameters, the input and
the output, shapes on the edges, and (``derivatives=True``) each op's closed form and local
derivative as node attributes.  The script then trains the model for a few steps, logging
the loss as a scalar and the weight as a histogram, and reads the file back with
TensorBoard's own event reader.

The event files go to a new run directory (``net-...``, TensorBoard shows each subdirectory
of its log directory as a run) inside the directory given as the first argument, or inside a
new temporary directory; the script prints the command that shows them.  Needs the
``tensorboard`` package (``pip install symgrad[tensorboard]``).

Run: ``python examples/tensorboard_graph.py [LOG_DIR]``
"""
import sys
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator

import symgrad
import symgrad.nn as nn
import symgrad.nn.functional as F
from symgrad.tensorboard import SummaryWriter

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
runs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="symgrad-tensorboard-"))
runs.mkdir(parents=True, exist_ok=True)
log_dir = tempfile.mkdtemp(prefix="net-", dir=runs)  # this run's own directory

print("== writer.add_graph(net, input_to_model=symgrad.randn(10, 2)), as the tutorial does")
writer = SummaryWriter(log_dir)
writer.add_graph(net, input_to_model=symgrad.randn(10, 2), derivatives=True)

print("== a few steps of training, logging the loss and the weight")
x = symgrad.randn(64, 2)
target = x @ symgrad.tensor([[2.0], [-1.0]]) + 0.5
optimizer = symgrad.optim.SGD(net.parameters(), lr=0.1)
for step in range(20):
    optimizer.zero_grad()
    loss = F.mse_loss(net(x), target)
    loss.backward()
    optimizer.step()
    writer.add_scalar("loss", loss, global_step=step)
    writer.add_histogram("w", net.w, global_step=step)
writer.close()

print("== what TensorBoard reads back")
events = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.SCALARS: 0,
                                                              event_accumulator.HISTOGRAMS: 0})
events.Reload()
for node in events.Graph().node:
    shapes = [tuple(d.size for d in s.dim) for s in node.attr["_output_shapes"].list.shape]
    line = f"  {node.name:<17} {node.op:<10} inputs={list(node.input)} shape={shapes[0]}"
    if "local_derivative" in node.attr:
        line += f"\n  {'':<17} {node.attr['closed_form'].s.decode()}  |  {node.attr['local_derivative'].s.decode()}"
    print(line)
losses = events.Scalars("loss")
print(f"loss: {losses[0].value:.4f} at step {losses[0].step} -> {losses[-1].value:.4f} at step {losses[-1].step}")
print(f"histograms of w: {len(events.Histograms('w'))}")
print(f"see the run with: tensorboard --logdir {runs}")
