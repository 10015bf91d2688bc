"""``symgrad.nn``: modules, parameters, layers and losses with PyTorch's interface.

>>> import symgrad
>>> from symgrad import nn
>>> symgrad.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
>>> loss = nn.MSELoss()(model(symgrad.randn(8, 2)), symgrad.zeros(8, 1))
>>> loss.backward()
>>> [p.grad.shape for p in model.parameters()]
[(4, 2), (4,), (1, 4), (1,)]
"""
from . import functional
from . import utils
from .convolution import AvgPool2d, Conv1d, Conv2d, MaxPool2d
from .layers import Dropout, Embedding, Linear, LogSoftmax, ReLU, Sequential, Sigmoid, Softmax, Tanh
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss
from .module import IncompatibleKeys, Module
from .normalization import BatchNorm1d, LayerNorm
from .parameter import Parameter

__all__ = [
    "functional", "utils", "Module", "Parameter", "IncompatibleKeys",
    "Linear", "Sequential", "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    "Dropout", "Embedding", "LayerNorm", "BatchNorm1d", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d",
    "MSELoss", "L1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss",
]
