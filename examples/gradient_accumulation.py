"""Gradients accumulate: zero them between steps.

Each ``backward()`` adds into the leaves' ``.grad``; a training loop resets it with
``x.grad.zero_()`` (or ``optimizer.zero_grad()``) before each backward.  A graph is freed
after backward unless ``retain_graph=True``, so a second backward through it is an error.

Run: ``python examples/gradient_accumulation.py``
"""
import symgrad

symgrad.manual_seed(0)

print("== z = sum(x**2), with x.grad.zero_() each epoch")
x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
for epoch in range(5):
    z = (x ** 2).sum()
    if x.grad is not None:
        x.grad.zero_()
    z.backward()
    print(f"epoch {epoch}: x.grad = {x.grad.tolist()}")

print("\n== the same without zeroing: the gradients add up")
x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
for epoch in range(5):
    (x ** 2).sum().backward()
    print(f"epoch {epoch}: x.grad = {x.grad.tolist()}")

print("\n== a second backward through a freed graph")
x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
z = (x ** 2).sum()
z.backward()
try:
    z.backward()
except RuntimeError as err:
    print("error:", err)

print("\n== retain_graph=True keeps it, and the second call adds again")
x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
z = (x ** 2).sum()
z.backward(retain_graph=True)
z.backward()
print("x.grad after two calls:", x.grad.tolist())
