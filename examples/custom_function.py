"""A custom autograd Function: the tutorials' MyRelu.

``forward(ctx, input)`` computes the value and saves what backward needs with
``ctx.save_for_backward``; ``backward(ctx, grad_output)`` returns the gradient with respect
to the input.  ``MyRelu.apply`` is then used like any op.  The methods may be plain (as in
the tutorial) or staticmethods (as PyTorch's documentation writes them).

Network: y_hat = relu(x @ w.T) + b, loss = mean((y_hat - y)**2) with
w = [[3, 1]], b = [[3]], x = [[-1, -1], [1, 1]], y = [[2, 3]].

Run: ``python examples/custom_function.py``
"""
import symgrad

symgrad.manual_seed(0)


class MyRelu(symgrad.autograd.Function):
    # forward: keep the input for backward
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    # backward: pass the gradient where the input was positive
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        grad_output = grad_output.clone()
        grad_output[input < 0] = 0
        return grad_output


class StaticRelu(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * (input > 0).to(grad_output.dtype)


def run(relu_function):
    w = symgrad.tensor([[3.0, 1.0]], requires_grad=True)
    b = symgrad.tensor([[3.0]], requires_grad=True)
    x = symgrad.tensor([[-1.0, -1.0], [1.0, 1.0]])
    y = symgrad.tensor([[2.0, 3.0]])
    relu = relu_function.apply
    hidden = relu(x @ w.t())
    y_hat = hidden + b
    loss = symgrad.mean(symgrad.pow(y_hat - y, 2))
    loss.backward()
    return hidden, y_hat, loss, w, b


hidden, y_hat, loss, w, b = run(MyRelu)
print("relu(x @ w.T).grad_fn:", hidden.grad_fn.name())
print("y_hat =", y_hat)
print("loss =", loss)
print("w.grad =", w.grad)
print("b.grad =", b.grad)
print("y_hat.grad_fn:", y_hat.grad_fn.name())

_, _, _, w2, b2 = run(StaticRelu)
print("\nstaticmethod version gives the same gradients:",
      w2.grad.tolist() == w.grad.tolist() and b2.grad.tolist() == b.grad.tolist())

# the built-in relu agrees
w3 = symgrad.tensor([[3.0, 1.0]], requires_grad=True)
b3 = symgrad.tensor([[3.0]], requires_grad=True)
x = symgrad.tensor([[-1.0, -1.0], [1.0, 1.0]])
symgrad.mean(symgrad.pow((x @ w3.t()).relu() + b3 - symgrad.tensor([[2.0, 3.0]]), 2)).backward()
print("built-in relu gives the same gradients:", w3.grad.tolist() == w.grad.tolist() and b3.grad.tolist() == b.grad.tolist())
