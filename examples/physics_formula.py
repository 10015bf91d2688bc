"""Symbolic gradients of real formulas, compiled once and run on a million points.

Two formulas, written as plain SymPy expressions:

* the log-likelihood of one observation x under a normal distribution,
  l(mu, sigma; x) = -log(sigma) - log(2 pi)/2 - (x - mu)**2 / (2 sigma**2),
  whose gradient with respect to the parameters (mu, sigma) is what maximum-likelihood
  fitting follows;
* the range of a projectile launched at speed v and angle theta on flat ground,
  R(v, theta, g) = v**2 sin(2 theta) / g, whose derivative in theta vanishes at 45 degrees.

For each, symgrad prints the partial derivatives in closed form, compiles value and
gradient into one NumPy function (its source is printed), evaluates it on a million
points in one vectorised call, and checks every gradient against central finite
differences of the compiled value.  The timings are printed; they vary by machine.

Run: ``python examples/physics_formula.py``
"""
import time

import numpy as np
import sympy as sp

import symgrad

symgrad.manual_seed(0)
rng = np.random.default_rng(0)
N = 1_000_000


def check_on_points(name, expr, params, others, points):
    """Compile value and gradient of ``expr``, run it on ``points`` (a dict of arrays, in
    the order ``params + others``), and compare with central finite differences."""
    args = list(params) + list(others)
    start = time.perf_counter()
    value_and_grad = symgrad.value_and_grad(expr, tuple(params), args=args)
    arrays = [points[str(a)] for a in args]
    value_and_grad(*[a[:1] for a in arrays])  # the first call derives and compiles
    compile_time = time.perf_counter() - start
    print(f"compiled in {compile_time * 1e3:.1f} ms; the generated NumPy code:")
    print(value_and_grad.source)

    start = time.perf_counter()
    value, grads = value_and_grad(*arrays)
    run_time = time.perf_counter() - start
    print(f"value and {len(params)} partial derivatives at {N:,} points: {run_time * 1e3:.1f} ms "
          f"({run_time / N * 1e9:.0f} ns per point)")

    worst = 0.0
    for i, param in enumerate(params):
        step = 1e-6 * np.maximum(1.0, np.abs(arrays[i]))
        up, down = list(arrays), list(arrays)
        up[i], down[i] = arrays[i] + step, arrays[i] - step
        numerical = (value_and_grad(*up)[0] - value_and_grad(*down)[0]) / (2 * step)
        error = np.max(np.abs(grads[i] - numerical) / (1 + np.abs(grads[i])))
        print(f"  d{name}/d{param}: max |symbolic - finite difference| / (1 + |symbolic|) = {error:.1e}")
        worst = max(worst, error)
    print(f"all {len(params) * N:,} derivatives agree with finite differences (< 1e-5):", bool(worst < 1e-5))
    return value_and_grad


print("== the log-likelihood of a normal distribution")
x, mu = sp.symbols("x mu", real=True)
sigma = sp.Symbol("sigma", positive=True)
loglik = -sp.log(sigma) - sp.log(2 * sp.pi) / 2 - (x - mu) ** 2 / (2 * sigma ** 2)
print("l =", loglik)
for param in (mu, sigma):
    print(f"dl/d{param} =", symgrad.diff(loglik, param, simplify=True))

points = {"x": rng.normal(1.0, 2.0, N), "mu": rng.normal(0.0, 1.0, N), "sigma": rng.uniform(0.5, 3.0, N)}
loglik_grad = check_on_points("l", loglik, [mu, sigma], [x], points)

print("\n== maximum likelihood: the gradient of the total log-likelihood vanishes at the sample mean and std")
data = rng.normal(1.5, 0.7, N)
mean, std = data.mean(), data.std()
_, (d_mu, d_sigma) = loglik_grad(np.full(N, mean), np.full(N, std), data)
print(f"sample mean = {mean:.4f}, sample std = {std:.4f}")
print(f"sum of dl/dmu = {d_mu.sum():.1e}, sum of dl/dsigma = {d_sigma.sum():.1e} (both 0 up to rounding):",
      bool(abs(d_mu.sum()) < 1e-6 * N and abs(d_sigma.sum()) < 1e-6 * N))

print("\n== the range of a projectile")
v, theta, g = sp.symbols("v theta g", positive=True)
reach = v ** 2 * sp.sin(2 * theta) / g
print("R =", reach)
for param, derivative in zip((v, theta, g), symgrad.gradient(reach, [v, theta, g])):
    print(f"dR/d{param} =", derivative)
print("dR/dtheta at 45 degrees:", symgrad.diff(reach, theta).subs(theta, sp.pi / 4))

points = {"v": rng.uniform(1.0, 50.0, N), "theta": rng.uniform(0.0, np.pi / 2, N), "g": np.full(N, 9.81)}
check_on_points("R", reach, [v, theta], [g], points)
