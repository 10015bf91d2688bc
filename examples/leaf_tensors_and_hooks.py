"""Leaf and non-leaf tensors, retain_grad() and hooks.

Only leaves (tensors the user created with requires_grad=True) keep a ``.grad``; the
gradient of an intermediate result is computed and then dropped, and reading its ``.grad``
warns.  ``retain_grad()`` keeps it, and ``register_hook(fn)`` shows it (or replaces it,
when ``fn`` returns a tensor) while backward runs.

Example: x = 3, y1 = x + 1, y2 = 2x, loss = (y1 - y2)**2 = 4.
dloss/dy1 = 2 (y1 - y2) = -4, dloss/dy2 = 4, dloss/dx = -4 + 2 * 4 = 4.

Run: ``python examples/leaf_tensors_and_hooks.py``
"""
import warnings

import symgrad

symgrad.manual_seed(0)

x = symgrad.tensor(3.0, requires_grad=True)
y1 = x + 1
y2 = 2 * x
loss = (y1 - y2) ** 2
print("x =", x, "| y1 =", y1, "| y2 =", y2, "| loss =", loss)
loss.backward()

print("\n== after backward, only the leaf has a gradient")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("loss.grad:", loss.grad)
    print("y1.grad:", y1.grad)
    print("y2.grad:", y2.grad)
print("x.grad:", x.grad)
print("warnings about non-leaf .grad:", len(caught), "| they mention retain_grad():",
      all("retain_grad" in str(w.message) for w in caught))
for name, t in [("x", x), ("y1", y1), ("y2", y2), ("loss", loss)]:
    print(f"{name} is a leaf: {t.is_leaf}")

print("\n== hooks see the gradients of non-leaves, retain_grad() keeps one")
x = symgrad.tensor(3.0, requires_grad=True)
y1 = x + 1
y2 = 2 * x
loss = (y1 - y2) ** 2
y1.register_hook(lambda grad: print("y1 grad:", grad))
y2.register_hook(lambda grad: print("y2 grad:", grad))
loss.retain_grad()
loss.backward()
print("loss.grad:", loss.grad)
print("x.grad:", x.grad)

print("\n== a hook that returns a tensor replaces the gradient; remove() takes it away")
x = symgrad.tensor(3.0, requires_grad=True)
y2 = 2 * x
handle = y2.register_hook(lambda grad: grad * 10)
(y2 ** 2).backward()
print("with the hook (10x):", x.grad)
handle.remove()
x.grad = None
y2 = 2 * x
(y2 ** 2).backward()
print("without it:", x.grad)
