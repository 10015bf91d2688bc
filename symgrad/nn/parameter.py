"""``Parameter``: a leaf tensor that a :class:`~symgrad.nn.Module` registers as learnable.

A parameter shares memory with the tensor it is made from, requires grad unless told
otherwise, and prints like PyTorch's.  Its ``name`` is the dotted attribute path under
the module that owns it (``fc.weight``), which is how the symbolic engine names it in
closed-form gradients.
"""
from __future__ import annotations

import numpy as np

from ..tape import dtypes
from ..tape.tensor import Tensor, as_tensor


class Parameter(Tensor):
    """A tensor that is a module parameter: a leaf that requires grad by default.

    ``Parameter(t)`` shares ``t``'s memory (changing one changes the other), like
    ``torch.nn.Parameter``.  Results of operations on a parameter are plain tensors.

    >>> import symgrad
    >>> w = Parameter(symgrad.tensor([1.0, 2.0]))
    >>> w
    Parameter containing:
    tensor([1., 2.], requires_grad=True)
    >>> w.is_leaf, (w * 2).grad_fn
    (True, <MulBackward0 object at ...>)
    """

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = Tensor(np.empty((0,), dtypes.get_default_dtype()))
        source = as_tensor(data)
        if source.requires_grad and source.grad_fn is not None:
            # like PyTorch, a parameter is always a leaf: it takes the values, not the graph
            source = source.detach()
        if requires_grad and not dtypes.is_floating(source.dtype):
            raise TypeError(
                f"a Parameter that requires grad needs a floating dtype, got {dtypes.dtype_name(source.dtype)}; "
                "convert the data first (e.g. t.float()) or pass requires_grad=False"
            )
        super().__init__(source._data, requires_grad=requires_grad, _version=source._version)

    def __repr__(self) -> str:
        # the plain tensor's repr (without the ``name=`` a registered parameter carries)
        plain = Tensor(self._data)
        plain._requires_grad = self.requires_grad
        return "Parameter containing:\n" + repr(plain)

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (np.array(self._data), self.requires_grad, self.name))

    def __deepcopy__(self, memo: dict) -> "Parameter":
        """A new parameter with a copy of the values (not ``.grad``), as PyTorch's."""
        memo[id(self)] = out = _rebuild_parameter(self._data.copy(), self.requires_grad, self.name)
        return out


def _rebuild_parameter(array: np.ndarray, requires_grad: bool, name: str | None) -> Parameter:
    param = Parameter(Tensor(array), requires_grad=requires_grad)
    param.name = name
    return param
