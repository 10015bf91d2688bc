"""PyTorch translations of the helpers symgrad's generated NumPy code calls.

The ``"torch"`` export target rewrites generated NumPy code into torch code: each
``numpy.<name>`` becomes the ``torch`` function of :data:`~symgrad.exporters.torch_target.TORCH_NAMES`
(for the functions of :data:`~symgrad.exporters.torch_target.TENSORS_ONLY`, the function of
the same name here), and each helper of :func:`symgrad.symbolic.forms.structural.numpy_namespace`
the function of the same name here, with the same arguments.  The target copies the source of the ones
it uses into the exported module (this file is read, never imported, by the writer, so
exporting needs no torch; verifying does).  A helper missing here is an op the torch
target cannot express.
"""
import torch


def as_tensor(x):
    """``x`` as a tensor; a Python float becomes float64, as NumPy makes it (not torch's default float32)."""
    return torch.tensor(x, dtype=torch.float64) if isinstance(x, float) else torch.as_tensor(x)


def array(values, dtype):
    return torch.tensor(values, dtype=getattr(torch, dtype))


def asarray(x, dtype=None):
    x = as_tensor(x)
    return x if dtype is None else x.to(getattr(torch, dtype))


def equal(a, b):
    return torch.eq(as_tensor(a), as_tensor(b))


def maximum(a, b):
    return torch.maximum(as_tensor(a), as_tensor(b))


def minimum(a, b):
    return torch.minimum(as_tensor(a), as_tensor(b))


def logaddexp(a, b):
    return torch.logaddexp(as_tensor(a), as_tensor(b))


def arctan2(a, b):
    return torch.atan2(as_tensor(a), as_tensor(b))


def matmul(a, b):
    return torch.matmul(a, b)


def sum(x, *, dim=None, keepdim=False):
    return torch.sum(x) if dim is None else torch.sum(x, dim=dim, keepdim=keepdim)


def mean(x, *, dim=None, keepdim=False):
    return torch.mean(x) if dim is None else torch.mean(x, dim=dim, keepdim=keepdim)


def max(x, *, dim=None, keepdim=False):
    return torch.amax(x) if dim is None else torch.amax(x, dim=dim, keepdim=keepdim)


def min(x, *, dim=None, keepdim=False):
    return torch.amin(x) if dim is None else torch.amin(x, dim=dim, keepdim=keepdim)


def logsumexp(x, *, dim=None, keepdim=False):
    if dim is None:
        return torch.logsumexp(x.reshape(-1), dim=0)
    return torch.logsumexp(x, dim=dim, keepdim=keepdim)


def softmax(x, *, dim):
    return torch.softmax(x, dim=dim)


def log_softmax(x, *, dim):
    return torch.log_softmax(x, dim=dim)


def sigmoid(x):
    return torch.sigmoid(as_tensor(x))


def softplus(x):
    x = as_tensor(x)
    return torch.logaddexp(torch.zeros_like(x), x)


def sum_to(g, shape):
    """Sum ``g`` down to ``shape``, undoing broadcasting."""
    shape = tuple(shape)
    lead = g.dim() - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, size in enumerate(shape) if size == 1 and g.shape[lead + i] != 1)
    return (torch.sum(g, dim=dims, keepdim=True) if dims else g).reshape(shape)


def broadcast_to(x, shape):
    return torch.broadcast_to(as_tensor(x), tuple(shape)).clone()


def reshape(x, *, shape):
    return torch.reshape(x, shape)


def transpose(x, *, dim0, dim1):
    return torch.transpose(x, dim0, dim1)


def permute(x, *, dims):
    return torch.permute(x, dims)


def unsqueeze(x, *, dim):
    return torch.unsqueeze(x, dim)


def squeeze(x, *, dim=None):
    return torch.squeeze(x) if dim is None else torch.squeeze(x, dim)


def stack(*arrays, dim=0):
    return torch.stack(arrays, dim=dim)


def cat(*arrays, dim=0):
    return torch.cat(arrays, dim=dim)


def getitem(x, *, index):
    return x[index]


def index_put(values, *, shape, index):
    """An array of zeros of ``shape`` with ``values`` added at ``index`` (repeated indices accumulate)."""
    out = torch.zeros(shape, dtype=values.dtype)
    tensors = [isinstance(item, torch.Tensor) for item in index]
    if all(tensors):
        return out.index_put_(tuple(index), values, accumulate=True)
    if any(tensors):
        raise ValueError("index_put mixes index arrays with slices; this export cannot accumulate into it")
    out[index] = values  # basic indexing selects each element at most once
    return out


def zeros(shape, dtype):
    return torch.zeros(shape, dtype=dtype)


def result_type(*arrays):
    dtype = as_tensor(arrays[0]).dtype
    for a in arrays[1:]:
        dtype = torch.promote_types(dtype, as_tensor(a).dtype)
    return dtype
