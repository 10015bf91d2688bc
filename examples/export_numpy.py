"""Export the gradient of logistic regression as a NumPy-only module, then train with it.

symgrad derives the loss's gradient in closed form, writes ``value``, ``grad`` and
``value_and_grad`` into one ``.py`` file whose only import is NumPy, and checks the file
against its own engines before writing it.  The script then imports that file in a fresh
interpreter without symgrad on the path and runs gradient descent with it.

Usage: ``python examples/export_numpy.py [DIRECTORY]`` (default: a temporary directory).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import symgrad
import symgrad.nn.functional as F


def logistic_loss(w, X, y):
    return F.binary_cross_entropy_with_logits(X @ w, y)


symgrad.manual_seed(0)
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 3))
true_w = np.array([2.0, -1.0, 0.5])
y = (rng.random(200) < 1 / (1 + np.exp(-X @ true_w))).astype(float)

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
folder.mkdir(parents=True, exist_ok=True)
path = folder / "logistic_grad.py"
exported = symgrad.export(logistic_loss, np.zeros(3), X, y, path=path, overwrite=True)
print(f"wrote {path.name}, verified at {exported.points_checked} points")
print("closed form of the gradient:", exported.closed_forms["grad_w"])
imports = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
print("imports:", imports)

np.save(folder / "X.npy", X)
np.save(folder / "y.npy", y)
training = f"""
import sys
import numpy as np
sys.path.insert(0, {str(folder)!r})
import logistic_grad
X, y = np.load({str(folder / "X.npy")!r}), np.load({str(folder / "y.npy")!r})
w = np.zeros(3)
for step in range(500):
    loss, g = logistic_grad.value_and_grad(w, X, y)
    w -= 1.0 * g
print("symgrad imported:", any(m.startswith("symgrad") for m in sys.modules))
print("loss after 500 steps:", round(float(loss), 4))
print("w =", np.round(w, 2))
"""
env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
done = subprocess.run([sys.executable, "-I", "-c", training], capture_output=True, text=True, env=env, check=True)
print(done.stdout, end="")
