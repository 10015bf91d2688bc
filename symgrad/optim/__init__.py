"""``symgrad.optim``: optimizers that update parameters in place, with PyTorch's rules.

>>> import symgrad
>>> from symgrad import nn, optim
>>> symgrad.manual_seed(0)
>>> model = nn.Linear(1, 1)
>>> opt = optim.SGD(model.parameters(), lr=0.1)
>>> x = symgrad.tensor([[1.0], [2.0]]); y = 2 * x + 1
>>> for _ in range(1000):
...     opt.zero_grad()
...     loss = nn.functional.mse_loss(model(x), y)
...     loss.backward()
...     opt.step()
>>> round(model.weight.item(), 3), round(model.bias.item(), 3)
(2.0, 1.0)
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer, required
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler", "required"]
