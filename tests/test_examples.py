"""Every script in ``examples/`` runs, quickly, and prints what it demonstrates.

Each script runs in a fresh interpreter (``sys.executable``, with the repository first on
``PYTHONPATH``); its exit status, running time and the key lines of its output are
checked against the table below, which must list every example.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symgrad.symbolic.codegen.backends import CompilerNotFoundError
from symgrad.symbolic.codegen.backends.cbuild import find_compiler

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# script -> lines (or parts of lines) its output must contain, in this order
EXPECTED = {
    "autograd_basics.py": [
        "tensor([[3., 3.],\n        [3., 3.]], grad_fn=<AddBackward0>)",
        "tensor([[27., 27.],\n        [27., 27.]], grad_fn=<MulBackward0>)",
        "tensor(27., grad_fn=<MeanBackward0>)",
        "x.grad = tensor([[4.5000, 4.5000],\n        [4.5000, 4.5000]])",
        "a.requires_grad: False\na.requires_grad: True\nb.grad_fn: SumBackward0",
        "y.grad_fn: PowBackward0\ndy/dx = tensor(4.)",
        "x1.grad, x2.grad = tensor(4.) tensor(6.)",
        "z.grad_fn: SumBackward0",
        "x1.grad = tensor([2., 4., 6.])",
        "x2.grad = tensor([2., 2., 2.])",
        "x.grad = tensor([0.6667, 1.3333, 2.0000])",
        "a.grad = tensor([-0.8415, -0.9093, -0.1411])",
        "matches -sin: True",
        "unrelated.grad: None",
        "integer data: ",
        "floating point",
        "vector output: grad can be implicitly created only for scalar outputs",
    ],
    "vector_backward_jacobian.py": [
        "k = 9: y = 512 x = tensor([1178.3680,  192.4096,  922.6496], grad_fn=<MulBackward0>)",
        "y[0] / x[0] = 512.0",
        "x.grad = v * 512 = tensor([  5.1200,  51.2000, 512.0000])",
        "row 0: [512.0, 0.0, 0.0]\nrow 1: [0.0, 512.0, 0.0]\nrow 2: [0.0, 0.0, 512.0]",
        "First call\ntensor([[4., 2., 2., 2., 2.],\n        [2., 4., 2., 2., 2.],",
        "Second call\ntensor([[8., 4., 4., 4., 4.],\n        [4., 8., 4., 4., 4.],",
        "Call after zeroing gradients\ntensor([[4., 2., 2., 2., 2.],\n        [2., 4., 2., 2., 2.],",
        "input: [[2.0, 4.0]]\noutput: [[16.0, 132.0]]\ninput gradients: [[10.0, 98.0]]",
    ],
    "no_grad_and_detach.py": [
        "z.requires_grad: True\nunder no_grad, z.requires_grad: False",
        "as a decorator, requires_grad: False\ngrad mode back on: True",
        "z_det.requires_grad: False | z_det.grad_fn: None",
        "t[0] = 10 -> ",
        "leaf Variable that requires grad is being used in an in-place operation",
        "t1 = tensor([10.,  2.,  3.])\nt  = tensor([10.,  2.,  3.], requires_grad=True)",
        "t  = tensor([10., 20.,  3.], requires_grad=True) | still a leaf: True",
        "before: is_leaf False grad_fn MulBackward0",
        "after:  is_leaf True grad_fn None requires_grad False",
        "copied: [1.0, 2.0] | shared: [100.0, 2.0]",
    ],
    "custom_function.py": [
        "relu(x @ w.T).grad_fn: MyReluBackward",
        "y_hat = tensor([[3.],\n        [7.]], grad_fn=<AddBackward0>)",
        "loss = tensor(10.5000, grad_fn=<MeanBackward0>)",
        "w.grad = tensor([[4.5000, 4.5000]])",
        "b.grad = tensor([[5.]])",
        "y_hat.grad_fn: AddBackward0",
        "staticmethod version gives the same gradients: True",
        "built-in relu gives the same gradients: True",
    ],
    "leaf_tensors_and_hooks.py": [
        "x = tensor(3., requires_grad=True) | y1 = tensor(4., grad_fn=<AddBackward0>) | "
        "y2 = tensor(6., grad_fn=<MulBackward0>) | loss = tensor(4., grad_fn=<PowBackward0>)",
        "loss.grad: None\ny1.grad: None\ny2.grad: None\nx.grad: tensor(4.)",
        "warnings about non-leaf .grad: 3 | they mention retain_grad(): True",
        "x is a leaf: True\ny1 is a leaf: False\ny2 is a leaf: False\nloss is a leaf: False",
        "y2 grad: tensor(4.)\ny1 grad: tensor(-4.)\nloss.grad: tensor(1.)\nx.grad: tensor(4.)",
        "with the hook (10x): tensor(240.)",
        "without it: tensor(24.)",
    ],
    "gradient_accumulation.py": [
        "\n".join(f"epoch {k}: x.grad = [2.0, 4.0, 6.0]" for k in range(5)),
        "\n".join(f"epoch {k}: x.grad = [{2.0 * (k + 1)}, {4.0 * (k + 1)}, {6.0 * (k + 1)}]" for k in range(5)),
        "error: Trying to backward through the graph a second time",
        "retain_graph=True",
        "x.grad after two calls: [4.0, 8.0, 12.0]",
    ],
    "gradient_descent_x_squared.py": [
        "epoch  0: x = 2.40000000   3 * 0.8**1 = 2.40000000",
        "epoch  1: x = 1.92000000   3 * 0.8**2 = 1.92000000",
        "epoch  9: x = 0.32212255   3 * 0.8**10 = 0.32212255",
        "epoch 49: x = 0.00004282   3 * 0.8**50 = 0.00004282",
        "x is still a leaf that requires grad: True",
        "y went from 9.0 to 2.865e-09",
    ],
    "linear_regression.py": [
        "== lr = 0.1 (the tutorial's rate): diverges",
        "Epoch [10/100], Loss: 3020.7",
        "Epoch [100/100], Loss: 74497",
        "after 100 epochs: a = -3.304e+13, b = -9.151e+12 (not 2 and 1)",
        "== lr = 0.01: converges, slowly",
        "Epoch [10/100], Loss: 0.0965",
        "Epoch [100/100], Loss: 0.0062",
        "after 100 epochs: a = 1.949, b = 1.183 (on the way to 2 and 1)",
        "Hessian of the loss: [[22.0, 6.0], [6.0, 2.0]]",
        "eigenvalues: 0.3381, 23.6619",
        "lr = 0.1: 2 / lr = 20, step factors |1 - lr * eigenvalue| = 0.9662, 1.3662 -> diverges",
        "lr = 0.01: 2 / lr = 200, step factors |1 - lr * eigenvalue| = 0.9966, 0.7634 -> converges",
    ],
    "bce_network.py": [
        "Gradient function for z = AddBackward0",
        "Gradient function for loss = BinaryCrossEntropyWithLogitsBackward0",
        "w.grad = tensor([[",
        "b.grad = tensor([",
        "loss equals mean(log(1 + e^z)): True",
        "b.grad equals (sigmoid(z) - y) / 3: True",
        "every row of w.grad equals b.grad: True",
        "z.requires_grad under no_grad: False",
        "z.detach().requires_grad: False",
        "loss decreased every step: True",
    ],
    "graph_visualisation.py": [
        "Net()\nparameters: w (2, 1), b (1, 1)",
        "<symgrad.viz.Graph tensor with 6 nodes>\nfirst lines of the DOT text:\ndigraph symgrad {",
        'n1 [label="add\\nAddBackward0\\n(10, 1)"',
        'n2 [label="matmul\\nMmBackward0\\n(10, 1)"',
        "DOT written to ",
        "net.dot (", " bytes)\nSVG ",  # "SVG written to ..." with Graphviz, "SVG not written: ..." without
        "mean | MseLossBackward0 | scalar | grad: 1",
        "matmul | MmBackward0 | (10, 1) | grad: b/5 - target/5 + (x @ w)/5",
        "net_loss.dot (", " bytes)\nSVG ",
        "dloss/dw = x.T @ ((b - target + x @ w)/5)",
        "dloss/db = sum((b - target + x @ w)/5)",
        'symgrad graph "sin(x) * exp(-y**2)" --adjoints -o ',
    ],
    "chunked_gradient.py": [
        "<symgrad chunked value_and_grad_<lambda>, chunk_size=20000, batch_argnums=(1, 2)>",
        "200,000 rows in chunks of 20,000: value = ",
        "value equals sum((X @ w - y)**2): True",
        "gradient equals 2 X.T (X @ w - y): True",
        "peak below two chunks of X: True",
        "step 0: loss / rows = ", "step 2: loss / rows = ",
        "a mean over the batch is refused: output 0 (grad_w) is not a sum over the batch",
        "what to do: write .sum() instead of .mean()",
    ],
    "physics_formula.py": [
        "l = -log(sigma) - log(2*pi)/2 - (-mu + x)**2/(2*sigma**2)",
        "dl/dmu = (-mu + x)/sigma**2",
        "dl/dsigma = (-sigma**2 + (mu - x)**2)/sigma**3",
        "def value_and_grad(mu, sigma, x):",
        "value and 2 partial derivatives at 1,000,000 points: ",
        "dl/dmu: max |symbolic - finite difference| / (1 + |symbolic|) = ",
        "dl/dsigma: max |symbolic - finite difference| / (1 + |symbolic|) = ",
        "all 2,000,000 derivatives agree with finite differences (< 1e-5): True",
        "sample mean = 1.4994, sample std = 0.7001",
        "(both 0 up to rounding): True",
        "R = v**2*sin(2*theta)/g",
        "dR/dv = 2*v*sin(2*theta)/g\ndR/dtheta = 2*v**2*cos(2*theta)/g\ndR/dg = -v**2*sin(2*theta)/g**2",
        "dR/dtheta at 45 degrees: 0",
        "def value_and_grad(v, theta, g):",
        "dR/dv: max |symbolic - finite difference| / (1 + |symbolic|) = ",
        "dR/dtheta: max |symbolic - finite difference| / (1 + |symbolic|) = ",
        "all 2,000,000 derivatives agree with finite differences (< 1e-5): True",
    ],
    "export_numpy.py": [
        "wrote logistic_grad.py, verified at 4 points",
        "closed form of the gradient: X.T @ (-y/200 + sigmoid(X @ w)/200)",
        "imports: ['import numpy']",
        "symgrad imported: False",
        "loss after 500 steps: 0.4358",
        "w = [ 1.86 -1.15  0.46]",
    ],
    "export_c.py": [
        "wrote w1_formula.c and w1_formula.h, verified at 4 points",
        "int w1_formula_value_and_grad(long n, const double *x, const double *y, const double *z, double *value, "
        "double *grad_x, double *grad_y, double *grad_z);",
        "build: ", " -o w1_demo main.c w1_formula.c -lm",
        "C program", "symgrad", "by hand",
        "C value equals symgrad's (rtol 1e-12): True",
        "C gradient equals symgrad's at all 10,000 points (rtol 1e-12): True",
        "C gradient equals the hand-derived one at all 10,000 points (rtol 1e-12): True",
    ],
    "export_jax.py": [
        "wrote poisson_loss_jax.py, verified at 4 points",
        "closed form of the gradient: X.T @ (-counts/500 + exp(X @ w)/500)",
        "jit(value_and_grad) gradient: float64",
        "equals the hand-derived X.T @ (exp(X @ w) - counts) / 500: True",
        "equals JAX's own autodiff of the formula: True",
        "gradient for X (not exported) is NaN, so JAX ran the custom VJP: True",
        "jax.test_util.check_grads (reverse mode against finite differences): passed",
        "gradient descent, 2000 jitted steps: w = ",
        "equals Newton's method on the hand-derived gradient (to 1e-6): True",
    ],
    "cnn_digits.py": [
        "above 95%: True",
        "d loss / d K, ",
        "gradient shape: (8, 1, 3, 3)",
    ],
    "export_torch.py": [
        "wrote mlp_loss_torch.py, verified at 4 points",
        "closed form of grad_W2: tanh(X @ W1).T @ ((-y + tanh(X @ W1) @ W2)/32)",
        "backward node: MlpLossFunctionBackward",
        "same gradients as torch's autograd: True",
        "gradcheck: True",
        "loss: 2.7310 -> 0.0200 after 300 SGD steps",
    ],
    "tensorboard_graph.py": [
        "== what TensorBoard reads back",
        "  Net/AddBackward0  add        inputs=['Net/MmBackward0', 'Net/b'] shape=(10, 1)\n"
        "                    b + matmul_out  |  matmul_out: grad; b: sum(grad)",
        "  output/output     IO Node    inputs=['Net/AddBackward0'] shape=(10, 1)",
        "  Net/MmBackward0   matmul     inputs=['input/x', 'Net/w'] shape=(10, 1)\n"
        "                    x @ w  |  w: x.T @ grad",
        "  Net/b             Parameter  inputs=[] shape=(1, 1)",
        "  input/x           IO Node    inputs=[] shape=(10, 2)",
        "  Net/w             Parameter  inputs=[] shape=(2, 1)",
        "loss: 3.8606 at step 0 -> 0.0037 at step 19",
        "histograms of w: 20",
        "see the run with: tensorboard --logdir",
    ],
}

NEEDS = {"export_torch.py": "torch", "export_jax.py": "jax", "cnn_digits.py": "sklearn",
         "tensorboard_graph.py": "tensorboard"}
"""Optional libraries an example needs; its test skips without them."""

NEEDS_C_COMPILER = {"export_c.py"}
"""Examples that build C; their test skips when symgrad finds no C compiler (``$CC``, ``cc``, ``gcc``)."""


def test_every_example_is_in_the_table():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(EXPECTED)


# script -> its command-line arguments, given pytest's tmp_path (scripts that write files
# write them there, never into the repository)
ARGUMENTS = {
    "graph_visualisation.py": lambda tmp_path: [str(tmp_path / "graphs")],
    "export_numpy.py": lambda tmp_path: [str(tmp_path / "export")],
    "export_torch.py": lambda tmp_path: [str(tmp_path / "export")],
    "export_c.py": lambda tmp_path: [str(tmp_path / "export")],
    "export_jax.py": lambda tmp_path: [str(tmp_path / "export")],
    "tensorboard_graph.py": lambda tmp_path: [str(tmp_path / "runs")],
}


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          encoding="utf-8", env=env, cwd=ROOT, timeout=600)


def skip_without_what_it_needs(script: str) -> None:
    """Skip the calling test when ``examples/<script>`` needs a library or a C compiler
    that is not here (every test that runs examples calls this)."""
    if script in NEEDS:
        pytest.importorskip(NEEDS[script], reason=f"examples/{script} needs {NEEDS[script]}")
    if script in NEEDS_C_COMPILER:
        try:
            find_compiler()
        except CompilerNotFoundError as err:
            pytest.skip(f"examples/{script} needs a C compiler: {err}")


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_and_prints(script, tmp_path):
    skip_without_what_it_needs(script)
    result = _run(script, *ARGUMENTS.get(script, lambda _: [])(tmp_path))
    assert result.returncode == 0, f"{script} failed:\n{result.stderr}"
    output = result.stdout
    position = 0
    for expected in EXPECTED[script]:
        found = output.find(expected, position)
        assert found >= 0, f"{script}: expected {expected!r} after position {position} in:\n{output}"
        position = found + len(expected)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_is_documented_and_seeded(script):
    source = (EXAMPLES / script).read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source))
    assert docstring and f"python examples/{script}" in docstring, f"{script} needs a module docstring saying how to run it"
    assert "symgrad.manual_seed(" in source
