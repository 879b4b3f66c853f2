"""Layers are torch layers: Dense, the convolutions, Embedding and the pools are
instances of their ``torch.nn`` twins, with the twins' attributes, names and
``state_dict`` keys (docs/design.md, "Layers are torch layers")."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import lateinit
from lateinit import nn

T = torch.nn

# (id, our layer, the same layer built by torch (input size given), a valid input)
PLAIN = [
    ("dense", lambda: nn.Dense(8), lambda: T.Linear(4, 8), (3, 4)),
    ("dense_nobias", lambda: nn.Dense(8, use_bias=False), lambda: T.Linear(4, 8, False), (3, 4)),
    ("conv1d", lambda: nn.Conv1D(6, 3, padding=1), lambda: T.Conv1d(4, 6, 3, padding=1), (2, 4, 9)),
    (
        "conv2d",
        lambda: nn.Conv2D(6, 3, strides=2, dilation=2, groups=2, use_bias=False),
        lambda: T.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2, bias=False),
        (2, 4, 11, 11),
    ),
    (
        "conv2d_same",
        lambda: nn.Conv2D(6, (3, 5), padding="same"),
        lambda: T.Conv2d(4, 6, (3, 5), padding="same"),
        (2, 4, 7, 8),
    ),
    (
        "conv2d_valid",
        lambda: nn.Conv2D(6, 3, padding="valid"),
        lambda: T.Conv2d(4, 6, 3, padding="valid"),
        (2, 4, 7, 8),
    ),
    ("conv3d", lambda: nn.Conv3D(6, 2), lambda: T.Conv3d(4, 6, 2), (1, 4, 3, 4, 5)),
    (
        "conv1d_transpose",
        lambda: nn.Conv1DTranspose(6, 3, strides=2, output_padding=1),
        lambda: T.ConvTranspose1d(4, 6, 3, stride=2, output_padding=1),
        (2, 4, 5),
    ),
    (
        "conv2d_transpose",
        lambda: nn.Conv2DTranspose(6, 4, strides=2, padding=1, groups=2),
        lambda: T.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2),
        (2, 4, 5, 5),
    ),
    (
        "conv3d_transpose",
        lambda: nn.Conv3DTranspose(6, 2, strides=2, use_bias=False),
        lambda: T.ConvTranspose3d(4, 6, 2, stride=2, bias=False),
        (1, 4, 2, 3, 3),
    ),
]

POOLS = [
    ("maxpool1d", lambda: nn.MaxPool1D(), lambda: T.MaxPool1d(2), (2, 3, 8)),
    (
        "maxpool2d",
        lambda: nn.MaxPool2D(3, strides=2, padding=1, ceil_mode=True),
        lambda: T.MaxPool2d(3, 2, 1, ceil_mode=True),
        (2, 3, 8, 8),
    ),
    ("maxpool3d", lambda: nn.MaxPool3D((1, 2, 2)), lambda: T.MaxPool3d((1, 2, 2)), (1, 3, 2, 4, 4)),
    ("avgpool1d", lambda: nn.AvgPool1D(3, 2), lambda: T.AvgPool1d(3, 2), (2, 3, 8)),
    (
        "avgpool2d",
        lambda: nn.AvgPool2D(3, strides=1, padding=1, count_include_pad=False),
        lambda: T.AvgPool2d(3, 1, 1, count_include_pad=False),
        (2, 3, 6, 6),
    ),
    ("avgpool3d", lambda: nn.AvgPool3D(), lambda: T.AvgPool3d(2), (1, 3, 2, 4, 4)),
    ("globalmax1d", lambda: nn.GlobalMaxPool1D(), lambda: T.AdaptiveMaxPool1d(1), (2, 3, 5)),
    ("globalmax2d", lambda: nn.GlobalMaxPool2D(), lambda: T.AdaptiveMaxPool2d(1), (2, 3, 5, 5)),
    ("globalmax3d", lambda: nn.GlobalMaxPool3D(), lambda: T.AdaptiveMaxPool3d(1), (1, 3, 2, 3, 4)),
    ("globalavg1d", lambda: nn.GlobalAvgPool1D(), lambda: T.AdaptiveAvgPool1d(1), (2, 3, 5)),
    ("globalavg2d", lambda: nn.GlobalAvgPool2D(), lambda: T.AdaptiveAvgPool2d(1), (2, 3, 5, 5)),
    ("globalavg3d", lambda: nn.GlobalAvgPool3D(), lambda: T.AdaptiveAvgPool3d(1), (1, 3, 2, 3, 4)),
]

EMBEDDING = ("embedding", lambda: nn.Embedding(10, 4), lambda: T.Embedding(10, 4), None)
ALL = [*PLAIN, *POOLS, EMBEDDING]
ids = [row[0] for row in ALL]


def _input(shape: tuple[int, ...] | None) -> torch.Tensor:
    return torch.randint(0, 10, (2, 5)) if shape is None else torch.randn(shape)


def _ready(make, shape):
    layer = make()
    x = _input(shape)
    with torch.no_grad():
        layer(x)
    return layer, x


def _public_attributes(twin: torch.nn.Module) -> dict[str, object]:
    """The attributes torch's constructor sets, by name (``training`` aside)."""
    names = [k for k in vars(twin) if not k.startswith("_") and k != "training"]
    if hasattr(twin, "_reversed_padding_repeated_twice"):
        names.append("_reversed_padding_repeated_twice")
    return {k: getattr(twin, k) for k in names}


@pytest.mark.parametrize(("make", "make_twin", "shape"), [r[1:] for r in ALL], ids=ids)
def test_isinstance_deferred_and_ready(make, make_twin, shape):
    layer = make()
    assert isinstance(layer, type(make_twin()))
    assert isinstance(layer, nn.Block)
    layer, _ = _ready(make, shape)
    assert isinstance(layer, type(make_twin()))


@pytest.mark.parametrize(("make", "make_twin", "shape"), [r[1:] for r in ALL], ids=ids)
def test_twin_attributes_equal_torch_once_ready(make, make_twin, shape):
    """Every attribute torch's constructor sets reads the same on the READY layer (the
    input size included), with torch's types (tuples where torch keeps tuples)."""
    layer, _ = _ready(make, shape)
    want = _public_attributes(make_twin())
    got = {k: getattr(layer, k) for k in want}
    for k in want:
        if k == "_reversed_padding_repeated_twice":  # torch: a list or a tuple
            got[k], want[k] = list(got[k]), list(want[k])
    assert got == want


@pytest.mark.parametrize(("make", "make_twin", "shape"), [r[1:] for r in ALL], ids=ids)
def test_twin_extra_repr_and_forward_on_ready_layer(make, make_twin, shape):
    """torch's own code reading the twin's attributes works on the READY layer: its
    ``extra_repr`` (conv, pools, Embedding format ``self.__dict__``) and its forward."""
    layer, x = _ready(make, shape)
    twin = make_twin()
    assert type(twin).extra_repr(layer) == twin.extra_repr()
    with torch.no_grad():
        assert torch.equal(type(twin).forward(layer, x), layer(x))


CONVS = [r for r in PLAIN if r[0].startswith("conv") and "transpose" not in r[0]]


@pytest.mark.parametrize(
    ("make", "make_twin", "shape"), [r[1:] for r in CONVS], ids=[r[0] for r in CONVS]
)
def test_conv_forward_of_torch_reads_attributes(make, make_twin, shape):
    layer, x = _ready(make, shape)
    with torch.no_grad():
        got = type(make_twin())._conv_forward(layer, x, layer.weight, layer.bias)
        assert torch.equal(got, layer(x))


def test_input_sizes_read_none_until_known():
    dense = nn.Dense(8)
    assert (dense.in_features, dense.out_features) == (None, 8)
    dense(torch.randn(2, 3, 5))  # flatten: 15 features
    assert (dense.in_features, dense.out_features) == (15, 8)
    assert T.Linear.extra_repr(dense) == "in_features=15, out_features=8, bias=True"

    conv = nn.Conv2D(6, 3, groups=3)
    assert (conv.in_channels, conv.out_channels) == (None, 6)
    assert T.Conv2d.extra_repr(conv).startswith("None, 6, kernel_size=(3, 3)")
    conv(torch.randn(1, 9, 5, 5))
    assert conv.in_channels == 9 and conv.weight.shape[1] == 3
    assert T.Conv2d.extra_repr(conv).startswith("9, 6, kernel_size=(3, 3)")

    transpose = nn.Conv2DTranspose(6, 3)
    assert transpose.in_channels is None
    transpose(torch.randn(1, 5, 4, 4))
    assert transpose.in_channels == 5
    # given sizes are known at once
    assert nn.Dense(8, in_units=4).in_features == 4
    assert nn.Conv1D(8, 3, in_channels=4, groups=2).in_channels == 4
    assert nn.Conv1DTranspose(8, 3, in_channels=4).in_channels == 4


def test_input_sizes_known_however_the_shape_became_known(tmp_path):
    """infer_shape (runs on a replica), load_state_dict and load_parameters fill the
    shape without the layer's hook running on the live layer: the attributes follow."""
    net = nn.Sequential(nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(2))
    net.infer_shape((1, 3, 6, 6))
    assert (net[0].in_channels, net[2].in_features) == (3, 64)
    assert lateinit.state(net[0].weight) == lateinit.State.SHAPED
    assert T.Conv2d.extra_repr(net[0]).startswith("3, 4,")

    fresh = nn.Sequential(nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(2))
    net.initialize()
    fresh.load_state_dict(net.state_dict())
    assert (fresh[0].in_channels, fresh[2].in_features) == (3, 64)

    path = tmp_path / "net.safetensors"
    net.save_parameters(path)
    loaded = nn.Sequential(nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(2)).load_parameters(path)
    assert (loaded[0].in_channels, loaded[2].in_features) == (3, 64)

    shared = nn.Conv2D(4, 3)
    shared.share_parameters(net[0])  # the weight object itself is replaced
    assert shared.in_channels == 3 and T.Conv2d.extra_repr(shared).startswith("3, 4,")


def test_input_sizes_cannot_be_assigned():
    with pytest.raises(AttributeError):
        nn.Dense(8).in_features = 4
    with pytest.raises(AttributeError):
        nn.Conv2D(8, 3).in_channels = 4


@pytest.mark.parametrize(
    ("make", "make_twin", "shape"), [r[1:] for r in PLAIN], ids=[r[0] for r in PLAIN]
)
def test_state_dict_strict_both_ways_with_plain_twin(make, make_twin, shape):
    torch.manual_seed(0)
    layer, x = _ready(make, shape)
    twin = make_twin()
    assert layer.state_dict().keys() == twin.state_dict().keys()
    twin.load_state_dict(layer.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(twin(x), layer(x))

    other = make_twin()  # other values: into a READY layer, and into a deferred one
    layer.load_state_dict(other.state_dict(), strict=True)
    deferred = make()
    deferred.load_state_dict(other.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(layer(x), other(x))
        assert torch.equal(deferred(x), other(x))


def test_embedding_state_dict_strict_both_ways():
    emb, x = _ready(EMBEDDING[1], None)
    twin = T.Embedding(10, 4)
    twin.load_state_dict(emb.state_dict(), strict=True)
    assert torch.equal(twin(x), emb(x))
    other = T.Embedding(10, 4)
    emb.load_state_dict(other.state_dict(), strict=True)
    assert torch.equal(emb(x), other(x))


def test_dense_activation_and_flatten_stay_gluons():
    """A Dense with an activation, flattening, is still a Linear; its forward is
    lateinit's (Gluon's)."""
    dense = nn.Dense(3, activation="relu")
    assert isinstance(dense, T.Linear)
    x = torch.randn(2, 2, 2)
    out = dense(x)
    assert out.shape == (2, 3) and dense.in_features == 4 and bool((out >= 0).all())
    twin = T.Linear(4, 3)
    twin.load_state_dict(dense.state_dict(), strict=True)
    assert torch.equal(torch.relu(twin(x.flatten(1))), out)


def test_channels_last_conv_and_pool_are_twins():
    conv = nn.Conv2D(5, 3, layout="NHWC")
    pool = nn.MaxPool2D(layout="NHWC")
    assert isinstance(conv, T.Conv2d) and isinstance(pool, T.MaxPool2d)
    x = torch.randn(2, 8, 8, 3)
    out = pool(conv(x))
    assert out.shape == (2, 3, 3, 5) and conv.in_channels == 3
    # the twin's attributes describe the channels-first kernel inside
    first = T.Conv2d._conv_forward(conv, x.movedim(-1, 1), conv.weight, conv.bias)
    assert torch.equal(first.movedim(1, -1), conv(x))


def test_skip_init():
    dense = torch.nn.utils.skip_init(nn.Dense, 8, in_units=4)
    assert isinstance(dense, nn.Dense) and dense.weight.shape == (8, 4)
    assert lateinit.state(dense.weight) == lateinit.State.READY
    assert type(dense.weight) is torch.nn.Parameter and dense.weight.device.type == "cpu"
    assert (dense.in_features, dense.out_features) == (4, 8)
    assert dense(torch.ones(2, 4)).shape == (2, 8)

    conv = torch.nn.utils.skip_init(nn.Conv2D, 8, 3, in_channels=4)
    assert conv.weight.shape == (8, 4, 3, 3) and conv.bias.shape == (8,)
    assert lateinit.state(conv.weight) == lateinit.State.READY
    assert conv.in_channels == 4
    assert conv(torch.ones(1, 4, 5, 5)).shape == (1, 8, 3, 3)

    with pytest.raises(lateinit.DeferredInitializationError):
        torch.nn.utils.skip_init(nn.Dense, 8)  # no input size: nothing to allocate


def test_reset_parameters_is_lateinits():
    """Block.reset_parameters wins over torch.nn.Linear's/_ConvNd's: the layer's own
    initializer draws again."""
    dense = nn.Dense(4, in_units=3, weight_initializer="ones", bias_initializer="ones")
    conv = nn.Conv2D(2, 1, in_channels=3, weight_initializer="ones")
    for layer in (dense, conv):
        layer.to_empty(device="cpu")
        layer.reset_parameters()
        assert bool((layer.weight == 1).all())
    assert bool((dense.bias == 1).all()) and bool((conv.bias == 0).all())
    emb = nn.Embedding(3, 2, weight_initializer="ones")
    emb.reset_parameters()
    assert bool((emb.weight == 1).all())


@pytest.mark.parametrize("ready", [False, True], ids=["deferred", "ready"])
@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_keep_twin_attributes(clone, ready):
    conv = nn.Conv2D(6, 3, groups=2)
    dense = nn.Dense(5)
    if ready:
        dense(conv(torch.randn(1, 4, 5, 5)))
    for layer in (conv, dense):
        copied = clone(layer)
        assert isinstance(copied, type(layer))
    copied = clone(conv)
    if not ready:
        assert copied.in_channels is None
        copied(torch.randn(1, 8, 5, 5))  # the copy's own size, not the original's
        assert copied.in_channels == 8 and conv.in_channels is None
        assert T.Conv2d.extra_repr(copied).startswith("8, 6,")
    else:
        assert copied.in_channels == 4 and T.Conv2d.extra_repr(copied).startswith("4, 6,")
        assert clone(dense).in_features == 54


def test_compile_fullgraph_ready_twins():
    net = nn.Sequential(nn.Conv2D(4, 3), nn.MaxPool2D(), nn.GlobalAvgPool2D(), nn.Dense(2))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = net(x)
        torch._dynamo.reset()
        got = torch.compile(net, fullgraph=True, backend="eager")(x)
    torch.testing.assert_close(got, want)


def test_attention_dense_of_model_size():
    """The encoder layer's second Dense (its size taken from the attention) is a Linear
    whose out_features is known once the attention has seen a batch."""
    layer = nn.TransformerEncoderLayer(num_heads=2, hidden_size=8)
    assert isinstance(layer.dense2, T.Linear)
    assert (layer.dense2.in_features, layer.dense2.out_features) == (8, None)
    layer(torch.randn(2, 3, 4))
    assert (layer.dense2.in_features, layer.dense2.out_features) == (8, 4)
