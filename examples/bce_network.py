"""A one-layer network with a binary cross-entropy loss (the first tutorial).

z = x @ w + b with x = ones(5), w ~ randn(5, 3), b ~ randn(3), targets y = zeros(3), and
loss = binary_cross_entropy_with_logits(z, y) = mean(log(1 + exp(z)) - y z).
The gradient of the loss with respect to z is (sigmoid(z) - y) / 3, so b.grad equals it
and, since every x is 1, each row of w.grad equals b.grad.  The script checks both
relations against NumPy, then trains the layer for a few steps by hand.

Run: ``python examples/bce_network.py``
"""
import numpy as np

import symgrad
import symgrad.nn.functional as F

symgrad.manual_seed(0)

x = symgrad.ones(5)  # input
y = symgrad.zeros(3)  # expected output
w = symgrad.randn(5, 3, requires_grad=True)
b = symgrad.randn(3, requires_grad=True)
z = symgrad.matmul(x, w) + b
loss = F.binary_cross_entropy_with_logits(z, y)
print("Gradient function for z =", z.grad_fn.name())
print("Gradient function for loss =", loss.grad_fn.name())

loss.backward()
print("w.grad =", w.grad)
print("b.grad =", b.grad)

z_np = np.ones(5) @ w.detach().numpy() + b.detach().numpy()
expected = (1 / (1 + np.exp(-z_np)) - 0) / 3
print("loss equals mean(log(1 + e^z)):", bool(np.isclose(loss.item(), np.mean(np.logaddexp(0, z_np)))))
print("b.grad equals (sigmoid(z) - y) / 3:", bool(np.allclose(b.grad.numpy(), expected)))
print("every row of w.grad equals b.grad:", bool(np.array_equal(w.grad.numpy(), np.tile(b.grad.numpy(), (5, 1)))))

print("\n== inference needs no graph")
with symgrad.no_grad():
    z = symgrad.matmul(x, w) + b
print("z.requires_grad under no_grad:", z.requires_grad)
print("z.detach().requires_grad:", (symgrad.matmul(x, w) + b).detach().requires_grad)

print("\n== a few steps of gradient descent (lr = 0.5)")
losses = []
for step in range(20):
    w.grad = None
    b.grad = None
    loss = F.binary_cross_entropy_with_logits(symgrad.matmul(x, w) + b, y)
    loss.backward()
    with symgrad.no_grad():
        w -= 0.5 * w.grad
        b -= 0.5 * b.grad
    losses.append(loss.item())
print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f}")
print("loss decreased every step:", all(later < earlier for earlier, later in zip(losses, losses[1:])))
