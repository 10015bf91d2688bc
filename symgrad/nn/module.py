"""``Module``: the base class of layers and models, with PyTorch's registration rules.

Assigning a :class:`~symgrad.nn.Parameter` or a sub-``Module`` to an attribute registers
it, in assignment order; ``parameters()``, ``named_parameters()``, ``state_dict()``,
``zero_grad()`` and ``repr`` walk what was registered.  Every registered parameter gets
``.name`` set to its dotted path from the root module (``fc.weight``): the symbolic engine
prints closed-form gradients with those names.  A module remembers (weakly) which modules
it is registered in, so names stay right when a parameter is replaced later.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator

import numpy as np

from ..tape import devices
from ..tape import dtypes
from ..tape.grad_mode import no_grad
from ..tape.tensor import Tensor, as_tensor
from .parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
"""What ``load_state_dict(strict=False)`` returns: the keys it missed and the ones it ignored."""


def _add_indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class for all layers and models; subclasses define ``forward``.

    >>> import symgrad
    >>> from symgrad import nn
    >>> class Model(nn.Module):
    ...     def __init__(self, in_feature=1, out_feature=3):
    ...         super().__init__()
    ...         self.line_layer = nn.Linear(in_features=in_feature, out_features=out_feature)
    ...     def forward(self, x):
    ...         return self.line_layer(x)
    >>> model = Model()
    >>> model
    Model(
      (line_layer): Linear(in_features=1, out_features=3, bias=True)
    )
    >>> [name for name, _ in model.named_parameters()]
    ['line_layer.weight', 'line_layer.bias']
    >>> model.line_layer.weight.name
    'line_layer.weight'
    >>> model(symgrad.randn(2, 1)).shape
    (2, 3)
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_parents", [])

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        """The computation; every subclass overrides it."""
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function; define forward() '
            "in the subclass"
        )

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def _require_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {what} before Module.__init__() call; call super().__init__() first "
                f"in {type(self).__name__}.__init__"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        buffers = self.__dict__.get("_buffers")
        if isinstance(value, Parameter):
            self._require_init("parameters")
            self._forget(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} as parameter {name!r} "
                    "(symgrad.nn.Parameter or None expected); wrap it as nn.Parameter(value)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._require_init("module")
            self._forget(name)
            self.add_module(name, value)
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} as child module {name!r} "
                    "(symgrad.nn.Module or None expected)"
                )
            self._unlink_child(modules[name])
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} as buffer {name!r} (Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Drop ``name`` from every registry and the instance dict before re-registering it."""
        self.__dict__.pop(name, None)
        for registry in ("_parameters", "_buffers"):
            self.__dict__[registry].pop(name, None)
        self.__dict__["_non_persistent_buffers"].discard(name)
        if name in self._modules:
            self._unlink_child(self._modules.pop(name))

    def __getattr__(self, name: str) -> Any:
        # only called when ordinary lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers.discard(name)
        elif name in self._modules:
            self._unlink_child(self._modules.pop(name))
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    @staticmethod
    def _check_name(name: str, kind: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None) under ``name``; its ``.name`` becomes its dotted path."""
        self._require_init("parameters")
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign a {type(param).__name__} as parameter {name!r} "
                "(symgrad.nn.Parameter or None expected)"
            )
        if param is not None and param.grad_fn is not None:
            raise ValueError(
                f"cannot assign non-leaf tensor as parameter {name!r}: parameters must be leaves; "
                "pass a detached tensor"
            )
        self._parameters[name] = param
        if param is not None:
            param.name = self._path_prefix() + name

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a tensor that is state but not a parameter (saved in ``state_dict`` if persistent)."""
        self._require_init("buffers")
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign a {type(tensor).__name__} as buffer {name!r} (Tensor or None expected)")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register ``module`` (or None) as a child called ``name``."""
        self._require_init("module")
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        old = self._modules.get(name)
        if old is not None and old is not module:
            self._unlink_child(old)
        self._modules[name] = module
        if module is not None:
            module._parents.append(weakref.ref(self))
            module._rename_parameters(self._path_prefix() + name)

    register_module = add_module

    # ------------------------------------------------------------------ naming
    def _unlink_child(self, child: "Module | None") -> None:
        """Drop one weak link from ``child`` to this module (one link exists per registration)."""
        if child is None:
            return
        for i, ref in enumerate(child._parents):
            if ref() is self:
                del child._parents[i]
                break

    def _live_parent(self) -> "Module | None":
        alive = []
        for ref in self._parents:
            parent = ref()
            if parent is not None:
                alive.append(ref)
        self._parents[:] = alive
        return alive[0]() if alive else None

    def _path_prefix(self) -> str:
        """``"a.b."`` for a module registered as ``root.a.b``; ``""`` for a root module."""
        parts: list[str] = []
        module, seen = self, {id(self)}
        while True:
            parent = module._live_parent()
            if parent is None or id(parent) in seen:
                break
            seen.add(id(parent))
            parts.append(next(key for key, child in parent._modules.items() if child is module))
            module = parent
        return "".join(part + "." for part in reversed(parts))

    def _rename_parameters(self, prefix: str) -> None:
        for name, param in self._named_members("_parameters", prefix=prefix):
            param.name = name

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(dotted name, module)`` for this module and every descendant, once each."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, depth first, each once."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """The direct sub-modules with their attribute names."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        """The direct sub-modules, in registration order."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted name, parameter)`` pairs: ``('line_layer.weight', Parameter)``.

        Called on a root module (one registered in no other), it also refreshes each
        parameter's ``.name`` to the yielded dotted name, so the root's view wins.
        """
        refresh = prefix == "" and self._live_parent() is None
        for name, param in self._named_members("_parameters", prefix, recurse, remove_duplicate):
            if refresh:
                param.name = name
            yield name, param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter of this module and its descendants, each once, in registration order."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield ``(dotted name, buffer)`` pairs."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer of this module and its descendants."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every sub-module (children first) and then on this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Set training mode on this module and its descendants; returns ``self``."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` on every parameter; returns ``self``."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad``: to None (default) or to zeros in place.

        >>> import symgrad
        >>> from symgrad import nn
        >>> layer = nn.Linear(2, 1)
        >>> layer(symgrad.ones(1, 2)).sum().backward()
        >>> layer.zero_grad(); layer.weight.grad is None
        True
        """
        for param in self.parameters():
            reset_grad(param, set_to_none)

    # ------------------------------------------------------------------ dtype
    def to(self, *args, dtype=None, device=None) -> "Module":
        """Convert every floating parameter and buffer (and gradient) to ``dtype`` in place;
        PyTorch's forms ``to(dtype)``, ``to("cpu")``, ``to("cpu", dtype)``, ``to(tensor)``.
        The CPU is the only device (any other raises); returns ``self``."""
        dtype = devices.dtype_of_to(args, dtype, device, "Module.to", Tensor)
        if dtype is None:
            return self
        dtype = dtypes.to_dtype(dtype)
        if not dtypes.is_floating(dtype):
            raise TypeError(f"Module.to only accepts floating dtypes, got {dtypes.dtype_name(dtype)}")
        for tensor in list(self.parameters()) + list(self.buffers()):
            if dtypes.is_floating(tensor.dtype) and tensor.dtype != dtype:
                tensor.data = tensor.detach().to(dtype)
                if tensor.grad is not None:
                    tensor.grad = tensor.grad.detach().to(dtype)
        return self

    def cpu(self) -> "Module":
        """``self``: symgrad's modules are on the CPU already."""
        return self

    def float(self) -> "Module":
        """Parameters and buffers to float32."""
        return self.to(dtypes.float32)

    def double(self) -> "Module":
        """Parameters and buffers to float64."""
        return self.to(dtypes.float64)

    # ------------------------------------------------------------------ state
    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict":
        """Parameters and persistent buffers by dotted name (detached, sharing memory).

        >>> from symgrad import nn
        >>> list(nn.Sequential(nn.Linear(2, 3), nn.ReLU()).state_dict())
        ['0.weight', '0.bias']
        """
        if destination is None:
            destination = OrderedDict()
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = buf if keep_vars else buf.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into the parameters and buffers, in place.

        Shapes must match.  With ``strict=True`` (default) missing or unexpected keys
        raise; otherwise they are returned as ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"expected a mapping of names to tensors for state_dict, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, (Tensor, np.ndarray)):
                errors.append(f'While copying the parameter named "{key}", expected a tensor or array, '
                              f"got {type(value).__name__}.")
                continue
            value = as_tensor(value)
            if value.shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {list(value.shape)} from checkpoint, "
                    f"the shape in current model is {list(target.shape)}."
                )
                continue
            _copy_into(target, value)
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors)
            )
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ copying
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_parents"] = []  # weak links are rebuilt by the parent's __setstate__
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for module in self._modules.values():
            if module is not None:
                module._parents.append(weakref.ref(self))

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text inside this module's parentheses; layers override it."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _add_indent(repr(module), 2) for key, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"


def reset_grad(param: Tensor, set_to_none: bool = True) -> None:
    """Set ``param.grad`` to None, or zero it in place (what ``Module.zero_grad`` and
    ``Optimizer.zero_grad`` do for each parameter).

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> reset_grad(x, set_to_none=False); x.grad
    tensor([0., 0.])
    """
    grad = param.grad
    if grad is None:
        return
    if set_to_none:
        param.grad = None
        return
    if grad.grad_fn is not None:
        grad.detach_()
    else:
        grad.requires_grad_(False)
    with no_grad():
        grad.zero_()


def _copy_into(target: Tensor, value: Tensor) -> None:
    """``target.copy_(value)``: write the values in place, keeping ``target``'s dtype."""
    with no_grad():
        target[...] = value.detach().to(target.dtype)
