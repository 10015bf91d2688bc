"""Export a Poisson regression loss as a jax.custom_vjp, then fit it with jax.jit and jax.grad.

symgrad writes a module that imports only JAX: the loss and its gradient in ``jax.numpy``
and a ``jax.custom_vjp`` whose backward is symgrad's closed form, checked against
symgrad's engines before the file is written.  The script differentiates that function
with JAX's own ``jax.grad`` under ``jax.jit`` (which runs the closed form), compares the
gradient with the one derived by hand and with JAX's autodiff of the same formula, runs
``jax.test_util.check_grads``, and fits the weights by jitted gradient descent, checking
the fit against Newton's method in NumPy.

Usage: ``python examples/export_jax.py [DIRECTORY]`` (default: a temporary directory).
Needs jax.
"""
import importlib.util
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

import symgrad

jax.config.update("jax_enable_x64", True)  # JAX computes in float32 otherwise


def poisson_loss(w, X, counts):
    """Mean negative log-likelihood of counts ~ Poisson(exp(X @ w)), without the log(counts!) term."""
    eta = X @ w
    return (symgrad.exp(eta) - counts * eta).mean()


def gradient_by_hand(w, X, counts):
    return X.T @ (np.exp(X @ w) - counts) / len(counts)


symgrad.manual_seed(0)
rng = np.random.default_rng(0)
X = 0.5 * rng.standard_normal((500, 3))
true_w = np.array([0.5, -1.0, 0.8])
counts = rng.poisson(np.exp(X @ true_w)).astype(float)
w0 = np.zeros(3)

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
folder.mkdir(parents=True, exist_ok=True)
exported = symgrad.export(poisson_loss, w0, X, counts, target="jax", path=folder / "poisson_loss_jax.py",
                          overwrite=True)
print(f"wrote {exported.paths[0].name}, verified at {exported.points_checked} points")
print("closed form of the gradient:", exported.closed_forms["grad_w"])

spec = importlib.util.spec_from_file_location("poisson_loss_jax", exported.paths[0])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

w = rng.standard_normal(3)
value, grad_w = jax.jit(jax.value_and_grad(module.poisson_loss))(w, X, counts)
jax_autodiff = jax.grad(lambda w: jnp.mean(jnp.exp(X @ w) - counts * (X @ w)))(w)
print("jit(value_and_grad) gradient:", grad_w.dtype, np.round(np.asarray(grad_w), 4))
print("equals the hand-derived X.T @ (exp(X @ w) - counts) / 500:",
      np.allclose(grad_w, gradient_by_hand(w, X, counts), rtol=1e-12, atol=0))
print("equals JAX's own autodiff of the formula:", np.allclose(grad_w, jax_autodiff, rtol=1e-12, atol=0))
grad_X = jax.grad(module.poisson_loss, argnums=1)(w, X, counts)
print("gradient for X (not exported) is NaN, so JAX ran the custom VJP:", bool(np.isnan(grad_X).all()))
check_grads(lambda w: module.poisson_loss(w, X, counts), (w,), order=1, modes=["rev"])
print("jax.test_util.check_grads (reverse mode against finite differences): passed")


@jax.jit
def descent_step(w):
    return w - 0.5 * jax.grad(module.poisson_loss)(w, X, counts)


fitted = jnp.asarray(w0)
for _ in range(2000):
    fitted = descent_step(fitted)

newton = w0.copy()  # the same fit by Newton's method, with the hand-derived gradient and Hessian
for _ in range(20):
    hessian = X.T @ (np.exp(X @ newton)[:, None] * X) / len(counts)
    newton -= np.linalg.solve(hessian, gradient_by_hand(newton, X, counts))
print("gradient descent, 2000 jitted steps: w =", np.round(np.asarray(fitted), 3), "| true w =", true_w)
print("equals Newton's method on the hand-derived gradient (to 1e-6):", np.allclose(fitted, newton, rtol=0, atol=1e-6))
