"""``symgrad.autograd.functional``: ``torch.autograd.functional``'s ``jacobian``, ``hessian``,
``vjp``, ``jvp``, ``hvp`` and ``vhp``, with its signatures and return structures.

They work on eager tensors, through :func:`symgrad.autograd.grad` and the selected backward
engine, as PyTorch's do: ``func`` is called once on fresh leaves holding the inputs' values
(with ``create_graph=True``, on views of inputs that require grad, so the results stay
differentiable with respect to them).  ``inputs`` (and ``v``) are a tensor or a tuple of
tensors; a tuple in gives a tuple out.  A Jacobian takes one backward pass per output
element (reverse mode); ``jvp`` and ``hvp`` use the double-backward trick, so they need no
forward mode.  Results are detached unless ``create_graph=True``.

With ``strict=False`` an output that does not depend on an input gives zeros; with
``strict=True`` it raises, as in PyTorch.  ``vectorize`` is accepted and changes nothing
(symgrad has no vmap; the rows are computed one at a time either way); a
``strategy``/``outer_jacobian_strategy`` other than ``"reverse-mode"`` raises.

For Python functions over NumPy arrays, and closed forms, see the transforms
``symgrad.jacobian``, ``symgrad.hessian``, ``symgrad.vjp`` and ``symgrad.jvp``.
"""
from __future__ import annotations

from typing import Callable

from ..tape.engine import grad
from ..tape.creation import ones_like, zeros, zeros_like
from ..tape.functions import stack
from ..tape.grad_mode import enable_grad
from ..tape.tensor import Tensor

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


# ---------------------------------------------------------------------- shared steps
def _as_tuple(value, label: str, function: str) -> tuple[bool, tuple]:
    """``(was a tuple, the tensors as a tuple)``; anything but a tensor or a tuple of them raises."""
    is_tuple = isinstance(value, tuple)
    items = value if is_tuple else (value,)
    for index, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"the value at index {index}" if is_tuple else f"the given {label}"
            raise TypeError(
                f"The {label} given to {function} must be either a Tensor or a tuple of Tensors but {where} has "
                f"type {type(item).__name__}."
            )
    return is_tuple, items


def _leaves(inputs: tuple, create_graph: bool) -> tuple:
    """What ``func`` is called on: fresh leaves, or (``create_graph``) views that keep the inputs' graph."""
    return tuple(x.view_as(x) if create_graph and x.requires_grad else x.detach().requires_grad_(True)
                 for x in inputs)


def _call(func: Callable, inputs: tuple, function: str) -> tuple[bool, tuple]:
    return _as_tuple(func(*inputs), "outputs of the user-provided function", function)


def _check_v(v, others: tuple, label: str, function: str) -> tuple:
    """``v`` as a tuple of tensors, one of the shape of each of ``others``."""
    _, v = _as_tuple(v, "v", function)
    if len(v) != len(others):
        raise RuntimeError(f"{function}: v is a tuple of invalid length: should be {len(others)} ({label}) "
                           f"but got {len(v)}.")
    for index, (item, other) in enumerate(zip(v, others)):
        if item.shape != other.shape:
            raise RuntimeError(f"{function}: entry {index} of v has invalid size: should be {list(other.shape)} "
                               f"(like the {label}) but got {list(item.shape)}.")
    return v


def _ones_for_single(tensors: tuple, label: str, function: str) -> tuple:
    """The ``v`` PyTorch lets one leave out: ones, for a single one-element tensor."""
    if len(tensors) != 1 or tensors[0].numel() != 1:
        raise RuntimeError(
            f"{function}: v can only be None if the {label} is a single Tensor with a single element; pass v"
        )
    return (ones_like(tensors[0]),)


def _grads(outputs: tuple, inputs: tuple, grad_outputs: tuple, create_graph: bool, strict: bool,
           function: str) -> tuple:
    """``sum_k grad_outputs[k] . d outputs[k] / d inputs``, one entry per input; zeros (or, with
    ``strict``, an error) for an input the outputs do not depend on.  The graph is kept."""
    used = [(out, g) for out, g in zip(outputs, grad_outputs) if out.requires_grad]
    if strict and len(used) != len(outputs):
        index = next(i for i, out in enumerate(outputs) if not out.requires_grad)
        raise RuntimeError(
            f"{function}: output {index} of the user-provided function does not require gradients. The outputs "
            "must be computed in a differentiable manner from the input when running in strict mode."
        )
    results = (grad([out for out, _ in used], list(inputs), [g for _, g in used], retain_graph=True,
                    create_graph=create_graph, allow_unused=True) if used else (None,) * len(inputs))
    filled = []
    for index, (result, x) in enumerate(zip(results, inputs)):
        if result is None:
            if strict:
                raise RuntimeError(
                    f"{function}: the output of the user-provided function is independent of input {index}. "
                    "This is not allowed in strict mode."
                )
            result = zeros_like(x)
        filled.append(result)
    return tuple(filled)


def _finish(tensors: tuple, create_graph: bool) -> tuple:
    return tensors if create_graph else tuple(t.detach() for t in tensors)


def _unpack(values: tuple, is_tuple: bool):
    return values if is_tuple else values[0]


def _check_strategy(strategy: str, label: str, function: str) -> None:
    if strategy != "reverse-mode":
        raise NotImplementedError(
            f"{function}({label}={strategy!r}) is not supported: symgrad's eager Jacobians are computed in "
            "reverse mode; use 'reverse-mode' (the default), or symgrad.jvp for a forward product"
        )


def _single_output(func: Callable, function: str) -> Callable:
    """``func`` checked to return one tensor with one element (a Hessian's function)."""

    def checked(*inputs):
        out = func(*inputs)
        if not isinstance(out, Tensor):
            raise RuntimeError(f"The function given to {function} should return a single Tensor, got "
                               f"{type(out).__name__}")
        if out.numel() != 1:
            raise RuntimeError(f"The Tensor returned by the function given to {function} should contain a single "
                               f"element, got shape {list(out.shape)}")
        return out.reshape(())

    return checked


# ---------------------------------------------------------------------- the functions
def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``: the vector-Jacobian product, as ``torch.autograd.functional.vjp``.

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0])
    >>> vjp(lambda x: x ** 2, x, symgrad.tensor([1.0, 10.0]))
    (tensor([1., 4.]), tensor([ 2., 40.]))
    """
    is_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    with enable_grad():
        inputs = _leaves(inputs, create_graph)
        out_tuple, outputs = _call(func, inputs, "vjp")
        v = _ones_for_single(outputs, "output", "vjp") if v is None else _check_v(v, outputs, "outputs", "vjp")
        result = _grads(outputs, inputs, v, create_graph, strict, "vjp")
    return _unpack(_finish(outputs, create_graph), out_tuple), _unpack(_finish(result, create_graph), is_tuple)


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)``: the Jacobian-vector product, as ``torch.autograd.functional.jvp``
    (computed by the double-backward trick: the ``vjp`` of a ``vjp``).

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0])
    >>> jvp(lambda x: x ** 2, x, symgrad.tensor([1.0, 10.0]))
    (tensor([1., 4.]), tensor([ 2., 40.]))
    """
    is_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
    v = _ones_for_single(inputs, "input", "jvp") if v is None else _check_v(v, inputs, "inputs", "jvp")
    with enable_grad():
        inputs = _leaves(inputs, create_graph)
        out_tuple, outputs = _call(func, inputs, "jvp")
        dummies = tuple(zeros_like(out, requires_grad=True) for out in outputs)
        grad_inputs = _grads(outputs, inputs, dummies, True, strict, "jvp")
        result = _grads(grad_inputs, dummies, v, create_graph, False, "jvp")
    return _unpack(_finish(outputs, create_graph), out_tuple), _unpack(_finish(result, create_graph), out_tuple)


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``, as ``torch.autograd.functional.jacobian``: for one
    input and one output a tensor of shape ``output.shape + input.shape``; a tuple (over
    outputs, then over inputs) where ``func`` returns a tuple or ``inputs`` is one.

    >>> import symgrad
    >>> jacobian(lambda x: x ** 2, symgrad.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """
    _check_strategy(strategy, "strategy", "jacobian")
    is_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    with enable_grad():
        inputs = _leaves(inputs, create_graph)
        out_tuple, outputs = _call(func, inputs, "jacobian")
        blocks = []
        for out in outputs:
            flat = out.reshape(-1)
            rows = [[] for _ in inputs]
            for k in range(flat.numel()):
                one_hot = zeros_like(flat)
                one_hot[k] = 1
                for row, g in zip(rows, _grads((flat,), inputs, (one_hot,), create_graph, strict, "jacobian")):
                    row.append(g)
            blocks.append(tuple(
                stack(row).reshape(out.shape + x.shape) if row else zeros(out.shape + x.shape, dtype=x.dtype)
                for row, x in zip(rows, inputs)))
    blocks = [_unpack(_finish(block, create_graph), is_tuple) for block in blocks]
    return _unpack(tuple(blocks), out_tuple)


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of the scalar function ``func``, as ``torch.autograd.functional.hessian``:
    shape ``input.shape + input.shape``, or a tuple of tuples (one block per pair of inputs).

    >>> import symgrad
    >>> hessian(lambda x: (x ** 3).sum(), symgrad.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    _check_strategy(outer_jacobian_strategy, "outer_jacobian_strategy", "hessian")
    is_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    scalar = _single_output(func, "hessian")

    def gradient(*leaves):
        out = scalar(*leaves)
        return _grads((out,), leaves, (ones_like(out),), True, strict, "hessian")

    blocks = jacobian(gradient, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize)
    return _unpack(tuple(_unpack(block, is_tuple) for block in blocks), is_tuple)


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T H)`` for the scalar function ``func``, as ``torch.autograd.functional.vhp``.

    >>> import symgrad
    >>> vhp(lambda x: (x ** 3).sum(), symgrad.tensor([1.0, 2.0]), symgrad.tensor([1.0, 1.0]))
    (tensor(9.), tensor([ 6., 12.]))
    """
    is_tuple, inputs = _as_tuple(inputs, "inputs", "vhp")
    v = _ones_for_single(inputs, "input", "vhp") if v is None else _check_v(v, inputs, "inputs", "vhp")
    with enable_grad():
        inputs = _leaves(inputs, create_graph)
        out = _single_output(func, "vhp")(*inputs)
        gradient = _grads((out,), inputs, (ones_like(out),), True, strict, "vhp")
        result = _grads(gradient, inputs, v, create_graph, strict, "vhp")
    return _finish((out,), create_graph)[0], _unpack(_finish(result, create_graph), is_tuple)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), H v)`` for the scalar function ``func``, as ``torch.autograd.functional.hvp``
    (the double-backward trick; equal to :func:`vhp` where the Hessian is symmetric).

    >>> import symgrad
    >>> hvp(lambda x: (x[0] * x[1] ** 2), symgrad.tensor([1.0, 2.0]), symgrad.tensor([1.0, 0.0]))
    (tensor(4.), tensor([0., 4.]))
    """
    is_tuple, inputs = _as_tuple(inputs, "inputs", "hvp")
    v = _ones_for_single(inputs, "input", "hvp") if v is None else _check_v(v, inputs, "inputs", "hvp")
    with enable_grad():
        inputs = _leaves(inputs, create_graph)
        out = _single_output(func, "hvp")(*inputs)
        gradient = _grads((out,), inputs, (ones_like(out),), True, strict, "hvp")
        dummies = tuple(zeros_like(x, requires_grad=True) for x in inputs)
        back = _grads(gradient, inputs, dummies, True, strict, "hvp")
        result = _grads(back, dummies, v, create_graph, False, "hvp")
    return _finish((out,), create_graph)[0], _unpack(_finish(result, create_graph), is_tuple)
