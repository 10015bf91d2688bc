"""PyTorch habits on symgrad's ``Tensor``: the ``Tensor(...)`` constructor, ``from_numpy``,
devices (``.cpu()``, ``.to("cpu")``, ``.device``), ``.mT``, the method and in-place forms of
arithmetic and of one-input ops, ``name=`` on creation functions, ``del x.grad`` and the
``axis=``/``keepdims=`` spellings of reductions.  Values and gradients are compared with
torch where it is installed."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.ops import OPS


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------- construction
@pytest.mark.parametrize("data", [[1, 2], [1.5, -2.0], [[1, 2], [3, 4]], (True, False), []])
def test_tensor_constructor_builds_default_float_like_torch(data):
    torch = _torch()
    ours, theirs = symgrad.Tensor(data), torch.Tensor(data)
    assert ours.dtype == symgrad.get_default_dtype()
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_constructor_follows_the_default_dtype():
    symgrad.set_default_dtype(symgrad.float32)
    try:
        assert symgrad.Tensor([1, 2]).dtype == symgrad.float32
    finally:
        symgrad.set_default_dtype(symgrad.float64)


def test_tensor_constructor_refuses_a_number_like_torch():
    torch = _torch()
    with pytest.raises(TypeError, match="must be a sequence"):
        torch.Tensor(3.0)
    with pytest.raises(TypeError, match=r"data must be a sequence.*got float 3.0.*symgrad.tensor\(3.0\)"):
        symgrad.Tensor(3.0)


def test_tensor_constructor_of_a_tensor_shares_its_values():
    x = symgrad.tensor([1, 2])
    y = symgrad.Tensor(x)
    y[0] = 7
    assert y.dtype == x.dtype and x.tolist() == [7, 2]


LISTS_OF_GRAPH_TENSORS = {  # an op's argument given as a list holding a tensor that requires grad
    "linalg.norm": lambda x: symgrad.linalg.norm([x, x + 2]),
    "linalg.det": lambda x: symgrad.linalg.det([[x, 1.0], [2.0, x]]),
    "add": lambda x: symgrad.add(x, [x, 1.0]),
    "operator +": lambda x: x + [x, 1.0],
    "matmul": lambda x: symgrad.matmul([[x, 1.0]], symgrad.ones(2)),
    "where": lambda x: symgrad.where(symgrad.tensor([True, False]), (x, x * 2), 0.0),
    "as_tensor": lambda x: symgrad.as_tensor([1.0, x]),
    "exp": lambda x: symgrad.exp([x]),
}


@pytest.mark.parametrize("name", sorted(LISTS_OF_GRAPH_TENSORS))
def test_a_list_of_tensors_that_require_grad_is_refused_not_made_a_constant(name):
    # found porting HIPS autograd's test_norm_list_of_boxes: symgrad.linalg.norm([x, x + 2])
    # returned tensor(2.) with no grad_fn (the list became a constant), so the gradient was lost
    x = symgrad.tensor(0.5, requires_grad=True)
    with pytest.raises(TypeError, match="symgrad.stack"):
        LISTS_OF_GRAPH_TENSORS[name](x)


def test_a_list_of_tensors_without_grad_is_still_a_constant_and_tensor_copies():
    plain = symgrad.tensor(0.5)
    assert symgrad.as_tensor([plain, 2.0]).tolist() == [0.5, 2.0]
    x = symgrad.tensor(0.5, requires_grad=True)
    copied = symgrad.tensor([x, 2.0])  # torch.tensor's explicit copy, as PyTorch: no graph
    assert copied.grad_fn is None and not copied.requires_grad


def test_from_numpy_shares_memory_both_ways_and_keeps_dtype():
    array = np.array([1.0, 2.0], dtype=np.float32)
    t = symgrad.from_numpy(array, name="a")
    assert t.dtype == symgrad.float32 and t.name == "a"
    array[0] = 5.0
    t[1] = 9.0
    assert t.tolist() == [5.0, 9.0] and array.tolist() == [5.0, 9.0]


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, np.array(["a"])])
def test_from_numpy_refuses_what_is_not_a_numeric_ndarray(bad):
    with pytest.raises(TypeError, match="from_numpy|numbers or booleans"):
        symgrad.from_numpy(bad)


CREATIONS = [
    lambda name: symgrad.tensor([1.0], name=name),
    lambda name: symgrad.FloatTensor([1.0], name=name),
    lambda name: symgrad.zeros(2, name=name),
    lambda name: symgrad.ones(2, name=name),
    lambda name: symgrad.full((2,), 3.0, name=name),
    lambda name: symgrad.eye(2, name=name),
    lambda name: symgrad.arange(3, name=name),
    lambda name: symgrad.linspace(0, 1, 3, name=name),
    lambda name: symgrad.rand(2, name=name),
    lambda name: symgrad.randn(2, name=name),
    lambda name: symgrad.zeros_like(symgrad.ones(2), name=name),
    lambda name: symgrad.ones_like(symgrad.ones(2), name=name),
    lambda name: symgrad.full_like(symgrad.ones(2), 2.0, name=name),
    lambda name: symgrad.rand_like(symgrad.ones(2), name=name),
    lambda name: symgrad.randn_like(symgrad.ones(2), name=name),
    lambda name: symgrad.from_numpy(np.ones(2), name=name),
]


@pytest.mark.parametrize("make", CREATIONS)
def test_every_creation_function_takes_a_name(make):
    assert make("w").name == "w"
    with pytest.raises(TypeError, match="name must be a string"):
        make(3)


def test_a_named_creation_names_the_closed_form_gradient():
    w = symgrad.ones(2, requires_grad=True, name="w")
    assert str((w * w).sum().expr) == "sum(w**2)"


# ---------------------------------------------------------------------- devices
def test_device_says_cpu_like_torch():
    torch = _torch()
    x = symgrad.ones(2)
    assert repr(x.device) == repr(torch.ones(2).device) == "device(type='cpu')"
    assert str(x.device) == "cpu" and x.device == symgrad.device("cpu") and not x.is_cuda
    assert x.device != symgrad.device("cuda")
    assert x.cpu() is x and x.to("cpu") is x and x.to(symgrad.device("cpu")) is x


@pytest.mark.parametrize("args, kwargs, dtype", [
    ((symgrad.float32,), {}, symgrad.float32),
    (("float16",), {}, symgrad.float16),
    (("cpu", symgrad.float32), {}, symgrad.float32),
    ((), dict(device="cpu", dtype=symgrad.int64), symgrad.int64),
    ((symgrad.ones(1, dtype=symgrad.float32),), {}, symgrad.float32),
])
def test_to_takes_torchs_forms(args, kwargs, dtype):
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(*args, **kwargs)
    assert y.dtype == dtype and y.tolist() == [1.0, 2.0]


def test_to_a_float_dtype_is_differentiable_and_copy_makes_a_new_tensor():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    (x.to("cpu", symgrad.float32) * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0] and x.grad.dtype == symgrad.float64
    assert x.to(symgrad.float64, copy=True) is not x


@pytest.mark.parametrize("call, message", [
    (lambda x: x.to("cuda"), "CPU only and cannot move tensors to 'cuda'"),
    (lambda x: x.to("cuda:1", symgrad.float32), "'cuda:1'"),
    (lambda x: x.to(device="mps"), "'mps'"),
    (lambda x: x.cuda(), "Tensor.cuda: symgrad computes on the CPU only"),
])
def test_other_devices_raise_naming_the_device(call, message):
    x = symgrad.ones(2)
    with pytest.raises(RuntimeError, match=message):
        call(x)


@pytest.mark.parametrize("call, error, message", [
    (lambda x: x.to("cpu", "cpu"), TypeError, "device twice"),
    (lambda x: x.to(symgrad.float32, symgrad.float64), TypeError, "dtype twice"),
    (lambda x: x.to("cpu", symgrad.float32, None), TypeError, "at most a device and a dtype"),
    (lambda x: x.to("gpu"), TypeError, "not a dtype"),
    (lambda x: symgrad.device("cuda:x"), RuntimeError, "device type at start of device string"),
    (lambda x: symgrad.device("cpu:0", 1), RuntimeError, "already names an index"),
])
def test_bad_to_arguments_raise(call, error, message):
    with pytest.raises(error, match=message):
        call(symgrad.ones(2))


def test_module_to_cpu_and_dtype():
    model = symgrad.nn.Linear(2, 1)
    assert model.cpu() is model and model.to("cpu") is model
    assert model.to("cpu", symgrad.float32).weight.dtype == symgrad.float32
    with pytest.raises(RuntimeError, match="Module.to: symgrad computes on the CPU only"):
        model.to("cuda")
    assert model.weight.dtype == symgrad.float32


# ---------------------------------------------------------------------- mT and arithmetic methods
def test_mT_transposes_the_last_two_dims_like_torch():
    torch = _torch()
    data = np.arange(24.0).reshape(2, 3, 4)
    x = symgrad.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    weights = np.arange(24.0).reshape(2, 4, 3)
    (x.mT * symgrad.tensor(weights)).sum().backward()
    (t.mT * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(x.mT.detach().numpy(), t.mT.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    with pytest.raises(RuntimeError, match="only supported on matrices or batches of matrices. Got 1-D"):
        symgrad.ones(3).mT


METHOD_CASES = [
    ("add", (2.0,), {}), ("add", ("y",), dict(alpha=3)), ("add", ("y",), dict(alpha=-0.5)),
    ("sub", ("y",), {}), ("sub", ("y",), dict(alpha=2)), ("mul", ("y",), {}), ("div", ("y",), {}),
    ("pow", (3,), {}), ("pow", ("y",), {}), ("multiply", ("y",), {}), ("subtract", ("y",), {}),
    ("divide", ("y",), {}), ("true_divide", ("y",), {}),
]


@pytest.mark.parametrize("method, args, kwargs", METHOD_CASES)
def test_method_forms_match_torch_in_value_and_gradient(method, args, kwargs, rng):
    torch = _torch()
    x_data, y_data = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 2.0, (3,))
    results = []
    for lib, make in ((symgrad, symgrad.tensor), (torch, torch.tensor)):
        x, y = make(x_data, requires_grad=True), make(y_data, requires_grad=True)
        out = getattr(x, method)(*[y if a == "y" else a for a in args], **kwargs)
        out.sum().backward()
        results.append([out.detach().numpy(), x.grad.numpy(), None if y.grad is None else y.grad.numpy()])
    for ours, theirs in zip(*results):
        if theirs is None:
            assert ours is None
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-14)


@pytest.mark.parametrize("method, args, kwargs", [
    ("add_", ("y",), dict(alpha=3)), ("sub_", ("y",), dict(alpha=0.5)), ("mul_", ("y",), {}),
    ("div_", ("y",), {}), ("pow_", (2,), {}), ("pow_", ("y",), {}), ("neg_", (), {}), ("square_", (), {}),
])
def test_inplace_arithmetic_matches_torch_through_a_graph(method, args, kwargs, rng):
    torch = _torch()
    x_data, y_data = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 2.0, (3,))
    results = []
    for make in (symgrad.tensor, torch.tensor):
        x, y = make(x_data, requires_grad=True), make(y_data, requires_grad=True)
        z = x * 1.5
        out = getattr(z, method)(*[y if a == "y" else a for a in args], **kwargs)
        assert out is z
        (z * z).sum().backward()
        results.append([z.detach().numpy(), x.grad.numpy(), None if y.grad is None else y.grad.numpy()])
    for ours, theirs in zip(*results):
        if theirs is None:
            assert ours is None
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-13)


def test_integer_add_with_alpha_like_torch():
    torch = _torch()
    ours = symgrad.tensor([1, 2]).add_(symgrad.tensor([1, 1]), alpha=2)
    theirs = torch.tensor([1, 2]).add_(torch.tensor([1, 1]), alpha=2)
    assert ours.dtype == symgrad.int64 and ours.tolist() == theirs.tolist()


def test_free_functions_take_alpha():
    x, y = symgrad.tensor([1.0, 2.0]), symgrad.tensor([10.0, 20.0])
    assert symgrad.add(x, y, alpha=2).tolist() == [21.0, 42.0]
    assert symgrad.sub(x, y, alpha=0.1).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("call, error, message", [
    (lambda x: x.add(1.0, alpha="2"), TypeError, "alpha must be a number, got str"),
    (lambda x: x.add_(1.0, alpha=None), TypeError, "alpha must be a number, got NoneType"),
    (lambda x: x.div(2.0, rounding_mode="floor"), NotImplementedError, "rounding_mode='floor'"),
    (lambda x: symgrad.div(x, 2.0, rounding_mode="trunc"), NotImplementedError, "rounding_mode='trunc'"),
])
def test_bad_arithmetic_arguments_raise_and_change_nothing(call, error, message):
    x = symgrad.tensor([1.0, 2.0])
    with pytest.raises(error, match=message):
        call(x)
    assert x.tolist() == [1.0, 2.0] and x._version.value == 0


# ---------------------------------------------------------------------- in-place one-input ops
# the in-place forms made from the op table (a hand-written one, such as clamp_, has its own signature)
UNARY_INPLACE = sorted(op.name for op in OPS.values()
                       if op.public and op.kind == "elementwise" and op.arity == 1
                       and getattr(symgrad.Tensor.__dict__.get(op.name + "_"), "__qualname__", "") == op.name + "_")


def test_every_public_one_input_elementwise_op_has_an_inplace_form():
    assert {"abs", "exp", "log", "sin", "cos", "tanh", "sigmoid", "relu", "sqrt"} <= set(UNARY_INPLACE)
    assert not hasattr(symgrad.Tensor, "clone_")


@pytest.mark.parametrize("name", UNARY_INPLACE)
def test_inplace_unary_matches_torch(name, rng):
    """symgrad's ``x.op_()`` against torch's ``x.op()``: same values and gradients."""
    torch = _torch()
    if not hasattr(torch.Tensor, name + "_"):
        pytest.skip(f"torch has no Tensor.{name}_")
    data = OPS[name].domains[0].sample(rng, (5,))
    results = []
    for make, suffix in ((symgrad.tensor, "_"), (torch.tensor, "")):  # torch has no derivative for some x.op_()
        x = make(data, requires_grad=True)
        z = x * 1.0
        z = getattr(z, name + suffix)()
        z.sum().backward()
        results.append((z.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-8)  # torch's trigamma differs by ~1e-10


def test_inplace_unary_on_a_leaf_that_requires_grad_raises_and_keeps_the_values():
    x = symgrad.tensor([-1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.abs_()
    assert x.tolist() == [-1.0, 2.0]
    with symgrad.no_grad():
        x.abs_()
    assert x.tolist() == [1.0, 2.0]


def test_inplace_unary_refuses_a_float_result_in_an_integer_tensor():
    x = symgrad.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.exp_()
    assert x.tolist() == [1, 2]


# ---------------------------------------------------------------------- grad, dims
def test_del_grad_is_grad_none():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad is not None
    del x.grad
    assert x.grad is None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]  # accumulation starts again from nothing


AXIS_METHODS = ["sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax", "argmax", "argmin",
                "squeeze", "unsqueeze", "amax", "amin", "prod", "cumsum", "cumprod", "std", "var"]


def _values(result):
    """The values of a reduction's result (``max``/``min`` along a dim give ``(values, indices)``)."""
    return (result[0] if isinstance(result, tuple) else result).numpy()


@pytest.mark.parametrize("method", AXIS_METHODS)
def test_axis_is_dim_like_torch(method, rng):
    torch = _torch()
    data = rng.standard_normal((3, 1, 4))
    by_axis = getattr(symgrad.tensor(data), method)(axis=1)
    np.testing.assert_array_equal(_values(by_axis), _values(getattr(symgrad.tensor(data), method)(dim=1)))
    np.testing.assert_allclose(_values(by_axis), _values(getattr(torch.tensor(data), method)(axis=1)), rtol=1e-14)


@pytest.mark.parametrize("method", ["sum", "mean", "max", "min", "logsumexp", "argmax", "argmin", "amax", "amin",
                                    "prod", "std", "var"])
def test_keepdims_is_keepdim(method, rng):
    torch = _torch()
    data = rng.standard_normal((3, 4))
    ours = _values(getattr(symgrad.tensor(data), method)(axis=0, keepdims=True))
    theirs = _values(getattr(torch.tensor(data), method)(dim=0, keepdims=True))
    assert ours.shape == theirs.shape == (1, 4)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)


def test_free_sum_takes_axis_and_the_gradient_flows():
    x = symgrad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (symgrad.sum(x, axis=0) * symgrad.tensor([1.0, 10.0])).sum().backward()
    assert x.grad.tolist() == [[1.0, 10.0], [1.0, 10.0]]


@pytest.mark.parametrize("call, message", [
    (lambda x: x.sum(dim=0, axis=0), "got dim=0 and axis=0"),
    (lambda x: x.mean(0, keepdim=True, keepdims=True), "keepdim and keepdims"),
    (lambda x: x.softmax(), "softmax\\(\\) missing the dimension"),
    (lambda x: x.logsumexp(), "logsumexp\\(\\) missing"),
    (lambda x: x.unsqueeze(), "unsqueeze\\(\\) missing"),
    (lambda x: x.cumsum(), "cumsum\\(\\) missing"),
    (lambda x: x.amax(0, axis=0), "got dim=0 and axis=0"),
    (lambda x: x.std(0, keepdim=True, keepdims=True), "keepdim and keepdims"),
])
def test_dim_keyword_errors(call, message):
    with pytest.raises(TypeError, match=message):
        call(symgrad.ones(2, 2))
