"""JAX translations of the helpers symgrad's generated NumPy code calls.

The ``"jax"`` export target writes generated NumPy code with ``numpy.<name>`` as
``jnp.<name>`` and each helper of :func:`symgrad.symbolic.forms.structural.numpy_namespace` as
the function of the same name here, with the same arguments (see :mod:`.translate`).  The
target copies the source of the ones it uses into the exported module; this file is read,
never imported, by the writer.  A helper missing here is an op the jax target cannot express.
"""
import jax.numpy as jnp


def array(values, dtype):
    return jnp.asarray(values, dtype=dtype)


def asarray(x, dtype=None):
    return jnp.asarray(x, dtype=dtype)


def equal(a, b):
    return jnp.equal(a, b)


def zeros(shape, dtype):
    return jnp.zeros(shape, dtype=dtype)


def result_type(*arrays):
    return jnp.result_type(*arrays)


def matmul(a, b):
    return jnp.matmul(a, b)


def sum(x, *, dim=None, keepdim=False):
    return jnp.sum(x, axis=dim, keepdims=keepdim)


def mean(x, *, dim=None, keepdim=False):
    return jnp.mean(x, axis=dim, keepdims=keepdim)


def max(x, *, dim=None, keepdim=False):
    return jnp.max(x, axis=dim, keepdims=keepdim)


def min(x, *, dim=None, keepdim=False):
    return jnp.min(x, axis=dim, keepdims=keepdim)


def logsumexp(x, *, dim=None, keepdim=False):
    m = jnp.max(x, axis=dim, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, 0)
    out = jnp.log(jnp.sum(jnp.exp(x - m), axis=dim, keepdims=True)) + m
    return out if keepdim else (out.reshape(()) if dim is None else jnp.squeeze(out, axis=dim))


def log_softmax(x, *, dim):
    shifted = x - jnp.max(x, axis=dim, keepdims=True)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=dim, keepdims=True))


def softmax(x, *, dim):
    e = jnp.exp(x - jnp.max(x, axis=dim, keepdims=True))
    return e / jnp.sum(e, axis=dim, keepdims=True)


def sigmoid(x):
    return jnp.exp(-jnp.logaddexp(0, -x))


def softplus(x):
    return jnp.logaddexp(0, x)


def sum_to(g, shape):
    """Sum ``g`` down to ``shape``, undoing broadcasting."""
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, size in enumerate(shape) if size == 1 and g.shape[lead + i] != 1)
    return (jnp.sum(g, axis=axes, keepdims=True) if axes else g).reshape(shape)


def broadcast_to(x, shape):
    return jnp.broadcast_to(x, tuple(shape))


def reshape(x, *, shape):
    return jnp.reshape(x, shape)


def transpose(x, *, dim0, dim1):
    return jnp.swapaxes(x, dim0, dim1)


def permute(x, *, dims):
    return jnp.transpose(x, dims)


def unsqueeze(x, *, dim):
    return jnp.expand_dims(x, dim)


def squeeze(x, *, dim=None):
    return jnp.squeeze(x, axis=dim)


def stack(*arrays, dim=0):
    return jnp.stack(arrays, axis=dim)


def cat(*arrays, dim=0):
    return jnp.concatenate(arrays, axis=dim)


def getitem(x, *, index):
    return x[index]


def index_put(values, *, shape, index):
    """An array of zeros of ``shape`` with ``values`` added at ``index`` (repeated indices accumulate)."""
    return jnp.zeros(shape, dtype=values.dtype).at[index].add(values)
