"""Layers: ``Linear``, ``Sequential``, ``Dropout``, ``Embedding`` and the activation modules.

``Linear`` is initialised like PyTorch's (weight and bias uniform in
``[-1/sqrt(in_features), 1/sqrt(in_features)]``, the bound kaiming-uniform with
``a=sqrt(5)`` gives) and ``Embedding`` with standard normal rows, all drawn from the
generator ``symgrad.manual_seed`` controls, which also draws ``Dropout``'s masks.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..tape import devices, dtypes
from ..tape.creation import generator
from ..tape.tensor import Tensor, as_tensor
from . import functional as F
from .module import Module
from .parameter import Parameter


def _uniform(shape: tuple[int, ...], bound: float, dtype) -> Tensor:
    return Tensor(generator().uniform(-bound, bound, size=shape).astype(dtype))


def check_size(module: str, label: str, value) -> int:
    """``value`` as a non-negative int, or a ``ValueError`` naming ``module`` and ``label``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{module} needs a non-negative integer {label}, got {value!r}")
    return int(value)


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

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        devices.check_cpu(device, "Linear")
        self.in_features = check_size("Linear", "in_features", in_features)
        self.out_features = check_size("Linear", "out_features", out_features)
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


class Dropout(Module):
    """Zero each element with probability ``p`` in training (the rest scaled by ``1/(1-p)``);
    the identity in ``eval()`` mode.  Masks come from the generator ``symgrad.manual_seed``
    seeds.

    >>> import symgrad
    >>> from symgrad import nn
    >>> drop = nn.Dropout(p=0.25)
    >>> drop
    Dropout(p=0.25, inplace=False)
    >>> drop.eval()(symgrad.ones(3))
    tensor([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        F.check_dropout(p, inplace)
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    """A lookup table: ``Embedding(num_embeddings, embedding_dim)(indices)`` picks rows of
    ``weight`` (initialised standard normal, the ``padding_idx`` row zero and without
    gradient).

    >>> import symgrad
    >>> from symgrad import nn
    >>> symgrad.manual_seed(0)
    >>> emb = nn.Embedding(10, 3, padding_idx=0)
    >>> emb
    Embedding(10, 3, padding_idx=0)
    >>> emb(symgrad.tensor([[0, 2], [4, 9]])).shape
    (2, 2, 3)
    >>> emb.weight[0]
    tensor([0., 0., 0.], grad_fn=<SelectBackward0>)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Tensor | None = None, _freeze: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        devices.check_cpu(device, "Embedding")
        self.num_embeddings = check_size("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_size("Embedding", "embedding_dim", embedding_dim)
        self.padding_idx = F.padding_index(padding_idx, self.num_embeddings)
        F.check_embedding_options(max_norm, scale_grad_by_freq, sparse)
        if _weight is None:
            dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)
            self.weight = Parameter(Tensor(np.empty((self.num_embeddings, self.embedding_dim), dtype)))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight must have shape {[self.num_embeddings, self.embedding_dim]}, "
                                 f"got {list(_weight.shape)}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        **options) -> "Embedding":
        """An embedding whose weight is ``embeddings`` (2-D; memory shared), frozen unless ``freeze=False``."""
        embeddings = as_tensor(embeddings)
        if embeddings.ndim != 2:
            raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got {list(embeddings.shape)}")
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze, **options)

    def reset_parameters(self) -> None:
        """Standard normal rows; the ``padding_idx`` row zero."""
        values = generator().standard_normal(self.weight.shape).astype(self.weight.dtype)
        if self.padding_idx is not None:
            values[self.padding_idx] = 0
        self.weight.data = Tensor(values)

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text if self.padding_idx is None else text + f", padding_idx={self.padding_idx}"
