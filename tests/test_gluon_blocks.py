"""Gluon code runs: HybridBlock with hybrid_forward(F, ...), HybridSequential, F's
operators against torch, and the recurrent cells (begin_state, steps, unroll)."""

from __future__ import annotations

import pytest
import torch

import lateinit
from lateinit import nn
from lateinit.nn import F

# -- HybridBlock ------------------------------------------------------------------------


class MyDense(nn.HybridBlock):
    """d2l's custom layer, Gluon 1.x style."""

    def __init__(self, units, in_units=0, **kwargs):
        super().__init__(**kwargs)
        self.weight = lateinit.Parameter((units, in_units or -1))
        self.bias = lateinit.Parameter((units,), init="zeros")

    def infer_param_shapes(self, x):
        self.weight.shape = (self.weight.shape[0], x.shape[1])

    def hybrid_forward(self, F, x, weight, bias):
        linear = F.dot(x, weight, transpose_b=True) + bias
        return F.relu(linear)


class Net(nn.HybridBlock):
    """Children called inside hybrid_forward, and an extra positional input."""

    def __init__(self):
        super().__init__(prefix="net_")
        self.hidden = nn.Dense(16)
        self.scale = lateinit.Parameter((16,), init="ones")

    def hybrid_forward(self, F, x, y, scale):
        h = F.Activation(self.hidden(x), act_type="tanh")
        return F.broadcast_mul(h, scale) + F.sum(y, axis=1, keepdims=True)


def test_hybrid_forward_gets_own_parameters_by_name():
    torch.manual_seed(0)
    layer = MyDense(4)
    assert lateinit.is_deferred(layer.weight)
    x = torch.rand(3, 5)
    out = layer(x)
    assert tuple(layer.weight.shape) == (4, 5)
    assert torch.allclose(out, torch.relu(x @ layer.weight.T + layer.bias))
    assert "forward" not in layer.__dict__  # READY: the class forward, nothing added


def test_hybrid_forward_children_and_extra_inputs():
    net = Net()
    x, y = torch.rand(2, 3), torch.rand(2, 4)
    out = net(x, y)
    want = torch.tanh(net.hidden(x)) * net.scale + y.sum(1, keepdim=True)
    assert torch.allclose(out, want)
    assert sorted(net.collect_params()) == ["hidden.bias", "hidden.weight", "scale"]


def test_hybrid_sequential_and_hybridize():
    torch.manual_seed(0)
    net = nn.HybridSequential()
    net.add(MyDense(8), nn.Dense(3))
    assert isinstance(net, nn.Sequential) and isinstance(net, nn.HybridBlock)
    assert net.hybridize(static_alloc=True, static_shape=True, backend="eager") is net
    x = torch.rand(4, 6)
    first = net(x)  # eager: infers the shapes
    compiled = net(x)
    assert net._compiled_call_impl is not None
    torch.testing.assert_close(first, compiled)
    assert isinstance(net[:1], nn.HybridSequential) and len(net) == 2
    loss = net(x).sum()
    loss.backward()
    assert net[0].weight.grad is not None


def test_hybrid_block_without_hook_names_it():
    class NoHook(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.w = lateinit.Parameter((3, -1))

        def hybrid_forward(self, F, x, w):
            return F.dot(x, w.T)

    net = NoHook()  # Gluon 1.x: the shape is read off the forward
    assert net(torch.rand(2, 4)).shape == (2, 3)
    assert tuple(net.w.shape) == (3, 4)

    class Untied(NoHook):
        def hybrid_forward(self, F, x, w):
            return x + w.sum()

    with pytest.raises(Exception, match=r"dim 1 of 'w'.*infer_param_shapes"):
        Untied()(torch.rand(2, 4))


def test_hybrid_block_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="hybrid_forward"):
        nn.HybridBlock()(torch.rand(2))


def test_gluon_params_argument_shares_parameters():
    first = MyDense(3)
    first(torch.ones(2, 4))
    second = MyDense(3, params=first.collect_params())
    assert second.weight is first.weight and second.bias is first.bias


def test_gluon2_style_forward_still_works():
    class Scale(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.s = lateinit.Parameter((1,), init="ones")

        def forward(self, x):
            return x * self.s

    assert torch.equal(Scale()(torch.ones(2)), torch.ones(2))


# -- F ----------------------------------------------------------------------------------


def test_f_operators_match_torch():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    w, bias = torch.randn(5, 12), torch.randn(5)
    assert torch.equal(F.FullyConnected(a, w, bias, num_hidden=5), a.flatten(1) @ w.T + bias)
    assert torch.equal(F.FullyConnected(a, w[:, :4], no_bias=True, flatten=False), a @ w[:, :4].T)
    assert torch.equal(F.Activation(a, act_type="softrelu"), torch.nn.functional.softplus(a))
    assert torch.equal(F.broadcast_add(a, b[:, :1]), a + b[:, :1])
    assert torch.equal(F.elemwise_mul(a, b), a * b)
    assert torch.equal(F.broadcast_greater(a, b), (a > b).float())
    assert torch.allclose(F.sum(a, axis=(0, 2)), a.sum((0, 2)))
    assert torch.allclose(F.sum(a, axis=1, exclude=True), a.sum((0, 2)))
    assert torch.equal(F.max(a, axis=1, keepdims=True), a.amax(1, keepdim=True))
    assert torch.allclose(F.mean(a), a.mean())
    assert torch.allclose(F.dot(a[0], b[0], transpose_b=True), a[0] @ b[0].T)
    assert torch.allclose(F.batch_dot(a, b, transpose_b=True), a @ b.transpose(1, 2))
    assert F.reshape(a, (0, -1)).shape == (2, 12)
    assert F.reshape(a, (-3, 0)).shape == (6, 4)
    assert F.reshape(a, (0, -4, 1, -1, 0)).shape == (2, 1, 3, 4)
    assert F.reshape(a, (-2,)).shape == (2, 3, 4)
    assert torch.equal(F.transpose(a, axes=(1, 0, 2)), a.permute(1, 0, 2))
    assert torch.equal(F.concat(a, b, dim=2), torch.cat([a, b], 2))
    assert torch.equal(F.stack(a, b, axis=1), torch.stack([a, b], 1))
    assert [t.shape for t in F.split(a, num_outputs=3, axis=1, squeeze_axis=True)] == [(2, 4)] * 3
    assert torch.equal(F.slice_axis(a, axis=2, begin=1, end=-1), a[:, :, 1:3])
    assert torch.allclose(F.softmax(a, axis=1), torch.softmax(a, 1))
    assert torch.equal(
        F.pick(a[0], torch.tensor([0.0, 3.0, 1.0]), axis=1), a[0, [0, 1, 2], [0, 3, 1]]
    )
    assert torch.equal(F.one_hot(torch.tensor([1, 0]), 3), torch.eye(3)[[1, 0]])
    assert F.zeros((2, 3), dtype="float16").dtype == torch.float16
    assert torch.equal(F.arange(3), torch.arange(3.0))
    assert F.cast(a, "int32").dtype == torch.int32
    assert torch.equal(F.expand_dims(a, 0), a[None])
    assert torch.equal(F.tanh(a), torch.tanh(a))
    assert F.erfinv is torch.erfinv  # a name F lacks: torch's
    mask = F.SequenceMask(a, torch.tensor([1, 2]), use_sequence_length=True, axis=1)
    assert mask[0, 1:].abs().sum() == 0 and torch.equal(mask[1, :2], a[1, :2])
    assert torch.allclose(F.np.sum(a, axis=1), a.sum(1))
    assert torch.allclose(F.npx.softmax(a), torch.softmax(a, -1))
    with pytest.raises(AttributeError, match="no operator"):
        F.NotAnOp  # noqa: B018


def test_f_conv_and_pooling():
    x = torch.randn(2, 3, 8, 8)
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    conv = F.Convolution(x, w, b, kernel=(3, 3), pad=(1, 1), num_filter=4)
    assert torch.allclose(conv, torch.nn.functional.conv2d(x, w, b, padding=1))
    pool = F.Pooling(conv, kernel=(2, 2), stride=(2, 2), pool_type="max")
    assert torch.equal(pool, torch.nn.functional.max_pool2d(conv, 2))
    assert F.Pooling(conv, pool_type="avg", global_pool=True).shape == (2, 4, 1, 1)


def test_f_dropout_follows_autograd():
    x = torch.ones(100)
    with torch.no_grad():
        assert torch.equal(F.Dropout(x, p=0.5), x)
    assert (F.Dropout(x, p=0.5) == 0).any()


# -- recurrent cells --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "twin_cls", "n_states"),
    [
        (nn.RNNCell, torch.nn.RNNCell, 1),
        (nn.LSTMCell, torch.nn.LSTMCell, 2),
        (nn.GRUCell, torch.nn.GRUCell, 1),
    ],
)
def test_cell_step_matches_torch(cls, twin_cls, n_states):
    torch.manual_seed(0)
    cell = cls(6)
    assert isinstance(cell, twin_cls) and cell.input_size is None
    states = cell.begin_state(3)
    assert len(states) == n_states and all(s.shape == (3, 6) for s in states)
    x = torch.randn(3, 4)
    out, new = cell(x, states)
    assert cell.input_size == 4 and isinstance(new, list) and len(new) == n_states
    twin = twin_cls(4, 6)
    twin.load_state_dict(cell.state_dict(), strict=True)
    hx = [torch.randn(3, 6) for _ in range(n_states)]
    out, new = cell(x, hx)
    want = twin(x, tuple(hx) if n_states == 2 else hx[0])
    want = list(want) if n_states == 2 else [want]
    for a, b in zip(new, want, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(out, want[0])
    assert cell.i2h_weight is cell.weight_ih and cell.h2h_bias is cell.bias_hh
    assert "i2h_weight" in cell.collect_params()


def test_begin_state_ctx_device_dtype():
    cell = nn.LSTMCell(5)
    h, c = cell.begin_state(2, ctx="cpu", dtype=torch.float64)
    assert h.dtype == torch.float64 and h.device.type == "cpu" and c.shape == (2, 5)
    assert cell.begin_state(batch_size=3, device=torch.device("cpu"))[0].shape == (3, 5)
    ones = cell.begin_state(2, func=torch.ones)
    assert torch.equal(ones[0], torch.ones(2, 5))
    with pytest.raises(ValueError, match="ctx"):
        cell.begin_state(2, device="cpu", ctx="meta")
    assert cell.state_info(4) == [{"shape": (4, 5), "__layout__": "NC"}] * 2


@pytest.mark.parametrize("layout", ["NTC", "TNC"])
@pytest.mark.parametrize("merge_outputs", [None, True, False])
@pytest.mark.parametrize("as_list", [False, True])
def test_unroll_matches_steps(layout, merge_outputs, as_list):
    torch.manual_seed(0)
    cell = nn.GRUCell(5)
    seq = torch.randn(2, 4, 3) if layout == "NTC" else torch.randn(4, 2, 3)
    axis = layout.find("T")
    inputs = list(seq.unbind(axis)) if as_list else seq
    outputs, states = cell.unroll(4, inputs, layout=layout, merge_outputs=merge_outputs)
    want_states = cell.begin_state(2)
    steps = []
    for x in seq.unbind(axis):
        out, want_states = cell(x, want_states)
        steps.append(out)
    merged = merge_outputs if merge_outputs is not None else not as_list
    if merged:
        assert torch.equal(outputs, torch.stack(steps, axis))
    else:
        assert isinstance(outputs, list) and all(
            torch.equal(a, b) for a, b in zip(outputs, steps, strict=True)
        )
    assert torch.equal(states[0], want_states[0])


def test_unroll_equals_torch_lstm_layer():
    """An LSTMCell unrolled over a sequence computes what the fused LSTM layer does."""
    torch.manual_seed(0)
    cell = nn.LSTMCell(6, input_size=3)
    cell.initialize()
    layer = torch.nn.LSTM(3, 6, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").copy_(getattr(cell, name))
    x = torch.randn(2, 7, 3)
    outputs, (h, c) = cell.unroll(7, x, layout="NTC")
    want, (wh, wc) = layer(x)
    torch.testing.assert_close(outputs, want)
    torch.testing.assert_close(h, wh[0])
    torch.testing.assert_close(c, wc[0])


def test_unroll_valid_length_and_errors():
    torch.manual_seed(0)
    cell = nn.RNNCell(4)
    x = torch.randn(2, 5, 3)
    outputs, [h] = cell.unroll(5, x, valid_length=torch.tensor([2, 5]))
    assert outputs[0, 2:].abs().sum() == 0
    short, [h2] = cell.unroll(2, x[:1, :2])
    assert torch.allclose(h[0], h2[0]) and torch.allclose(outputs[0, :2], short[0])
    with pytest.raises(lateinit.ShapeMismatchError, match="length=3"):
        cell.unroll(3, x)
    with pytest.raises(ValueError, match="layout"):
        cell.unroll(5, x, layout="NCT")


def test_sequential_rnn_cell():
    torch.manual_seed(0)
    stack = nn.SequentialRNNCell()
    stack.add(nn.LSTMCell(8))
    stack.add(nn.GRUCell(4))
    states = stack.begin_state(2, ctx="cpu")
    assert [tuple(s.shape) for s in states] == [(2, 8), (2, 8), (2, 4)]
    x = torch.randn(2, 6, 3)
    outputs, new = stack.unroll(6, x)
    assert outputs.shape == (2, 6, 4) and len(new) == 3
    # the same as running the cells one after the other
    mid, s0 = stack[0].unroll(6, x)
    out, s1 = stack[1].unroll(6, mid)
    assert torch.equal(outputs, out) and torch.equal(new[2], s1[0]) and torch.equal(new[0], s0[0])
    assert len(stack) == 2
    with pytest.raises(TypeError, match="recurrent cell"):
        stack.add(nn.Dense(3))


def test_cell_errors_name_the_cell():
    cell = nn.LSTMCell(4)
    with pytest.raises(lateinit.ShapeMismatchError, match="one time step"):
        cell(torch.randn(2, 5, 3))
    cell(torch.randn(2, 3))
    with pytest.raises(lateinit.ShapeMismatchError, match="LSTMCell"):
        cell(torch.randn(2, 7))
    with pytest.raises(TypeError, match=r"\[h, c\]"):
        cell(torch.randn(2, 3), torch.zeros(2, 4))


def test_cells_under_hybridize():
    net = nn.SequentialRNNCell(nn.RNNCell(4, activation="relu"), nn.LSTMCell(3))
    x = torch.randn(2, 5)
    want = net(x)
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    got = compiled(x)
    torch.testing.assert_close(got[0], want[0])


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_layer_begin_state_ctx(cls):
    layer = cls(8, num_layers=2, bidirectional=True)
    states = layer.begin_state(3, ctx="cpu")  # before the input size is known
    assert layer.input_size is None
    assert len(states) == (2 if cls is nn.LSTM else 1)
    assert all(tuple(s.shape) == (4, 3, 8) for s in states)
    out, new = layer(torch.randn(5, 3, 2), states)
    assert out.shape == (5, 3, 16) and new[0].shape == (4, 3, 8)
    assert layer.begin_state(2, device="cpu", dtype=torch.float64)[0].dtype == torch.float64


def test_name_scope_is_accepted_as_in_gluon_1():
    from lateinit import nn as lnn

    class Net(lnn.Block):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.dense = lnn.Dense(3)

        def forward(self, x):
            return self.dense(x)

    net = Net()
    assert net(torch.ones(2, 4)).shape == (2, 3)
    assert list(net.collect_params()) == ["dense.weight", "dense.bias"]
