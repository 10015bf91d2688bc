"""Stopping gradients: no_grad, detach(), detach_() and in-place changes of leaves.

Inside ``with symgrad.no_grad():`` nothing is recorded (inference, updates by hand);
``detach()`` returns a tensor outside the graph that shares memory with the original, so
changing it changes the original too (the tutorials' ``t1 = t.detach(); t1[0] = 10``).
A leaf that requires grad can't be changed in place while grad mode is on.

Run: ``python examples/no_grad_and_detach.py``
"""
import symgrad

symgrad.manual_seed(0)

x = symgrad.ones(5)
w = symgrad.randn(5, 3, requires_grad=True)
b = symgrad.randn(3, requires_grad=True)

print("== no_grad")
z = symgrad.matmul(x, w) + b
print("z.requires_grad:", z.requires_grad)
with symgrad.no_grad():
    z = symgrad.matmul(x, w) + b
print("under no_grad, z.requires_grad:", z.requires_grad)


@symgrad.no_grad()
def predict(inputs):
    return symgrad.matmul(inputs, w) + b


print("as a decorator, requires_grad:", predict(x).requires_grad)
print("grad mode back on:", symgrad.is_grad_enabled())

print("\n== detach()")
z = symgrad.matmul(x, w) + b
z_det = z.detach()
print("z_det.requires_grad:", z_det.requires_grad, "| z_det.grad_fn:", z_det.grad_fn)

print("\n== a leaf that requires grad can't be changed in place ...")
t = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
try:
    t[0] = 10
except RuntimeError as err:
    print("t[0] = 10 ->", err)

print("\n== ... but its detach() shares memory with it")
t1 = t.detach()
t1[0] = 10
print("t1 =", t1)
print("t  =", t)

print("\n== or change it under no_grad (what an optimizer step does)")
with symgrad.no_grad():
    t[1] = 20
print("t  =", t, "| still a leaf:", t.is_leaf)

print("\n== detach_() cuts a tensor itself out of the graph")
y = t * 2
print("before: is_leaf", y.is_leaf, "grad_fn", y.grad_fn.name())
y.detach_()
print("after:  is_leaf", y.is_leaf, "grad_fn", y.grad_fn, "requires_grad", y.requires_grad)

print("\n== detach().clone() copies, as_tensor() does not")
source = symgrad.tensor([1.0, 2.0])
copied, shared = source.detach().clone(), symgrad.as_tensor(source)
source[0] = 100.0
print("copied:", copied.tolist(), "| shared:", shared.tolist())
