"""Gradient descent by hand: minimise y = x**2 from x = 3 with lr = 0.1.

Each step computes dy/dx = 2x with ``backward()`` and updates x in place under
``no_grad`` (so the update is not recorded and x stays the same leaf):
x <- x - 0.1 * 2x = 0.8 x, so after k steps x = 3 * 0.8**k.

Run: ``python examples/gradient_descent_x_squared.py``
"""
import symgrad

symgrad.manual_seed(0)

x = symgrad.tensor(3.0, requires_grad=True)
epochs = 50
lr = 0.1
listx, listy = [], []
for epoch in range(epochs):
    y = x ** 2
    if x.grad is not None:
        x.grad.zero_()
    y.backward()
    with symgrad.no_grad():
        x -= lr * x.grad  # in place: x is still the leaf we started with
    listx.append(x.item())
    listy.append(y.item())
    if epoch % 10 == 9 or epoch < 3:
        print(f"epoch {epoch:2d}: x = {x.item():.8f}   3 * 0.8**{epoch + 1} = {3 * 0.8 ** (epoch + 1):.8f}")

worst = max(abs(value - 3 * 0.8 ** (k + 1)) for k, value in enumerate(listx))
print(f"largest difference from 3 * 0.8**k over {epochs} epochs: {worst:.1e}")
print("x is still a leaf that requires grad:", x.is_leaf and x.requires_grad)
print(f"y went from {listy[0]:.1f} to {listy[-1]:.3e}")
