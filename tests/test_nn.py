"""Tests of ``symgrad.nn``: functional losses and activations, Module, Parameter, Linear.

Tests that compare with torch call ``pytest.importorskip("torch")`` themselves, so the
rest of the file runs without torch.
"""
from __future__ import annotations

import copy
import math
import warnings
import zlib
from collections import OrderedDict

import numpy as np
import pytest

import symgrad
from symgrad import nn
from symgrad.nn import functional as F

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


# ---------------------------------------------------------------------- input makers
def normal(scale=1.0):
    return lambda rng, shape: rng.standard_normal(shape) * scale


def uniform(low, high):
    return lambda rng, shape: rng.uniform(low, high, shape)


def huge_logits(rng, shape):
    """Logits far beyond exp's range mixed with ordinary ones."""
    return rng.choice([-1000.0, -60.0, -1.0, 0.0, 0.5, 60.0, 1000.0], size=shape)


def classes_for(shape, ignore=False):
    """Class-index targets for an input of ``shape`` ((C,), (N, C) or (N, C, d...))."""
    def make(rng, _):
        n_classes = shape[0] if len(shape) == 1 else shape[1]
        target_shape = () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])
        target = rng.integers(0, n_classes, size=target_shape)
        if ignore and target.size > 1:
            target.flat[0] = -100
        return target
    return make


class Case:
    """One functional call compared with torch.

    ``inputs`` are (name, maker, differentiable) triples of positional tensor arguments;
    ``options`` holds keyword tensors (``weight``, ``pos_weight``, made by makers from the
    input shape) and plain keyword values.
    """

    def __init__(self, name, function, shapes, inputs, tensor_options=None, options=None, same_grad_fn=True):
        self.same_grad_fn = same_grad_fn
        self.name = name
        self.function = function
        self.shapes = shapes
        self.inputs = inputs
        self.tensor_options = tensor_options or {}
        self.options = options or {}


def _losses():
    cases = []
    shapes = [(5,), (3, 4), (2, 3, 4)]
    for shape in shapes:
        for reduction in ("none", "mean", "sum"):
            tag = f"{'x'.join(map(str, shape))}-{reduction}"
            cases += [
                Case(f"mse_loss-{tag}", "mse_loss", [shape],
                     [("input", normal(), True), ("target", normal(), True)], options=dict(reduction=reduction)),
                Case(f"l1_loss-{tag}", "l1_loss", [shape],
                     [("input", normal(), True), ("target", normal(), True)], options=dict(reduction=reduction)),
                Case(f"huber_loss-{tag}", "huber_loss", [shape],
                     [("input", normal(2.0), True), ("target", normal(), True)], options=dict(reduction=reduction)),
                Case(f"huber_loss-delta-{tag}", "huber_loss", [shape],
                     [("input", normal(2.0), True), ("target", normal(), True)],
                     options=dict(reduction=reduction, delta=0.3)),
                Case(f"bce_logits-{tag}", "binary_cross_entropy_with_logits", [shape],
                     [("input", normal(3.0), True), ("target", uniform(0, 1), True)],
                     options=dict(reduction=reduction)),
                Case(f"bce_logits-weights-{tag}", "binary_cross_entropy_with_logits", [shape],
                     [("input", normal(3.0), True), ("target", uniform(0, 1), True)],
                     tensor_options=dict(weight=lambda rng, s: rng.uniform(0.5, 2.0, s[-1:]),
                                         pos_weight=lambda rng, s: rng.uniform(0.2, 3.0, s[-1:])),
                     options=dict(reduction=reduction)),
                Case(f"bce_logits-huge-{tag}", "binary_cross_entropy_with_logits", [shape],
                     [("input", huge_logits, True), ("target", uniform(0, 1), False)],
                     options=dict(reduction=reduction)),
                Case(f"bce-{tag}", "binary_cross_entropy", [shape],
                     [("input", uniform(0.02, 0.98), True), ("target", uniform(0, 1), True)],
                     options=dict(reduction=reduction)),
                Case(f"bce-weight-{tag}", "binary_cross_entropy", [shape],
                     [("input", uniform(0.02, 0.98), True), ("target", uniform(0, 1), False)],
                     tensor_options=dict(weight=lambda rng, s: rng.uniform(0.5, 2.0, s)),
                     options=dict(reduction=reduction)),
            ]
    for shape in [(4,), (3, 4), (2, 3, 4), (2, 3, 2, 2)]:
        for reduction in ("none", "mean", "sum"):
            tag = f"{'x'.join(map(str, shape))}-{reduction}"
            class_weight = dict(weight=lambda rng, s: rng.uniform(0.5, 2.0, (s[0] if len(s) == 1 else s[1],)))
            cases += [
                Case(f"cross_entropy-{tag}", "cross_entropy", [shape],
                     [("input", normal(2.0), True), ("target", classes_for(shape), False)],
                     options=dict(reduction=reduction)),
                Case(f"cross_entropy-weight-smoothing-{tag}", "cross_entropy", [shape],
                     [("input", normal(2.0), True), ("target", classes_for(shape), False)],
                     tensor_options=class_weight, options=dict(reduction=reduction, label_smoothing=0.2)),
                Case(f"cross_entropy-probabilities-{tag}", "cross_entropy", [shape],
                     [("input", normal(2.0), True), ("target", uniform(0, 1), True)],
                     options=dict(reduction=reduction, label_smoothing=0.1)),
                Case(f"nll_loss-{tag}", "nll_loss", [shape],
                     [("input", normal(), True), ("target", classes_for(shape), False)],
                     options=dict(reduction=reduction)),
            ]
            if len(shape) > 1:
                cases += [
                    Case(f"cross_entropy-ignore-{tag}", "cross_entropy", [shape],
                         [("input", normal(2.0), True), ("target", classes_for(shape, ignore=True), False)],
                         tensor_options=class_weight, options=dict(reduction=reduction)),
                    Case(f"nll_loss-weight-ignore-{tag}", "nll_loss", [shape],
                         [("input", normal(), True), ("target", classes_for(shape, ignore=True), False)],
                         tensor_options=class_weight, options=dict(reduction=reduction)),
                ]
    return cases


def _activations():
    cases = []
    for shape in [(5,), (3, 4), (2, 3, 4)]:
        tag = "x".join(map(str, shape))
        cases += [
            Case(f"relu-{tag}", "relu", [shape], [("input", normal(), True)]),
            Case(f"sigmoid-{tag}", "sigmoid", [shape], [("input", normal(3.0), True)]),
            Case(f"tanh-{tag}", "tanh", [shape], [("input", normal(2.0), True)]),
            Case(f"softmax-{tag}", "softmax", [shape], [("input", normal(3.0), True)], options=dict(dim=-1)),
            Case(f"log_softmax-{tag}", "log_softmax", [shape], [("input", normal(3.0), True)], options=dict(dim=0)),
        ]
    cases.append(Case("linear", "linear", [(4, 3)],
                      [("input", normal(), True), ("weight", lambda rng, s: rng.standard_normal((2, 3)), True),
                       ("bias", lambda rng, s: rng.standard_normal(2), True)],
                      same_grad_fn=False))  # torch fuses into AddmmBackward0; symgrad records mm + add
    return cases


FUNCTIONAL_CASES = _losses() + _activations()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", FUNCTIONAL_CASES, ids=lambda c: c.name)
def test_functional_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    shape = case.shapes[0]
    arrays = []
    for _, make, _ in case.inputs:
        array = np.asarray(make(rng, shape))
        arrays.append(array if array.dtype.kind in "iu" else array.astype(dtype))
    tensor_options = {key: make(rng, shape).astype(dtype) for key, make in case.tensor_options.items()}

    def build(lib):
        leaves = []
        for (_, _, differentiable), array in zip(case.inputs, arrays):
            leaf = lib.tensor(array)
            if differentiable:
                leaf.requires_grad_(True)
            leaves.append(leaf)
        options = dict(case.options, **{key: lib.tensor(value) for key, value in tensor_options.items()})
        functional = torch.nn.functional if lib is torch else F
        return leaves, getattr(functional, case.function)(*leaves, **options)

    t_leaves, t_out = build(torch)
    s_leaves, s_out = build(symgrad)
    expected = t_out.detach().numpy()
    assert s_out.shape == tuple(t_out.shape)
    assert s_out.dtype == expected.dtype
    np.testing.assert_allclose(s_out.detach().numpy(), expected, **TOL[dtype])
    # grad_fn names: PyTorch's, except a division by a number, which symgrad records as DivBackward0
    torch_name = t_out.grad_fn.name().replace("DivBackward1", "DivBackward0")
    if case.same_grad_fn:
        assert s_out.grad_fn.name() == torch_name

    upstream = rng.standard_normal(expected.shape).astype(dtype)
    t_out.backward(torch.tensor(upstream))
    s_out.backward(symgrad.tensor(upstream))
    for (name, _, differentiable), t_leaf, s_leaf in zip(case.inputs, t_leaves, s_leaves):
        if differentiable:
            np.testing.assert_allclose(s_leaf.grad.numpy(), t_leaf.grad.numpy(), **TOL[dtype],
                                       err_msg=f"gradient of {name}")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_is_stable_and_named_like_torch(reduction):
    z = symgrad.tensor([1e4, -1e4, 800.0, -800.0], requires_grad=True)
    y = symgrad.tensor([1.0, 0.0, 0.0, 1.0])
    loss = F.binary_cross_entropy_with_logits(z, y, reduction=reduction)
    assert loss.grad_fn.name() == "BinaryCrossEntropyWithLogitsBackward0"
    values = np.atleast_1d(loss.detach().numpy())
    assert np.all(np.isfinite(values))
    loss.sum().backward() if reduction == "none" else loss.backward()
    scale = {"none": 1.0, "sum": 1.0, "mean": 0.25}[reduction]
    np.testing.assert_allclose(z.grad.numpy(), scale * np.array([0.0, 0.0, 1.0, -1.0]))
    np.testing.assert_allclose(np.sum(values), {"none": 1600.0, "sum": 1600.0, "mean": 400.0}[reduction])


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    x = symgrad.tensor([0.0, 1.0, 1e-50, 0.5], requires_grad=True)
    y = symgrad.tensor([1.0, 0.0, 1.0, 1.0])
    loss = F.binary_cross_entropy(x, y, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [100.0, 100.0, 100.0, math.log(2)])
    loss.sum().backward()
    grad = x.grad.numpy()
    assert np.all(np.isfinite(grad))  # no 0 * inf at the clamped points
    np.testing.assert_allclose(grad[3], -2.0)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    loss = F.cross_entropy(symgrad.randn(2, 3), symgrad.tensor([-100, -100]))
    assert math.isnan(loss.item())


def test_cross_entropy_equals_log_softmax_then_nll():
    symgrad.manual_seed(0)
    logits = symgrad.randn(5, 4)
    target = symgrad.tensor([0, 3, 1, 1, 2])
    direct = F.cross_entropy(logits, target)
    composed = F.nll_loss(F.log_softmax(logits, dim=1), target)
    assert direct.item() == pytest.approx(composed.item(), rel=1e-12)
    by_hand = -np.mean(np.log(F.softmax(logits, dim=1).numpy()[np.arange(5), target.numpy()]))
    assert direct.item() == pytest.approx(by_hand, rel=1e-12)


def test_softmax_without_dim_warns_and_picks_torchs_dim():
    x = symgrad.tensor([[1.0, 2.0], [3.0, 5.0]])
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = F.softmax(x)
    np.testing.assert_allclose(out.numpy().sum(axis=1), [1.0, 1.0])


# ---------------------------------------------------------------------- functional errors
FUNCTIONAL_ERRORS = [
    pytest.param(lambda: F.mse_loss(symgrad.zeros(3, 4), symgrad.zeros(4)), ValueError,
                 r"mse_loss: target shape \[4\] differs from input shape \[3, 4\]", id="mse-shape"),
    pytest.param(lambda: F.l1_loss(symgrad.zeros(3, 1), symgrad.zeros(3)), ValueError,
                 r"l1_loss: target shape \[3\] differs from input shape \[3, 1\]", id="l1-shape"),
    pytest.param(lambda: F.binary_cross_entropy_with_logits(symgrad.zeros(3, 4), symgrad.zeros(4)), ValueError,
                 r"target size \[4\] must be the same as input size \[3, 4\]", id="bce-logits-shape"),
    pytest.param(lambda: F.binary_cross_entropy(symgrad.zeros(2), symgrad.zeros(2, 1)), ValueError,
                 r"target size \[2, 1\] must be the same as input size \[2\]", id="bce-shape"),
    pytest.param(lambda: F.binary_cross_entropy(symgrad.tensor([1.5, 0.5]), symgrad.zeros(2)), ValueError,
                 "between 0 and 1, got values from 0.5 to 1.5", id="bce-range"),
    pytest.param(lambda: F.binary_cross_entropy(symgrad.tensor([0.5]), symgrad.tensor([1])), TypeError,
                 "target has dtype symgrad.int64", id="bce-int-target"),
    pytest.param(lambda: F.binary_cross_entropy(symgrad.tensor([0.5]), symgrad.tensor([1.0], dtype=symgrad.float32)),
                 TypeError, "target has dtype symgrad.float32 but the input is symgrad.float64", id="bce-dtype"),
    pytest.param(lambda: F.binary_cross_entropy_with_logits(symgrad.tensor([0.5]), symgrad.tensor([1])), TypeError,
                 "target has dtype symgrad.int64", id="bce-logits-int-target"),
    pytest.param(lambda: F.binary_cross_entropy_with_logits(symgrad.zeros(2, 3), symgrad.zeros(2, 3),
                                                            pos_weight=symgrad.ones(2)), ValueError,
                 r"pos_weight of shape \[2\] does not broadcast to the input's shape \[2, 3\]", id="pos-weight"),
    pytest.param(lambda: F.mse_loss(symgrad.zeros(2), symgrad.zeros(2), reduction="avg"), ValueError,
                 "'avg' is not a valid value for reduction", id="bad-reduction"),
    pytest.param(lambda: F.cross_entropy(symgrad.zeros(2, 3), symgrad.tensor([0, 1]), reduction="elementwise"),
                 ValueError, "'elementwise' is not a valid value for reduction", id="ce-bad-reduction"),
    pytest.param(lambda: nn.BCELoss(reduction="batchmean"), ValueError, "'batchmean' is not a valid value",
                 id="module-bad-reduction"),
    pytest.param(lambda: F.cross_entropy(symgrad.zeros(3, 4), symgrad.tensor([0, 4, 1])), IndexError,
                 "target 4 is out of bounds for 4 classes", id="ce-class-out-of-bounds"),
    pytest.param(lambda: F.nll_loss(symgrad.zeros(3, 4), symgrad.tensor([0, -1, 1])), IndexError,
                 "target -1 is out of bounds", id="nll-negative-class"),
    pytest.param(lambda: F.cross_entropy(symgrad.zeros(3, 4), symgrad.tensor([0, 1])), ValueError,
                 r"target shape \[2\] does not fit input shape \[3, 4\]; expected a target of shape \[3\]",
                 id="ce-batch-mismatch"),
    pytest.param(lambda: F.nll_loss(symgrad.zeros(3, 4), symgrad.tensor([0.0, 1.0, 1.0])), TypeError,
                 "expected class indices of an integer dtype", id="nll-float-target"),
    pytest.param(lambda: F.cross_entropy(symgrad.zeros(3, 4), symgrad.zeros(3, 2)), ValueError,
                 r"probability\) target must have the input's shape \[3, 4\], got \[3, 2\]", id="ce-prob-shape"),
    pytest.param(lambda: F.cross_entropy(symgrad.zeros(3, 4), symgrad.tensor([0, 1, 2]), weight=symgrad.ones(3)),
                 ValueError, r"one entry per class \(4\), got shape \[3\]", id="ce-weight-shape"),
    pytest.param(lambda: F.cross_entropy(symgrad.zeros(3, 4), symgrad.tensor([0, 1, 2]), label_smoothing=1.5),
                 ValueError, "label_smoothing must be between 0.0 and 1.0, got 1.5", id="ce-smoothing"),
    pytest.param(lambda: F.linear(symgrad.zeros(2, 3), symgrad.zeros(4, 2)), ValueError,
                 r"input shape \[2, 3\] does not end in in_features=2", id="linear-shape"),
]


@pytest.mark.parametrize("call, error, message", FUNCTIONAL_ERRORS)
def test_functional_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_torch_also_rejects_what_symgrad_rejects():
    """For the misuses where PyTorch raises (not just warns), it raises too."""
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    misuses = [
        lambda: tf.binary_cross_entropy_with_logits(torch.zeros(3, 4), torch.zeros(4)),
        lambda: tf.binary_cross_entropy(torch.zeros(2), torch.zeros(2, 1)),
        lambda: tf.binary_cross_entropy(torch.tensor([1.5, 0.5]), torch.zeros(2)),
        lambda: tf.mse_loss(torch.zeros(2), torch.zeros(2), reduction="avg"),
        lambda: tf.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 4, 1])),
        lambda: tf.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1])),
        lambda: tf.nll_loss(torch.zeros(3, 4), torch.tensor([0.0, 1.0, 1.0])),
        lambda: tf.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1, 2]), weight=torch.ones(3)),
        lambda: tf.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1, 2]), label_smoothing=1.5),
    ]
    for index, misuse in enumerate(misuses):
        with pytest.raises((RuntimeError, ValueError, IndexError, TypeError)):
            misuse()
    # where symgrad is stricter, torch warns
    with pytest.warns(UserWarning, match="different to the input size"):
        tf.mse_loss(torch.zeros(3, 4), torch.zeros(4))


# ---------------------------------------------------------------------- Parameter
def test_parameter_is_a_leaf_that_requires_grad_and_shares_memory():
    data = symgrad.tensor([1.0, 2.0])
    p = nn.Parameter(data)
    assert isinstance(p, symgrad.Tensor) and p.is_leaf and p.requires_grad and p.grad_fn is None
    data[0] = 5.0
    assert p[0].item() == 5.0
    frozen = nn.Parameter(symgrad.zeros(2), requires_grad=False)
    assert not frozen.requires_grad
    y = (p * 2).sum()
    assert type(y) is symgrad.Tensor
    y.backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0])


def test_parameter_of_a_computed_tensor_is_a_fresh_leaf():
    x = symgrad.tensor([1.0], requires_grad=True)
    p = nn.Parameter(x * 3)
    assert p.is_leaf and p.grad_fn is None and p.item() == 3.0


def test_parameter_rejects_integer_data():
    with pytest.raises(TypeError, match="needs a floating dtype, got symgrad.int64"):
        nn.Parameter(symgrad.tensor([1, 2]))


REPR_CASES = [
    (lambda: nn.Parameter(symgrad.tensor([1.0, 2.0])), "Parameter containing:\ntensor([1., 2.], requires_grad=True)"),
    (lambda: nn.Parameter(symgrad.zeros(2), requires_grad=False), "Parameter containing:\ntensor([0., 0.])"),
    (lambda: nn.Parameter(symgrad.zeros(2, dtype=symgrad.float32)),
     "Parameter containing:\ntensor([0., 0.], dtype=symgrad.float32, requires_grad=True)"),
    (lambda: nn.Linear(2, 3, bias=False), "Linear(in_features=2, out_features=3, bias=False)"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Tanh()), nn.MSELoss(),
                           nn.BCEWithLogitsLoss(), nn.CrossEntropyLoss(), nn.Sigmoid(), nn.Softmax(dim=1)),
     "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n"
     "  (2): Sequential(\n    (0): Tanh()\n  )\n  (3): MSELoss()\n  (4): BCEWithLogitsLoss()\n"
     "  (5): CrossEntropyLoss()\n  (6): Sigmoid()\n  (7): Softmax(dim=1)\n)"),
    (lambda: nn.Sequential(), "Sequential()"),
]


@pytest.mark.parametrize("make, expected", REPR_CASES)
def test_reprs(make, expected):
    assert repr(make()) == expected


def test_registered_parameter_repr_has_no_name_but_keeps_it():
    layer = nn.Linear(1, 1)
    assert layer.weight.name == "weight"
    assert repr(layer.weight).startswith("Parameter containing:\ntensor([[")
    assert "name" not in repr(layer.weight)


# ---------------------------------------------------------------------- the tutorials' modules
class Net(nn.Module):
    """From the tutorial: parameters assigned directly."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(symgrad.randn(2, 1))
        self.b = nn.Parameter(symgrad.zeros(1, 1))

    def forward(self, x):
        return x @ self.w + self.b


class Model(nn.Module):
    """From the tutorial: one Linear layer."""

    def __init__(self, in_feature=1, out_feature=3):
        super().__init__()
        self.line_layer = nn.Linear(in_features=in_feature, out_features=out_feature)

    def forward(self, x):
        return self.line_layer(x)


def test_tutorial_net():
    net = Net()
    assert repr(net) == "Net()"
    assert [name for name, _ in net.named_parameters()] == ["w", "b"]
    y = net(symgrad.randn(10, 2))
    assert y.shape == (10, 1) and y.grad_fn.name() == "AddBackward0"


def test_tutorial_model_parameters_and_gradients():
    model = Model(in_feature=1, out_feature=3)
    assert repr(model) == "Model(\n  (line_layer): Linear(in_features=1, out_features=3, bias=True)\n)"
    params = list(model.parameters())
    assert [p.shape for p in params] == [(3, 1), (3,)]
    assert all(repr(p).startswith("Parameter containing:\ntensor(") and repr(p).endswith("requires_grad=True)")
               for p in params)
    x = symgrad.randn(2, 1)
    y_pred = model(x)
    assert y_pred.shape == (2, 3)
    label = symgrad.tensor([0, 0]).unsqueeze(dim=1).long()
    assert label.shape == (2, 1)
    loss = (y_pred - label).mean()
    loss.backward()
    # d mean / d bias = 1/3 per output (2 rows / 6 elements); d / d weight = sum of x / 6
    np.testing.assert_allclose(model.line_layer.bias.grad.numpy(), np.full(3, 1 / 3))
    np.testing.assert_allclose(model.line_layer.weight.grad.numpy(), np.full((3, 1), x.numpy().sum() / 6))
    assert x.grad is None and label.grad is None


def test_tutorial_binary_cross_entropy_with_logits():
    symgrad.manual_seed(1)
    x = symgrad.ones(5)
    y = symgrad.zeros(3)
    w = symgrad.randn(5, 3, requires_grad=True)
    b = symgrad.randn(3, requires_grad=True)
    z = symgrad.matmul(x, w) + b
    loss = F.binary_cross_entropy_with_logits(z, y)
    assert z.grad_fn.name() == "AddBackward0"
    assert repr(loss.grad_fn).startswith("<BinaryCrossEntropyWithLogitsBackward0 object at 0x")
    loss.backward()
    # every row of w.grad is b.grad = sigmoid(z) / 3
    expected = 1 / (1 + np.exp(-z.detach().numpy())) / 3
    np.testing.assert_allclose(b.grad.numpy(), expected)
    np.testing.assert_allclose(w.grad.numpy(), np.tile(expected, (5, 1)))


# ---------------------------------------------------------------------- naming
def test_parameter_names_follow_attribute_paths():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Inner()
            self.head = nn.Sequential(nn.Linear(2, 1))
            self.scale = nn.Parameter(symgrad.ones(1))

        def forward(self, x):
            return self.head(self.encoder(x)) * self.scale

    model = Outer()
    # a module's own parameters come first, then its children's (PyTorch's order)
    expected = ["scale", "encoder.fc.weight", "encoder.fc.bias", "head.0.weight", "head.0.bias"]
    # names are right at registration, before named_parameters() is ever called
    assert [p.name for p in model._modules["encoder"].fc._parameters.values()] == expected[1:3]
    assert model.head[0].weight.name == "head.0.weight"
    assert [name for name, _ in model.named_parameters()] == expected
    assert [p.name for p in model.parameters()] == expected
    # a parameter replaced later gets its full path at once
    model.encoder.fc.bias = nn.Parameter(symgrad.zeros(2))
    assert model.encoder.fc.bias.name == "encoder.fc.bias"
    # listing a sub-module's parameters yields local names but leaves the root's names alone
    assert [name for name, _ in model.encoder.named_parameters()] == ["fc.weight", "fc.bias"]
    assert model.encoder.fc.weight.name == "encoder.fc.weight"
    # a module reused in a new root: the new root's view wins
    fc = nn.Linear(1, 1)
    assert fc.weight.name == "weight"
    wrapper = nn.Sequential(OrderedDict(fc=fc))
    assert fc.weight.name == "fc.weight"
    del wrapper
    assert [p.name for p in fc.parameters()] == ["weight", "bias"]


def test_shared_parameters_are_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, Linear, Tanh


# ---------------------------------------------------------------------- Linear
def test_linear_matches_torch_with_copied_weights():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for dtype in DTYPES:
        for input_shape in [(3,), (4, 3), (2, 5, 3)]:
            for bias in (True, False):
                ours = nn.Linear(3, 2, bias=bias, dtype=dtype)
                theirs = torch.nn.Linear(3, 2, bias=bias, dtype=getattr(torch, np.dtype(dtype).name))
                with torch.no_grad():
                    theirs.weight.copy_(torch.tensor(ours.weight.detach().numpy()))
                    if bias:
                        theirs.bias.copy_(torch.tensor(ours.bias.detach().numpy()))
                x = rng.standard_normal(input_shape).astype(dtype)
                xs, xt = symgrad.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
                ys, yt = ours(xs), theirs(xt)
                np.testing.assert_allclose(ys.detach().numpy(), yt.detach().numpy(), **TOL[dtype])
                g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
                ys.backward(symgrad.tensor(g))
                yt.backward(torch.tensor(g))
                pairs = [(xs.grad, xt.grad), (ours.weight.grad, theirs.weight.grad)]
                if bias:
                    pairs.append((ours.bias.grad, theirs.bias.grad))
                for mine, ref in pairs:
                    np.testing.assert_allclose(mine.numpy(), ref.numpy(), **TOL[dtype])


@pytest.mark.parametrize("in_features, out_features", [(1, 3), (4, 2), (100, 5), (7, 1)])
def test_linear_init_bounds_and_spread(in_features, out_features):
    symgrad.manual_seed(5)
    layer = nn.Linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)
    for param in (layer.weight, layer.bias):
        values = param.detach().numpy()
        assert values.dtype == symgrad.get_default_dtype()
        assert np.all(np.abs(values) <= bound)
    weights = nn.Linear(in_features, 400).weight.detach().numpy()
    # uniform on [-bound, bound]: the extremes come close to the bound and the mean is near 0
    assert np.abs(weights).max() > 0.95 * bound
    assert abs(weights.mean()) < 0.1 * bound


def test_linear_init_is_deterministic_under_manual_seed():
    symgrad.manual_seed(42)
    first = nn.Linear(3, 4)
    symgrad.manual_seed(42)
    second = nn.Linear(3, 4)
    third = nn.Linear(3, 4)
    np.testing.assert_array_equal(first.weight.detach().numpy(), second.weight.detach().numpy())
    np.testing.assert_array_equal(first.bias.detach().numpy(), second.bias.detach().numpy())
    assert not np.array_equal(second.weight.detach().numpy(), third.weight.detach().numpy())


def test_linear_follows_default_dtype():
    previous = symgrad.get_default_dtype()
    symgrad.set_default_dtype(symgrad.float32)
    try:
        layer = nn.Linear(2, 2)
    finally:
        symgrad.set_default_dtype(previous)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    assert nn.Linear(2, 2, dtype=symgrad.float32).weight.dtype == np.float32


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match="non-negative integer in_features, got -1"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match="out_features, got 2.5"):
        nn.Linear(2, 2.5)


# ---------------------------------------------------------------------- Module behaviour
def test_zero_grad_to_none_and_to_zero():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    model(symgrad.ones(3, 2)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
    model.zero_grad(set_to_none=False)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))  # zeroed in place
    assert all(np.all(p.grad.numpy() == 0) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_children_modules():
    inner = nn.Sequential(nn.ReLU())
    model = nn.Sequential(nn.Linear(1, 1), inner)
    assert model.training and inner[0].training
    assert model.eval() is model
    assert not model.training and not inner.training and not inner[0].training
    model.train()
    assert inner[0].training
    assert list(model.children()) == [model[0], inner]
    assert [name for name, _ in model.named_modules()] == ["", "0", "1", "1.0"]


def test_module_call_runs_forward_and_missing_forward_raises():
    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match='NoForward] is missing the required "forward"'):
        NoForward()(symgrad.ones(1))


def test_module_attribute_rules():
    class Late(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(symgrad.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Late()
    layer = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="cannot assign a Tensor as parameter 'weight'"):
        layer.weight = symgrad.ones(1, 1)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nope'"):
        layer.nope
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert layer(symgrad.ones(2, 1)).shape == (2, 1)
    layer.extra = 3  # plain attributes stay plain
    assert layer.extra == 3 and "extra" not in dict(layer.named_parameters())
    del layer.weight
    assert list(layer.parameters()) == []


def test_requires_grad_and_dtype_conversion():
    model = nn.Linear(2, 1)
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    weight = model.weight
    assert model.float() is model and model.weight is weight and weight.dtype == np.float32
    assert model(symgrad.ones(1, 2, dtype=symgrad.float32)).dtype == np.float32
    model.double()
    assert weight.dtype == np.float64


def test_state_dict_round_trip_copies_in_place():
    symgrad.manual_seed(0)
    source = Model(2, 3)
    target = Model(2, 3)
    weight = target.line_layer.weight
    state = source.state_dict()
    assert list(state) == ["line_layer.weight", "line_layer.bias"]
    assert not state["line_layer.weight"].requires_grad
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.line_layer.weight is weight  # same object, new values
    np.testing.assert_array_equal(weight.detach().numpy(), source.line_layer.weight.detach().numpy())
    # state_dict values share memory with the parameters, as in PyTorch
    with symgrad.no_grad():
        source.line_layer.bias.fill_(7.0)
    np.testing.assert_array_equal(state["line_layer.bias"].numpy(), [7.0, 7.0, 7.0])
    # a deep copy is independent and keeps its names
    clone = copy.deepcopy(source)
    assert [p.name for p in clone.parameters()] == ["line_layer.weight", "line_layer.bias"]
    assert clone.line_layer.weight is not source.line_layer.weight
    clone.line_layer.weight = nn.Parameter(symgrad.zeros(3, 2))
    assert clone.line_layer.weight.name == "line_layer.weight"


def test_load_state_dict_errors_and_non_strict():
    model = Model(1, 3)
    with pytest.raises(RuntimeError, match=r"size mismatch for line_layer.weight: copying a param with shape "
                                           r"\[3, 2\] from checkpoint, the shape in current model is \[3, 1\]"):
        model.load_state_dict({"line_layer.weight": symgrad.zeros(3, 2), "line_layer.bias": symgrad.zeros(3)})
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "line_layer.bias"'):
        model.load_state_dict({"line_layer.weight": symgrad.zeros(3, 1)})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        model.load_state_dict(dict(model.state_dict(), extra=symgrad.zeros(1)))
    result = model.load_state_dict({"line_layer.weight": symgrad.ones(3, 1), "extra": symgrad.zeros(1)}, strict=False)
    assert result.missing_keys == ["line_layer.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.line_layer.weight.detach().numpy(), np.ones((3, 1)))


def test_loss_modules_match_functional_forms():
    symgrad.manual_seed(2)
    logits = symgrad.randn(4, 3)
    probabilities = symgrad.rand(4, 3)
    classes = symgrad.tensor([0, 2, 1, 2])
    weight = symgrad.tensor([1.0, 2.0, 0.5])
    cases = [
        (nn.MSELoss(reduction="sum"), F.mse_loss(logits, probabilities, reduction="sum"), (logits, probabilities)),
        (nn.L1Loss(), F.l1_loss(logits, probabilities), (logits, probabilities)),
        (nn.BCELoss(weight=weight), F.binary_cross_entropy(probabilities, probabilities, weight=weight),
         (probabilities, probabilities)),
        (nn.BCEWithLogitsLoss(pos_weight=weight), F.binary_cross_entropy_with_logits(
            logits, probabilities, pos_weight=weight), (logits, probabilities)),
        (nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1),
         F.cross_entropy(logits, classes, weight=weight, label_smoothing=0.1), (logits, classes)),
        (nn.NLLLoss(reduction="none"), F.nll_loss(logits, classes, reduction="none"), (logits, classes)),
    ]
    for module, expected, args in cases:
        np.testing.assert_array_equal(module(*args).numpy(), expected.numpy(), err_msg=repr(module))
    assert list(nn.CrossEntropyLoss(weight=weight).state_dict()) == ["weight"]


def test_sequential_indexing_and_ordered_dict():
    model = nn.Sequential(OrderedDict([("hidden", nn.Linear(2, 3)), ("act", nn.Tanh()), ("out", nn.Linear(3, 1))]))
    assert [name for name, _ in model.named_parameters()] == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert isinstance(model[1], nn.Tanh) and isinstance(model[-1], nn.Linear)
    head = model[1:]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    with pytest.raises(IndexError, match="index 3 is out of range for a Sequential of length 3"):
        model[3]
    model[1] = nn.Sigmoid()
    assert isinstance(model.act, nn.Sigmoid)
    assert model.append(nn.ReLU()) is model and len(model) == 4
    assert model(symgrad.ones(5, 2)).shape == (5, 1)


def test_training_a_module_under_both_engines_agrees():
    """The losses and layers differentiate the same way under the symbolic engine."""
    pytest.importorskip("symgrad.symbolic.backward")
    symgrad.manual_seed(9)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = symgrad.randn(5, 3)
    targets = {
        "mse": (nn.MSELoss(), symgrad.randn(5, 2)),
        "bce-logits": (nn.BCEWithLogitsLoss(pos_weight=symgrad.tensor([2.0, 0.5])), symgrad.rand(5, 2)),
        "cross-entropy": (nn.CrossEntropyLoss(label_smoothing=0.1), symgrad.tensor([0, 1, 1, 0, 1])),
    }
    for name, (loss_fn, target) in targets.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with symgrad.backward_engine("both"):
                model.zero_grad()
                loss_fn(model(x), target).backward()
        assert all(p.grad is not None for p in model.parameters()), name
