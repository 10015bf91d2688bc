"""The eager ``Tensor``: a NumPy array plus PyTorch's autograd bookkeeping.

Every differentiable method goes through :func:`apply_op`, which runs the op table's
NumPy forward and, when grad mode is on and an input requires grad, records a
:class:`~symgrad.tape.node.Node`.  In-place methods go through ``Tensor._inplace``, which
enforces PyTorch's rules (no in-place change of a leaf that requires grad while grad mode
is on) and bumps the version counter that backward checks.
"""
from __future__ import annotations

import builtins
import copy
import math
import numbers
import threading
import warnings
import weakref

import numpy as np

from ..ops import OPS, normalize_index
from . import devices
from . import dtypes, tracing, views
from .grad_mode import is_grad_enabled
from .node import AccumulateGrad, Node, Origin, RemovableHandle, VersionCounter, note_index_source

_ACCUMULATOR_LOCK = threading.Lock()


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Build tensors with :func:`symgrad.tensor` and friends rather than calling this class.

    >>> import symgrad
    >>> x = symgrad.ones(2, 2, requires_grad=True)
    >>> y = x + 2
    >>> y
    tensor([[3., 3.],
            [3., 3.]], grad_fn=<AddBackward0>)
    >>> out = (y * y * 3).mean()
    >>> out.backward()
    >>> x.grad
    tensor([[4.5000, 4.5000],
            [4.5000, 4.5000]])
    """

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """``np.exp(t)``, ``np.add(a, t)``, ``a * t``: the op the ufunc is (``numpy_protocol.py``)."""
        return numpy_protocol.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """``np.sum(t, axis=0)``, ``np.where(c, t, 0)``: the op the function is (``numpy_protocol.py``)."""
        return numpy_protocol.array_function(func, types, args, kwargs)

    # The state of a fresh tensor, as class attributes: an op's output sets only what
    # differs (every eager op makes one tensor, so this is on the hot path).
    _grad: "Tensor | None" = None
    grad_fn: Node | None = None
    _output_nr = 0  # which output of grad_fn this tensor is (a multi-output Function's k)
    _requires_grad = False
    _accumulator: AccumulateGrad | None = None
    _leaf_hooks: tuple | list = ()  # a list of its own once a hook is registered
    _retains_grad = False
    _constant = None
    name: str | None = None
    dims: tuple | None = None  # a name (or None) per axis, for printing sizes by name (symgrad.tensor(dims=...))
    _made_outside_graph: str | None = None  # how, when made from a running trace (tracing.py)
    _trace_node: Node | None = None  # a mask op a running trace recorded without grad (tracing.py)
    _origin: Origin | None = None  # how it was computed from named tensors, unrecorded (for printing)
    _view_of: tuple | None = None  # what PyTorch would make a view of: (root, version, value, op) (views.py)

    def __init__(self, data: np.ndarray, *, requires_grad: builtins.bool = False, name: str | None = None,
                 _version: VersionCounter | None = None, _constant=None) -> None:
        if type(data) is not np.ndarray and not isinstance(data, (np.ndarray, np.generic)):
            data = _constructor_data(data)
        self._data = data
        self._version = _version if _version is not None else VersionCounter()
        if _constant is not None:
            self._constant = _constant
        if name is not None:
            if not isinstance(name, str):
                raise TypeError(f"a tensor's name must be a string, got {type(name).__name__} {name!r:.60}")
            self.name = name
        if requires_grad:
            self.requires_grad_(True)

    # ----------------------------------------------------------------- autograd state
    @property
    def requires_grad(self) -> builtins.bool:
        return self._requires_grad or self.grad_fn is not None

    @requires_grad.setter
    def requires_grad(self, value: builtins.bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: builtins.bool = True) -> "Tensor":
        """Set whether this leaf records operations for gradients; returns ``self``."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables; use detach() "
                    "to get a tensor that does not require grad"
                )
            return self
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise RuntimeError(
                f"only tensors of floating point dtype can require gradients, got {dtypes.dtype_name(self.dtype)}; "
                "convert first, e.g. tensor(data, dtype=symgrad.float32) or t.float()"
            )
        self._requires_grad = builtins.bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> builtins.bool:
        """True for tensors not produced by a recorded op (and for all that need no grad)."""
        return self.grad_fn is None

    @property
    def grad(self) -> "Tensor | None":
        if self.grad_fn is not None and not self._retains_grad and self._grad is None:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. "
                "Its .grad will not be populated during backward(); call .retain_grad() on it "
                "before backward() if you want its gradient.",
                UserWarning,
                stacklevel=2,
            )
        return self._grad

    @grad.setter
    def grad(self, value: "Tensor | None") -> None:
        if value is not None:
            value = as_tensor(value)
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has shape {value.shape}, but the tensor has shape {self.shape}")
            if value.dtype != self.dtype:
                raise RuntimeError(
                    f"assigned grad has dtype {dtypes.dtype_name(value.dtype)}, but the tensor has dtype "
                    f"{dtypes.dtype_name(self.dtype)}"
                )
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        """``del x.grad``: the same as ``x.grad = None``."""
        self._grad = None

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` during backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self._retains_grad = True
            self.grad_fn.retained[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> builtins.bool:
        return self._retains_grad

    def register_hook(self, hook) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient.  Returns a handle whose ``remove()`` takes the hook away."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if not callable(hook):
            raise TypeError(f"a hook must be callable as hook(grad), got {type(hook).__name__} {hook!r}")
        if tracing.ACTIVE_TRACES:
            tracing.refuse_hook(self)
        if self.grad_fn is not None:
            hooks = self.grad_fn.hooks[self._output_nr]
        else:
            if not isinstance(self._leaf_hooks, list):
                self._leaf_hooks = []
            hooks = self._leaf_hooks
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def _edge(self):
        """Where this tensor's gradient flows: its grad_fn, its AccumulateGrad, the node a
        trace recorded for it (a mask, which never receives a gradient), or None."""
        if self.grad_fn is not None:
            return self.grad_fn
        if self._requires_grad:
            if self._accumulator is None:
                with _ACCUMULATOR_LOCK:  # one sink per leaf, even when threads race to make it
                    if self._accumulator is None:
                        self._accumulator = AccumulateGrad(self)
            return self._accumulator
        return self._trace_node

    def backward(self, gradient=None, retain_graph: builtins.bool | None = None,
                 create_graph: builtins.bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see ``symgrad.autograd``)."""
        engine.backward([self], None if gradient is None else [gradient], retain_graph=retain_graph,
                 create_graph=create_graph, inputs=inputs)

    def detach(self) -> "Tensor":
        """A tensor sharing this one's memory and version counter, outside the graph."""
        out = Tensor(self._data, _version=self._version)
        views.note_detached(out, self)  # PyTorch's shares memory with this one's origin too
        return tracing.mark(out, "detach()", self)

    def detach_(self) -> "Tensor":
        """Cut this tensor out of the graph in place, making it a leaf."""
        if self.grad_fn is not None and tracing.ACTIVE_TRACES and tracing.is_traced(self):
            self._made_outside_graph = "detach_()"  # its value is computed from the trace, outside the graph now
        self.grad_fn = None
        self._output_nr = 0
        self._requires_grad = False
        self._retains_grad = False
        return self

    @property
    def data(self) -> "Tensor":
        """The values as a tensor outside the graph (shares memory, like ``detach()``)."""
        return self.detach()

    @data.setter
    def data(self, value) -> None:
        self._data = as_tensor(value)._data
        self._version.value += 1

    # ----------------------------------------------------------------- copying
    def __deepcopy__(self, memo: dict) -> "Tensor":
        """``copy.deepcopy`` of a leaf (or of a tensor that needs no grad): copies of the
        values, ``requires_grad``, name and ``.grad``, with a version counter of its own
        and no hooks.  A tensor computed by a recorded op refuses, as in PyTorch: its graph
        is not copied (it may be thousands of nodes deep).

        >>> import copy, symgrad
        >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True)
        >>> copy.deepcopy(w)
        tensor([1., 2.], requires_grad=True)
        >>> copy.deepcopy(w * 2)
        Traceback (most recent call last):
        ...
        RuntimeError: only graph leaves support copy.deepcopy, ...
        """
        if self.grad_fn is not None:
            raise RuntimeError(
                f"only graph leaves support copy.deepcopy, as in PyTorch; this tensor (shape {list(self.shape)}) "
                f"is the output of {self.grad_fn.name()}. Deep-copy t.detach() for its values, or copy the "
                "leaves and compute it again"
            )
        out = Tensor(self._data.copy(), requires_grad=self._requires_grad, name=self.name, _constant=self._constant)
        if self._made_outside_graph is not None:
            out._made_outside_graph = self._made_outside_graph
        memo[id(self)] = out
        if self._grad is not None:
            out._grad = copy.deepcopy(self._grad, memo)
        return out

    def __reduce_ex__(self, protocol):
        """Pickled: the values, ``requires_grad`` and name, never the graph or ``.grad``; a
        tensor computed by a recorded op comes back as a leaf that requires grad, as in
        PyTorch.

        >>> import pickle, symgrad
        >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True)
        >>> pickle.loads(pickle.dumps(w * 2))
        tensor([2., 4.], requires_grad=True)
        """
        return _rebuild_tensor, (np.array(self._data), self.requires_grad, self.name, self._constant)

    # ----------------------------------------------------------------- array facts
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    def size(self, dim: int | None = None):
        """The shape, or the length of dimension ``dim``."""
        return self.shape if dim is None else self.shape[dim]

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def dim(self) -> int:
        return self._data.ndim

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def item(self):
        """The single value as a Python number."""
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "item()")
        if self._view_of is not None:
            views.check_fresh(self)
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to a Python scalar")
        return self._data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        """The values as an ndarray sharing memory; refused while the tensor requires grad.
        Of a tensor that PyTorch would make a view of another (``x[0]``, ``x.T``: see
        ``views.py``), the array is read-only: PyTorch's would write into ``x``."""
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "numpy()")
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use tensor.detach().numpy()")
        return self._data if self._view_of is None else views.handed_out(self)

    def tolist(self):
        """The values as (nested) Python lists of numbers."""
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "tolist()")
        if self._view_of is not None:
            views.check_fresh(self)
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "numpy.asarray() (__array__)")
        if self._view_of is not None:
            views.check_fresh(self)
        if copy or dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(self._data.dtype if dtype is None else dtype)  # a copy: anyone's to write
        return self._data if self._view_of is None else views.handed_out(self)

    def __float__(self) -> float:
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "float()")
        return builtins.float(self.item())

    def __int__(self) -> int:
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "int()")
        return builtins.int(self.item())

    def __complex__(self) -> complex:
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "complex()")
        return builtins.complex(self.item())

    def __bool__(self) -> builtins.bool:
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "bool() (an if, while, and, or, not or assert on a tensor)")
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._data.size} elements is ambiguous")
        return builtins.bool(self._data.reshape(()).item())

    def __index__(self) -> int:
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "index() (a tensor used as a Python integer: range(t), x[:t], [..] * t)")
        if self._data.size != 1 or self.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be used as an index")
        return builtins.int(self.item())

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor; use t.item() for its value")
        return (self[i] for i in range(len(self)))

    def __hash__(self) -> int:
        return id(self)

    def __format__(self, spec: str) -> str:
        """Like PyTorch: a 0-d tensor formats as its number, others only without a spec."""
        if self.ndim == 0:
            if tracing.ACTIVE_TRACES and spec:
                tracing.refuse(self, f"format() with {spec!r}")
            return format(self._data.reshape(()).item(), spec)
        if spec:
            raise TypeError(f"unsupported format string {spec!r} for a Tensor of shape {list(self.shape)}")
        return repr(self)

    @property
    def expr(self):
        """This tensor's SymPy expression over the leaves it depends on (loads SymPy).

        >>> import symgrad
        >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True, name="w")
        >>> (w * 2).sin().sum().expr
        sum(sin(2*w))
        """
        from ..symbolic.derive.graph import tensor_expr

        return tensor_expr(self)

    def __repr__(self) -> str:
        from .printing import tensor_repr

        return tensor_repr(self)

    # ----------------------------------------------------------------- conversions
    def to(self, *args, dtype=None, device=None, non_blocking: builtins.bool = False,
           copy: builtins.bool = False) -> "Tensor":
        """This tensor with another dtype (a recorded cast, differentiable between float
        dtypes), in PyTorch's forms: ``to(dtype)``, ``to("cpu")``, ``to("cpu", dtype)``,
        ``to(other_tensor)`` (its dtype), ``to(device=..., dtype=...)``.  It is ``self``
        when nothing changes (unless ``copy=True``).  The only device is the CPU: any
        other raises (``symgrad.tape.devices``).

        >>> import symgrad
        >>> x = symgrad.tensor([1.0, 2.0])
        >>> x.to("cpu") is x, x.to(symgrad.float32).dtype, x.to("cpu", "float16").dtype
        (True, dtype('float32'), dtype('float16'))
        >>> x.to("cuda")
        Traceback (most recent call last):
        ...
        RuntimeError: Tensor.to: symgrad computes on the CPU only and cannot move tensors to 'cuda'; ...
        """
        dtype = devices.dtype_of_to(args, dtype, device, "Tensor.to", Tensor)
        dtype = self.dtype if dtype is None else dtypes.to_dtype(dtype)
        if dtype == self.dtype:
            return self.clone() if copy else self
        return apply_op("cast", self, dtype=dtype)

    @property
    def device(self) -> "devices.device":
        """Where the values live: always ``device(type='cpu')``."""
        return devices.CPU

    @property
    def is_cuda(self) -> builtins.bool:
        return False

    def cpu(self) -> "Tensor":
        """``self``: symgrad's tensors are on the CPU already."""
        return self

    def cuda(self, device=None, non_blocking: builtins.bool = False) -> "Tensor":
        """Refused: symgrad computes on the CPU only."""
        raise devices.cpu_only_error("Tensor.cuda", "cuda" if device is None else device)

    def float(self) -> "Tensor":
        return self.to(dtypes.float32)

    def double(self) -> "Tensor":
        return self.to(dtypes.float64)

    def long(self) -> "Tensor":
        return self.to(dtypes.int64)

    def int(self) -> "Tensor":
        return self.to(dtypes.int32)

    def bool(self) -> "Tensor":
        return self.to(dtypes.bool)

    def type(self, dtype) -> "Tensor":
        return self.to(dtype)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return apply_op("add", self, other)

    def __radd__(self, other):
        return apply_op("add", other, self)

    def __sub__(self, other):
        return apply_op("sub", self, other)

    def __rsub__(self, other):
        return apply_op("sub", other, self)

    def __mul__(self, other):
        return apply_op("mul", self, other)

    def __rmul__(self, other):
        return apply_op("mul", other, self)

    def __truediv__(self, other):
        return apply_op("div", self, other)

    def __rtruediv__(self, other):
        return apply_op("div", other, self)

    def __mod__(self, other):  # Python's %, PyTorch's remainder: the sign of the divisor
        return apply_op("remainder", self, other)

    def __rmod__(self, other):
        return apply_op("remainder", other, self)

    def __floordiv__(self, other):  # Python's //, PyTorch's floor_divide
        return apply_op("floor_divide", self, other)

    def __rfloordiv__(self, other):
        return apply_op("floor_divide", other, self)

    def __pow__(self, exponent):
        return self.pow(exponent)

    def __rpow__(self, base):
        return apply_op("pow", base, self)

    def __matmul__(self, other):
        return apply_op("matmul", self, other)

    def __rmatmul__(self, other):
        return apply_op("matmul", other, self)

    def __neg__(self):
        return apply_op("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply_op("abs", self)

    def add(self, other, *, alpha=1):
        """``self + alpha * other``, PyTorch's ``x.add(y, alpha=...)``."""
        return apply_op("add", self, _scaled(other, alpha))

    def sub(self, other, *, alpha=1):
        """``self - alpha * other``."""
        return apply_op("sub", self, _scaled(other, alpha))

    def mul(self, other):
        """``self * other``."""
        return apply_op("mul", self, other)

    def div(self, other, *, rounding_mode=None):
        """``self / other`` (true division; PyTorch's ``rounding_mode`` is refused, symgrad has
        no floor or trunc op to round with)."""
        _check_rounding_mode(rounding_mode)
        return apply_op("div", self, other)

    multiply, subtract, divide, true_divide = mul, sub, div, div

    def pow(self, exponent):
        """``self ** exponent``: a number exponent records PowBackward0, a tensor PowBackward1."""
        kind = type(exponent)  # an int or float at once (numbers.Number is an ABC: a slower check)
        if kind is int or kind is float or (
                isinstance(exponent, numbers.Number) and not isinstance(exponent, builtins.bool)):
            return apply_op("pow_scalar", self, exponent=exponent)
        return apply_op("pow", self, exponent)

    # comparisons and logical ops give boolean masks: mask ops of the table (ops/masks.py),
    # which eager code never records (no gradient flows through a mask) and a running
    # trace records when an operand is part of it (tracing.py)
    def __lt__(self, other):
        return apply_op("lt", self, other)

    def __le__(self, other):
        return apply_op("le", self, other)

    def __gt__(self, other):
        return apply_op("gt", self, other)

    def __ge__(self, other):
        return apply_op("ge", self, other)

    def __eq__(self, other):  # noqa: D105  (elementwise, like PyTorch)
        return apply_op("eq", self, other)

    def __ne__(self, other):
        return apply_op("ne", self, other)

    def __invert__(self):
        if self.dtype != dtypes.bool:
            raise TypeError(f"~ is only defined for boolean tensors, got {dtypes.dtype_name(self.dtype)}")
        return apply_op("logical_not", self)

    def __and__(self, other):
        return apply_op("logical_and", self, other)

    def __or__(self, other):
        return apply_op("logical_or", self, other)

    def all(self) -> "Tensor":
        """True where every element is nonzero, as a boolean tensor."""
        return tracing.mark(Tensor(np.asarray(np.all(self._data))), "all()", self)

    def any(self) -> "Tensor":
        """True where some element is nonzero, as a boolean tensor."""
        return tracing.mark(Tensor(np.asarray(np.any(self._data))), "any()", self)

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    def logical_and(self, other):
        return apply_op("logical_and", self, other)

    def logical_or(self, other):
        return apply_op("logical_or", self, other)

    def logical_not(self):
        return apply_op("logical_not", self)

    def allclose(self, other, rtol: float = 1e-5, atol: float = 1e-8) -> builtins.bool:
        """Whether every element is close to ``other``'s, as a Python bool."""
        other = as_tensor(other)
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "allclose()")
            tracing.refuse(other, "allclose()")
        return builtins.bool(np.allclose(self._data, other._data, rtol=rtol, atol=atol))

    def equal(self, other) -> builtins.bool:
        """Whether the shapes and all elements are equal, as a Python bool."""
        other = as_tensor(other)
        if tracing.ACTIVE_TRACES:
            tracing.refuse(self, "equal()")
            tracing.refuse(other, "equal()")
        return self.shape == other.shape and builtins.bool(np.array_equal(self._data, other._data))

    def argmax(self, dim: int | None = None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The int64 position of the first largest element (a NaN's, if any) of the flattened
        tensor or along ``dim``, as ``torch.argmax``: the op ``argmax``, without gradient,
        recomputed at every call of a transform.

        >>> import symgrad
        >>> symgrad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]).argmax(1)
        tensor([1, 0])
        """
        dim, keepdim = _dim_keywords("argmax", dim, axis, keepdim, keepdims)
        return apply_op("argmax", self, dim=_dims(dim), keepdim=builtins.bool(keepdim))

    def argmin(self, dim: int | None = None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The int64 position of the first smallest element, as :meth:`argmax`."""
        dim, keepdim = _dim_keywords("argmin", dim, axis, keepdim, keepdims)
        return apply_op("argmin", self, dim=_dims(dim), keepdim=builtins.bool(keepdim))

    # ----------------------------------------------------------------- elementwise math
    # exp, log, sin, ...: one method per public op of the table, made by _add_op_methods
    # below; the methods written out here have signatures of their own
    def polygamma(self, n: int):
        """``psi_n(x)``, the ``n``-th derivative of digamma (PyTorch's ``x.polygamma(n)``)."""
        return apply_op("polygamma", n, self)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0):
        return apply_op("softplus", self, beta=beta, threshold=threshold)

    def clamp(self, min=None, max=None):
        """Limit values to ``[min, max]`` (either bound may be None).  Bounds that are
        numbers are attributes of one ``clamp`` op; array or tensor bounds are inputs of
        ``clamp_tensor`` (broadcast with ``self``, and a tensor bound takes a gradient),
        a missing one passed as -inf or +inf.

        Gradients (PyTorch's): ``self`` gets it where ``min <= self <= max``, bounds
        included, never at a NaN; a tensor ``min`` where ``self < min < max``, a tensor
        ``max`` where ``self > max`` or ``max < min``.  Below ``min == max`` (and below
        ``min`` when ``max`` is NaN) PyTorch gives no gradient at all; here ``min`` gets it,
        as the derivative of the op's closed form does.

        >>> import symgrad
        >>> x = symgrad.tensor([-2.0, 0.5, 3.0])
        >>> x.clamp(min=0.0), x.clamp(max=symgrad.tensor([1.0, 0.0, 2.0]))
        (tensor([0.0000, 0.5000, 3.0000]), tensor([-2.,  0.,  2.]))
        """
        if min is None and max is None:
            raise RuntimeError("clamp needs at least one of 'min' or 'max'")
        if _is_bound_array(min) or _is_bound_array(max):
            return apply_op("clamp_tensor", self, -math.inf if min is None else min, math.inf if max is None else max)
        return apply_op("clamp", self, min=min, max=max)

    clip = clamp

    def maximum(self, other):
        """Elementwise maximum.  Gradients as in PyTorch: the smaller argument gets 0, a tie
        splits the gradient half/half, and where either argument is NaN both get all of it
        (so ``x.maximum(x)`` has gradient 2 at NaN, 1 elsewhere).

        >>> import symgrad
        >>> a = symgrad.tensor([1.0, 2.0, float("nan")], requires_grad=True)
        >>> a.maximum(symgrad.tensor([2.0, 2.0, 0.0])).sum().backward(); a.grad
        tensor([0.0000, 0.5000, 1.0000])
        """
        return apply_op("maximum", self, other)

    def minimum(self, other):
        """Elementwise minimum; gradients as for :meth:`maximum` (the larger argument gets 0)."""
        return apply_op("minimum", self, other)

    # ----------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The sum over all elements, or over ``dim`` (NumPy's ``axis``/``keepdims`` spellings too)."""
        dim, keepdim = _dim_keywords("sum", dim, axis, keepdim, keepdims)
        return apply_op("sum", self, dim=_dims(dim), keepdim=keepdim)

    def mean(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        dim, keepdim = _dim_keywords("mean", dim, axis, keepdim, keepdims)
        if not dtypes.is_floating(self.dtype):
            raise RuntimeError(f"mean() needs a floating dtype, got {dtypes.dtype_name(self.dtype)}; use .float() first")
        return apply_op("mean", self, dim=_dims(dim), keepdim=keepdim)

    def max(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The largest element, or ``(values, indices)`` along ``dim`` (or elementwise
        ``maximum`` when given a tensor).  As in PyTorch, the gradient of the largest
        element is split evenly between tied elements (between the NaNs, if any); along
        ``dim`` all of it goes to the first extreme index (the first NaN)."""
        dim, keepdim = _dim_keywords("max", dim, axis, keepdim, keepdims)
        return self._extreme("max", np.argmax, dim, keepdim)

    def min(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The smallest element, or ``(values, indices)`` along ``dim`` (or elementwise
        ``minimum`` when given a tensor)."""
        dim, keepdim = _dim_keywords("min", dim, axis, keepdim, keepdims)
        return self._extreme("min", np.argmin, dim, keepdim)

    def _extreme(self, name, argfunc, dim, keepdim):
        if isinstance(dim, Tensor):
            return apply_op("maximum" if name == "max" else "minimum", self, dim)
        if dim is None:
            return apply_op(name, self, dim=None, keepdim=False)
        values = apply_op(name, self, dim=dim, keepdim=keepdim)
        indices = Tensor(np.asarray(argfunc(self._data, axis=dim), dtype=np.int64))
        if keepdim:
            indices = Tensor(np.expand_dims(indices._data, dim))
        return MinMaxResult(values, tracing.mark(indices, f"{name}(dim=...).indices", self))

    def logsumexp(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        dim, keepdim = _dim_keywords("logsumexp", dim, axis, keepdim, keepdims)
        if dim is None:
            raise TypeError("logsumexp() missing the dimension(s) to reduce: pass dim (or axis)")
        return apply_op("logsumexp", self, dim=_dims(dim), keepdim=keepdim)

    def softmax(self, dim: int | None = None, *, axis=None):
        dim, _ = _dim_keywords("softmax", dim, axis, False, None)
        if dim is None:
            raise TypeError("softmax() missing the dimension to normalise over: pass dim (or axis)")
        return apply_op("softmax", self, dim=dim)

    def log_softmax(self, dim: int | None = None, *, axis=None):
        dim, _ = _dim_keywords("log_softmax", dim, axis, False, None)
        if dim is None:
            raise TypeError("log_softmax() missing the dimension to normalise over: pass dim (or axis)")
        return apply_op("log_softmax", self, dim=dim)

    def prod(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The product over all elements or over the int ``dim``; the gradient at zeros is
        PyTorch's (the product of the others at a lone zero, else 0)."""
        dim, keepdim = _dim_keywords("prod", dim, axis, keepdim, keepdims)
        if dim is not None and not isinstance(dim, (builtins.int, np.integer)):
            raise TypeError(f"prod takes one int dim (or None), got {dim!r}")
        return apply_op("prod", self, dim=None if dim is None else builtins.int(dim), keepdim=keepdim)

    def cumsum(self, dim: int | None = None, *, axis=None):
        """Running sums along ``dim``."""
        dim = _required_dim("cumsum", dim, axis)
        return apply_op("cumsum", self, dim=builtins.int(dim))

    def cumprod(self, dim: int | None = None, *, axis=None):
        """Running products along ``dim``; the gradient at zeros is PyTorch's."""
        dim = _required_dim("cumprod", dim, axis)
        return apply_op("cumprod", self, dim=builtins.int(dim))

    def logcumsumexp(self, dim: int):
        """``log(cumsum(exp(x)))`` along ``dim``, computed without overflow."""
        return apply_op("logcumsumexp", self, dim=builtins.int(dim))

    def amax(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The largest value over ``dim`` (None or ``()``: all dims; an int or a tuple); the
        gradient is split evenly between the tied largest elements of each slice, as PyTorch's."""
        dim, keepdim = _dim_keywords("amax", dim, axis, keepdim, keepdims)
        return apply_op("amax", self, dim=None if dim == () else _dims(dim), keepdim=keepdim)

    def amin(self, dim=None, keepdim: builtins.bool = False, *, axis=None, keepdims=None):
        """The smallest value over ``dim``; ties share the gradient evenly, as in :meth:`amax`."""
        dim, keepdim = _dim_keywords("amin", dim, axis, keepdim, keepdims)
        return apply_op("amin", self, dim=None if dim == () else _dims(dim), keepdim=keepdim)

    def norm(self, p=2, dim=None, keepdim: builtins.bool = False):
        """The vector ``p``-norm over all elements or over ``dim`` (``p`` a number >= 1, ``inf``,
        ``-inf`` or ``"fro"``, the 2-norm); see :func:`symgrad.linalg.vector_norm`."""
        if p in (2, "fro"):
            return apply_op("norm", self, dim=_dims(dim), keepdim=keepdim)
        from .composites import vector_norm

        return vector_norm(self, p, dim, keepdim)

    # ----------------------------------------------------------------- shape ops
    def matmul(self, other):
        return apply_op("matmul", self, other)

    def mm(self, other):
        return apply_op("matmul", self, other)

    def dot(self, other):
        return apply_op("matmul", self, other)

    def t(self):
        """Transpose of a tensor with at most two dimensions."""
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        if self.ndim < 2:
            return self
        out = self.transpose(0, 1)
        if out.grad_fn is not None:
            out.grad_fn.rename("TBackward0")  # PyTorch names t() apart from transpose()
        return out

    @property
    def mT(self):  # noqa: N802  (PyTorch's name)
        """The last two dimensions swapped (a batch of matrices, each transposed)."""
        if self.ndim < 2:
            raise RuntimeError(
                f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D tensor."
            )
        return self.transpose(-2, -1)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim))) if self.ndim > 1 else self

    def transpose(self, dim0: int, dim1: int):
        return apply_op("transpose", self, dim0=dim0, dim1=dim1)

    def permute(self, *dims):
        return apply_op("permute", self, dims=_shape_args(dims))

    def reshape(self, *shape):
        return apply_op("reshape", self, shape=_resolve_shape(self, _shape_args(shape)))

    def view(self, *shape):
        return self.reshape(*shape)

    def view_as(self, other):
        return self.reshape(other.shape)

    def flatten(self):
        return self.reshape(-1)

    def unsqueeze(self, dim: int | None = None, *, axis=None):
        dim, _ = _dim_keywords("unsqueeze", dim, axis, False, None)
        if dim is None:
            raise TypeError("unsqueeze() missing the position of the new dimension: pass dim (or axis)")
        return apply_op("unsqueeze", self, dim=dim)

    def squeeze(self, dim: int | None = None, *, axis=None):
        dim, _ = _dim_keywords("squeeze", dim, axis, False, None)
        return apply_op("squeeze", self, dim=dim)

    def expand(self, *shape):
        target = _shape_args(shape)
        lead = len(target) - self.ndim
        target = tuple(self.shape[i - lead] if size == -1 else size for i, size in enumerate(target))
        return apply_op("broadcast_to", self, shape=target)

    def expand_as(self, other):
        return self.expand(*other.shape)

    def broadcast_to(self, shape):
        return apply_op("broadcast_to", self, shape=tuple(shape))

    def clone(self):
        return apply_op("clone", self)

    def __getitem__(self, key):
        return apply_op("getitem", self, index=_index(key))

    # ----------------------------------------------------------------- in-place
    def _inplace(self, op_name: str, *others, **attrs) -> "Tensor":
        """Apply ``op_name(self, *others)`` and write the result into this tensor's memory.

        Recorded like PyTorch: the new value gets a node whose input is a snapshot of the
        old value, the version counter goes up, and a leaf that requires grad may only be
        changed under ``no_grad``.
        """
        recording = is_grad_enabled()
        root = views.before_inplace(self, op_name, recording) if self._view_of is not None else None
        if recording and self.is_leaf and self._requires_grad:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation; "
                "change it under `with symgrad.no_grad():`, or work on x.detach() or x.clone()"
            )
        if recording and (self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)):
            before = Tensor(self._data.copy(), _version=VersionCounter())
            before.grad_fn, before._requires_grad = self.grad_fn, self._requires_grad
            before._output_nr = self._output_nr
            before._accumulator = self._accumulator
            result = apply_op(op_name, before, *others, **attrs)
            self._write(result._data, op_name)
            if result.grad_fn is not None:
                old_fn, old_nr = self.grad_fn, self._output_nr
                self.grad_fn, self._output_nr = result.grad_fn, 0
                self.grad_fn.set_output(0, self)
                if self._retains_grad:  # as in PyTorch, .grad is the gradient of the current value
                    if old_fn is not None:
                        old_fn.retained[old_nr] = None
                    self.grad_fn.retained[0] = weakref.ref(self)
        elif tracing.ACTIVE_TRACES and any(tracing.is_traced(t) for t in (self, *others) if isinstance(t, Tensor)):
            self._inplace_while_tracing(op_name, others, attrs)
        else:  # nothing to record (no operand requires grad, or grad mode is off)
            self._write(_forward(op_name, (self,) + others, attrs)[2], op_name)
        if root is not None:
            views.write_through(self, root)
        return self

    def _inplace_while_tracing(self, op_name: str, others: tuple, attrs: dict) -> None:
        """An in-place op no gradient needs, where a running trace reads an operand.  A mask
        the trace follows (``m[0] = True``, ``m *= 3``) is followed through it, as its
        out-of-place form would be; any other traced tensor (an argument, a value changed
        under ``no_grad``) is marked as made outside the graph, so a later use raises rather
        than the compiled function computing it without the change."""
        before = Tensor(self._data.copy(), _version=VersionCounter())
        before._trace_node, before._made_outside_graph = self._trace_node, self._made_outside_graph
        result = apply_op(op_name, before, *others, **attrs)
        self._write(result._data, op_name)
        if self._trace_node is None and self._made_outside_graph is None and tracing.is_traced(self):
            self._made_outside_graph = f"an in-place {op_name} the trace cannot record"
        else:
            self._trace_node, self._made_outside_graph = result._trace_node, result._made_outside_graph

    def _write(self, values: np.ndarray, op_name: str) -> None:
        data = self._data
        if values.shape != data.shape:
            raise RuntimeError(
                f"in-place {op_name} would change the shape from {self.shape} to {values.shape}; "
                "in-place results must keep the tensor's shape"
            )
        if values.dtype is not data.dtype and not np.can_cast(values.dtype, data.dtype, casting="same_kind"):
            raise RuntimeError(
                f"in-place {op_name}: result type {dtypes.dtype_name(values.dtype)} can't be cast to "
                f"the tensor's dtype {dtypes.dtype_name(self.dtype)}"
            )
        self._data[...] = values
        self._version.value += 1

    def __iadd__(self, other):
        return self._inplace("add", other)

    def __isub__(self, other):
        return self._inplace("sub", other)

    def __imul__(self, other):
        return self._inplace("mul", other)

    def __itruediv__(self, other):
        return self._inplace("div", other)

    def add_(self, other, *, alpha=1):
        """``self += alpha * other`` in place."""
        return self._inplace("add", _scaled(other, alpha))

    def sub_(self, other, *, alpha=1):
        """``self -= alpha * other`` in place."""
        return self._inplace("sub", _scaled(other, alpha))

    def mul_(self, other):
        return self._inplace("mul", other)

    def div_(self, other, *, rounding_mode=None):
        _check_rounding_mode(rounding_mode)
        return self._inplace("div", other)

    def pow_(self, exponent):
        """``self **= exponent`` in place."""
        if isinstance(exponent, numbers.Number) and not isinstance(exponent, builtins.bool):
            return self._inplace("pow_scalar", exponent=exponent)
        return self._inplace("pow", exponent)

    def neg_(self):
        return self._inplace("neg")

    def square_(self):
        return self.pow_(2)

    def clamp_(self, min=None, max=None):
        if min is None and max is None:
            raise RuntimeError("clamp_ needs at least one of 'min' or 'max'")
        if _is_bound_array(min) or _is_bound_array(max):
            return self._inplace("clamp_tensor", -math.inf if min is None else min, math.inf if max is None else max)
        return self._inplace("clamp", min=min, max=max)

    def zero_(self):
        """Fill with zeros in place (how ``.grad`` is reset between steps)."""
        return self.fill_(0)

    def fill_(self, value):
        """Set every element to ``value`` in place."""
        if type(value) in (int, float) and self._view_of is None and not (self.requires_grad and is_grad_enabled()):
            # nothing to record: the assignment the setitem op would make, without the copy
            self._data[...] = value
            self._version.value += 1
            return self
        return self._inplace("setitem", value, index=(Ellipsis,))

    def copy_(self, source) -> "Tensor":
        """Copy ``source``'s values (broadcast) into this tensor in place."""
        return self._inplace("setitem", source, index=(Ellipsis,))

    def __setitem__(self, key, value):
        self._inplace("setitem", value, index=_index(key))


def _op_method(name: str):
    def method(self, *others, **attrs):
        return apply_op(name, self, *others, **attrs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``x.{name}(*others, **attrs)``: the op ``{name}`` of the op table on ``x`` and ``others``."
    return method


def _inplace_method(name: str):
    def method(self):
        return self._inplace(name)

    method.__name__ = method.__qualname__ = name + "_"
    method.__doc__ = f"``x.{name}_()``: ``x.{name}()`` written into ``x`` in place."
    return method


_NOT_INPLACE = {"clone"}  # a copy written over itself is no in-place form


def _add_op_methods() -> None:
    """Give ``Tensor`` a method for every public op of the table that the class does not
    write out (an op with a signature of its own: ``sum(dim, keepdim)``, ``clamp``...),
    and to each such one-input elementwise op its in-place form (``exp_``, ``abs_``...)."""
    for op in OPS.values():
        if op.public and op.name not in Tensor.__dict__:
            setattr(Tensor, op.name, _op_method(op.name))
            if op.kind == "elementwise" and op.arity == 1 and op.name not in _NOT_INPLACE:
                setattr(Tensor, op.name + "_", _inplace_method(op.name))


def _rebuild_tensor(array: np.ndarray, requires_grad: builtins.bool, name: str | None, constant) -> Tensor:
    """The other half of ``Tensor.__reduce_ex__``."""
    return Tensor(array, requires_grad=requires_grad, name=name, _constant=constant)


class MinMaxResult(tuple):
    """``(values, indices)`` returned by ``max(dim)``/``min(dim)``, ``sort`` and ``topk``, with
    named fields."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


# --------------------------------------------------------------------- helpers
def _constructor_data(data) -> np.ndarray:
    """What ``Tensor(data)`` holds for user data, as ``torch.Tensor(data)`` builds it: a
    sequence becomes an array of the default float dtype, a tensor's values are shared."""
    if isinstance(data, Tensor):
        return data._data
    if not isinstance(data, (list, tuple)):
        raise TypeError(
            f"Tensor(data): data must be a sequence (a list or tuple of numbers), an ndarray or a tensor, got "
            f"{type(data).__name__} {data!r:.60}; for a 0-d tensor use symgrad.tensor({data!r:.60})"
        )
    return dtypes.as_array(data, dtypes.get_default_dtype())


def _scaled(other, alpha):
    """``alpha * other`` for ``add``/``sub``'s ``alpha`` (``other`` itself when it is 1)."""
    if type(alpha) is int and alpha == 1:  # the default, at once
        return other
    if isinstance(alpha, builtins.bool) or not isinstance(alpha, numbers.Number):
        raise TypeError(f"alpha must be a number, got {type(alpha).__name__} {alpha!r:.60}")
    return other if alpha == 1 else apply_op("mul", other, alpha)


def _check_rounding_mode(rounding_mode) -> None:
    if rounding_mode is not None:
        raise NotImplementedError(
            f"div(rounding_mode={rounding_mode!r}) is not supported by symgrad (it has no floor or trunc op); "
            "divide, then round the values with NumPy outside the graph"
        )


def _dim_keywords(method: str, dim, axis, keepdim, keepdims):
    """``(dim, keepdim)`` from PyTorch's names or NumPy's (``axis``, ``keepdims``); giving
    both spellings of one argument raises, as in PyTorch."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{method}() got dim={dim!r} and axis={axis!r}; axis is NumPy's name for dim, pass one")
        dim = axis
    if keepdims is not None:
        if keepdim:
            raise TypeError(f"{method}() got keepdim and keepdims; keepdims is NumPy's name for keepdim, pass one")
        keepdim = keepdims
    return dim, keepdim


def _required_dim(method: str, dim, axis) -> int:
    """The one dim a running op needs, by PyTorch's name or NumPy's."""
    dim, _ = _dim_keywords(method, dim, axis, False, None)
    if dim is None:
        raise TypeError(f"{method}() missing the dimension to run along: pass dim (or axis)")
    return dim


def _dims(dim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(builtins.int(d) for d in dim)
    return builtins.int(dim)


def _shape_args(args) -> tuple[int, ...]:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(builtins.int(a) for a in args)


def _resolve_shape(tensor: Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Replace a single -1 in ``shape`` and check the element count, naming both shapes."""
    if shape.count(-1) > 1:
        raise RuntimeError(f"only one dimension can be inferred (-1) in shape {list(shape)}")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if known == 0 or tensor.numel() % known:
            raise RuntimeError(f"shape {list(shape)} is invalid for input of size {tensor.numel()}")
        shape = tuple(tensor.numel() // known if s == -1 else s for s in shape)
    elif known != tensor.numel():
        raise RuntimeError(f"shape {list(shape)} is invalid for input of size {tensor.numel()} (shape {list(tensor.shape)})")
    return shape


def _index(key) -> tuple:
    """Turn a Python index (ints, slices, None, Ellipsis, tensors, lists) into the op
    table's normal form (``normalize_index``); index tensors must not require grad."""
    parts = key if isinstance(key, tuple) else (key,)
    for part in parts:
        if isinstance(part, Tensor) and part.requires_grad:
            raise IndexError("an index tensor must not require grad; index with t.detach()")
    normalized = normalize_index(tuple(part._data if isinstance(part, Tensor) else part for part in parts))
    for part, array in zip(parts, normalized):
        if isinstance(part, Tensor) or (isinstance(part, np.ndarray) and array is not part):
            note_index_source(array, part)  # for printing: idx0 = labels
    if tracing.ACTIVE_TRACES:
        tracing.check_use(part for part in parts if isinstance(part, Tensor))
        tracing.note_index(parts, normalized)
    return normalized


def as_tensor(data, dtype=None) -> Tensor:
    """Return ``data`` as a tensor, without copying a tensor or ndarray of the right dtype.

    A list or tuple holding a tensor that requires grad raises ``TypeError`` (it would
    become a constant, its gradient lost; PyTorch only warns): join such tensors with
    ``symgrad.stack``. Every op reads its array arguments through this function.

    >>> import numpy as np, symgrad
    >>> a = np.zeros(2)
    >>> t = symgrad.as_tensor(a); t[0] = 5.0; a
    array([5., 0.])
    """
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor(dtypes.as_array(data, copy=False))
    if isinstance(data, (list, tuple)) and _holds_graph_tensor(data):
        raise TypeError("a list or tuple of tensors that require grad would become a constant here (its "
                        "gradient silently lost); join them with symgrad.stack (or symgrad.cat) first")
    return Tensor(dtypes.as_array(data, dtype))


def _holds_graph_tensor(data) -> builtins.bool:
    """Whether a (nested) list or tuple holds a tensor that requires grad."""
    return builtins.any(item.requires_grad if isinstance(item, Tensor) else
                        isinstance(item, (list, tuple)) and _holds_graph_tensor(item) for item in data)


def _is_bound_array(value) -> builtins.bool:
    """Whether a clamp bound is an array or tensor (an input), not a number (an attribute)."""
    return value is not None and not isinstance(value, numbers.Number) and not (
        isinstance(value, np.ndarray) and value.ndim == 0)


from .dispatch import _forward, apply_op  # noqa: E402  (dispatch reads Tensor)
_add_op_methods()
from . import numpy_protocol  # noqa: E402  (it reads Tensor and apply_op)
from . import engine  # noqa: E402  (Tensor.backward calls it; it reads Tensor; imported once, not per call)
