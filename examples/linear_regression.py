"""Fitting y = a x + b by gradient descent -- and why lr = 0.1 diverges.

The tutorial fits x = 1..5, y = 2x + 1 from a = b = 1 with lr = 0.1 for 100 epochs and
says a approaches 2 and b approaches 1.  Run it: with lr = 0.1 the loss explodes.

Why: the loss L(a, b) = mean((a x + b - y)**2) is quadratic, with Hessian
H = 2 [[mean(x**2), mean(x)], [mean(x), 1]] = [[22, 6], [6, 2]], whose eigenvalues are
about 23.66 and 0.34.  A gradient step multiplies the error along an eigenvector by
(1 - lr * eigenvalue); it shrinks only if lr < 2 / eigenvalue.  For lr = 0.1,
|1 - 0.1 * 23.66| = 1.37 > 1 (2 / lr = 20 < 23.66), so that component grows 37% per epoch.
With lr = 0.01 both factors are below 1 (0.76 and 0.997): it converges, slowly along the
flat direction (a ~ 1.95, b ~ 1.18 after 100 epochs).

Run: ``python examples/linear_regression.py``
"""
import numpy as np

import symgrad

symgrad.manual_seed(0)


def fit(lr, epochs=100):
    x = symgrad.tensor([1, 2, 3, 4, 5], dtype=symgrad.float)
    y = symgrad.tensor([3, 5, 7, 9, 11], dtype=symgrad.float)
    a = symgrad.tensor([1], dtype=symgrad.float, requires_grad=True)
    b = symgrad.tensor([1], dtype=symgrad.float, requires_grad=True)
    for epoch in range(epochs):
        y_pred = a * x + b
        loss = ((y_pred - y) ** 2).mean()
        if a.grad is not None and b.grad is not None:
            a.grad.zero_()
            b.grad.zero_()
        loss.backward()
        with symgrad.no_grad():
            a -= lr * a.grad
            b -= lr * b.grad
        if (epoch + 1) % 10 == 0:
            print(f"Epoch [{epoch + 1}/{epochs}], Loss: {loss.item():.4f}")
    print(f"a: {a.item()}, b: {b.item()}")
    return a.item(), b.item()


print("== lr = 0.1 (the tutorial's rate): diverges")
a, b = fit(0.1)
print(f"after 100 epochs: a = {a:.4g}, b = {b:.4g} (not 2 and 1)")
print("\n== lr = 0.01: converges, slowly")
a, b = fit(0.01)
print(f"after 100 epochs: a = {a:.4g}, b = {b:.4g} (on the way to 2 and 1)")

print("\n== why: the curvature of the loss")
x = np.arange(1.0, 6.0)
hessian = 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])
eigenvalues = np.linalg.eigvalsh(hessian)
print("Hessian of the loss:", hessian.tolist())
print(f"eigenvalues: {eigenvalues[0]:.4f}, {eigenvalues[1]:.4f}")
for lr in (0.1, 0.01):
    factors = np.abs(1 - lr * eigenvalues)
    verdict = "converges" if factors.max() < 1 else "diverges"
    print(f"lr = {lr}: 2 / lr = {2 / lr:g}, step factors |1 - lr * eigenvalue| = "
          f"{factors[0]:.4f}, {factors[1]:.4f} -> {verdict}")
