"""Gluon's parameter API: Block.params, Gluon's Parameter signature, ParameterDict's
initialize/setattr/save/load, values given to a deferred parameter, cast, params=
sharing, Gluon-style initializers, lateinit.save/load of tensor collections."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import lateinit
from lateinit import init, nn
from lateinit.parameter import set_data


# -- Gluon's Parameter signature -----------------------------------------------------------
def test_gluon_parameter_signature_zero_is_unknown():
    p = lateinit.Parameter("weight", shape=(3, 0), init="ones", lr_mult=2.0, wd_mult=0.5)
    assert tuple(p.shape) == (3, -1) and lateinit.state(p) == "DECLARED"
    assert (p.grad_req, p.lr_mult, p.wd_mult) == ("write", 2.0, 0.5)
    assert p.record.name == "weight"
    p.shape = (3, 4)
    lateinit.parameter.materialize(p)
    assert type(p) is torch.nn.Parameter and p.sum().item() == 12.0
    # the Gluon attributes stay plain attributes on the READY parameter
    assert (p.grad_req, p.lr_mult, p.wd_mult) == ("write", 2.0, 0.5)


def test_gluon_parameter_grad_req_null_and_dtype_names():
    p = lateinit.Parameter("w", grad_req="null", shape=(2,), dtype="float16")
    assert p.requires_grad is False and p.dtype == torch.float16
    p.grad_req = "write"
    assert p.requires_grad is True
    with pytest.raises(ValueError, match="grad_req"):
        lateinit.Parameter("w", grad_req="sometimes", shape=(2,))
    with pytest.raises(TypeError, match="shape="):
        lateinit.Parameter("w")


def test_gluon_attributes_survive_copies():
    p = lateinit.Parameter("w", shape=(0, 2), lr_mult=3.0)
    assert copy.deepcopy(p).lr_mult == 3.0
    assert pickle.loads(pickle.dumps(p)).lr_mult == 3.0
    rebuilt = type(p)(p.to("meta"), **p.__dict__)  # accelerate's init_empty_weights
    assert rebuilt.lr_mult == 3.0


def test_parameter_initialize_and_ctx():
    p = lateinit.Parameter("w", shape=(2, 2))
    p.initialize(init.One(), ctx="cpu")
    assert lateinit.state(p) == "READY" and p.sum().item() == 4.0
    q = lateinit.Parameter("w", shape=(2, 0))
    q.initialize(init.One())  # unknown dims: registered, created later
    assert lateinit.state(q) == "DECLARED"
    with pytest.raises(ValueError, match="one device"):
        lateinit.Parameter("w", shape=(2,)).initialize(ctx=["cpu", "cpu"])


def test_set_data_copies_in_the_parameters_dtype():
    p = lateinit.Parameter("w", shape=(2, 0))
    p.set_data(torch.ones(2, 3, dtype=torch.float64))
    assert lateinit.state(p) == "READY" and p.dtype == torch.float32 and p.shape == (2, 3)
    set_data(p, torch.zeros(2, 3))  # READY: in place
    assert p.sum().item() == 0.0
    q = lateinit.Parameter("w", shape=(2, 0))
    with pytest.raises(lateinit.ShapeMismatchError):
        q.set_data(torch.ones(3, 3))
    assert lateinit.state(q) == "DECLARED"


# -- values given to a deferred parameter are never lost -------------------------------------
def test_assigning_data_to_a_deferred_parameter_makes_it_ready():
    lstm = nn.LSTM(7)
    lstm.initialize()
    lstm.weight_ih_l0.data = torch.ones(28, 5)
    assert lateinit.state(lstm.weight_ih_l0) == "READY"
    lstm(torch.rand(3, 2, 5))
    assert torch.equal(lstm.weight_ih_l0, torch.ones(28, 5))
    assert torch.equal(lstm.l0_i2h_weight, torch.ones(28, 5))


def test_assigning_data_with_wrong_known_dims_is_an_error():
    dense = nn.Dense(4)
    with pytest.raises(lateinit.ShapeMismatchError, match="cannot give"):
        dense.weight.data = torch.ones(5, 3)
    assert lateinit.state(dense.weight) == "DECLARED"


def test_assigned_weight_with_deferred_siblings_in_one_hook():
    dense = nn.Dense(4)  # weight assigned, bias still deferred: the hook runs on a replica
    dense.weight.data = torch.ones(4, 3)
    out = dense(torch.ones(2, 3))
    assert torch.equal(out, torch.full((2, 4), 3.0))
    bad = nn.Dense(4, use_bias=False)
    bad.weight.data = torch.ones(4, 3)
    with pytest.raises(lateinit.ShapeMismatchError):
        nn.Sequential(bad, nn.Dense(2))(torch.ones(2, 5))


def test_assignment_inside_a_failed_first_pass_is_rolled_back():
    class Assigns(nn.Block):
        def __init__(self):
            super().__init__()
            self.inner = nn.Dense(2)

        def forward(self, x):
            self.inner.weight.data = torch.ones(2, x.shape[-1])
            raise RuntimeError("boom")

    net = Assigns()
    with pytest.raises(RuntimeError, match="boom"):
        net(torch.ones(1, 3))
    assert lateinit.state(net.inner.weight) == "DECLARED"


# -- Block.params ----------------------------------------------------------------------------
class _Scale(nn.Block):
    def __init__(self):
        super().__init__()
        self.weight = self.params.get("weight", shape=(0,), init="ones", lr_mult=0.1)
        self.offset = self.params.get_constant("offset", [1.0, 2.0, 3.0])

    def infer_param_shapes(self, x):
        self.weight.shape = (x.shape[-1],)

    def forward(self, x):
        return x * self.weight + self.offset


def test_block_params_get_and_get_constant():
    block = _Scale()
    assert set(block.params) == {"weight", "offset"}
    assert block.params.get("weight") is block.weight  # returns the existing one
    assert block.weight.lr_mult == 0.1
    assert block.offset.requires_grad is False and block.offset.grad_req == "null"
    out = block(torch.ones(2, 3))
    assert out.tolist() == [[2.0, 3.0, 4.0]] * 2
    assert set(block.collect_params()) == {"weight", "offset"}
    with pytest.raises(lateinit.ShapeMismatchError):
        block.params.get("weight", shape=(4,))


def test_block_params_gluon_names_and_shape_merge():
    bn = nn.BatchNorm()
    assert bn.params.get("gamma") is bn.weight
    block = nn.Block()
    p = block.params.get("w", shape=(0, 5))
    assert block.params.get("w", shape=(3, 0)) is p and tuple(p.shape) == (3, 5)


# -- collect_params and ParameterDict ----------------------------------------------------------
def test_collect_params_select_is_gluon_re_match():
    net = nn.Sequential(nn.Dense(3), nn.BatchNorm(), nn.Dense(1))
    assert list(net.collect_params(".*weight|.*bias")) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "2.weight",
        "2.bias",
    ]
    assert list(net.collect_params(".*gamma")) == ["1.weight"]
    assert list(net.collect_params("weight")) == []  # re.match, not re.search


def test_parameter_dict_initialize_setattr():
    net = nn.Sequential(nn.Dense(3, in_units=2), nn.Dense(1))
    params = net.collect_params(".*weight")
    params.initialize(init.One(), ctx="cpu")
    assert net[0].weight.sum().item() == 6.0 and lateinit.state(net[0].bias) == "SHAPED"
    net(torch.ones(1, 2))
    assert net[1].weight.sum().item() == 3.0
    with pytest.warns(UserWarning, match="already initialized"):
        params.initialize(init.Zero())
    params.initialize(init.Zero(), force_reinit=True)
    assert net[0].weight.abs().sum().item() == 0.0
    net.collect_params().setattr("grad_req", "null")
    assert not any(p.requires_grad for p in net.parameters())
    net.collect_params().setattr("lr_mult", 0.5)
    assert all(p.lr_mult == 0.5 for p in net.parameters())
    assert net.collect_params().list_ctx() == [torch.device("cpu")]


def test_parameter_dict_setattr_on_deferred():
    net = nn.Sequential(nn.Dense(3))
    net.collect_params().setattr("grad_req", "null")
    net(torch.ones(1, 2))
    assert net[0].weight.requires_grad is False


def test_parameter_dict_save_load(tmp_path):
    net = nn.Sequential(nn.Dense(3), nn.Dense(1))
    net(torch.rand(2, 4))
    path = tmp_path / "p.safetensors"
    net.collect_params().save(path)
    fresh = nn.Sequential(nn.Dense(3), nn.Dense(1))
    fresh.collect_params().load(path)
    assert torch.equal(fresh[0].weight, net[0].weight) and fresh[0].weight.shape == (3, 4)
    x = torch.rand(2, 4)
    assert torch.equal(fresh(x), net(x))
    other = nn.Sequential(nn.Dense(3), nn.Dense(2))
    with pytest.raises(ValueError, match="nothing was changed"):
        other.collect_params().load(path)
    assert lateinit.is_deferred(other[0].weight)
    with pytest.raises(lateinit.DeferredInitializationError):
        nn.Dense(2).collect_params().save(tmp_path / "x.safetensors")


# -- cast, params= ----------------------------------------------------------------------------
def test_cast_converts_ready_and_deferred():
    net = nn.Sequential(nn.Dense(4, in_units=3), nn.Dense(2)).cast("float16")
    assert net[0].weight.dtype == torch.float16 and net[1].weight.dtype == torch.float16
    net.cast(torch.float32)
    net(torch.ones(1, 3))
    assert net[1].weight.dtype == torch.float32


def test_in_units_zero_is_unknown():
    assert tuple(nn.Dense(4, in_units=0).weight.shape) == (4, -1)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: nn.Dense(4, **kw),
        lambda **kw: nn.Conv2D(4, 3, **kw),
        lambda **kw: nn.BatchNorm(**kw),
        lambda **kw: nn.Embedding(10, 4, **kw),
    ],
)
def test_params_argument_shares_by_name(make):
    first = make()
    second = make(params=first.collect_params())
    assert all(getattr(second, n) is p for n, p in first.collect_params().items() if "." not in n)


def test_params_argument_reaches_block_params_get():
    class Gluon1(nn.Block):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.weight = self.params.get("weight", shape=(2,), init="ones")

    first = Gluon1()
    second = Gluon1(params=first.collect_params())
    assert second.weight is first.weight


# -- Gluon-style initializers --------------------------------------------------------------------
class _MyInit(init.Initializer):
    def _init_weight(self, name, arr):
        arr[:] = torch.rand(arr.shape) + 10.0


def test_gluon_style_initializer_dispatches_by_name():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(3), nn.Dense(2))
    net.initialize(_MyInit())
    net(torch.ones(1, 4))
    assert net[0].weight.min().item() >= 10.0
    assert net[0].bias.abs().sum().item() == 0.0
    torch.manual_seed(0)
    again = nn.Sequential(nn.Dense(3), nn.Dense(2)).initialize(_MyInit())
    again(torch.ones(1, 4))
    assert torch.equal(again[0].weight, net[0].weight)  # reproducible


def test_gluon_style_initializer_names():
    t = torch.empty(3)
    assert _MyInit()(t, name="1.running_var").tolist() == [1.0] * 3
    assert _MyInit()(t, name="1.beta").tolist() == [0.0] * 3
    assert _MyInit()(torch.empty(2, 2), name="weight_ih_l0").min() >= 10.0
    with pytest.raises(ValueError, match="_init_default"):
        _MyInit()(t, name="alpha")
    with pytest.raises(NotImplementedError, match="_init_weight"):
        init.Initializer()(t, name="weight")


# -- lateinit.save / load ------------------------------------------------------------------------
def test_save_load_dict_and_list(tmp_path):
    path = tmp_path / "a.safetensors"
    lateinit.save(path, {"a": torch.ones(2), "b": torch.arange(3)})
    loaded = lateinit.load(path)
    assert isinstance(loaded, dict) and loaded["b"].tolist() == [0, 1, 2]
    shared = torch.ones(4)
    lateinit.save(path, [shared, shared[:2], torch.zeros(1)])
    loaded = lateinit.load(path)
    assert isinstance(loaded, list) and [t.shape[0] for t in loaded] == [4, 2, 1]
    lateinit.save(path, torch.eye(2))
    assert len(lateinit.load(path)) == 1
    with pytest.raises(TypeError):
        lateinit.save(path, {"a": [1, 2]})


def test_export_writes_a_program_that_reloads_and_runs(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2D(4, 3, activation="relu"), nn.Flatten(), nn.Dense(2))
    x = torch.randn(2, 3, 8, 8)
    net(x)
    program, params = net.export(tmp_path / "net", x)
    assert program.endswith(".pt2") and params.endswith(".safetensors")
    torch.testing.assert_close(torch.export.load(program).module()(x), net(x))
    fresh = nn.Sequential(nn.Conv2D(4, 3, activation="relu"), nn.Flatten(), nn.Dense(2))
    fresh.load_parameters(params)
    torch.testing.assert_close(fresh(x), net(x))
    with pytest.raises(TypeError, match="needs example inputs"):
        net.export(tmp_path / "again")
    with pytest.raises(lateinit.DeferredInitializationError):
        nn.Sequential(nn.Dense(2)).export(tmp_path / "deferred", torch.ones(1, 3))
