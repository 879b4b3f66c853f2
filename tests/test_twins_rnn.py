"""RNN/LSTM/GRU are their torch.nn twins: isinstance, torch's attributes and parameter
names, state dicts that load both ways, Gluon's names as aliases (docs: "Layers are
torch layers")."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from safetensors.torch import save_file

import lateinit
from lateinit import nn
from lateinit.nn.rnn import GRU, LSTM, RNN

TWINS = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}
MODES = {RNN: "RNN_TANH", LSTM: "LSTM", GRU: "GRU"}

CONFIGS = [
    (RNN, {}),
    (RNN, {"activation": "relu", "layout": "NTC", "num_layers": 2}),
    (LSTM, {}),
    (LSTM, {"num_layers": 2, "bidirectional": True}),
    (LSTM, {"layout": "NTC", "use_bias": False}),
    (GRU, {"bidirectional": True}),
    (GRU, {"num_layers": 3, "dropout": 0.25, "layout": "NTC"}),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, kw in CONFIGS]


def plain_twin(cls, kw, input_size=5, hidden=6):
    """The plain torch.nn module of the same sizes as ``cls(hidden, **kw)``."""
    twin_kw = {
        "num_layers": kw.get("num_layers", 1),
        "bias": kw.get("use_bias", True),
        "batch_first": kw.get("layout", "TNC") == "NTC",
        "dropout": kw.get("dropout", 0.0),
        "bidirectional": kw.get("bidirectional", False),
    }
    if cls is RNN:
        twin_kw["nonlinearity"] = kw.get("activation", "tanh")
    return TWINS[cls](input_size, hidden, **twin_kw)


def ready(cls, kw, input_size=5, hidden=6, seed=0):
    torch.manual_seed(seed)
    layer = cls(hidden, **kw)
    layer(torch.randn(4, 3, input_size))
    return layer.eval()


@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=IDS)
def test_isinstance_of_the_twin_deferred_and_ready(cls, kw):
    layer = cls(6, **kw)
    assert isinstance(layer, TWINS[cls]) and isinstance(layer, torch.nn.RNNBase)
    assert isinstance(layer, nn.Block)
    assert lateinit.is_deferred(layer.weight_ih_l0)
    layer(torch.randn(4, 3, 5))
    assert isinstance(layer, TWINS[cls]) and not lateinit.is_deferred(layer.weight_ih_l0)


@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=IDS)
def test_twin_attributes_before_and_after_the_input_size_is_known(cls, kw):
    layer = cls(6, **kw)
    twin = plain_twin(cls, kw)
    assert layer.input_size is None  # unknown until the first batch
    names = ["hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"]
    names += ["proj_size", "mode"] + (["nonlinearity"] if cls is RNN else [])
    for name in names:
        assert getattr(layer, name) == getattr(twin, name), name
        assert type(getattr(layer, name)) is type(getattr(twin, name)), name
    layer(torch.randn(4, 3, 5))
    assert layer.input_size == twin.input_size == 5
    assert cls(6, input_size=7, **kw).input_size == 7  # given: known at once
    assert layer._flat_weights_names == twin._flat_weights_names
    assert layer._all_weights == twin._all_weights
    assert [[tuple(p.shape) for p in ps] for ps in layer.all_weights] == [
        [tuple(p.shape) for p in ps] for ps in twin.all_weights
    ]


def test_mode_follows_the_activation_and_the_class():
    assert RNN(4, activation="relu").mode == "RNN_RELU"
    assert RNN(4).nonlinearity == "tanh"
    for cls, mode in MODES.items():
        assert cls(4).mode == mode


@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=IDS)
def test_state_dict_keys_are_torchs_and_load_both_ways_strictly(cls, kw):
    layer = ready(cls, kw)
    twin = plain_twin(cls, kw).eval()
    assert list(layer.state_dict()) == list(twin.state_dict())
    x = torch.randn(4, 3, 5)

    twin.load_state_dict(layer.state_dict(), strict=True)  # ours -> torch
    with torch.no_grad():
        torch.testing.assert_close(layer(x), twin(x)[0])

    torch.manual_seed(99)
    other = plain_twin(cls, kw).eval()  # other values
    layer.load_state_dict(other.state_dict(), strict=True)  # torch -> ours
    with torch.no_grad():
        torch.testing.assert_close(layer(x), other(x)[0])
        assert not torch.allclose(layer(x), twin(x)[0])


def test_a_deferred_layer_loads_the_twins_state_dict_and_learns_its_input_size():
    twin = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True).eval()
    layer = LSTM(6, num_layers=2, bidirectional=True).eval()
    layer.load_state_dict(twin.state_dict(), strict=True)
    assert layer.input_size == 5 and not lateinit.is_deferred(layer.weight_ih_l0)
    x = torch.randn(4, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), twin(x)[0])


def test_infer_shape_fills_input_size():
    layer = GRU(6, layout="NTC")
    layer.infer_shape(lateinit.Spec((None, None, 9)))
    assert layer.input_size == 9 and lateinit.state(layer.weight_ih_l0) == "SHAPED"


def test_gluon_names_are_attribute_aliases():
    lstm = LSTM(6, num_layers=2, bidirectional=True)
    assert lstm.l0_i2h_weight is lstm.weight_ih_l0  # deferred
    lstm(torch.randn(4, 3, 5))
    pairs = {
        "l0_i2h_weight": "weight_ih_l0",
        "l0_h2h_weight": "weight_hh_l0",
        "l0_i2h_bias": "bias_ih_l0",
        "l0_h2h_bias": "bias_hh_l0",
        "r0_i2h_weight": "weight_ih_l0_reverse",
        "r0_h2h_bias": "bias_hh_l0_reverse",
        "l1_i2h_weight": "weight_ih_l1",
        "r1_h2h_weight": "weight_hh_l1_reverse",
    }
    for gluon, torch_name in pairs.items():
        assert getattr(lstm, gluon) is getattr(lstm, torch_name), gluon
        assert lstm.gluon_names()[gluon] == torch_name
    assert len(lstm.gluon_names()) == 16
    assert tuple(lstm.r1_i2h_weight.shape) == (24, 12)  # layer 1 reads both directions
    # names the layer does not have stay errors
    with pytest.raises(AttributeError, match="r0_i2h_weight"):
        _ = LSTM(4).r0_i2h_weight  # no reverse direction
    with pytest.raises(AttributeError, match="l1_i2h_weight"):
        _ = LSTM(4).l1_i2h_weight  # one layer
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = LSTM(4).no_such_thing
    assert not hasattr(GRU(4, use_bias=False), "l0_i2h_bias")


def test_assigning_by_the_gluon_name_sets_the_torch_parameter():
    layer = ready(GRU, {"bidirectional": True})
    new = torch.nn.Parameter(torch.zeros(18, 5))
    layer.r0_i2h_weight = new
    assert layer.weight_ih_l0_reverse is new and layer.r0_i2h_weight is new
    assert "r0_i2h_weight" not in layer.__dict__ and "r0_i2h_weight" not in layer._parameters
    assert layer._flat_weights[layer._flat_weights_names.index("weight_ih_l0_reverse")] is new
    twin = plain_twin(GRU, {"bidirectional": True}).eval()
    twin.load_state_dict(layer.state_dict())
    assert torch.equal(twin.weight_ih_l0_reverse, torch.zeros(18, 5))
    x = torch.randn(4, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), twin(x)[0])  # the forward uses the new one


def test_collect_params_accepts_gluon_names():
    net = nn.Sequential(nn.LSTM(6, bidirectional=True), nn.Dense(2, flatten=False))
    params = net.collect_params()
    assert "0.weight_ih_l0" in params and "0.l0_i2h_weight" in params
    assert params["0.l0_i2h_weight"] is net[0].weight_ih_l0
    assert params.get("0.r0_h2h_bias") is net[0].bias_hh_l0_reverse
    assert list(net.collect_params(".*i2h_weight")) == ["0.weight_ih_l0", "0.weight_ih_l0_reverse"]
    assert list(net.collect_params(".*weight_ih")) == ["0.weight_ih_l0", "0.weight_ih_l0_reverse"]
    assert list(net.collect_params("0.r0_")) == [
        "0.weight_ih_l0_reverse",
        "0.weight_hh_l0_reverse",
        "0.bias_ih_l0_reverse",
        "0.bias_hh_l0_reverse",
    ]


def gluon_state(layer: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``layer``'s state dict under Gluon's names (``l0_i2h_weight``...)."""
    torch_to_gluon = {t: g for g, t in layer.gluon_names().items()}
    return {prefix + torch_to_gluon[k]: v.detach().clone() for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "ready"])
def test_load_state_dict_with_gluon_keys(deferred):
    source = ready(LSTM, {"num_layers": 2, "bidirectional": True}, seed=1)
    state = gluon_state(source)
    assert "r1_h2h_bias" in state and "weight_ih_l0" not in state
    layer = LSTM(6, num_layers=2, bidirectional=True)
    if not deferred:
        layer = ready(LSTM, {"num_layers": 2, "bidirectional": True}, seed=2)
    layer.load_state_dict(state, strict=True)
    for name, p in source.state_dict().items():
        assert torch.equal(layer.state_dict()[name], p), name
    assert list(layer.state_dict()) == list(source.state_dict())  # still torch's names


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred", "ready"])
def test_load_parameters_from_a_file_with_gluon_keys(tmp_path, deferred):
    torch.manual_seed(3)
    source = nn.Sequential(nn.GRU(6, bidirectional=True, layout="NTC"), nn.Dense(2))
    x = torch.randn(4, 3, 5)
    source(x)
    path = tmp_path / "gluon.safetensors"
    tensors = gluon_state(source[0], "0.")
    tensors |= {f"1.{k}": v.contiguous() for k, v in source[1].state_dict().items()}
    assert "0.r0_i2h_weight" in tensors
    save_file(tensors, str(path))

    target = nn.Sequential(nn.GRU(6, bidirectional=True, layout="NTC"), nn.Dense(2))
    if not deferred:
        target(x)
    target.load_parameters(path)
    assert target[0].input_size == 5
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))

    saved = tmp_path / "saved.safetensors"
    target.save_parameters(saved)  # written with torch's names
    with open(saved, "rb") as f:
        header = f.read(4096)
    assert b"0.weight_ih_l0_reverse" in header and b"r0_i2h_weight" not in header


def test_copies_moves_and_functional_call_stay_twins():
    layer = ready(LSTM, {"bidirectional": True})
    x = torch.randn(4, 3, 5)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert isinstance(clone, torch.nn.LSTM) and clone.l0_i2h_weight is clone.weight_ih_l0
        assert [id(w) for w in clone._flat_weights] == [id(p) for p in clone.parameters()]
        with torch.no_grad():
            torch.testing.assert_close(clone(x), layer(x))
    deferred = copy.deepcopy(LSTM(6, bidirectional=True))
    assert deferred.input_size is None and deferred(x).shape == (4, 3, 12)

    layer.to(torch.float64)
    assert all(w.dtype == torch.float64 for w in layer._flat_weights)
    assert [id(w) for w in layer._flat_weights] == [id(p) for p in layer.parameters()]
    zeros = {n: torch.zeros_like(p) for n, p in layer.named_parameters()}
    out = torch.func.functional_call(layer, zeros, (x.double(),))
    assert not out.any()  # the swapped-in weights were used


def test_a_deferred_layer_moved_before_its_first_call():
    layer = GRU(6).to(torch.float64)
    assert all(lateinit.is_deferred(w) for w in layer._flat_weights)
    assert [id(w) for w in layer._flat_weights] == [id(p) for p in layer.parameters()]
    assert layer(torch.randn(4, 3, 5, dtype=torch.float64)).dtype == torch.float64
    assert [id(w) for w in layer._flat_weights] == [id(p) for p in layer.parameters()]


def test_compile_fullgraph_traces_these_layers_only():
    torch._dynamo.reset()
    net = nn.Sequential(nn.LSTM(6, num_layers=2, layout="NTC"), nn.Dense(2, flatten=False))
    x = torch.randn(4, 3, 5)
    net(x)
    compiled = torch.compile(net, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net(x))
    # plain torch.nn.LSTMs keep torch's behaviour (dynamo's allow_rnn left as it was)
    assert torch._dynamo.config.allow_rnn is False
    plain = torch.compile(torch.nn.LSTM(5, 6), fullgraph=True, backend="eager")
    with pytest.raises(Exception, match="RNN, GRU, or LSTM"):
        plain(x)
