"""Custom autograd functions: ``class MyRelu(symgrad.autograd.Function)``.

``forward(ctx, *args)`` runs under ``no_grad`` and may save tensors with
``ctx.save_for_backward``; ``backward(ctx, *grads)`` returns one gradient per forward
argument (None for arguments that need none).  Both may be staticmethods or, as in the
tutorial, plain methods.  A Function may also define ``sympy(sp, *exprs)``, its SymPy form,
which the symbolic engine then uses instead of calling ``backward``.
"""
from __future__ import annotations

from .grad_mode import is_grad_enabled, no_grad
from .node import Node, SavedInput
from .tensor import Tensor, as_tensor


class FunctionCtx:
    """The ``ctx`` passed to a custom Function's forward and backward."""

    def __init__(self, args: tuple) -> None:
        self.arg_is_tensor = tuple(isinstance(a, Tensor) for a in args)
        self.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        self.non_differentiable: set[int] = set()
        self.output_shapes: tuple = ()
        self.output_dtypes: tuple = ()
        self._saved: tuple | None = ()

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors for backward; changing them in place afterwards makes backward fail."""
        self._saved = tuple((t, None if t is None else t._version.value) for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors "
                "after they have already been freed). Specify retain_graph=True in the first backward()."
            )
        for position, (t, version) in enumerate(self._saved):
            if t is not None and t._version.value != version:
                raise RuntimeError(
                    f"saved tensor {position} of a custom Function was modified by an inplace operation: "
                    f"it is at version {t._version.value}; expected version {version}"
                )
        return tuple(t for t, _ in self._saved)

    def mark_non_differentiable(self, *outputs) -> None:
        """Declare outputs (e.g. indices) that never carry a gradient."""
        self.non_differentiable.update(id(o) for o in outputs)

    def free(self) -> None:
        self._saved = None


class Function:
    """Base class of user-defined differentiable operations; call them with ``.apply``.

    >>> import symgrad
    >>> class Square(symgrad.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         x, = ctx.saved_tensors
    ...         return 2 * x * g
    >>> x = symgrad.tensor(3.0, requires_grad=True)
    >>> y = Square.apply(x); y
    tensor(9., grad_fn=<SquareBackward>)
    >>> y.backward(); x.grad
    tensor(6.)
    """

    sympy = None

    @classmethod
    def apply(cls, *args):
        ctx = FunctionCtx(args)
        with no_grad():
            returned = cls.forward(ctx, *args)
        single = not isinstance(returned, tuple)
        outputs = [as_tensor(o) for o in ((returned,) if single else returned)]
        if is_grad_enabled() and any(ctx.needs_input_grad):
            tensors = [a for a in args if isinstance(a, Tensor)]
            node = Node(None, {}, [SavedInput(t, t._edge()) for t in tensors], function=cls, ctx=ctx,
                        n_outputs=len(outputs))
            ctx.output_shapes = tuple(o.shape for o in outputs)
            ctx.output_dtypes = tuple(o.dtype for o in outputs)
            for index, output in enumerate(outputs):
                if id(output) in ctx.non_differentiable or not output.dtype.kind == "f":
                    continue
                if any(output is t for t in tensors) or output.grad_fn is not None:
                    output = outputs[index] = Tensor(output._data, _version=output._version)
                output.grad_fn, output._output_nr = node, index
                output._made_outside_graph = None  # computed under no_grad, but recorded now (tracing.py)
                node.set_output(index, output)
        return outputs[0] if single else tuple(outputs)

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a custom Function must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("a custom Function must define backward(ctx, *grads)")
