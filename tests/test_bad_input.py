"""Bad input of any kind is an error naming the layer; an empty batch works as in torch.

``docs/design.md`` ("Errors") and the design's promise: non-tensors, integer/bool/complex
data where floats are needed, a zero-size feature axis, another float dtype than a norm
layer's parameters, a mask on another device: each a clear error naming the layer, on the
first (shape-inferring) call and on READY calls. Invalid constructor arguments fail at
construction, naming the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import lateinit
from lateinit import init, nn, zoo

# -- the layer table --------------------------------------------------------------------
# (id, builder, a valid input shape, the axis holding the batch). Every layer here takes
# floating inputs.
FLOAT_LAYERS: list[tuple[str, Callable[[], torch.nn.Module], tuple[int, ...], int]] = [
    ("dense", lambda: nn.Dense(4), (2, 5), 0),
    ("dense_flatten", lambda: nn.Dense(4), (2, 3, 5), 0),
    ("dense_no_flatten", lambda: nn.Dense(4, flatten=False), (2, 3, 5), 0),
    ("conv1d", lambda: nn.Conv1D(4, 3), (2, 3, 8), 0),
    ("conv2d", lambda: nn.Conv2D(4, 3, activation="relu"), (2, 3, 8, 8), 0),
    ("conv3d", lambda: nn.Conv3D(2, 3), (2, 3, 5, 5, 5), 0),
    ("conv2d_nhwc", lambda: nn.Conv2D(4, 3, layout="NHWC"), (2, 8, 8, 3), 0),
    ("conv2d_transpose", lambda: nn.Conv2DTranspose(4, 3), (2, 3, 6, 6), 0),
    ("batchnorm", lambda: nn.BatchNorm(), (2, 3, 4, 4), 0),
    ("batchnorm_2d", lambda: nn.BatchNorm(), (2, 3), 0),
    ("layernorm", lambda: nn.LayerNorm(), (2, 5), 0),
    ("rmsnorm", lambda: nn.RMSNorm(), (2, 3, 5), 0),
    ("groupnorm", lambda: nn.GroupNorm(2), (2, 4, 5), 0),
    ("instancenorm", lambda: nn.InstanceNorm(), (2, 3, 5), 0),
    ("instancenorm_last", lambda: nn.InstanceNorm(axis=-1), (2, 5, 3), 0),
    ("rnn", lambda: nn.RNN(4), (5, 2, 3), 1),
    ("lstm", lambda: nn.LSTM(4, bidirectional=True), (5, 2, 3), 1),
    ("gru_ntc", lambda: nn.GRU(4, layout="NTC"), (2, 5, 3), 0),
    ("attention", lambda: nn.MultiHeadAttention(2), (2, 5, 8), 0),
    ("transformer", lambda: nn.TransformerEncoderLayer(num_heads=2, hidden_size=8), (2, 5, 8), 0),
]

#: Layers without parameters (any dtype torch takes): an empty batch and non-tensors.
OTHER_LAYERS: list[tuple[str, Callable[[], torch.nn.Module], tuple[int, ...], int]] = [
    ("flatten", lambda: nn.Flatten(), (2, 3, 5), 0),
    ("maxpool2d", lambda: nn.MaxPool2D(), (2, 3, 8, 8), 0),
    ("avgpool1d", lambda: nn.AvgPool1D(), (2, 3, 8), 0),
    ("global_maxpool2d", lambda: nn.GlobalMaxPool2D(), (2, 3, 8, 8), 0),
    ("global_avgpool2d", lambda: nn.GlobalAvgPool2D(), (2, 3, 8, 8), 0),
    ("activation", lambda: nn.Activation("gelu"), (2, 5), 0),
]

#: Networks: an empty batch goes through every layer.
NETWORKS: list[tuple[str, Callable[[], torch.nn.Module], tuple[int, ...], int]] = [
    ("lenet", lambda: zoo.lenet(), (2, 1, 28, 28), 0),
    ("mlp", lambda: zoo.mlp((8,), num_classes=3), (2, 3, 5), 0),
    ("concatenate", lambda: nn.Concatenate(nn.Dense(3), nn.Dense(2)), (2, 5), 0),
    ("residual", lambda: nn.Residual(nn.Dense(5, flatten=False)), (2, 5), 0),
    (
        "conv_net",
        lambda: nn.Sequential(
            nn.Conv2D(4, 3), nn.BatchNorm(), nn.InstanceNorm(), nn.GlobalAvgPool2D(), nn.Flatten()
        ),
        (2, 3, 6, 6),
        0,
    ),
]

ALL = FLOAT_LAYERS + OTHER_LAYERS + NETWORKS


def _ids(table: list[tuple[Any, ...]]) -> list[str]:
    return [row[0] for row in table]


def _name(layer: torch.nn.Module) -> str:
    """How an error on this layer's input names the layer that refused it."""
    if isinstance(layer, nn.TransformerEncoderLayer):  # its first layer: the attention
        return "layer 'attention' (MultiHeadAttention)"
    return type(layer).__name__


def _empty(shape: tuple[int, ...], batch_axis: int) -> tuple[int, ...]:
    return tuple(0 if i == batch_axis else s for i, s in enumerate(shape))


def _ready(build: Callable[[], torch.nn.Module], shape: tuple[int, ...]) -> torch.nn.Module:
    torch.manual_seed(0)
    layer = build()
    layer(torch.randn(shape))
    assert not any(lateinit.is_deferred(p) for p in layer.parameters())
    return layer


# -- 10. empty batches ------------------------------------------------------------------
@pytest.mark.parametrize("row", ALL, ids=_ids(ALL))
@pytest.mark.parametrize("when", ["first", "ready"])
def test_empty_batch_works_as_in_torch(row, when):
    _, build, shape, batch_axis = row
    torch.manual_seed(0)
    reference = build()
    full = reference(torch.randn(shape))
    layer = _ready(build, shape) if when == "ready" else build()
    x = torch.randn(_empty(shape, batch_axis), requires_grad=True)
    out = layer(x)
    assert tuple(out.shape) == _empty(tuple(full.shape), batch_axis)
    out.sum().backward()  # a training step on an empty batch works too
    assert x.grad is not None and x.grad.shape == x.shape
    assert not any(lateinit.is_deferred(p) for p in layer.parameters())


def test_empty_batch_flatten_matches_torch():
    x = torch.randn(0, 3, 5)
    assert nn.Flatten()(x).shape == torch.nn.Flatten()(x).shape == (0, 15)
    assert nn.Dense(4)(x).shape == (0, 4)
    dense = nn.Dense(4)
    dense(torch.randn(2, 3, 5))
    assert dense(x).shape == (0, 4)


@pytest.mark.parametrize("when", ["first", "ready"])
def test_rnn_without_time_steps_is_a_named_error(when):
    """torch refuses a sequence of length 0 (an empty batch is fine): named here."""
    lstm = nn.LSTM(4, layout="NTC")
    if when == "ready":
        lstm(torch.randn(2, 5, 3))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"LSTM.*no time steps.*Fix"):
        lstm(torch.randn(2, 0, 3))


def test_empty_batch_embedding():
    emb = nn.Embedding(10, 4)
    assert emb(torch.zeros(0, 5, dtype=torch.long)).shape == (0, 5, 4)
    assert emb(torch.zeros(0, 5, dtype=torch.long)).shape == (0, 5, 4)


def test_flatten_of_a_vector_and_a_scalar():
    assert nn.Flatten()(torch.randn(3)).shape == (3, 1)  # Gluon's (N,) -> (N, 1)
    with pytest.raises(lateinit.ShapeMismatchError, match=r"Flatten.*batch axis"):
        nn.Flatten()(torch.tensor(1.0))


# -- 11. non-tensors and non-floating data ----------------------------------------------
NON_TENSORS = {
    "None": lambda shape: None,
    "str": lambda shape: "abc",
    "list": lambda shape: torch.randn(shape).tolist(),
    "numpy": lambda shape: np.random.rand(*shape).astype("float32"),
}
NON_FLOATS = {
    "int64": lambda shape: torch.ones(shape, dtype=torch.long),
    "bool": lambda shape: torch.ones(shape, dtype=torch.bool),
    "complex64": lambda shape: torch.ones(shape, dtype=torch.complex64),
}
RAW = (
    "object has no attribute",
    "must be Tensor",
    "must have the same dtype",
    "invalid combination",
)


def _assert_named(message: str, layer: torch.nn.Module, fix: str) -> None:
    assert _name(layer) in message, message
    assert fix in message, message
    assert not any(raw in message for raw in RAW), message


@pytest.mark.parametrize("row", FLOAT_LAYERS + OTHER_LAYERS, ids=_ids(FLOAT_LAYERS + OTHER_LAYERS))
@pytest.mark.parametrize("bad", list(NON_TENSORS), ids=list(NON_TENSORS))
@pytest.mark.parametrize("when", ["first", "ready"])
def test_non_tensor_input_is_a_type_error_naming_the_layer(row, bad, when):
    _, build, shape, _ = row
    layer = _ready(build, shape) if when == "ready" else build()
    with pytest.raises(TypeError) as info:
        layer(NON_TENSORS[bad](shape))
    _assert_named(str(info.value), layer, "torch.as_tensor(x, dtype=torch.float32)")
    if when == "first":  # nothing was created: the first pass rolled back
        assert all(lateinit.is_deferred(p) for p in layer.parameters())
    layer(torch.randn(shape))  # and the layer still works


@pytest.mark.parametrize("row", FLOAT_LAYERS, ids=_ids(FLOAT_LAYERS))
@pytest.mark.parametrize("bad", list(NON_FLOATS), ids=list(NON_FLOATS))
@pytest.mark.parametrize("when", ["first", "ready"])
def test_non_floating_input_is_a_type_error_naming_the_layer(row, bad, when):
    _, build, shape, _ = row
    layer = _ready(build, shape) if when == "ready" else build()
    with pytest.raises(TypeError) as info:
        layer(NON_FLOATS[bad](shape))
    message = str(info.value)
    _assert_named(message, layer, "x.float()")
    assert bad in message, message
    layer(torch.randn(shape))


@pytest.mark.parametrize("row", OTHER_LAYERS, ids=_ids(OTHER_LAYERS))
def test_parameterless_layers_name_themselves_for_data_their_kernel_refuses(row):
    _, build, shape, _ = row
    layer = build()
    for make in NON_FLOATS.values():
        x = make(shape)
        try:
            layer(x)
        except TypeError as err:  # a kernel without that dtype: named, with the fix
            _assert_named(str(err), layer, "x.float()")


def test_the_error_names_the_layer_by_its_path():
    net = nn.Sequential(nn.Dense(4), nn.Sequential(nn.Dense(3), nn.LayerNorm()))
    net(torch.randn(2, 5))
    with pytest.raises(TypeError, match=r"layer '0' \(Dense\) got None"):
        net(None)
    with pytest.raises(TypeError, match=r"layer '0' \(Dense\) got an int64 tensor"):
        net(torch.ones(2, 5, dtype=torch.long))
    fresh = nn.Sequential(nn.Dense(4), nn.Sequential(nn.Dense(3), nn.LayerNorm()))
    with pytest.raises(TypeError, match=r"layer '0' \(Dense\) got a str"):
        fresh("abc")
    assert all(lateinit.is_deferred(p) for p in fresh.parameters())


@pytest.mark.parametrize("when", ["first", "ready"])
def test_embedding_needs_integer_tensors(when):
    emb = nn.Embedding(10, 4)
    if when == "ready":
        emb(torch.tensor([1, 2]))
    for bad in (None, [1, 2], np.array([1, 2]), "ab"):
        with pytest.raises(TypeError, match=r"Embedding.*torch\.as_tensor\(x, dtype=torch\.long\)"):
            emb(bad)
    for dtype in (torch.float32, torch.bool, torch.complex64):
        with pytest.raises(TypeError, match=r"Embedding.*integer indices.*x\.long\(\)"):
            emb(torch.ones(3, dtype=dtype))
    assert emb(torch.tensor([1, 2])).shape == (2, 4)


def test_attention_key_and_value_are_checked_too():
    attn = nn.MultiHeadAttention(2)
    q = torch.randn(2, 5, 8)
    with pytest.raises(TypeError, match=r"MultiHeadAttention.*int64 tensor"):
        attn(q, torch.ones(2, 5, 8, dtype=torch.long))
    attn(q)
    with pytest.raises(TypeError, match=r"MultiHeadAttention \(the network called\) got a list"):
        attn(q, q, [1.0])
    with pytest.raises(TypeError, match=r"MultiHeadAttention \(the network called\) got a str"):
        attn(q, mask="causal")


# -- 11. zero-size feature axes ---------------------------------------------------------
ZERO_FEATURES = [
    ("dense", lambda: nn.Dense(4), (2, 0)),
    ("dense_flatten", lambda: nn.Dense(4), (2, 3, 0)),
    ("conv2d", lambda: nn.Conv2D(4, 3), (2, 0, 5, 5)),
    ("conv1d_transpose", lambda: nn.Conv1DTranspose(4, 3), (2, 0, 5)),
    ("batchnorm", lambda: nn.BatchNorm(), (2, 0, 3)),
    ("layernorm", lambda: nn.LayerNorm(), (2, 0)),
    ("groupnorm", lambda: nn.GroupNorm(1), (2, 0, 3)),
    ("lstm", lambda: nn.LSTM(4), (5, 2, 0)),
    ("attention", lambda: nn.MultiHeadAttention(2), (2, 5, 0)),
]


@pytest.mark.parametrize("row", ZERO_FEATURES, ids=_ids(ZERO_FEATURES))
def test_zero_size_feature_axis_is_an_error_not_a_zero_size_weight(row):
    _, build, shape = row
    layer = build()
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        layer(torch.randn(shape))
    message = str(info.value)
    assert _name(layer) in message and "size 0" in message and "Fix:" in message, message
    assert all(lateinit.is_deferred(p) for p in layer.parameters())
    assert not any(0 in p.shape for p in layer.parameters())  # no zero-size weight


def test_zero_size_feature_axis_on_a_ready_layer():
    dense = nn.Dense(4)
    dense(torch.randn(2, 5))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"Dense"):
        dense(torch.randn(2, 0))


# -- 11. norm layers refuse another float dtype (outside autocast) ----------------------
NORMS = [
    ("batchnorm", lambda: nn.BatchNorm(), (4, 3, 5)),
    ("batchnorm_eval", lambda: nn.BatchNorm().eval(), (4, 3, 5)),
    ("batchnorm_no_affine", lambda: nn.BatchNorm(center=False, scale=False), (4, 3, 5)),
    ("layernorm", lambda: nn.LayerNorm(), (4, 5)),
    ("layernorm_no_scale", lambda: nn.LayerNorm(scale=False), (4, 5)),
    ("rmsnorm", lambda: nn.RMSNorm(), (4, 5)),
    ("groupnorm", lambda: nn.GroupNorm(1), (4, 4, 5)),
    ("instancenorm", lambda: nn.InstanceNorm(), (4, 3, 5)),
]


@pytest.mark.parametrize("row", NORMS, ids=_ids(NORMS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_ready_norm_refuses_another_float_dtype(row, dtype):
    _, build, shape = row
    layer = _ready(build, shape)
    with pytest.raises(TypeError) as info:
        layer(torch.randn(shape, dtype=dtype))
    message = str(info.value)
    short = str(dtype).replace("torch.", "")
    assert _name(layer) in message and f"got a {short} input" in message, message
    assert "float32" in message and "Fix:" in message, message
    assert layer(torch.randn(shape)).dtype == torch.float32


def test_norm_in_float64_refuses_float32():
    ln = nn.LayerNorm()
    ln.initialize(dtype=torch.float64)
    ln(torch.randn(2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"LayerNorm.*float32 input.*float64"):
        ln(torch.randn(2, 5))


@pytest.mark.parametrize("row", NORMS, ids=_ids(NORMS))
def test_norm_under_autocast_takes_half_inputs(row):
    _, build, shape = row
    layer = _ready(build, shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(shape, dtype=torch.bfloat16))
    assert out.shape == shape


# -- 11. attention: a mask on another device --------------------------------------------
@pytest.mark.parametrize("when", ["first", "ready"])
def test_attention_mask_on_another_device_is_an_error(when):
    attn = nn.MultiHeadAttention(2)
    q = torch.randn(2, 5, 8)
    if when == "ready":
        attn(q)
    mask = torch.ones(5, 5, dtype=torch.bool, device="meta")
    with pytest.raises(
        RuntimeError, match=r"MultiHeadAttention .*got a mask on meta but its query is on cpu.*Fix"
    ):
        attn(q, mask=mask)
    if when == "first":
        assert all(lateinit.is_deferred(p) for p in attn.parameters())
    good = torch.ones(5, 5, dtype=torch.bool).tril()
    assert attn(q, mask=good).shape == (2, 5, 8)


def test_transformer_mask_on_another_device_names_the_attention():
    net = nn.TransformerEncoderLayer(num_heads=2, hidden_size=8)
    x = torch.randn(2, 5, 8)
    net(x)
    mask = torch.ones(5, 5, dtype=torch.bool, device="meta")
    with pytest.raises(RuntimeError, match=r"'attention' \(MultiHeadAttention\) got a mask on"):
        net(x, mask=mask)


# -- 13. constructor arguments ----------------------------------------------------------
BAD_ARGUMENTS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("embedding_negative", lambda: nn.Embedding(-1, 4), ValueError, "Embedding: input_dim"),
    ("embedding_float", lambda: nn.Embedding(10.5, 4), ValueError, "Embedding: input_dim"),
    ("embedding_str", lambda: nn.Embedding("10", 4), ValueError, "Embedding: input_dim"),
    ("embedding_bool", lambda: nn.Embedding(True, 4), ValueError, "Embedding: input_dim"),
    ("embedding_output", lambda: nn.Embedding(10, 0), ValueError, "Embedding: output_dim"),
    ("embedding_sparse", lambda: nn.Embedding(10, 4, sparse_grad="y"), TypeError, "sparse_grad"),
    ("residual_int", lambda: nn.Residual(3), TypeError, "Residual: block"),
    ("concatenate_axis", lambda: nn.Concatenate(axis="1"), TypeError, "Concatenate: axis"),
    ("concatenate_bool", lambda: nn.Concatenate(axis=True), TypeError, "Concatenate: axis"),
    ("sequential_int", lambda: nn.Sequential(3), TypeError, "Sequential"),
    ("dense_bool", lambda: nn.Dense(True), ValueError, "Dense: units"),
    ("dense_activation", lambda: nn.Dense(4, activation=3), TypeError, "Dense: activation"),
    ("dense_use_bias", lambda: nn.Dense(4, use_bias="no"), TypeError, "Dense: use_bias"),
    ("dense_flatten", lambda: nn.Dense(4, flatten="yes"), TypeError, "Dense: flatten"),
    ("activation_none", lambda: nn.Activation(None), TypeError, "Activation: activation"),
    ("activation_int", lambda: nn.Activation(3), TypeError, "Activation: activation"),
    ("activation_name", lambda: nn.Activation("nope"), ValueError, "Activation: activation"),
    ("dropout_str", lambda: nn.Dropout("a"), ValueError, "Dropout: rate"),
    ("dropout_one", lambda: nn.Dropout(1.0), ValueError, "Dropout: rate"),
    ("dropout_axes", lambda: nn.Dropout(0.5, axes=("a",)), TypeError, "Dropout: axes"),
    ("conv_activation", lambda: nn.Conv2D(4, 3, activation=3), TypeError, "Conv2D: activation"),
    ("conv_use_bias", lambda: nn.Conv1D(4, 3, use_bias=None), TypeError, "Conv1D: use_bias"),
    ("lstm_bool", lambda: nn.LSTM(True), ValueError, "LSTM: hidden_size"),
    ("lstm_layers_bool", lambda: nn.LSTM(4, num_layers=True), ValueError, "LSTM: num_layers"),
    ("gru_dropout_str", lambda: nn.GRU(4, dropout="a"), ValueError, "GRU: dropout"),
    ("rnn_activation", lambda: nn.RNN(4, activation=["tanh"]), ValueError, "RNN: activation"),
    ("lstm_bidirectional", lambda: nn.LSTM(4, bidirectional="y"), TypeError, "bidirectional"),
    ("mha_bool", lambda: nn.MultiHeadAttention(True), ValueError, "num_heads"),
    ("mha_units_bool", lambda: nn.MultiHeadAttention(2, units=True), ValueError, "units"),
    ("mha_dropout", lambda: nn.MultiHeadAttention(2, dropout="a"), ValueError, "dropout"),
    ("mha_causal", lambda: nn.MultiHeadAttention(2, causal="yes"), TypeError, "causal"),
    (
        "transformer_heads",
        lambda: nn.TransformerEncoderLayer(num_heads="a", hidden_size=8),
        ValueError,
        "TransformerEncoderLayer: num_heads",
    ),
    (
        "transformer_hidden",
        lambda: nn.TransformerEncoderLayer(num_heads=2, hidden_size=True),
        ValueError,
        "TransformerEncoderLayer: hidden_size",
    ),
    (
        "transformer_activation",
        lambda: nn.TransformerEncoderLayer(num_heads=2, hidden_size=8, activation=3),
        TypeError,
        "TransformerEncoderLayer: activation",
    ),
    ("batchnorm_momentum", lambda: nn.BatchNorm(momentum=True), ValueError, "momentum"),
    ("batchnorm_epsilon", lambda: nn.BatchNorm(epsilon=True), ValueError, "epsilon"),
    ("batchnorm_center", lambda: nn.BatchNorm(center="no"), TypeError, "BatchNorm: center"),
    ("layernorm_scale", lambda: nn.LayerNorm(scale=None), TypeError, "LayerNorm: scale"),
    ("init_normal", lambda: init.Normal(-1), ValueError, "Normal: sigma"),
    ("init_normal_str", lambda: init.Normal("a"), TypeError, "Normal: sigma"),
    ("init_uniform", lambda: init.Uniform(-1), ValueError, "Uniform: scale"),
    ("init_constant", lambda: init.Constant("a"), TypeError, "Constant: value"),
    ("init_truncnormal", lambda: init.TruncNormal(stdev=-1), ValueError, "TruncNormal: stdev"),
    ("init_xavier", lambda: init.Xavier(magnitude=-1), ValueError, "Xavier: magnitude"),
    ("init_msra", lambda: init.MSRAPrelu(slope="a"), TypeError, "MSRAPrelu: slope"),
    ("init_orthogonal", lambda: init.Orthogonal(scale="a"), TypeError, "Orthogonal: scale"),
    ("init_nan", lambda: init.Normal(float("nan")), ValueError, "Normal: sigma"),
    ("init_mixed", lambda: init.Mixed([".*"], "zeros"), TypeError, "Mixed: initializers"),
]


@pytest.mark.parametrize("row", BAD_ARGUMENTS, ids=_ids(BAD_ARGUMENTS))
def test_invalid_constructor_arguments_fail_naming_the_argument(row):
    _, make, kind, prefix = row
    with pytest.raises(kind) as info:
        make()
    message = str(info.value)
    assert prefix in message and "got" in message, message


def test_valid_constructor_arguments_still_work():
    assert nn.Dense(4, in_units=0).weight.shape == (4, -1)  # Gluon's 0 = unknown
    assert nn.Dense(4, in_units=None, use_bias=0).bias is None
    assert nn.Dropout(0, axes=1)._axes == (1,)
    assert nn.Concatenate(axis=-1)._axis == -1
    assert init.Constant(2)(torch.empty(2)).tolist() == [2.0, 2.0]
    assert init.Normal(0)(torch.empty(2)).tolist() == [0.0, 0.0]
    nn.Activation(torch.tanh)
    nn.MultiHeadAttention(2, units=8, dropout=0)
    nn.BatchNorm(momentum=1, epsilon=0)
