"""Vector outputs: backward(gradient) is a vector-Jacobian product.

``y.backward(v)`` on a non-scalar ``y`` accumulates ``v^T J`` (J = dy/dx) into ``x.grad``:
the tutorials' y = 512 x example, the (eye(5) + 1)**2 Jacobian example whose gradient adds
up over calls until it is zeroed, and the b[0, 0] = a[0, 0]**2 + a[0, 1] example where
assigning into a tensor builds the graph.  ``symgrad.autograd.grad`` with one-hot
``grad_outputs`` recovers the Jacobian row by row.

Run: ``python examples/vector_backward_jacobian.py``
"""
import symgrad

symgrad.manual_seed(0)

print("== y = 2**k x, doubled until its norm reaches 1000")
# the tutorial's x (from its printed 2x = [4.6030, 0.7516, 3.6041])
x = symgrad.tensor([2.3015, 0.3758, 1.80205], requires_grad=True)
y = x * 2
k = 1
while y.data.norm() < 1000:
    y = y * 2
    k += 1
print(f"k = {k}: y = {2 ** k} x =", y)
v = symgrad.tensor([0.01, 0.1, 1.0])
y.backward(v)
print("y[0] / x[0] =", (y[0].data / x[0].data).item())
print("x.grad = v * 512 =", x.grad)

print("\n== the Jacobian of y = 512 x, row by row with autograd.grad")
x = symgrad.tensor([2.3015, 0.3758, 1.80205], requires_grad=True)
y = x * 512
for i in range(3):
    one_hot = symgrad.zeros(3)
    one_hot[i] = 1.0
    row, = symgrad.autograd.grad(y, x, grad_outputs=one_hot, retain_graph=True)
    print(f"row {i}:", row.tolist())

print("\n== out = (inp + 1)**2 with inp = eye(5): gradients accumulate")
inp = symgrad.eye(5, requires_grad=True)
out = (inp + 1).pow(2)
out.backward(symgrad.ones_like(inp), retain_graph=True)
print(f"First call\n{inp.grad}")
out.backward(symgrad.ones_like(inp), retain_graph=True)
print(f"\nSecond call\n{inp.grad}")
inp.grad.zero_()
out.backward(symgrad.ones_like(inp), retain_graph=True)
print(f"\nCall after zeroing gradients\n{inp.grad}")

print("\n== b[0,0] = a[0,0]**2 + a[0,1]; b[0,1] = a[0,1]**3 + a[0,0]; out = 2 b")
a = symgrad.FloatTensor([[2, 4]])
a.requires_grad_(requires_grad=True)
b = symgrad.zeros(1, 2)
b[0, 0] = a[0, 0] ** 2 + a[0, 1]
b[0, 1] = a[0, 1] ** 3 + a[0, 0]
out = b * 2
out.backward(symgrad.FloatTensor([[1, 1]]))  # a gradient of out's shape
print("input:", a.data.tolist())
print("output:", out.data.tolist())
print("input gradients:", a.grad.tolist(), " (2 [2 a00 + 1, 3 a01**2 + 1])")
