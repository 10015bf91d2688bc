"""Convolution and pooling: ``conv1d``, ``conv2d``, ``max_pool2d``, ``avg_pool2d`` and their modules.

Each is written with the op table's primitives, as an *im2col*: one ``getitem`` with
integer index arrays (made from shapes alone) gathers every window of the input into an
array of shape ``(N, C, H_out, W_out, kh, kw)``, and a ``matmul`` with the reshaped kernel
(or a reduction over the window, for pooling) finishes the job. So the closed form stays
array-level (a gather and a product, never one term per output pixel), the adjoint of the
gather is a scatter-add (``index_put``), which *is* the transposed convolution, and both
engines, the transforms and the printers need nothing new.

Supported: ``stride``, ``padding`` (zeros; ``-inf`` for max pooling; for convolutions also
``"valid"`` and ``"same"``, which pads the extra odd element on the right, as PyTorch) and
``dilation``, as ints or pairs, and ``groups``.  Pooling also takes ``ceil_mode``, and
``avg_pool2d`` ``count_include_pad`` and ``divisor_override``, with PyTorch's divisors.
Unbatched inputs (no N dimension) are accepted, as in PyTorch. ``max_pool2d`` sends the
gradient of a window to its first largest element, as PyTorch does on the CPU.
"""
from __future__ import annotations

import math

import numpy as np

from ..tape import devices, dtypes
from ..tape.composites import pad
from ..tape.creation import generator
from ..tape.tensor import Tensor, apply_op, as_tensor
from .module import Module
from .parameter import Parameter

__all__ = ["conv1d", "conv2d", "max_pool2d", "avg_pool2d", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d"]


def _pair(value, what: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in pair):
        raise ValueError(f"{what} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, what: str) -> int:
    """PyTorch's output length: with ``ceil_mode`` a last, partial window is kept if it starts
    inside the input or its left padding."""
    span = d * (k - 1) + 1
    count = -(-(size + 2 * p - span) // s) + 1 if ceil_mode else (size + 2 * p - span) // s + 1
    if ceil_mode and (count - 1) * s >= size + p:
        count -= 1
    if count < 1:
        raise ValueError(f"{what}: the kernel (size {k}, dilation {d}) is larger than the padded input "
                         f"(size {size + 2 * p})")
    return count


def _windows(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], fill: float, what: str, ceil_mode: bool = False) -> Tensor:
    """Every ``kernel``-sized window of the last two dims of ``x`` (N, C, H, W), as an array
    of shape ``(N, C, H_out, W_out, kh, kw)``; the windows ``ceil_mode`` adds past the
    padded input read ``fill``."""
    if x.ndim != 4:
        raise ValueError(f"{what} expects a 4-D input (N, C, H, W) or an unbatched 3-D one (C, H, W), got shape "
                         f"{tuple(x.shape)}")
    starts, beyond = [], []
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation):
        count = _output_size(size, k, s, p, d, ceil_mode, what)
        starts.append((np.arange(count) * s)[:, None] + np.arange(k)[None, :] * d)
        beyond.append(max(0, (count - 1) * s + d * (k - 1) + 1 - (size + 2 * p)))
    if padding != (0, 0) or beyond != [0, 0]:
        x = pad(x, (padding[1], padding[1] + beyond[1], padding[0], padding[0] + beyond[0]), value=fill)
    rows, cols = starts  # (H_out, kh), (W_out, kw)
    return x[:, :, rows[:, None, :, None], cols[None, :, None, :]]


def _unbatched(function, input: Tensor, ndim: int, *args, **kwargs) -> Tensor | None:
    """``function`` applied to an unbatched input (one dimension short of ``ndim``) as a batch of one."""
    if input.ndim != ndim - 1:
        return None
    return function(input.unsqueeze(0), *args, **kwargs).squeeze(0)


def _conv_padding(input: Tensor, padding, kernel: tuple[int, int], stride: tuple[int, int],
                  dilation: tuple[int, int], what: str) -> tuple[Tensor, tuple[int, int]]:
    """The input and the symmetric padding left for ``_windows``: ``"valid"`` is none, and
    ``"same"`` pads the input itself, with the odd extra element on the right, as PyTorch."""
    if not isinstance(padding, str):
        return input, _pair(padding, "padding", 0)
    if padding == "valid":
        return input, (0, 0)
    if padding != "same":
        raise ValueError(f"{what}: padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"{what}: padding='same' is not supported for strided convolutions (stride {stride})")
    if input.ndim != 4:
        return input, (0, 0)  # _windows reports the bad rank
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return pad(input, (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)), (0, 0)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``: input ``(N, C, H, W)`` (or
    unbatched ``(C, H, W)``), weight ``(O, C / groups, kh, kw)``, bias ``(O,)``; output
    ``(N, O, H_out, W_out)``.  With ``groups`` the channels split into that many independent
    convolutions (one ``matmul`` each, concatenated)."""
    input, weight = as_tensor(input), as_tensor(weight)
    unbatched = _unbatched(conv2d, input, 4, weight, bias, stride, padding, dilation, groups)
    if unbatched is not None:
        return unbatched
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D weight (out_channels, in_channels / groups, kh, kw), got shape "
                         f"{tuple(weight.shape)}")
    out_channels, channels, kh, kw = weight.shape
    if input.ndim == 4 and input.shape[1] != channels * groups:
        raise ValueError(f"conv2d: the input has {input.shape[1]} channels, the weight expects {channels * groups} "
                         f"({groups} group(s) of {channels})")
    if out_channels % groups:
        raise ValueError(f"conv2d: the weight's {out_channels} output channels do not split into groups={groups}")
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (out_channels,):
            raise ValueError(f"conv2d: bias must have shape ({out_channels},), one per output channel of the weight "
                             f"{tuple(weight.shape)}, got {tuple(bias.shape)}")
    stride, dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    input, padding = _conv_padding(input, padding, (kh, kw), stride, dilation, "conv2d")
    patches = _windows(input, (kh, kw), stride, padding, dilation, 0.0, "conv2d")
    n, _, h_out, w_out, _, _ = patches.shape
    step = out_channels // groups
    outs = []
    for group in range(groups):
        part = patches if groups == 1 else patches[:, group * channels:(group + 1) * channels]
        kernel = weight if groups == 1 else weight[group * step:(group + 1) * step]
        columns = part.permute(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, channels * kh * kw)
        outs.append(columns @ kernel.reshape(step, channels * kh * kw).transpose(0, 1))
    out = outs[0] if groups == 1 else apply_op("cat", *outs, dim=1)
    out = out.reshape(n, h_out, w_out, out_channels).permute(0, 3, 1, 2)
    if bias is not None:
        out = out + bias.reshape(1, out_channels, 1, 1)
    return out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D cross-correlation, as ``torch.nn.functional.conv1d``: input ``(N, C, L)``, weight
    ``(O, C, k)``; a ``conv2d`` over a height of one.  ``(C, L)`` is an unbatched input."""
    input, weight = as_tensor(input), as_tensor(weight)
    unbatched = _unbatched(conv1d, input, 3, weight, bias, stride, padding, dilation, groups)
    if unbatched is not None:
        return unbatched
    if input.ndim != 3 or weight.ndim != 3:
        raise ValueError(f"conv1d expects a 3-D input (N, C, L) (or an unbatched 2-D one) and a 3-D weight (O, C, k), "
                         f"got shapes {tuple(input.shape)} and {tuple(weight.shape)}")
    padding = padding if isinstance(padding, str) else (0, _single(padding, "padding", 0))
    out = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, _single(stride, "stride", 1)),
                 padding=padding, dilation=(1, _single(dilation, "dilation", 1)),
                 groups=groups)
    return out.squeeze(2)


def _single(value, what: str, minimum: int) -> int:
    single = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if isinstance(single, bool) or not isinstance(single, (int, np.integer)) or single < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(single)


def _pool_padding(padding, kernel: tuple[int, int], what: str) -> tuple[int, int]:
    """Pooling padding, at most half the kernel (PyTorch's rule: a window of padding alone has no value)."""
    padding = _pair(padding, "padding", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{what}: padding {padding} must be at most half the kernel size {kernel}")
    return padding


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> Tensor:
    """The largest element of each window (padding counts as ``-inf``) of ``(N, C, H, W)`` or
    ``(C, H, W)``; ``ceil_mode`` keeps a last, partial window, as PyTorch."""
    input = as_tensor(input)
    unbatched = _unbatched(max_pool2d, input, 4, kernel_size, stride, padding, dilation, ceil_mode)
    if unbatched is not None:
        return unbatched
    kernel = _pair(kernel_size, "kernel_size", 1)
    padding = _pool_padding(padding, kernel, "max_pool2d")
    windows = _windows(input, kernel, _pair(kernel if stride is None else stride, "stride", 1), padding,
                       _pair(dilation, "dilation", 1), -math.inf, "max_pool2d", ceil_mode)
    return windows.reshape(*windows.shape[:4], -1).max(dim=-1).values


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """The mean of each window of ``(N, C, H, W)`` or ``(C, H, W)``, as PyTorch: zero padding
    counts unless ``count_include_pad=False`` (then only the input's elements do), the part of a
    ``ceil_mode`` window past the padding never counts, and ``divisor_override`` replaces the count."""
    input = as_tensor(input)
    unbatched = _unbatched(avg_pool2d, input, 4, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override)
    if unbatched is not None:
        return unbatched
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride, padding = _pair(kernel if stride is None else stride, "stride", 1), _pool_padding(padding, kernel,
                                                                                              "avg_pool2d")
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         not isinstance(divisor_override, (int, np.integer)) or divisor_override <= 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int or None, got {divisor_override!r}")
    windows = _windows(input, kernel, stride, padding, (1, 1), 0.0, "avg_pool2d", ceil_mode)
    sums = windows.reshape(*windows.shape[:4], -1).sum(dim=-1)
    if divisor_override is not None:
        return sums / float(divisor_override)
    counts = [_window_counts(size, k, s, p, count, count_include_pad)
              for size, k, s, p, count in zip(input.shape[2:], kernel, stride, padding, windows.shape[2:4])]
    return sums / Tensor(np.multiply.outer(*counts).astype(sums.dtype))


def _window_counts(size: int, k: int, s: int, p: int, count: int, count_include_pad: bool) -> np.ndarray:
    """How many elements each of ``count`` windows along one dim averages: those inside the
    padded input, or, without ``count_include_pad``, inside the input itself."""
    start = np.arange(count) * s - p
    end = np.minimum(start + k, size + p)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


class _ConvNd(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: tuple, stride, padding, dilation, groups: int,
                 bias: bool, device, dtype, what: str) -> None:
        super().__init__()
        devices.check_cpu(device, what)
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0
               for v in (in_channels, out_channels, groups, *kernel)):
            raise ValueError(f"{what} needs positive integer channels, groups and kernel size, got in_channels="
                             f"{in_channels!r}, out_channels={out_channels!r}, groups={groups!r}, "
                             f"kernel_size={kernel!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{what}: in_channels={in_channels} and out_channels={out_channels} must both be "
                             f"divisible by groups={groups}")
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), kernel
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, int(groups)
        dtype = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)
        fan_in = self.in_channels // self.groups * math.prod(kernel)
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's kaiming-uniform(a=sqrt(5)) bound
        draw = lambda shape: Tensor(generator().uniform(-bound, bound, size=shape).astype(dtype))  # noqa: E731
        self.weight = Parameter(draw((self.out_channels, self.in_channels // self.groups, *kernel)))
        if bias:
            self.bias = Parameter(draw((self.out_channels,)))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
                + (f", padding={self.padding}" if self.padding not in (0, (0,), (0, 0)) else "")
                + (f", dilation={self.dilation}" if self.dilation not in (1, (1,), (1, 1)) else "")
                + (f", groups={self.groups}" if self.groups != 1 else "")
                + ("" if self.bias is not None else ", bias=False"))


class Conv2d(_ConvNd):
    """``nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)``;
    ``padding`` may be ``"valid"`` or ``"same"``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, _pair(kernel_size, "kernel_size", 1), _pair(stride, "stride", 1),
                         padding if isinstance(padding, str) else _pair(padding, "padding", 0),
                         _pair(dilation, "dilation", 1), groups, bias, device, dtype, "Conv2d")

    def forward(self, input: Tensor) -> Tensor:
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """``nn.Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)``;
    ``padding`` may be ``"valid"`` or ``"same"``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, (_single(kernel_size, "kernel_size", 1),),
                         (_single(stride, "stride", 1),),
                         padding if isinstance(padding, str) else (_single(padding, "padding", 0),),
                         (_single(dilation, "dilation", 1),), groups, bias, device, dtype, "Conv1d")

    def forward(self, input: Tensor) -> Tensor:
        return conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _check_pooling(kernel_size, stride, padding) -> None:
    """Refuse bad pooling sizes when the module is made, not at its first call."""
    _pair(kernel_size, "kernel_size", 1)
    _pair(stride, "stride", 1)
    _pair(padding, "padding", 0)


class MaxPool2d(Module):
    """``nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.padding, self.dilation, self.ceil_mode = kernel_size, padding, dilation, ceil_mode
        self.stride = kernel_size if stride is None else stride
        _check_pooling(self.kernel_size, self.stride, self.padding)

    def forward(self, input: Tensor) -> Tensor:
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """``nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None)``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.padding, self.ceil_mode = kernel_size, padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        self.stride = kernel_size if stride is None else stride
        _check_pooling(self.kernel_size, self.stride, self.padding)

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
