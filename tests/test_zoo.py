"""The model zoo: every model runs from one batch and has its reference parameter count."""

from __future__ import annotations

import pytest
import torch

import lateinit
from lateinit import zoo


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def torch_nin(in_channels: int, num_classes: int) -> torch.nn.Module:
    """d2l.ai's NiN in plain torch.nn: the reference for zoo.nin's count."""

    def block(cin: int, cout: int, k: int, s: int, p: int) -> list[torch.nn.Module]:
        return [
            torch.nn.Conv2d(cin, cout, k, s, p),
            torch.nn.ReLU(),
            torch.nn.Conv2d(cout, cout, 1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(cout, cout, 1),
            torch.nn.ReLU(),
        ]

    return torch.nn.Sequential(
        *block(in_channels, 96, 11, 4, 0),
        *block(96, 256, 5, 1, 2),
        *block(256, 384, 3, 1, 1),
        *block(384, num_classes, 3, 1, 1),
    )


# (factory, kwargs, input shape, expected output shape, reference parameter count)
MODELS = [
    (
        "mlp",
        zoo.mlp,
        {"hidden": (256, 128)},
        (2, 1, 28, 28),
        (2, 10),
        784 * 256 + 256 + 256 * 128 + 128 + 1290,
    ),
    ("lenet", zoo.lenet, {}, (2, 1, 28, 28), (2, 10), 61_706),
    ("alexnet", zoo.alexnet, {}, (1, 3, 224, 224), (1, 1000), 61_100_840),
    ("vgg11", zoo.vgg11, {}, (1, 3, 224, 224), (1, 1000), 132_863_336),
    ("nin", zoo.nin, {}, (1, 1, 224, 224), (1, 10), count(torch_nin(1, 10))),
    ("googlenet", zoo.googlenet, {}, (1, 3, 224, 224), (1, 1000), 6_624_904),
    ("resnet18", zoo.resnet18, {}, (1, 3, 224, 224), (1, 1000), 11_689_512),
    ("resnet50", zoo.resnet50, {}, (1, 3, 224, 224), (1, 1000), 25_557_032),
    ("densenet121", zoo.densenet121, {}, (1, 3, 224, 224), (1, 1000), 7_978_856),
]


@pytest.mark.parametrize(
    ("name", "factory", "kwargs", "shape", "out", "params"), MODELS, ids=[m[0] for m in MODELS]
)
def test_zoo_model(name, factory, kwargs, shape, out, params):
    torch.manual_seed(0)
    net = factory(**kwargs).eval()
    assert any(lateinit.is_deferred(p) for p in net.parameters())
    with torch.no_grad():
        y = net(torch.rand(shape))
    assert tuple(y.shape) == out
    assert count(net) == params
    assert not any(lateinit.is_deferred(t) for t in [*net.parameters(), *net.buffers()])
    assert all("forward" not in m.__dict__ for m in net.modules())


@pytest.mark.parametrize("factory", [zoo.resnet18, zoo.resnet50], ids=["resnet18", "resnet50"])
def test_resnet_any_resolution(factory):
    net = factory(num_classes=10).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 96, 96)).shape == (1, 10)
        assert net(torch.rand(1, 3, 224, 224)).shape == (1, 10)


def test_resnet_counts_same_at_96_and_224():
    small, large = zoo.resnet18(), zoo.resnet18()
    with torch.no_grad():
        small.eval()(torch.rand(1, 3, 96, 96))
        large.eval()(torch.rand(1, 3, 224, 224))
    assert count(small) == count(large) == 11_689_512


def llama_count(vocab, dim, n_layers, n_heads, hidden, n_kv_heads=None):
    kv = (n_kv_heads or n_heads) * (dim // n_heads)
    attention = 2 * dim * dim + 2 * dim * kv
    layer = attention + 3 * dim * hidden + 2 * dim
    return 2 * vocab * dim + n_layers * layer + dim


@pytest.mark.parametrize("n_kv_heads", [None, 2])
@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_llama_small(n_kv_heads, positions):
    torch.manual_seed(0)
    net = zoo.llama(
        vocab_size=97,
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=48,
        n_kv_heads=n_kv_heads,
        positions=positions,
        max_seq_len=16,
    )
    tokens = torch.randint(0, 97, (2, 7))
    logits = net(tokens)
    assert logits.shape == (2, 7, 97)
    extra = 16 * 32 if positions == "learned" else 0
    assert count(net) == llama_count(97, 32, 2, 4, 48, n_kv_heads) + extra
    # causal: a token's logits do not depend on later tokens
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 97
    torch.testing.assert_close(net(changed)[:, :-1], logits[:, :-1])


def test_llama_7b_count_on_meta():
    """Llama-2-7B's shape, materialized on the meta device (no memory): 6,738,415,616."""
    net = zoo.llama()
    net(torch.zeros(1, 4, dtype=torch.long, device="meta"))
    assert all(p.device.type == "meta" for p in net.parameters())
    assert count(net) == 6_738_415_616 == llama_count(32000, 4096, 32, 32, 11008)
