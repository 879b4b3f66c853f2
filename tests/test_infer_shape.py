"""Block.infer_shape: shapes without data, without allocating, then direct materialization.

The per-layer check over every row of the layer table is
``lateinit.testing.check_infer_shape``; this file covers the input forms, READY networks,
``initialize(device=, dtype=)`` after ``infer_shape``, the zoo, a 1.1B-parameter Llama
without allocation, ``None`` dims, errors with rollback, and memoization of identical
modules.
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import lateinit
from lateinit import ShapeMismatchError, Spec, init, nn, zoo
from lateinit.parameter import placeholder

# -- helpers -------------------------------------------------------------------------------


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Every parameter's and buffer's shape by structural name."""
    return {n: tuple(t.shape) for n, t in [*module.named_parameters(), *module.named_buffers()]}


def tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def assert_shaped(module: torch.nn.Module) -> None:
    """Every parameter (and deferred buffer) SHAPED: still deferred, so nothing is
    allocated, and every dim known."""
    params = list(module.named_parameters())
    deferred_buffers = [(n, b) for n, b in module.named_buffers() if lateinit.is_deferred(b)]
    assert params
    for name, t in params + deferred_buffers:
        assert lateinit.is_deferred(t), f"{name} was allocated"
        assert -1 not in tuple(t.shape), f"{name} {tuple(t.shape)} not SHAPED"
        assert placeholder(t).numel() == 0, f"{name}: storage allocated"


def states(module: torch.nn.Module) -> dict[str, str]:
    return {
        n: (t.state if lateinit.is_deferred(t) else "READY")  # type: ignore[attr-defined]
        for n, t in module.named_parameters()
    }


def forwards(module: torch.nn.Module) -> list[Any]:
    """The per-instance ``forward`` of every module (a deferred Block's first-call hook)."""
    return [m.__dict__.get("forward") for m in module.modules()]


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(10))


def built(factory: Any, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return factory()


# -- input forms ---------------------------------------------------------------------------

INPUT_FORMS = {
    "cpu_tensor": (lambda: torch.randn(2, 20), Spec((2, 10))),
    "meta_tensor": (lambda: torch.empty(2, 20, device="meta"), Spec((2, 10))),
    "shape_tuple": (lambda: (2, 20), Spec((2, 10))),
    "shape_tuple_none": (lambda: (None, 20), Spec((None, 10))),
    "spec": (lambda: Spec((2, 20)), Spec((2, 10))),
    "spec_none": (lambda: Spec((None, 20)), Spec((None, 10))),
    "torch_size": (lambda: torch.Size([2, 20]), Spec((2, 10))),
}


@pytest.mark.parametrize("form", list(INPUT_FORMS))
def test_input_forms(form):
    make, expected = INPUT_FORMS[form]
    net = built(mlp)
    before = forwards(net)
    x = make()
    out = net.infer_shape(x)
    assert isinstance(out, Spec)
    assert out == expected
    assert shapes(net) == {
        "0.weight": (16, 20),
        "0.bias": (16,),
        "1.weight": (10, 16),
        "1.bias": (10,),
    }
    assert_shaped(net)
    assert forwards(net) == before  # no stand-in forward left behind
    # A meta input does not move the parameters to meta: they are created on the CPU.
    assert all(p.device.type == "cpu" for p in net.parameters())
    net.initialize()
    assert all(p.device.type == "cpu" and not lateinit.is_deferred(p) for p in net.parameters())
    reference = built(mlp)
    reference(torch.randn(2, 20))
    for a, b in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_cpu_input_untouched():
    x = torch.randn(3, 20)
    copy = x.clone()
    net = built(mlp)
    assert net.infer_shape(x) == Spec((3, 10))
    assert torch.equal(x, copy) and x.device.type == "cpu"


def test_integer_spec_for_embedding():
    net = nn.Sequential(nn.Embedding(50, 8), nn.Dense(4, flatten=False))
    assert net.infer_shape(Spec((None, 6), torch.long)) == Spec((None, 6, 4))
    assert shapes(net) == {"0.weight": (50, 8), "1.weight": (4, 8), "1.bias": (4,)}


def test_output_dtype_follows_the_forward():
    net = nn.Sequential(nn.Dense(4), nn.Lambda(lambda x: x > 0))
    assert net.infer_shape(Spec((None, 3))) == Spec((None, 4), torch.bool)


class TwoTower(nn.Block):
    """A user block taking a dict of inputs (one of them a tuple) and returning a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Dense(8, activation="relu")
        self.text = nn.Dense(6, flatten=False)
        self.head = nn.Dense(3)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        tokens, mask = batch["text"]
        text = (self.text(tokens) * mask.unsqueeze(-1)).sum(1)
        hidden = torch.cat([self.image(batch["image"]), text], dim=-1)
        return {"logits": self.head(hidden), "hidden": [hidden, mask.shape[1]]}


def test_nested_dict_inputs():
    net = built(TwoTower)
    specs = {"image": Spec((None, 3, 4)), "text": (Spec((None, 5, 7)), Spec((None, 5)))}
    out = net.infer_shape(specs)
    assert out == {"logits": Spec((None, 3)), "hidden": [Spec((None, 14)), 5]}
    assert_shaped(net)
    real = built(TwoTower)
    batch = {"image": torch.randn(2, 3, 4), "text": (torch.randn(2, 5, 7), torch.ones(2, 5))}
    y = real(batch)
    assert tuple(y["logits"].shape) == (2, 3) and tuple(y["hidden"][0].shape) == (2, 14)
    assert shapes(net) == shapes(real)
    net.initialize()
    for a, b in zip(net.parameters(), real.parameters(), strict=True):
        assert torch.equal(a, b)


class Pair(nn.Block):
    """Several positional inputs and a list input; returns a tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Dense(4)
        self.b = nn.Dense(5, flatten=False)

    def forward(self, x: torch.Tensor, ys: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return self.a(x), self.b(torch.cat(ys, dim=-1))


def test_several_inputs_and_list():
    net = Pair()
    out = net.infer_shape((None, 3), [Spec((None, 2, 6)), (None, 2, 1)])
    assert out == (Spec((None, 4)), Spec((None, 2, 5)))
    assert shapes(net) == {"a.weight": (4, 3), "a.bias": (4,), "b.weight": (5, 7), "b.bias": (5,)}
    meta = Pair()
    x = torch.empty(2, 3, device="meta")
    ys = [torch.empty(2, 2, 6, device="meta"), torch.empty(2, 2, 1, device="meta")]
    assert meta.infer_shape(x, ys) == (Spec((2, 4)), Spec((2, 2, 5)))
    assert shapes(meta) == shapes(net)


# -- READY networks ------------------------------------------------------------------------


def test_ready_network_untouched(h):
    net = built(lambda: nn.Sequential(nn.Dense(64, activation="relu"), nn.Dense(10)))
    net(torch.randn(2, 20))
    before = h.snapshot(net)
    objects = [id(p) for p in net.parameters()]
    assert net.infer_shape(Spec((None, 20))) == Spec((None, 10))
    h.assert_same_snapshot(before, h.snapshot(net))
    assert [id(p) for p in net.parameters()] == objects
    h.assert_all_ready(net)
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert all("forward" not in m.__dict__ for m in net.modules())  # fast path kept
    with pytest.raises(ShapeMismatchError):
        net.infer_shape(Spec((None, 30)))
    h.assert_same_snapshot(before, h.snapshot(net))
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_ready_network_no_allocation():
    """64 MB of READY weights: infer_shape neither copies nor touches them."""
    net = nn.Sequential(nn.Dense(4096, in_units=4096), nn.Dense(8))
    net.initialize()
    net.infer_shape(Spec((None, 4096)))  # warm-up (imports, meta kernels)
    weight = net[0].weight
    pointer, version = weight.data_ptr(), weight._version
    tracemalloc.start()
    try:
        before = _rss()
        out = net.infer_shape(Spec((None, 4096)))
        growth = _rss() - before
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out == Spec((None, 8))
    assert weight.data_ptr() == pointer and weight._version == version
    assert growth < 16e6, f"RSS grew by {growth / 1e6:.1f} MB"
    assert peak < 8e6, f"tracemalloc peak {peak / 1e6:.1f} MB"


def test_mixed_ready_and_deferred(h):
    """A READY torch.nn.Linear and an eagerly initialized Dense stay as they are; the
    deferred layers end SHAPED."""
    net = built(
        lambda: nn.Sequential(
            nn.Dense(8, in_units=5), torch.nn.ReLU(), torch.nn.Linear(8, 6), nn.Dense(3)
        )
    )
    net[0].initialize()
    ready = {
        n: p.detach().clone() for n, p in net.named_parameters() if not lateinit.is_deferred(p)
    }
    assert set(ready) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert net.infer_shape(Spec((None, 5))) == Spec((None, 3))
    assert states(net) == {
        "0.weight": "READY",
        "0.bias": "READY",
        "2.weight": "READY",
        "2.bias": "READY",
        "3.weight": "SHAPED",
        "3.bias": "SHAPED",
    }
    assert tuple(net[3].weight.shape) == (3, 6)
    for n, p in net.named_parameters():
        if n in ready:
            assert torch.equal(p, ready[n])
    with pytest.warns(UserWarning, match="already initialized"):
        net.initialize()
    assert net(torch.randn(2, 5)).shape == (2, 3)


# -- initialize(device=, dtype=) after infer_shape -----------------------------------------


def test_initialize_on_meta_after_infer_shape():
    net = built(mlp)
    net.infer_shape(Spec((None, 20)))
    objects = [id(p) for p in net.parameters()]
    net.initialize(device="meta")
    assert [id(p) for p in net.parameters()] == objects
    for p in net.parameters():
        assert type(p) is torch.nn.Parameter
        assert p.device.type == "meta"
    assert shapes(net)["0.weight"] == (16, 20)
    out = net(torch.empty(4, 20, device="meta"))
    assert out.shape == (4, 10) and out.device.type == "meta"


def test_initialize_float64_after_infer_shape():
    seen: list[tuple[torch.dtype, str]] = []

    def spy(tensor: torch.Tensor) -> torch.Tensor:  # records where values are created
        seen.append((tensor.dtype, tensor.device.type))
        return torch.nn.init.uniform_(tensor, -0.3, 0.3)

    net = nn.Sequential(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Dense(16, weight_initializer=spy))
    net.infer_shape(Spec((None, 2, 5, 5)))
    net.initialize(init.Uniform(0.25), dtype=torch.float64)
    assert seen == [(torch.float64, "cpu")]  # created directly in float64, once
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        assert not lateinit.is_deferred(t), name
        assert t.device.type == "cpu", name
        if t.is_floating_point():
            assert t.dtype == torch.float64, name
            assert torch.isfinite(t).all(), name
    assert net[2].weight.abs().max() <= 0.3 and net[2].weight.std() > 0
    assert net[0].weight.abs().max() <= 0.25 and net[0].weight.std() > 0
    assert torch.equal(net[2].bias, torch.zeros(16, dtype=torch.float64))
    assert torch.equal(net[1].running_var, torch.ones(4, dtype=torch.float64))
    assert tuple(net[2].weight.shape) == (16, 36)


def test_initialize_float64_same_values_as_real_forward():
    """Same seeds: a float64 network from a spec holds the values of a float64 network
    initialized by a real batch."""
    a = built(mlp)
    a.infer_shape(Spec((None, 20)))
    a.initialize(init.Xavier(), dtype=torch.float64)
    b = built(mlp)
    b.initialize(init.Xavier(), dtype=torch.float64)
    b(torch.randn(2, 20, dtype=torch.float64))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.dtype == q.dtype == torch.float64
        assert torch.equal(p, q)


# -- no double initialization ----------------------------------------------------------------


class Counter:
    """A ``torch.nn.init``-style function (fills in place, returns the tensor) that
    counts calls per shape."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(tensor.shape))
        return torch.nn.init.uniform_(tensor, -0.1, 0.1)


def counted_net(counter: Counter) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(4, 3, weight_initializer=counter, bias_initializer=counter),
        nn.Flatten(),
        nn.Dense(8, weight_initializer=counter, bias_initializer=counter),
        nn.Dense(3, in_units=8, weight_initializer=counter, bias_initializer=counter),
    )


def test_each_parameter_initialized_once():
    counter = Counter()
    net = counted_net(counter)
    net.infer_shape(Spec((None, 2, 5, 5)))
    assert counter.calls == []  # shapes only
    net.initialize()
    expected = sorted([(4, 2, 3, 3), (4,), (8, 36), (8,), (3, 8), (3,)])
    assert sorted(counter.calls) == expected
    net(torch.randn(2, 2, 5, 5))
    net.infer_shape(Spec((None, 2, 5, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net.initialize()
    net(torch.randn(3, 2, 5, 5))
    assert sorted(counter.calls) == expected


def test_infer_shape_then_forward_initializes_once():
    counter = Counter()
    net = counted_net(counter)
    net.infer_shape(Spec((None, 2, 5, 5)))
    net.infer_shape(Spec((4, 2, 5, 5)))
    assert counter.calls == []
    net(torch.randn(2, 2, 5, 5))
    assert sorted(counter.calls) == sorted([(4, 2, 3, 3), (4,), (8, 36), (8,), (3, 8), (3,)])


def test_registered_initializer_once():
    counter = Counter()
    net = nn.Sequential(nn.Dense(8), nn.Dense(3))
    net.initialize(counter)  # weights only: the biases have "zeros" of their own
    net.infer_shape(Spec((None, 5)))
    assert counter.calls == []
    with pytest.warns(UserWarning, match="already initialized"):  # the biases are READY
        net.initialize()
    net(torch.randn(2, 5))
    assert sorted(counter.calls) == [(3, 8), (8, 5)]


# -- the zoo -------------------------------------------------------------------------------


def _small_llama(**kwargs: Any) -> Any:
    return zoo.llama(vocab_size=97, dim=32, n_layers=2, n_heads=4, hidden_dim=48, **kwargs)


def llama_count(
    vocab: int, dim: int, n_layers: int, n_heads: int, hidden: int, kv_heads: int
) -> int:
    kv = kv_heads * (dim // n_heads)
    layer = 2 * dim * dim + 2 * dim * kv + 3 * dim * hidden + 2 * dim
    return 2 * vocab * dim + n_layers * layer + dim


# name: (factory, input shape, input dtype, output shape, reference parameter count, device
# of the real forward: meta for vgg11, whose 133M parameters would only cost time here)
ZOO = {
    "mlp": (lambda: zoo.mlp((32, 16)), (2, 1, 8, 8), torch.float32, (2, 10), None, "cpu"),
    "lenet": (zoo.lenet, (2, 1, 28, 28), torch.float32, (2, 10), 61_706, "cpu"),
    "alexnet": (zoo.alexnet, (1, 3, 64, 64), torch.float32, (1, 1000), 61_100_840, "cpu"),
    "vgg11": (zoo.vgg11, (1, 3, 32, 32), torch.float32, (1, 1000), 132_863_336, "meta"),
    "nin": (zoo.nin, (1, 1, 96, 96), torch.float32, (1, 10), None, "cpu"),
    "googlenet": (zoo.googlenet, (1, 3, 64, 64), torch.float32, (1, 1000), 6_624_904, "cpu"),
    "resnet18": (zoo.resnet18, (1, 3, 64, 64), torch.float32, (1, 1000), 11_689_512, "cpu"),
    "resnet50": (zoo.resnet50, (1, 3, 64, 64), torch.float32, (1, 1000), 25_557_032, "cpu"),
    "densenet121": (zoo.densenet121, (1, 3, 64, 64), torch.float32, (1, 1000), 7_978_856, "cpu"),
    "llama": (
        _small_llama,
        (2, 7),
        torch.long,
        (2, 7, 97),
        llama_count(97, 32, 2, 4, 48, 4),
        "cpu",
    ),
    "llama_gqa_learned": (
        lambda: _small_llama(n_kv_heads=2, positions="learned", max_seq_len=16),
        (2, 7),
        torch.long,
        (2, 7, 97),
        llama_count(97, 32, 2, 4, 48, 2) + 16 * 32,
        "cpu",
    ),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_infer_shape_matches_forward(name):
    factory, shape, dtype, out_shape, n_params, device = ZOO[name]
    net = built(factory).eval()
    spec = net.infer_shape(Spec((None, *shape[1:]), dtype))
    assert spec == Spec((None, *out_shape[1:]))
    assert_shaped(net)
    assert net.infer_shape(Spec(shape, dtype)) == Spec(out_shape)  # again, a fixed batch
    if n_params is not None:
        assert sum(p.numel() for p in net.parameters()) == n_params

    real = built(factory).eval()
    if dtype == torch.long:
        x = torch.randint(0, 97, shape, device=device)
    else:
        x = torch.rand(shape, device=device)
    with torch.no_grad():
        y = real(x)
    assert tuple(y.shape) == out_shape
    assert shapes(net) == shapes(real)


def test_zoo_small_models_same_values():
    """infer_shape + initialize gives the values of a real forward (lenet, llama)."""
    for factory, shape, dtype in [
        (zoo.lenet, (2, 1, 28, 28), torch.float32),
        (_small_llama, (2, 7), torch.long),
    ]:
        a = built(factory).eval()
        a.infer_shape(Spec((None, *shape[1:]), dtype))
        a.initialize()
        b = built(factory).eval()
        x = torch.randint(0, 97, shape) if dtype == torch.long else torch.rand(shape)
        with torch.no_grad():
            ya, yb = a(x), b(x)
        assert torch.equal(ya, yb)
        for p, q in zip(tensors(a), tensors(b), strict=True):
            assert torch.equal(p, q)


# -- a 1.1B-parameter Llama: no allocation --------------------------------------------------


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_billion_parameter_llama_allocates_nothing():
    # TinyLlama's shape: 22 layers, dim 2048, 32 heads (4 key/value heads), hidden 5632.
    config = (32000, 2048, 22, 32, 5632, 4)
    # Warm-up on a tiny model: the first call imports torch machinery (one-time cost,
    # not parameter memory).
    _small_llama().infer_shape(Spec((None, 16), torch.long))
    net = zoo.llama(*config[:5], n_kv_heads=config[5])
    n = llama_count(*config)
    assert n == 1_100_048_384
    param_bytes = 4 * n  # float32: 4.4 GB
    gc.collect()
    before = _rss()
    tracemalloc.start()
    try:
        out = net.infer_shape(Spec((None, 16), torch.long))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    growth = _rss() - before
    assert out == Spec((None, 16, 32000))
    assert growth < 200e6 and growth < param_bytes / 20, f"RSS grew by {growth / 1e6:.0f} MB"
    assert peak < 50e6, f"tracemalloc peak {peak / 1e6:.0f} MB"
    assert_shaped(net)
    assert sum(p.numel() for p in net.parameters()) == n
    assert shapes(net)["layers.0.attention.wk.weight"] == (256, 2048)
    assert shapes(net)["output.weight"] == (32000, 2048)
    # and then created on meta: still nothing allocated
    net.initialize(device="meta")
    assert all(p.device.type == "meta" and not lateinit.is_deferred(p) for p in net.parameters())
    assert _rss() - before < 200e6


# -- None dims -------------------------------------------------------------------------------


def test_none_batch_dense_stack():
    net = nn.Sequential(nn.Dense(32, activation="relu"), nn.Dense(16), nn.Dense(10))
    assert net.infer_shape(Spec((None, 20))) == Spec((None, 10))
    assert shapes(net)["0.weight"] == (32, 20)


def convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2D(8, 3, padding=1, activation="relu"),
        nn.BatchNorm(),
        nn.MaxPool2D(2, 2),
        nn.Conv2D(16, 3, strides=2),
        nn.GlobalAvgPool2D(),
        nn.Flatten(),
        nn.Dense(10),
    )


def test_none_batch_conv_net():
    net = built(convnet)
    assert net.infer_shape(Spec((None, 3, 32, 32))) == Spec((None, 10))
    real = built(convnet)
    real(torch.randn(2, 3, 32, 32))
    assert shapes(net) == shapes(real)


def test_none_spatial_dims():
    """Dims that depend on a None dim are None; those that do not stay known."""
    net = nn.Sequential(nn.Conv2D(4, 3, strides=2, padding=1), nn.Conv2D(6, 1))
    assert net.infer_shape(Spec((2, 3, None, 32))) == Spec((2, 6, None, 16))
    pooled = nn.Sequential(nn.Conv2D(4, 3), nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(5))
    assert pooled.infer_shape(Spec((None, 3, None, None))) == Spec((None, 5))


def test_none_batch_transformer_encoder():
    net = nn.TransformerEncoderLayer(num_heads=4, hidden_size=32)
    assert net.infer_shape(Spec((None, 5, 16))) == Spec((None, 5, 16))
    assert_shaped(net)


def test_none_batch_lstm_layouts():
    ntc = nn.LSTM(8, layout="NTC", num_layers=2)
    assert ntc.infer_shape(Spec((None, 5, 10))) == Spec((None, 5, 8))
    tnc = nn.LSTM(8)  # TNC: the batch is axis 1
    assert tnc.infer_shape(Spec((5, None, 10))) == Spec((5, None, 8))
    states = tnc.infer_shape(Spec((5, None, 10)), [Spec((1, None, 8)), Spec((1, None, 8))])
    assert states[0] == Spec((5, None, 8))
    assert list(states[1]) == [Spec((1, None, 8)), Spec((1, None, 8))]


def test_none_sequence_length_attention():
    mha = nn.MultiHeadAttention(num_heads=4)
    assert mha.infer_shape(Spec((2, None, 16))) == Spec((2, None, 16))
    cross = nn.MultiHeadAttention(num_heads=4)
    out = cross.infer_shape(Spec((None, None, 16)), Spec((None, 9, 12)), Spec((None, 9, 10)))
    assert out == Spec((None, None, 16))
    assert shapes(cross)["key_weight"] == (16, 12)
    llm = built(_small_llama)
    assert llm.infer_shape(Spec((2, None), torch.long)) == Spec((2, None, 97))
    assert llm.infer_shape(Spec((None, None), torch.long)) == Spec((None, None, 97))


# -- data-dependent forwards: a clear error, and rollback -------------------------------------


class NeedsValues(nn.Block):
    """A user block whose forward needs real values."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.dense = nn.Dense(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense(x)
        if self.mode == "item":
            return x * x.sum().item()
        if self.mode == "branch":
            return x + 1 if x.max() > 0 else x - 1
        return x[x > 0].reshape(-1, 1)  # a boolean mask


def needs_values_net(mode: str) -> nn.Sequential:
    return nn.Sequential(nn.Dense(8), nn.Sequential(nn.Dense(6), NeedsValues(mode)))


@pytest.mark.parametrize("mode", ["item", "branch", "mask"])
def test_data_dependent_forward_error(mode):
    net = built(lambda: needs_values_net(mode))
    declared = states(net)
    before = forwards(net)
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError) as excinfo:
        net.infer_shape(Spec((None, 5)))
    message = str(excinfo.value)
    assert "'1.1' (NeedsValues)" in message, message  # the block, by its path
    assert "real batch" in message, message  # the fix
    # one clear message, about the block that needs the values (not about its containers)
    assert message.count("needs real values") == 1, message
    assert "(Sequential)" not in message and "layer Sequential" not in message, message
    # rolled back: every parameter DECLARED/SHAPED as before (0.weight was shaped, then undone)
    assert states(net) == declared
    assert shapes(net)["0.weight"] == (8, -1)
    assert all(lateinit.is_deferred(p) for p in net.parameters())
    assert forwards(net) == before
    assert torch.equal(torch.get_rng_state(), rng)
    # a real batch still works
    y = net(torch.randn(3, 5))
    assert y.shape[-1] == (1 if mode == "mask" else 4)
    assert not any(lateinit.is_deferred(p) for p in net.parameters())


def test_data_dependent_forward_error_on_ready_network(h):
    net = built(lambda: needs_values_net("item"))
    net(torch.randn(2, 5))
    before = h.snapshot(net)
    with pytest.raises(RuntimeError, match="NeedsValues"):
        net.infer_shape(Spec((None, 5)))
    h.assert_same_snapshot(before, h.snapshot(net))
    assert all("forward" not in m.__dict__ for m in net.modules())


# -- ShapeMismatchError during infer_shape ----------------------------------------------------


def mismatch_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Dense(12, activation="relu"),
        nn.Concatenate(nn.Dense(6), nn.Dense(4, in_units=20), axis=1),
        nn.Dense(3),
    )


def test_shape_mismatch_names_layer_and_rolls_back():
    net = built(mismatch_net)
    shapes_before, declared, before = shapes(net), states(net), forwards(net)
    rng = torch.get_rng_state()
    with pytest.raises(ShapeMismatchError) as excinfo:
        net.infer_shape(Spec((None, 30)))  # Dense(12) feeds 12 features, '1.1' wants 20
    message = str(excinfo.value)
    assert "'1.1' (Dense)" in message, message
    assert "20" in message and "Fix" in message, message
    # '0.weight' and '1.0.weight' were shaped before '1.1' failed: all undone
    assert shapes(net) == shapes_before
    assert states(net) == declared
    assert forwards(net) == before
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(lateinit.is_deferred(p) for p in net.parameters())


def test_shape_mismatch_then_valid_inputs_work():
    net = built(mismatch_net)
    with pytest.raises(ShapeMismatchError):
        net.infer_shape(Spec((None, 30)))
    layer = nn.Dense(4, in_units=20)
    with pytest.raises(ShapeMismatchError, match="Dense"):
        layer.infer_shape(Spec((None, 30)))
    assert layer.infer_shape(Spec((None, 20))) == Spec((None, 4))
    assert layer(torch.randn(2, 20)).shape == (2, 4)
    # the failed network: a valid spec, then a real batch
    fixed = built(
        lambda: nn.Sequential(
            nn.Dense(20), nn.Concatenate(nn.Dense(6), nn.Dense(4, in_units=20), axis=1)
        )
    )
    assert fixed.infer_shape(Spec((None, 30))) == Spec((None, 10))
    fixed.initialize()
    assert fixed(torch.randn(2, 30)).shape == (2, 10)


def test_shape_mismatch_message_shows_the_given_shape():
    """The message shows the spec the user gave, not the size standing in for None."""
    net = nn.Sequential(nn.Dense(4, in_units=20))
    with pytest.raises(ShapeMismatchError) as excinfo:
        net.infer_shape(Spec((None, 30)))
    message = str(excinfo.value)
    assert "(None, 30)" in message or "(N, 30)" in message, message


def test_parameter_depending_on_a_none_dim_rolls_back():
    """An unbatched Conv1D's dim 0 is its channels: a None there cannot be inferred."""
    unbatched = nn.Conv1D(3, 3)
    with pytest.raises(ValueError):
        unbatched.infer_shape(Spec((None, 8)))
    assert tuple(unbatched.weight.shape) == (3, -1, 3)
    assert unbatched(torch.randn(2, 8)).shape == (3, 6)


# -- memoization of identical modules ----------------------------------------------------------


def test_memo_identical_dense_blocks():
    def stack() -> nn.Sequential:
        return nn.Sequential(*(nn.Dense(8, activation="relu") for _ in range(4)))

    net = built(stack)
    assert net.infer_shape(Spec((None, 5))) == Spec((None, 8))
    assert shapes(net) == {
        **{f"{i}.weight": (8, 5 if i == 0 else 8) for i in range(4)},
        **{f"{i}.bias": (8,) for i in range(4)},
    }
    real = built(stack)
    real(torch.randn(2, 5))
    net.initialize()  # each replayed parameter kept its own seed
    for (name, p), q in zip(net.named_parameters(), real.parameters(), strict=True):
        assert torch.equal(p, q), name


class Fold(nn.Block):
    """Identical structure for every ``k``; the forward folds the features by ``k``, so
    the inner layer's input size depends on a plain int attribute."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.proj = nn.Dense(12, flatten=False)
        self.out = nn.Dense(5, flatten=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)  # (N, T, 12)
        y = y.reshape(x.shape[0], x.shape[1] * self.k, 12 // self.k)
        return self.out(y).mean(1, keepdim=True)  # (N, 1, 5)


def folds() -> nn.Sequential:
    return nn.Sequential(
        nn.Concatenate(Fold(2), Fold(3), Fold(2), Fold(1), axis=1),  # same input, same k twice
        Fold(4),
        Fold(6),
    )


def test_memo_respects_plain_attributes():
    net = built(folds)
    assert net.infer_shape(Spec((None, 3, 7))) == Spec((None, 1, 5))
    real = built(folds)
    real(torch.randn(2, 3, 7))
    assert shapes(net) == shapes(real)
    got = shapes(net)
    assert [got[f"0.{i}.out.weight"] for i in range(4)] == [(5, 6), (5, 4), (5, 6), (5, 12)]
    assert got["1.out.weight"] == (5, 3) and got["2.proj.weight"] == (12, 5)
    assert got["2.out.weight"] == (5, 2)
    net.initialize()
    x = torch.randn(2, 3, 7)
    assert torch.equal(net(x), real(x))


class Scaled(nn.Block):
    """Same structure; the output size depends on an attribute holding a tuple."""

    def __init__(self, repeat: tuple[int, int]) -> None:
        super().__init__()
        self.repeat = repeat
        self.dense = nn.Dense(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x).repeat(*self.repeat)


def test_memo_respects_container_attributes():
    net = nn.Sequential(Scaled((1, 2)), Scaled((1, 3)), Scaled((1, 1)))
    assert net.infer_shape(Spec((None, 5))) == Spec((None, 4))
    assert [tuple(net[i].dense.weight.shape) for i in range(3)] == [(4, 5), (4, 8), (4, 12)]


def test_memo_same_block_used_twice():
    shared = nn.Dense(6, activation="tanh")
    net = nn.Sequential(nn.Dense(6), shared, shared, nn.Dense(2))
    assert net.infer_shape(Spec((None, 3))) == Spec((None, 2))
    assert tuple(shared.weight.shape) == (6, 6)
    net.initialize()
    assert net(torch.randn(2, 3)).shape == (2, 2)


def test_memo_block_shared_by_two_parents():
    """A block held by two containers (its signature is needed by both): it used to be
    looked up before it was computed (a KeyError)."""
    shared = nn.Dense(4, activation="tanh")
    net = nn.Sequential(nn.Sequential(nn.Dense(4), shared), nn.Sequential(shared, nn.Dense(2)))
    assert net.infer_shape(Spec((None, 3))) == Spec((None, 2))
    assert tuple(shared.weight.shape) == (4, 4)
    assert tuple(net[1][1].weight.shape) == (2, 4)
    net.initialize()
    assert net(torch.randn(5, 3)).shape == (5, 2)


class Twin(nn.Block):
    """Two identical children; the forward reaches into the second after calling it."""

    def __init__(self, reach: str) -> None:
        super().__init__()
        self.reach = reach
        self.a = nn.Sequential(nn.Dense(6, flatten=False), nn.Dense(4, flatten=False))
        self.b = nn.Sequential(nn.Dense(6, flatten=False), nn.Dense(4, flatten=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x) + self.b(x)  # b replays a's run
        if self.reach == "shape":  # the replayed child's parts, read
            return y[..., : self.b[1].weight.shape[0] - 1]
        if self.reach == "op":  # ... and computed with
            first = self.b[0]
            return y + F.linear(x, first.weight, first.bias).mean(-1, keepdim=True)
        return torch.cat([y, *(m.bias.expand(*y.shape[:-1], -1) for m in self.b)], -1)


@pytest.mark.parametrize(("reach", "width"), [("shape", 3), ("op", 4), ("children", 14)])
def test_memo_a_replayed_block_reached_into(reach, width):
    """The replayed block was never cloned nor run: reaching into it (its children, a
    parameter's shape, a parameter in an op) sees what a run would have left there."""
    net = Twin(reach)
    before = forwards(net)
    assert net.infer_shape(Spec((None, 3, 5))) == Spec((None, 3, width))
    assert shapes(net) == {
        **{f"{c}.0.weight": (6, 5) for c in "ab"},
        **{f"{c}.0.bias": (6,) for c in "ab"},
        **{f"{c}.1.weight": (4, 6) for c in "ab"},
        **{f"{c}.1.bias": (4,) for c in "ab"},
    }
    assert forwards(net) == before
    net.initialize()
    assert net(torch.randn(2, 3, 5)).shape == (2, 3, width)


def test_memo_lambda_functions_differ():
    def proj(n: int) -> nn.Sequential:
        return nn.Sequential(nn.Lambda(lambda x: x[:, :n]), nn.Dense(3))

    net = nn.Concatenate(proj(2), proj(5), axis=1)
    assert net.infer_shape(Spec((None, 8))) == Spec((None, 6))
    first, second = net.children()
    assert tuple(first[1].weight.shape) == (3, 2)
    assert tuple(second[1].weight.shape) == (3, 5)


class Head(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(3, flatten=False)

    def forward(self, x: torch.Tensor, *, width: int) -> torch.Tensor:
        return self.dense(x[..., :width])


class TwoHeads(nn.Block):
    """Two identical blocks on the same input, called with different keyword arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.a = Head()
        self.b = Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x, width=2) + self.b(x, width=5)


def test_memo_respects_keyword_arguments():
    net = TwoHeads()
    assert net.infer_shape(Spec((None, 6))) == Spec((None, 3))
    assert tuple(net.a.dense.weight.shape) == (3, 2)
    assert tuple(net.b.dense.weight.shape) == (3, 5)


# -- bad descriptions of inputs, and the stand-in size of None dims ------------------------


@pytest.mark.parametrize("inputs", [(None,), (2, 5), (), (3.5,)], ids=str)
def test_infer_shape_refuses_what_is_not_an_input_description(inputs):
    net = nn.Sequential(nn.Dense(4))
    with pytest.raises(TypeError, match=r"lateinit\.Spec\(shape, dtype\)") as info:
        net.infer_shape(*inputs)
    if inputs == (2, 5):
        assert "Did you mean infer_shape((2, 5))?" in str(info.value)
    assert all(lateinit.is_deferred(p) for p in net.parameters())


def test_the_stand_in_size_of_a_none_dim_never_appears_in_a_message():
    from lateinit.shapes import NONE_SIZES

    net = zoo.lenet()
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net.infer_shape(lateinit.Spec((None, 1, 3, 3)))  # too small for the 5x5 kernels
    text = str(info.value)
    assert "(None, 6, 1, 1)" in text, text
    assert not any(str(n) in text for n in NONE_SIZES), text
    rnn = nn.Sequential(nn.Dense(8, flatten=False), nn.LSTM(4, layout="NTC"))
    rnn.infer_shape(lateinit.Spec((None, None, 3)))
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        rnn.infer_shape(lateinit.Spec((None, None, 5)))
    assert not any(str(n) in str(info.value) for n in NONE_SIZES), str(info.value)


@pytest.mark.parametrize(
    ("build", "spec", "shown"),
    [
        (lambda: nn.Dense(4), (None, None), "weight's shape (4, None)"),
        (lambda: nn.Conv2D(8, 3), (2, None, 9, 9), "weight's shape (8, None, 3, 3)"),
        (lambda: nn.Conv2D(8, 3), (None, 9, 9), "weight's shape (8, None, 3, 3)"),  # unbatched
        (lambda: nn.Sequential(nn.Dense(3), nn.LayerNorm()), (None, 5, None), "layer '0'"),
    ],
)
def test_a_parameter_sized_by_a_none_dim_is_named(build, spec, shown):
    # A None dim that a parameter would take its size from: the error names the layer,
    # the parameter and the fix, never "expects in_units=None ... would need (4, None)".
    net = build()
    states = [lateinit.state(t) for t in [*net.parameters(), *net.buffers()]]
    with pytest.raises(lateinit.ShapeMismatchError) as info:
        net.infer_shape(lateinit.Spec(spec))
    msg = str(info.value)
    assert shown in msg and "given as None (any size)" in msg and "Fix:" in msg, msg
    assert "=None" not in msg and "1031" not in msg and "1033" not in msg, msg
    assert [lateinit.state(t) for t in [*net.parameters(), *net.buffers()]] == states
