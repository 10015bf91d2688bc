"""Autograd basics: requires_grad, grad_fn, backward() and .grad.

The first steps of the PyTorch autograd tutorials, with ``import symgrad``: a tensor that
requires grad records the operations applied to it (each result has a ``grad_fn`` named
like PyTorch's), ``backward()`` on a scalar fills ``.grad`` of the leaves, and the numbers
are the ones worked out by hand in the comments.

Run: ``python examples/autograd_basics.py``
"""
import math

import symgrad

symgrad.manual_seed(0)

print("== out = mean(3 * (x + 2)**2) at x = ones(2, 2)")
x = symgrad.ones(2, 2, requires_grad=True)
print(x)
y = x + 2
print(y)
print("y.grad_fn:", y.grad_fn.name())
z = y * y * 3
out = z.mean()
print(z)
print(out)
out.backward()
# d out / dx = 6 (x + 2) / 4 = 4.5 for every element
print("x.grad =", x.grad)

print("\n== requires_grad_() switches recording on for an existing tensor")
a = symgrad.randn(2, 2)
a = (a * 3) / (a - 1)
print("a.requires_grad:", a.requires_grad)
a.requires_grad_(True)
print("a.requires_grad:", a.requires_grad)
b = (a * a).sum()
print("b.grad_fn:", b.grad_fn.name())

print("\n== backward of a scalar: y = x**2 at x = 2")
x = symgrad.tensor(2.0, requires_grad=True)
y = x ** 2
print("y.grad_fn:", y.grad_fn.name())
y.backward()
print("dy/dx =", x.grad)

print("\n== two leaves: y = x1**2 + x2**2 at (2, 3)")
x1 = symgrad.tensor(2.0, requires_grad=True)
x2 = symgrad.tensor(3.0, requires_grad=True)
(x1 ** 2 + x2 ** 2).backward()
print("x1.grad, x2.grad =", x1.grad, x2.grad)

print("\n== vectors: z = sum(x1**2 + 2 x2)")
x1 = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
x2 = symgrad.tensor([2.0, 3.0, 4.0], requires_grad=True)
z = (x1 ** 2 + 2 * x2).sum()
print("z.grad_fn:", z.grad_fn.name())
z.backward()
print("x1.grad =", x1.grad, " (2 x1)")
print("x2.grad =", x2.grad, " (2)")

print("\n== mean instead of sum divides by the count: z = mean(x**2)")
x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
(x ** 2).mean().backward()
print("x.grad =", x.grad, " (2 x / 3)")

print("\n== only tensors that took part get a gradient")
a = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
unrelated = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
a.cos().sum().backward()
print("a.grad =", a.grad, " (-sin a)")
print("matches -sin:", all(math.isclose(g, -math.sin(v)) for g, v in zip(a.grad.tolist(), a.tolist())))
print("unrelated.grad:", unrelated.grad)

print("\n== backward needs a scalar, floating-point, differentiable output")
try:
    symgrad.tensor([1, 2, 3], requires_grad=True)
except RuntimeError as err:
    print("integer data:", err)
try:
    (symgrad.tensor([1.0, 2.0], requires_grad=True) * 2).backward()
except RuntimeError as err:
    print("vector output:", err)
