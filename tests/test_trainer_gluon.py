"""Trainer: Gluon's gradient semantics (``grad_req`` "write" / "add" / "null") and
``lr_mult`` / ``wd_mult``, checked against MXNet's SGD update rule written out in numpy
(MXNet itself is not a dependency)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lateinit import nn
from lateinit.trainer import Trainer


def _scalar(grad_req: str | None = None) -> torch.nn.Parameter:
    w = torch.nn.Parameter(torch.tensor(1.0))
    if grad_req is not None:
        w.grad_req = grad_req  # as Gluon's Parameter.grad_req
    return w


def _gluon_loop(w: torch.Tensor, trainer: Trainer, steps: int, batch: int = 1) -> list[float]:
    """Gluon's loop: backward then step, never zeroing. ``loss = sum(w * x)`` over a batch
    of ones: the gradient is ``batch`` each backward, 1 after ``step(batch)``."""
    out = []
    for _ in range(steps):
        (w * torch.ones(batch)).sum().backward()
        trainer.step(batch)
        out.append(round(w.item(), 6))
    return out


# -- grad_req="write" (the default): the case ---------------------------------
@pytest.mark.parametrize("batch", [1, 2])
def test_gluon_loop_without_zero_grad_matches_mxnet(batch):
    """MXNet: 0.90, 0.80, 0.70 (each backward overwrites). Accumulating gave 0.90, 0.70,
    0.40 (and step(2) rescaled the leftovers: 0.90, 0.75, ...)."""
    w = _scalar()
    trainer = Trainer({"w": w}, "sgd", {"learning_rate": 0.1})
    assert _gluon_loop(w, trainer, 3, batch) == [0.9, 0.8, 0.7]
    assert w.grad is None  # cleared after the update: the next backward writes afresh


def test_gluon_loop_on_a_deferred_network_equals_a_zeroing_torch_loop():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(4, activation="relu"), nn.Dense(2))
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)) for _ in range(4)]
    ref = opt = None
    for x, y in data:
        loss = ((net(x) - y) ** 2).sum()  # no zero_grad, as in Gluon
        if ref is None:
            ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
            with torch.no_grad():
                for dst, src in zip(ref.parameters(), net.parameters(), strict=True):
                    dst.copy_(src)
            opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
        loss.backward()
        trainer.step(len(x))
        opt.zero_grad()
        (((ref(x) - y) ** 2).sum() / len(x)).backward()
        opt.step()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach())


def test_two_backwards_before_one_step_add_up():
    """The documented difference from MXNet (whose write keeps only the last backward):
    nothing runs between two backward passes, so they add up as in torch."""
    w = _scalar()
    trainer = Trainer({"w": w}, "sgd", {"learning_rate": 0.1})
    (w * 1.0).backward()
    (w * 3.0).backward()
    trainer.step(1)
    assert w.item() == pytest.approx(1.0 - 0.1 * 4.0)


def test_nothing_is_hooked_on_the_parameters():
    w = _scalar("add")
    v = _scalar()
    trainer = Trainer({"w": w, "v": v}, "sgd", {"learning_rate": 0.1})
    (w * v).backward()
    trainer.step(1)
    for p in (w, v):
        assert p._backward_hooks is None
        assert getattr(p, "_post_accumulate_grad_hooks", None) is None


# -- grad_req="add" ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["attribute", "trainer", "dict"])
@pytest.mark.parametrize("batch", [1, 2])
def test_add_accumulates_until_zero_grad_and_is_never_rescaled_in_place(how, batch):
    w = _scalar("add" if how == "attribute" else None)
    req = {"trainer": "add", "dict": {"w": "add"}}.get(how, "write")
    trainer = Trainer({"w": w}, "sgd", {"learning_rate": 0.1}, grad_req=req)
    assert _gluon_loop(w, trainer, 3, batch) == [0.9, 0.7, 0.4]  # MXNet's numbers
    assert w.grad.item() == 3.0 * batch  # the stored gradient is the raw sum
    trainer.zero_grad()
    assert _gluon_loop(w, trainer, 1, batch) == [0.3]


def test_add_with_clip_gradient_clips_the_rescaled_sum():
    w = _scalar("add")
    trainer = Trainer({"w": w}, "sgd", {"learning_rate": 0.1, "clip_gradient": 1.5})
    # rescaled sums 1, 2, 3 clipped to 1, 1.5, 1.5
    assert _gluon_loop(w, trainer, 3, 2) == [0.9, 0.75, 0.6]


def test_add_parameter_no_backward_reached_is_stale():
    w, v = _scalar("add"), _scalar()
    trainer = Trainer({"w": w, "v": v}, "sgd", {"learning_rate": 0.1})
    (w + v).backward()
    trainer.step(1)
    v.sum().backward()  # w not reached since the last step
    with pytest.raises(RuntimeError, match=r"parameter\(s\) 'w' have no gradient"):
        trainer.step(1)
    trainer.step(1, ignore_stale_grad=True)  # w skipped (as MXNet skips it), v updated
    assert (w.item(), v.item(), w.grad.item()) == (pytest.approx(0.9), pytest.approx(0.8), 1.0)
    w.sum().backward()  # reached again: accumulates onto the kept gradient
    trainer.step(1, ignore_stale_grad=True)  # v has no gradient (cleared): skipped
    assert (w.item(), v.item()) == (pytest.approx(0.7), pytest.approx(0.8))


def test_mixed_write_and_add_in_one_network():
    net = nn.Sequential(nn.Dense(3), nn.Dense(1))
    for p in net[1].collect_params().values():
        p.grad_req = "add"  # set on deferred parameters, kept when they are created
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
    x = torch.rand(4, 2)
    for _ in range(2):
        net(x).sum().backward()
        first = [p.grad.clone() for p in net.parameters()]
        trainer.step(4)
    assert net[0].weight.grad is None and net[0].bias.grad is None
    assert net[1].weight.grad is not None
    # the second backward added onto the first for layer 1 only
    torch.testing.assert_close(net[1].bias.grad, torch.tensor([8.0]))
    assert first[3].item() == 8.0


# -- grad_req="null" ----------------------------------------------------------------------
def test_null_freezes_even_deferred_parameters():
    net = nn.Sequential(nn.Dense(3), nn.Dense(1))
    for p in net[0].collect_params().values():
        p.grad_req = "null"
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    assert not net[0].weight.requires_grad
    assert trainer.pending == ["1.weight", "1.bias"]
    assert repr(trainer).endswith("parameters: 0 ready, 2 pending, 2 frozen)")
    x = torch.rand(4, 2)
    net(x).sum().backward()
    before = net[0].weight.detach().clone()
    trainer.step(4)  # no warning about layer 0, no stale-gradient error
    assert torch.equal(net[0].weight.detach(), before)
    held = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    assert [id(p) for p in held] == [id(net[1].weight), id(net[1].bias)]


def test_bad_grad_req_and_multipliers_are_clear_errors():
    with pytest.raises(ValueError, match="grad_req of Trainer must be one of 'write', 'add'"):
        Trainer({"w": _scalar()}, "sgd", grad_req="overwrite")
    with pytest.raises(ValueError, match="grad_req of parameter 'w' must be one of"):
        Trainer({"w": _scalar("accumulate")}, "sgd")
    with pytest.raises(ValueError, match=r"grad_req names unknown parameter\(s\) 'x'"):
        Trainer({"w": _scalar()}, "sgd", grad_req={"x": "add"})
    with pytest.raises(ValueError, match="lr_mult of parameter 'w' must be a number >= 0"):
        Trainer({"w": _scalar()}, "sgd", lr_mult={"w": -1})
    with pytest.raises(TypeError, match="lr_mult must be a dict of parameter names"):
        Trainer({"w": _scalar()}, "sgd", lr_mult=0.5)


# -- MXNet's SGD, step for step ------------------------------------------------------------
def _mxnet_sgd(weight, grad, mom, lr, wd, momentum, rescale, clip):
    """MXNet's ``sgd_mom_update`` (``SGDMomKernel``): the rescaled gradient is clipped,
    then ``mom = momentum * mom - lr * wd * weight - lr * clip(rescale * grad)`` and
    ``weight += mom`` (``lr``/``wd`` already times the parameter's multipliers)."""
    g = rescale * grad
    if clip is not None:
        g = np.clip(g, -clip, clip)
    mom[...] = momentum * mom - lr * wd * weight - lr * g
    weight += mom


@pytest.mark.parametrize("bias_req", ["write", "add"])
def test_trainer_equals_mxnet_sgd_step_for_step(bias_req):
    """A linear regression with Gluon's L2Loss (0.5 * (pred - y)^2, summed by backward),
    momentum, weight decay, clipping, ``lr_mult``/``wd_mult`` on the weight (attributes)
    and an ``lr_mult`` on the bias (Trainer argument)."""
    lr, wd, momentum, clip, n = 0.05, 0.01, 0.9, 0.6, 8
    net = nn.Sequential(nn.Dense(1))
    net[0].weight.lr_mult = 0.5
    net[0].weight.wd_mult = 2.0
    net[0].bias.grad_req = bias_req
    trainer = Trainer(
        net.collect_params(),
        "sgd",
        {"learning_rate": lr, "wd": wd, "momentum": momentum, "clip_gradient": clip},
        lr_mult={"0.bias": 3.0},
    )
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(n, 3, generator=g) for _ in range(5)]
    ys = [x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 for x in xs]
    with torch.no_grad():
        net(xs[0])  # create the weights, to copy them into the reference
    w = net[0].weight.detach().double().numpy().copy()
    b = net[0].bias.detach().double().numpy().copy()
    mw, mb = np.zeros_like(w), np.zeros_like(b)
    acc_b = np.zeros_like(b)
    clipped = False
    for x, y in zip(xs, ys, strict=True):
        loss = 0.5 * (net(x).squeeze(1) - y) ** 2
        loss.sum().backward()  # Gluon's loss.backward() on a batch; no zero_grad
        trainer.step(n)
        xd, yd = x.double().numpy(), y.double().numpy()
        r = xd @ w[0] + b[0] - yd
        gw, gb = (r @ xd)[None, :], np.array([r.sum()])
        acc_b = acc_b + gb if bias_req == "add" else gb
        clipped |= bool(np.abs(gw / n).max() > clip)
        _mxnet_sgd(w, gw, mw, lr * 0.5, wd * 2.0, momentum, 1 / n, clip)
        _mxnet_sgd(b, acc_b, mb, lr * 3.0, wd, momentum, 1 / n, clip)
        np.testing.assert_allclose(net[0].weight.detach().numpy(), w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(net[0].bias.detach().numpy(), b, rtol=1e-5, atol=1e-6)
    assert clipped  # the clip did clip
    groups = trainer.optimizer.param_groups
    assert [(gr["lr"], gr["weight_decay"]) for gr in groups] == [
        (lr, wd),  # the first group: no multipliers (empty here)
        (pytest.approx(lr * 0.5), pytest.approx(wd * 2.0)),
        (pytest.approx(lr * 3.0), pytest.approx(wd)),
    ]


# -- learning rate and states with multiplier groups ---------------------------------------
def _mult_net() -> tuple[nn.Sequential, Trainer]:
    net = nn.Sequential(nn.Dense(4, activation="tanh"), nn.Dense(2))
    net[1].weight.lr_mult = 0.1
    trainer = Trainer(
        net.collect_params(),
        "sgd",
        {"learning_rate": 0.2, "momentum": 0.9, "wd": 1e-3},
        wd_mult={"1.bias": 0.0},
    )
    return net, trainer


def _lrs(trainer: Trainer) -> list[tuple[float, float]]:
    return [(g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups]


def test_set_learning_rate_keeps_the_multipliers_also_for_late_parameters():
    net, trainer = _mult_net()
    trainer.set_learning_rate(0.5)  # before any parameter joined
    assert trainer.learning_rate == 0.5
    net(torch.rand(3, 5)).sum().backward()
    trainer.step(3)
    assert _lrs(trainer) == [(0.5, 1e-3), (pytest.approx(0.05), 1e-3), (0.5, 0.0)]
    trainer.set_learning_rate(0.1)
    assert _lrs(trainer) == [(0.1, 1e-3), (pytest.approx(0.01), 1e-3), (0.1, 0.0)]


def test_save_and_load_states_with_multiplier_groups(tmp_path):
    g = torch.Generator().manual_seed(3)
    data = [(torch.randn(6, 5, generator=g), torch.randn(6, 2, generator=g)) for _ in range(4)]

    def train(net, trainer, batches):
        for x, y in batches:
            ((net(x) - y) ** 2).sum().backward()
            trainer.step(len(x))

    torch.manual_seed(0)
    net, trainer = _mult_net()
    train(net, trainer, data[:2])
    trainer.set_learning_rate(0.1)
    trainer.save_states(tmp_path / "s")
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    train(net, trainer, data[2:])

    net2, trainer2 = _mult_net()  # deferred: the states apply when the parameters join
    trainer2.load_states(tmp_path / "s")
    assert trainer2.learning_rate == 0.1
    net2.load_state_dict(weights)
    train(net2, trainer2, data[2:])
    assert (
        _lrs(trainer2)
        == _lrs(trainer)
        == [
            (0.1, 1e-3),
            (pytest.approx(0.01), 1e-3),
            (0.1, 0.0),
        ]
    )
    for (n, a), b in zip(net.named_parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b), n
    # loaded into a READY network: every group gets the loaded rate times its multiplier
    net3, _ = _mult_net()
    net3.load_state_dict(weights)
    trainer3 = Trainer(
        net3.collect_params(),
        "sgd",
        {"learning_rate": 0.7, "momentum": 0.9, "wd": 1e-3},
        wd_mult={"1.bias": 0.0},
    )
    trainer3.load_states(tmp_path / "s")
    assert _lrs(trainer3) == [(0.1, 1e-3), (pytest.approx(0.01), 1e-3), (0.1, 0.0)]
    train(net3, trainer3, data[2:])
    for (n, a), b in zip(net.named_parameters(), net3.parameters(), strict=True):
        assert torch.equal(a, b), n
