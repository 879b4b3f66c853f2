"""The torch ecosystem sees a lateinit network as its own (docs/design.md, "Layers are
torch layers"): tools that go by isinstance (PEFT, torchinfo, fvcore) work on the network
itself; tools that look up type(module) exactly (ptflops, torch.ao dynamic quantization)
work on ``lateinit.to_torch(net)``, which shares the parameters and gives the same outputs.

The tools are test extras (``pip install -e ".[test]"``); a test is skipped only where
its tool cannot be imported."""

from __future__ import annotations

import warnings

import pytest
import torch

import lateinit
from lateinit import nn, zoo


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    net = zoo.resnet18(num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    net(x)
    net.eval()
    return net, x


def _mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(16, activation="relu"), nn.Dense(4))
    x = torch.randn(3, 8)
    net(x)
    return net, x


# -- to_torch ----------------------------------------------------------------------------


def test_to_torch_gives_exact_torch_classes_sharing_parameters(resnet):
    net, x = resnet
    plain = lateinit.to_torch(net, x)
    torch.testing.assert_close(plain(x), net(x), rtol=0, atol=1e-5)
    kinds = {type(m) for m in plain.modules()}
    assert {torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear, torch.nn.ReLU} <= kinds
    assert not any(
        isinstance(m, lateinit.nn.Block) and not list(m.children()) for m in plain.modules()
    )
    ours = {id(p) for p in net.parameters()}
    assert {id(p) for p in plain.parameters()} == ours  # the same parameter objects


def test_to_torch_of_recurrent_and_embedding_layers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(20, 8), nn.LSTM(6, layout="NTC", bidirectional=True))
    x = torch.randint(0, 20, (2, 5))
    y = net(x)
    plain = lateinit.to_torch(net)
    assert type(plain[0]) is torch.nn.Embedding and type(plain[1].rnn) is torch.nn.LSTM
    torch.testing.assert_close(plain(x), y)


def test_to_torch_needs_a_ready_network():
    with pytest.raises(lateinit.DeferredInitializationError, match="READY"):
        lateinit.to_torch(nn.Sequential(nn.Dense(3)))


def test_jit_script_of_a_ready_network(resnet):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2D(4, 3, activation="relu"),
        nn.BatchNorm(),
        nn.Flatten(),
        nn.Dense(5),
    )
    x = torch.randn(2, 3, 8, 8)
    net(x)
    net.eval()
    scripted = torch.jit.script(net)
    torch.testing.assert_close(scripted(x), net(x))
    recurrent = nn.Sequential(nn.Dense(8, flatten=False), nn.LSTM(6, layout="NTC"))
    seq = torch.randn(2, 4, 3)
    recurrent(seq)
    torch.testing.assert_close(torch.jit.script(recurrent)(seq), recurrent(seq))


# -- isinstance tools -------------------------------------------------------------------


def test_torchinfo_totals_equal_the_torch_twin(resnet):
    torchinfo = pytest.importorskip("torchinfo")
    net, x = resnet
    ours = torchinfo.summary(net, input_data=x, verbose=0)
    twin = torchinfo.summary(lateinit.to_torch(net, x), input_data=x, verbose=0)
    assert ours.total_params == twin.total_params == lateinit.count_params(net)
    assert ours.total_mult_adds == twin.total_mult_adds


def test_fvcore_flops_equal_the_torch_twin(resnet):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    net, x = resnet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        totals = []
        for model in (net, lateinit.to_torch(net, x)):
            analysis = fvcore_nn.FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            totals.append(analysis.total())
    assert totals[0] == totals[1] > 0


def test_peft_lora_targets_dense_layers_and_trains_only_the_adapters():
    peft = pytest.importorskip("peft")
    net, x = _mlp()

    class Model(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x)

    base = [(p, p.detach().clone()) for p in net.parameters()]  # before LoRA is added
    model = peft.get_peft_model(
        Model(net), peft.LoraConfig(target_modules=["body.0", "body.1"], r=4)
    )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable), trainable
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
    assert all(torch.equal(p, before) and not p.requires_grad for p, before in base)
    assert any(
        not torch.equal(p, torch.zeros_like(p))
        for n, p in model.named_parameters()
        if "lora_B" in n
    )


# -- exact-type tools through to_torch ---------------------------------------------------


def test_ptflops_counts_the_torch_twin(resnet):
    ptflops = pytest.importorskip("ptflops")
    net, x = resnet
    plain = lateinit.to_torch(net, x)
    macs, params = ptflops.get_model_complexity_info(
        plain, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False, verbose=False
    )
    assert params == lateinit.count_params(net)
    flops = net.summary((*tuple(x.shape[1:])[:0], 1, *x.shape[1:])).totals.flops
    assert abs(macs - flops / 2) / macs < 0.05, (macs, flops)  # MACs ~ FLOPs / 2


def test_quantize_dynamic_of_the_torch_twin():
    net, x = _mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            lateinit.to_torch(net), {torch.nn.Linear}, dtype=torch.qint8
        )
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert any("quantized" in k for k in kinds), kinds
    torch.testing.assert_close(quantized(x), net(x), atol=0.05, rtol=0.05)
