"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and ``step``.

Subclasses implement ``_update(group, param, grad, state)``, which returns the change to
add to one parameter (AdamW first scales ``param`` in place, as PyTorch's decoupled decay does), computed in NumPy with PyTorch's exact order of operations (every
Python-number factor is rounded to the parameter's dtype first, as PyTorch's kernels do).
:meth:`Optimizer.step` then adds it in place under ``no_grad``, so a parameter keeps its
memory (``.data``, ``detach()`` and NumPy views see the new values) and its version
counter goes up, as with PyTorch's in-place updates.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from ..nn.module import reset_grad
from ..tape import dtypes
from ..tape.grad_mode import enable_grad, no_grad
from ..tape.tensor import Tensor

class _RequiredParameter:
    """Marks a hyper-parameter that has no default (each group must give it)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of optimizers: holds ``param_groups`` (a list of dicts) and ``state``.

    ``params`` is an iterable of tensors, or of dicts each with a ``"params"`` entry and
    per-group options that override ``defaults``.

    >>> import symgrad
    >>> from symgrad.optim import SGD
    >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.5)
    >>> (w * w).sum().backward()
    >>> opt.step(); w
    tensor([0., 0.], requires_grad=True)
    >>> opt.zero_grad(); w.grad is None
    True
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
                f"{type(params).__name__}; wrap a single tensor in a list: [{type(params).__name__.lower()}]"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list; pass model.parameters() or a list of tensors")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones come from ``defaults``)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        params = param_group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry with its tensors")
        params = [params] if isinstance(params, Tensor) else list(params)
        for index, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but parameter {index} of the group is a "
                    f"{type(param).__name__}"
                )
            if not param.is_leaf:
                raise ValueError(
                    f"can't optimize a non-leaf Tensor (parameter {index} has grad_fn={param.grad_fn.name()}); "
                    "optimize the leaf it was computed from, or detach().requires_grad_() it"
                )
            if not dtypes.is_floating(param.dtype):
                raise TypeError(f"can only optimize floating point tensors, parameter {index} is "
                                f"{dtypes.dtype_name(param.dtype)}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same tensor twice; pass each parameter once")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate one group's hyper-parameters; subclasses extend it."""
        lr = group.get("lr")
        if lr is not None and lr is not required and not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (it must be >= 0)")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for param in group["params"]:
                reset_grad(param, set_to_none)

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        ``closure`` re-evaluates the model and returns the loss (it runs with grad enabled).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    grad = np.array(param.grad.detach().numpy(), dtype=param.dtype)
                    if group.get("maximize", False):
                        grad = -grad
                    state = self.state.setdefault(param, {})
                    delta = self._update(group, param.detach().numpy(), grad, state)
                    param.add_(Tensor(delta))
        return loss

    def _update(self, group: dict[str, Any], param: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        """Return the change to add to ``param`` (``grad`` is a fresh array; ``state`` this
        parameter's state dict, updated in place)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _update()")

    # ------------------------------------------------------------------ saving and loading
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are replaced by their position across groups, as in PyTorch; the
        state tensors are returned by reference.
        """
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = []
            for param in group["params"]:
                index_of.setdefault(id(param), len(index_of))
                packed["params"].append(index_of[id(param)])
            groups.append(packed)
        state = {index_of[id(param)]: value for param, value in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state saved by :meth:`state_dict` (the groups must match in size)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        for mine, saved in zip(self.param_groups, saved_groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group with "
                    f"{len(saved['params'])} parameters, but the optimizer's group has {len(mine['params'])}"
                )
        params_by_index = {}
        for mine, saved in zip(self.param_groups, saved_groups):
            for index, param in zip(saved["params"], mine["params"]):
                params_by_index[index] = param
        self.state = {}
        for index, value in state_dict["state"].items():
            param = params_by_index[index]
            self.state[param] = {key: _copy_state(key, item, param) for key, item in value.items()}
        for mine, saved in zip(self.param_groups, saved_groups):
            mine.update({key: value for key, value in saved.items() if key != "params"})

    def __repr__(self) -> str:
        text = type(self).__name__ + " ("
        for index, group in enumerate(self.param_groups):
            text += f"\nParameter Group {index}"
            for key in sorted(group):
                if key != "params":
                    text += f"\n    {key}: {group[key]}"
        return text + "\n)"


def _copy_state(key: str, value: Any, param: Tensor) -> Any:
    """A copy of one saved state entry; float tensors (but ``step``) take the parameter's dtype."""
    if not isinstance(value, Tensor):
        return value
    array = np.array(value.detach().numpy())
    if key != "step" and dtypes.is_floating(array.dtype):
        array = array.astype(param.dtype)
    return Tensor(array)


def as_dtype(value: float, array: np.ndarray):
    """``value`` rounded to ``array``'s dtype, as PyTorch's kernels round a Python scalar.

    >>> as_dtype(0.1, np.zeros(1, np.float32)).dtype
    dtype('float32')
    """
    return array.dtype.type(value)


def check_nonnegative(group: dict[str, Any], *names: str) -> None:
    """Raise a ``ValueError`` naming the first of ``names`` whose value in ``group`` is negative (or NaN)."""
    for name in names:
        if not group[name] >= 0.0:
            raise ValueError(f"Invalid {name} value: {group[name]} (it must be >= 0)")


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """PyTorch's ``start.lerp_(end, weight)``, with its two formulas for small and large weights."""
    w = as_dtype(weight, start)
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (as_dtype(1, start) - w)
