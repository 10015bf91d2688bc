"""Devices: symgrad computes on the CPU only, and says so in PyTorch's words.

``Tensor.device`` is ``device(type='cpu')``; ``.cpu()``, ``.to("cpu")`` and
``Module.to("cpu")`` are accepted (nothing moves), and any other device (``"cuda"``,
``"mps"``, ``device("cuda:0")``) raises a ``RuntimeError`` that says symgrad has only the
CPU, instead of a dtype error further on.
"""
from __future__ import annotations

_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "hip", "meta", "xla", "ipu", "mtia", "hpu", "privateuseone")


class device:  # noqa: N801  (PyTorch's name)
    """A device name, as ``torch.device``: ``device("cpu")``, ``device("cuda", 0)``.

    Any PyTorch device can be named; only the CPU can hold tensors.

    >>> device("cpu")
    device(type='cpu')
    >>> str(device("cuda:1")), device("cuda:1").index
    ('cuda:1', 1)
    """

    __slots__ = ("type", "index")

    def __init__(self, type: "str | device", index: int | None = None) -> None:  # noqa: A002
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device() takes a device name such as 'cpu', got {type.__class__.__name__} {type!r}")
        name, colon, number = type.partition(":")
        if name not in _DEVICE_TYPES or (colon and not number.isdigit()):
            raise RuntimeError(
                f"Expected one of {', '.join(_DEVICE_TYPES)} device type at start of device string: {type!r}"
            )
        if colon:
            if index is not None:
                raise RuntimeError(f"device {type!r} already names an index; don't pass index={index} as well")
            index = int(number)
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise RuntimeError(f"a device index must be a non-negative integer, got {index!r}")
        object.__setattr__(self, "type", name)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device objects are immutable")

    def __eq__(self, other) -> bool:
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"


CPU = device("cpu")


def is_device(value) -> bool:
    """Whether ``value`` names a device (a :class:`device` or a device string), not a dtype.

    >>> is_device("cpu"), is_device("cuda:0"), is_device("float32")
    (True, True, False)
    """
    return isinstance(value, device) or (isinstance(value, str) and value.partition(":")[0] in _DEVICE_TYPES)


def cpu_only_error(where: str, target) -> RuntimeError:
    """The error for a request to put a tensor on ``target``, a device other than the CPU."""
    return RuntimeError(
        f"{where}: symgrad computes on the CPU only and cannot move tensors to {str(target)!r}; "
        "use 'cpu' (or leave the device out)"
    )


def check_cpu(value, where: str) -> None:
    """Accept the CPU (``"cpu"``, ``"cpu:0"``, ``device("cpu")``) or None; raise for any other device."""
    if value is not None and device(value).type != "cpu":
        raise cpu_only_error(where, device(value))


def dtype_of_to(args: tuple, dtype, device_arg, where: str, tensor_type: type):
    """The dtype a PyTorch-style ``to(...)`` call asks for (None: keep it), after checking
    that the device it names, if any, is the CPU.  ``args`` are its positional arguments:
    a device, a dtype, both, or one ``tensor_type`` instance whose dtype is taken."""
    if len(args) > 2:
        raise TypeError(f"{where}() takes at most a device and a dtype, got {len(args)} positional arguments")
    for arg in args:
        if isinstance(arg, tensor_type):
            if len(args) > 1:
                raise TypeError(f"{where}(other) takes the dtype of one tensor; pass no other positional argument")
            arg = arg.dtype
        if is_device(arg):
            if device_arg is not None:
                raise TypeError(f"{where}() got the device twice ({device_arg!r} and {arg!r})")
            device_arg = arg
        else:
            if dtype is not None:
                raise TypeError(f"{where}() got the dtype twice ({dtype!r} and {arg!r})")
            dtype = arg
    check_cpu(device_arg, where)
    return dtype
