"""Behaviour of the recurrent layers beyond the generic harness: states in and out,
dropout between layers, the fused kernel, errors, initialization, a small classifier."""

from __future__ import annotations

import copy
import math
from unittest import mock

import pytest
import torch
from torch import _VF

import lateinit
from cases_rnn import CASES, copy_rnn
from lateinit import init
from lateinit.nn import Dense, Lambda, Sequential
from lateinit.nn.rnn import GRU, LSTM, RNN

TWINS = {RNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}


def pair(cls, hidden=6, in_size=5, num_layers=1, layout="TNC", bidirectional=False, **kw):
    """A READY layer (deferred, one batch) and its torch.nn twin with copied weights."""
    torch.manual_seed(0)
    layer = cls(hidden, num_layers=num_layers, layout=layout, bidirectional=bidirectional, **kw)
    x = torch.randn(4, 3, in_size)
    layer(x)
    twin_kw = {"nonlinearity": kw["activation"]} if "activation" in kw else {}
    if "dropout" in kw:
        twin_kw["dropout"] = kw["dropout"]
    twin = TWINS[cls](
        in_size,
        hidden,
        num_layers,
        batch_first=layout == "NTC",
        bidirectional=bidirectional,
        **twin_kw,
    )
    copy_rnn(layer, twin)
    return layer, twin


def test_param_counts_match_torch():
    for case in CASES:
        if case.twin is None:  # a stack of cells
            continue
        twin = case.twin()
        assert sum(p.numel() for p in twin.parameters()) == case.n_params, case.id


def test_flat_weights_in_torch_order():
    layer, twin = pair(LSTM, num_layers=3, bidirectional=True)
    assert layer._flat_weights_names == twin._flat_weights_names
    assert layer._all_weights == twin._all_weights
    assert layer._flat_weights_names == [n for n, _ in layer.named_parameters()]
    assert all(p.is_contiguous() for p in layer.parameters())


@pytest.mark.parametrize(
    "cls, kw",
    [
        (RNN, {"activation": "tanh"}),
        (RNN, {"activation": "relu", "layout": "NTC"}),
        (GRU, {"num_layers": 2, "bidirectional": True}),
        (LSTM, {"num_layers": 2, "bidirectional": True, "layout": "NTC"}),
        (LSTM, {}),
    ],
)
def test_states_in_and_out_match_torch(cls, kw):
    layer, twin = pair(cls, **kw)
    rows = layer.num_layers * layer._dirs
    x = torch.randn(7, 3, 5)  # TNC: T=7, N=3 / NTC: N=7, T=3
    n = 7 if kw.get("layout") == "NTC" else 3
    h = torch.randn(rows, n, 6)
    if cls is LSTM:
        c = torch.randn(rows, n, 6)
        out, states = layer(x, [h, c])
        want, (wh, wc) = twin(x, (h, c))
        assert isinstance(states, list) and len(states) == 2
        torch.testing.assert_close(states[1], wc)
    else:
        out, states = layer(x, h)
        want, wh = twin(x, h)
        assert isinstance(states, torch.Tensor)  # a tensor in -> a tensor out
        out_list, states_list = layer(x, [h])  # a list in -> a list out (Gluon)
        assert isinstance(states_list, list) and torch.equal(states_list[0], states)
        torch.testing.assert_close(out_list, out)
        states = [states]
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(states[0], wh)


def test_output_alone_without_states_and_begin_state():
    layer, twin = pair(LSTM, num_layers=2, bidirectional=True)
    x = torch.randn(4, 3, 5)
    out = layer(x)
    assert isinstance(out, torch.Tensor) and out.shape == (4, 3, 12)
    states = layer.begin_state(3)
    assert [tuple(s.shape) for s in states] == [(4, 3, 6), (4, 3, 6)]
    assert all(not s.any() for s in states)
    out2, _ = layer(x, states)
    torch.testing.assert_close(out2, out)  # zero states == no states
    torch.testing.assert_close(out, twin(x)[0])
    assert len(GRU(4).begin_state(2)) == 1  # usable before inference too
    assert GRU(4, dtype=torch.float64).begin_state(2)[0].dtype == torch.float64


def test_parameter_gradients_match_torch():
    layer, twin = pair(LSTM, num_layers=2, bidirectional=True)
    x = torch.randn(4, 3, 5)
    layer(x).square().sum().backward()
    twin(x)[0].square().sum().backward()
    theirs = dict(twin.named_parameters())
    for name, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, atol=1e-5, rtol=1e-4)


def test_dropout_between_layers_in_train_mode_only():
    layer, twin = pair(LSTM, num_layers=2, dropout=0.5)
    x = torch.randn(9, 3, 5)
    layer.eval()
    twin.eval()
    assert torch.equal(layer(x), layer(x))
    torch.testing.assert_close(layer(x), twin(x)[0])
    layer.train()
    twin.train()
    torch.manual_seed(7)
    a = layer(x)
    b = layer(x)
    assert not torch.equal(a, b)  # a fresh dropout mask each call
    torch.manual_seed(7)
    torch.testing.assert_close(twin(x)[0], a)  # the same kernel draws the same masks
    layer.eval()
    assert not torch.equal(a, layer(x))
    # one layer: nothing between layers, so no dropout at all
    single = GRU(6, dropout=0.5).train()
    assert torch.equal(single(x), single(x))


@pytest.mark.parametrize(
    "cls, kw, kernel",
    [
        (RNN, {}, "rnn_tanh"),
        (RNN, {"activation": "relu"}, "rnn_relu"),
        (GRU, {"bidirectional": True}, "gru"),
        (LSTM, {"num_layers": 2, "layout": "NTC"}, "lstm"),
    ],
)
def test_one_fused_kernel_call_per_forward(cls, kw, kernel):
    torch.manual_seed(0)
    layer = cls(6, **kw)
    x = torch.randn(50, 3, 5)  # 50 steps (or 50 sequences for NTC)
    real = getattr(_VF, kernel)
    with mock.patch.object(_VF, kernel, wraps=real) as spy:
        layer(x)  # the first (initializing) call
        layer(x)
    assert spy.call_count == 2
    flat = spy.call_args.args[2]
    assert [id(w) for w in flat] == [id(p) for p in layer.parameters()]
    assert all(type(w) is torch.nn.Parameter and w.is_contiguous() for w in flat)
    assert getattr(_VF, kernel) is real  # the patch is gone


def test_mismatch_after_inference_is_named():
    layer = LSTM(8)
    layer(torch.randn(5, 3, 20))
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        layer(torch.randn(5, 3, 30))
    msg = str(info.value)
    assert "expects input_size=20 features on axis 2 (C of TNC)" in msg
    assert "LSTM" in msg and "Fix" in msg and "(5, 3, 30)" in msg
    assert layer(torch.randn(5, 3, 20)).shape == (5, 3, 8)

    net = Sequential(Dense(20, flatten=False), Sequential(GRU(4, layout="NTC")))
    net(torch.randn(2, 3, 7))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"'0' \(GRU\).*C of NTC"):
        net[1](torch.randn(2, 3, 6))


def test_eager_layer_never_computes_on_a_wrong_size():
    # torch's CPU (oneDNN) kernel does not check sizes itself: we must.
    layer = RNN(8, input_size=20).initialize()
    with pytest.raises(lateinit.ShapeMismatchError, match="input_size=20"):
        layer(torch.randn(5, 3, 21))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"\(1, 3, 8\)"):
        layer(torch.randn(5, 3, 20), torch.zeros(1, 4, 8))  # wrong batch in the states
    with pytest.raises(lateinit.ShapeMismatchError, match=r"\(1, 3, 8\)"):
        layer(torch.randn(5, 3, 20), torch.zeros(1, 3, 9))  # wrong hidden size
    with pytest.raises(lateinit.ShapeMismatchError, match=r"\(1, 3, 8\)"):
        layer(torch.randn(5, 3, 20), torch.zeros(2, 3, 8))  # wrong number of layers


@pytest.mark.parametrize("ready", [False, True])
def test_2d_input_is_a_clear_error(ready):
    layer = LSTM(8)
    if ready:
        layer(torch.randn(5, 3, 4))
    with pytest.raises(lateinit.ShapeMismatchError, match=r"3-D input \(T, N, C\).*not 2-D"):
        layer(torch.randn(5, 4))
    assert lateinit.is_deferred(layer.weight_ih_l0) is not ready  # rolled back / unchanged
    assert layer(torch.randn(5, 3, 4)).shape == (5, 3, 8)


def test_bad_states():
    layer = LSTM(8, num_layers=2)
    x = torch.randn(5, 3, 4)
    with pytest.raises(TypeError, match=r"LSTM.*\[h, c\]"):
        layer(x, torch.zeros(2, 3, 8))
    assert lateinit.is_deferred(layer.weight_ih_l0)  # the failed first pass rolled back
    with pytest.raises(lateinit.ShapeMismatchError, match=r"LSTM.*\(2, 3, 8\).*Fix"):
        layer(x, [torch.zeros(2, 3, 8), torch.zeros(1, 3, 8)])
    _, (h, c) = layer(x, layer.begin_state(3))
    with pytest.raises(TypeError, match="LSTM"):
        layer(x, [h])
    with pytest.raises(lateinit.ShapeMismatchError, match=r"LSTM.*\(2, 3, 8\)"):
        layer(x, [h[:, :2], c[:, :2]])
    with pytest.raises(TypeError, match="GRU"):
        GRU(8)(x, [torch.zeros(1, 3, 8), torch.zeros(1, 3, 8)])


def test_default_and_custom_initializers():
    torch.manual_seed(0)
    layer = LSTM(16, num_layers=2)
    layer(torch.randn(3, 2, 5))
    bound = 1 / math.sqrt(16)
    for name, p in layer.named_parameters():
        if name.startswith("weight"):
            assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound, name
            assert abs(p.mean().item()) < 0.1 * bound
        else:
            assert not p.any(), name  # Gluon: zero biases

    layer = GRU(4, i2h_weight_initializer="ones", h2h_bias_initializer=init.Constant(0.5))
    layer.initialize(init.Constant(2.0))
    layer(torch.randn(3, 2, 5))
    assert torch.equal(layer.weight_ih_l0, torch.ones(12, 5))
    assert torch.equal(layer.weight_hh_l0, torch.full((12, 4), 2.0))  # the registered init
    assert not layer.bias_ih_l0.any()
    assert torch.equal(layer.bias_hh_l0, torch.full((12,), 0.5))


def test_use_bias_false_matches_torch():
    torch.manual_seed(0)
    layer = GRU(6, num_layers=2, use_bias=False)
    x = torch.randn(4, 3, 5)
    layer(x)
    twin = torch.nn.GRU(5, 6, 2, bias=False)
    copy_rnn(layer, twin)
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in twin.parameters())
    torch.testing.assert_close(layer(x), twin(x)[0])
    assert "use_bias=False" in repr(layer)


def test_repr():
    layer = RNN(8, num_layers=2, dropout=0.25, bidirectional=True, layout="NTC")
    assert repr(layer) == "RNN(-1 -> 8, NTC, tanh, num_layers=2, dropout=0.25, bidirectional)"
    layer(torch.randn(2, 3, 4))
    assert repr(layer) == "RNN(4 -> 8, NTC, tanh, num_layers=2, dropout=0.25, bidirectional)"
    assert repr(GRU(3, input_size=7)) == "GRU(7 -> 3, TNC)"


def test_invalid_arguments():
    with pytest.raises(ValueError, match="layout"):
        LSTM(8, layout="NCT")
    with pytest.raises(ValueError, match="activation"):
        RNN(8, activation="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        GRU(8, dropout=1.0)
    with pytest.raises(ValueError, match="hidden_size"):
        LSTM(0)
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(4, num_layers=0)
    assert LSTM(4, input_size=0).l0_i2h_weight.shape == (16, -1)  # Gluon's 0 = unknown


def test_copies_and_moves():
    layer, twin = pair(LSTM, bidirectional=True)
    x = torch.randn(4, 3, 5)
    clone = copy.deepcopy(layer)
    torch.testing.assert_close(clone(x), layer(x))
    layer.flatten_parameters()  # a no-op on CPU
    layer.to(torch.float64)
    torch.testing.assert_close(layer(x.double()), twin.double()(x.double())[0])
    with pytest.raises(TypeError, match="float32 input"):
        layer(x)


def test_sequence_classifier_infers_input_size_from_one_batch():
    torch.manual_seed(0)
    net = Sequential(
        LSTM(8, layout="NTC"),
        Lambda(lambda out: out[:, -1]),  # the last step's output
        Dense(2),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)  # before any shape is known
    assert net[0].l0_i2h_weight.shape == (32, -1)
    x = torch.randn(32, 8, 5)
    y = (x[:, :, 0].sum(1) > 0).long()  # the sign of the sum of feature 0 over time
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert net[0].weight_ih_l0.shape == (32, 5)
    assert net[2].weight.shape == (2, 8)
    assert losses[-1] < 0.25 * losses[0]


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
@pytest.mark.parametrize("layout", ["TNC", "NTC"])
def test_infer_shape_skips_the_step_by_step_meta_kernel(monkeypatch, cls, layout):
    """torch's meta version of the fused kernel unrolls every step in Python (seconds for
    a None-sized sequence); shapes come from the formula instead, and agree with it."""
    import lateinit.nn.rnn as rnn_module

    layer = cls(6, num_layers=2, bidirectional=True, layout=layout)
    spec = (None, 3, 5) if layout == "TNC" else (3, None, 5)
    expected_states = (4, 3, 6)
    kernel = rnn_module._VF
    monkeypatch.setattr(rnn_module, "_VF", None)  # any kernel call would fail
    out = layer.infer_shape(lateinit.Spec(spec))
    assert out.shape == (*spec[:2], 12)
    x = (
        torch.empty(7, 3, 5, device="meta")
        if layout == "TNC"
        else torch.empty(3, 7, 5, device="meta")
    )
    layer.initialize(device="meta")
    states = layer.begin_state(3)
    y, new_states = layer(x, states)
    monkeypatch.setattr(rnn_module, "_VF", kernel)
    with torch.utils.flop_counter.FlopCounterMode(display=False):  # a mode: the kernel runs
        y_kernel, kernel_states = layer(x, states)
    assert y.shape == y_kernel.shape and y.dtype == y_kernel.dtype
    for a, b in zip(new_states, kernel_states, strict=True):
        assert a.shape == b.shape == expected_states
