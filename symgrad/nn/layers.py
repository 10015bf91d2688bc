"""Layers: ``Linear``, ``Sequential`` and the activation modules.

``Linear`` is initialised like PyTorch's (weight and bias uniform in
``[-1/sqrt(in_features), 1/sqrt(in_features)]``, the bound kaiming-uniform with
``a=sqrt(5)`` gives), drawn from the generator ``symgrad.manual_seed`` controls.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..tape import dtypes
from ..tape.creation import generator
from ..tape.tensor import Tensor
from . import functional as F
from .module import Module
from .parameter import Parameter


def _uniform(shape: tuple[int, ...], bound: float, dtype) -> Tensor:
    return Tensor(generator().uniform(-bound, bound, size=shape).astype(dtype))


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    >>> import symgrad
    >>> from symgrad import nn
    >>> symgrad.manual_seed(0)
    >>> layer = nn.Linear(in_features=1, out_features=3)
    >>> layer
    Linear(in_features=1, out_features=3, bias=True)
    >>> layer.weight.shape, layer.bias.shape
    ((3, 1), (3,))
    >>> float(layer.weight.abs().max()) <= 1.0
    True
    >>> layer(symgrad.ones(2, 1)).shape
    (2, 3)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None) -> None:
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Linear needs a non-negative integer {label}, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)
        self.weight = Parameter(Tensor(np.empty((self.out_features, self.in_features), dtype)))
        if bias:
            self.bias = Parameter(Tensor(np.empty((self.out_features,), dtype)))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh values: PyTorch's kaiming-uniform(a=sqrt(5)) weight and uniform bias.

        Both bounds are ``1/sqrt(in_features)`` (zero when ``in_features`` is 0).
        """
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        for param in (self.weight, self.bias):
            if param is not None:
                param.data = _uniform(param.shape, bound, param.dtype)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    """Modules applied one after another; children are named ``0``, ``1``, ... (or by an
    ``OrderedDict``'s keys).

    >>> from symgrad import nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> net
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
      (2): Linear(in_features=3, out_features=1, bias=True)
    )
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> len(net), net[-1]
    (3, Linear(in_features=3, out_features=1, bias=True))
    """

    def __init__(self, *args) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)

    def _index(self, idx: int) -> int:
        size = len(self)
        if not -size <= idx < size:
            raise IndexError(f"index {idx} is out of range for a Sequential of length {size}")
        return idx % size

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[self._index(int(idx))][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[self._index(int(idx))]
        setattr(self, key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end; returns ``self``."""
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input


class ReLU(Module):
    """``max(x, 0)`` elementwise (gradient 0 at 0, like PyTorch).

    >>> import symgrad
    >>> from symgrad import nn
    >>> nn.ReLU()(symgrad.tensor([-1.0, 2.0]))
    tensor([0., 2.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        if inplace:
            raise NotImplementedError("ReLU(inplace=True) is not supported by symgrad; use ReLU()")

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """``tanh(x)`` elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Softmax(Module):
    """``softmax`` along ``dim``.

    >>> from symgrad import nn
    >>> nn.Softmax(dim=1)
    Softmax(dim=1)
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``log_softmax`` along ``dim``."""

    def forward(self, input: Tensor) -> Tensor:
        return F.log_softmax(input, self.dim)
