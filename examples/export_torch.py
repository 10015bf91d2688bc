"""Export a tanh MLP's loss as a torch.autograd.Function whose backward is symgrad's closed form.

symgrad writes a module that imports only torch: the loss and its gradient in torch ops
and a ``torch.autograd.Function`` using them, checked against symgrad's engines before
the file is written.  The script trains the two weight matrices with ``torch.optim.SGD``
through that Function, compares one backward with torch's own autograd, and runs
``torch.autograd.gradcheck``.

Usage: ``python examples/export_torch.py [DIRECTORY]`` (default: a temporary directory).
Needs torch.
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import symgrad


def mlp_loss(W1, W2, X, y):
    return (((X @ W1).tanh() @ W2 - y) ** 2).mean()


symgrad.manual_seed(0)
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 3))
y = np.sin(X @ np.array([1.0, -2.0, 0.5]))
W1, W2 = 0.5 * rng.standard_normal((3, 8)), 0.5 * rng.standard_normal(8)

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
folder.mkdir(parents=True, exist_ok=True)
exported = symgrad.export(mlp_loss, W1, W2, X, y, argnums=(0, 1), target="torch",
                          path=folder / "mlp_loss_torch.py", overwrite=True)
print(f"wrote {exported.paths[0].name}, verified at {exported.points_checked} points")
print("closed form of grad_W2:", exported.closed_forms["grad_W2"])

spec = importlib.util.spec_from_file_location("mlp_loss_torch", exported.paths[0])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

tW1, tW2 = torch.tensor(W1, requires_grad=True), torch.tensor(W2, requires_grad=True)
tX, ty = torch.tensor(X), torch.tensor(y)
loss = module.mlp_loss(tW1, tW2, tX, ty)
loss.backward()
rW1, rW2 = torch.tensor(W1, requires_grad=True), torch.tensor(W2, requires_grad=True)
(((tX @ rW1).tanh() @ rW2 - ty) ** 2).mean().backward()
print("backward node:", loss.grad_fn.name())
print("same gradients as torch's autograd:",
      torch.allclose(tW1.grad, rW1.grad, rtol=1e-12) and torch.allclose(tW2.grad, rW2.grad, rtol=1e-12))
print("gradcheck:", torch.autograd.gradcheck(module.mlp_loss, (tW1.detach().requires_grad_(),
                                                               tW2.detach().requires_grad_(), tX, ty)))

optimizer = torch.optim.SGD([tW1, tW2], lr=0.2)
first = loss.item()
for step in range(300):
    optimizer.zero_grad()
    loss = module.mlp_loss(tW1, tW2, tX, ty)
    loss.backward()
    optimizer.step()
print(f"loss: {first:.4f} -> {loss.item():.4f} after 300 SGD steps")
