"""Trainer: every optimizer built before the first batch and compared with plain torch on
copied weights, layers that join late, Gluon names, learning rate, saved states, errors;
and plain torch optimizers built over deferred parameters."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

import lateinit
from lateinit import nn
from lateinit.trainer import Trainer, available_optimizers

# Each optimizer by name with Gluon-style hyperparameters, and the same thing written
# by hand in torch's names: the Trainer's translation is checked against it.
CASES: dict[str, tuple[dict, type[torch.optim.Optimizer], dict]] = {
    "sgd": (
        {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3},
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
    ),
    "nag": (
        {"learning_rate": 0.1, "momentum": 0.8},
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.8, "nesterov": True},
    ),
    "adam": (
        {"learning_rate": 0.01, "beta1": 0.8, "epsilon": 1e-6, "wd": 1e-3},
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.8, 0.999), "eps": 1e-6, "weight_decay": 1e-3},
    ),
    "adamw": (
        {"learning_rate": 0.01, "beta2": 0.99, "wd": 0.1},
        torch.optim.AdamW,
        {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1},
    ),
    "adagrad": (
        {"learning_rate": 0.1, "initial_accumulator_value": 0.1},
        torch.optim.Adagrad,
        {"lr": 0.1, "initial_accumulator_value": 0.1},
    ),
    "adadelta": ({"learning_rate": 1.0, "rho": 0.8}, torch.optim.Adadelta, {"lr": 1.0, "rho": 0.8}),
    "adamax": ({"learning_rate": 0.02}, torch.optim.Adamax, {"lr": 0.02}),
    "nadam": ({"learning_rate": 0.01}, torch.optim.NAdam, {"lr": 0.01}),
    "radam": ({"learning_rate": 0.01}, torch.optim.RAdam, {"lr": 0.01}),
    "rmsprop": (
        {"learning_rate": 0.01, "gamma1": 0.9, "momentum": 0.5},
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.5},
    ),
    "rprop": ({"learning_rate": 0.01}, torch.optim.Rprop, {"lr": 0.01}),
    "asgd": ({"learning_rate": 0.05, "t0": 1.0}, torch.optim.ASGD, {"lr": 0.05, "t0": 1.0}),
}


# -- helpers -----------------------------------------------------------------------------
def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(3))


def _twin(net: nn.Sequential) -> torch.nn.Sequential:
    """The same MLP in torch.nn, with the lateinit network's current weights."""
    ref = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for dst, src in zip(ref.parameters(), net.parameters(), strict=True):
            dst.copy_(src)
    return ref


def _batches(n: int, size: int = 6, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 5, generator=g), torch.randint(0, 3, (size,), generator=g))
        for _ in range(n)
    ]


def _torch_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, n: int
) -> None:
    """The hand-written equivalent of a Trainer step: summed loss, gradients / n."""
    opt.zero_grad()
    loss.backward()
    for p in model.parameters():
        if p.grad is not None:
            p.grad /= n
    opt.step()


def _assert_close(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7, msg=name)


class TwoHeads(nn.Block):
    """A body and two heads; a batch goes to one head, or to both."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Dense(8, activation="relu")
        self.head_a = nn.Dense(3)
        self.head_b = nn.Dense(2)

    def forward(self, x: torch.Tensor, heads: str = "a") -> torch.Tensor:
        h = self.body(x)
        out = [getattr(self, f"head_{k}")(h) for k in heads]
        return torch.cat(out, dim=1)


class TorchTwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(5, 8)
        self.head_a = torch.nn.Linear(8, 3)
        self.head_b = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, heads: str = "a") -> torch.Tensor:
        h = torch.relu(self.body(x))
        return torch.cat([getattr(self, f"head_{k}")(h) for k in heads], dim=1)


def _copy(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)


def _head_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each head's slice (3 classes, then 2), summed over the batch."""
    loss = F.cross_entropy(out[:, :3], y % 3, reduction="sum") if out.shape[1] != 2 else 0
    if out.shape[1] != 3:
        loss = loss + F.cross_entropy(out[:, -2:], y % 2, reduction="sum")
    return loss


# -- every optimizer, built before the first batch ---------------------------------------
def test_the_case_table_covers_every_available_optimizer():
    assert sorted(CASES) == sorted(available_optimizers())


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_built_before_shapes_matches_plain_torch(name):
    gluon, cls, torch_kwargs = CASES[name]
    torch.manual_seed(0)
    net = _mlp()
    trainer = Trainer(net.collect_params(), name, gluon)
    assert trainer.pending == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ref = opt = None
    for x, y in _batches(5):
        trainer.zero_grad()
        loss = F.cross_entropy(net(x), y, reduction="sum")
        if ref is None:  # the first batch created the weights: copy them
            ref = _twin(net)
            opt = cls(ref.parameters(), **torch_kwargs)
        loss.backward()
        trainer.step(len(x))
        _torch_step(ref, opt, F.cross_entropy(ref(x), y, reduction="sum"), len(x))
    assert trainer.pending == []
    assert isinstance(trainer.optimizer, cls)
    for key, value in torch_kwargs.items():
        assert trainer.optimizer.param_groups[0][key] == value, key
    _assert_close(net, ref)
    # every optimizer state the torch optimizer holds is the same too
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        mine, theirs = trainer.optimizer.state[p], opt.state[q]
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-6, atol=1e-7, msg=key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unused_branch_warns_once_then_joins_and_trains_like_torch(name):
    """A head no batch reaches stays pending (one warning naming it; step works); when a
    batch reaches it, it joins and is updated exactly as torch updates a parameter whose
    gradient was None until then. A learning rate set before it joined applies to it."""
    gluon, cls, torch_kwargs = CASES[name]
    torch.manual_seed(1)
    net = TwoHeads()
    trainer = Trainer(net.collect_params(), name, gluon)
    optimizer = trainer.optimizer  # exists before any shape is known; never replaced
    ref = TorchTwoHeads()
    batches = _batches(6, seed=1)
    opt = None
    schedule = ["a", "a", "a", "b", "ab", "ab"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step, ((x, y), heads) in enumerate(zip(batches, schedule, strict=True)):
            if step == 2:
                trainer.set_learning_rate(trainer.learning_rate / 2)
                for group in opt.param_groups:
                    group["lr"] /= 2
            trainer.zero_grad()
            loss = _head_loss(net(x, heads), y)
            if opt is None:
                _copy(ref.body, net.body)
                _copy(ref.head_a, net.head_a)
                opt = cls(ref.parameters(), **torch_kwargs)
            if heads == "b":
                _copy(ref.head_b, net.head_b)  # created by this batch
            loss.backward()
            trainer.step(len(x), ignore_stale_grad=heads == "b")
            _torch_step(ref, opt, _head_loss(ref(x, heads), y), len(x))
            if step < 3:
                assert trainer.pending == ["head_b.weight", "head_b.bias"]
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1, messages
    assert "layer 'head_b' (Dense)" in messages[0]
    assert "head_b.weight, head_b.bias" in messages[0]
    assert "will join the optimizer when data reaches" in messages[0]
    assert trainer.pending == []
    assert trainer.optimizer is optimizer
    assert trainer.learning_rate == pytest.approx(torch_kwargs["lr"] / 2)
    assert all(g["lr"] == pytest.approx(torch_kwargs["lr"] / 2) for g in optimizer.param_groups)
    _assert_close(net, ref)


class _EagerState(torch.optim.Optimizer):
    """Fills its per-parameter state in the constructor only (as Adagrad did before torch
    learned to fill it lazily): a parameter added to its group later has no state."""

    def __init__(self, params, lr: float = 0.1, start: float = 1.0) -> None:
        super().__init__(params, {"lr": lr, "start": start})
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["scale"] = torch.full_like(p, start)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    scale = self.state[p]["scale"]  # KeyError without its state
                    p.sub_(group["lr"] * scale * p.grad)
                    scale.mul_(0.5)


def test_late_parameters_get_the_state_a_constructor_would_give_them():
    net = TwoHeads()
    trainer = Trainer(net.collect_params(), _EagerState, {"learning_rate": 0.2, "start": 3.0})
    x = torch.rand(4, 5)
    with pytest.warns(UserWarning, match="head_b"):
        net(x, "a").sum().backward()
        trainer.step(1)
    trainer.zero_grad()
    net(x, "ab").sum().backward()
    trainer.step(1)  # head_b joins with its constructor state (scale 3, not yet halved)
    state = trainer.optimizer.state
    assert torch.equal(state[net.head_b.weight]["scale"], torch.full((2, 8), 1.5))
    assert torch.equal(state[net.head_a.weight]["scale"], torch.full((3, 8), 0.75))
    assert trainer.optimizer.param_groups[0]["lr"] == 0.2


class _RefusesEmpty(torch.optim.SGD):
    """An optimizer that cannot be built over an empty parameter group."""

    def __init__(self, params, lr: float = 0.1) -> None:
        super().__init__(params, lr=lr)
        if not any(group["params"] for group in self.param_groups):
            raise ValueError("no parameters")


def test_optimizer_refusing_an_empty_group_is_created_at_the_first_join():
    with pytest.raises(ValueError, match="Invalid learning rate"):  # checked at once anyway
        Trainer(_mlp().collect_params(), _RefusesEmpty, {"learning_rate": -1.0})
    net = _mlp()
    trainer = Trainer(net.collect_params(), _RefusesEmpty, {"learning_rate": 0.5})
    assert trainer.optimizer is None
    assert trainer.learning_rate == 0.5
    trainer.set_learning_rate(0.25)
    x, y = _batches(1)[0]
    F.cross_entropy(net(x), y, reduction="sum").backward()
    ref = _twin(net)
    trainer.step(len(x))
    assert isinstance(trainer.optimizer, _RefusesEmpty)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.25
    opt = torch.optim.SGD(ref.parameters(), lr=0.25)
    _torch_step(ref, opt, F.cross_entropy(ref(x), y, reduction="sum"), len(x))
    _assert_close(net, ref)


def test_step_before_any_data_warns_per_layer_and_changes_nothing():
    net = _mlp()
    trainer = Trainer(net.collect_params(), "adam")
    with pytest.warns(UserWarning) as record:
        trainer.step(4)
    assert [str(w.message).split(" (")[0] for w in record] == [
        "Trainer.step: the parameters of layer '0'",
        "Trainer.step: the parameters of layer '1'",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.step(4)  # warned once per layer already
    assert all(lateinit.is_deferred(p) for p in net.parameters())


def test_unnamed_parameters_are_numbered_and_warnings_name_the_layer():
    net = TwoHeads()
    trainer = Trainer(net.parameters(), "sgd", {"learning_rate": 0.1})
    assert trainer.pending == [f"param{i}" for i in range(6)]
    net(torch.rand(2, 5)).sum().backward()
    with pytest.warns(UserWarning, match=r"layer 'head_b' \(Dense\) \(param4, param5\)"):
        trainer.step(2)
    assert trainer.pending == ["param4", "param5"]


def test_shared_parameters_are_counted_once():
    shared = nn.Dense(5, activation="tanh")
    net = nn.Sequential(shared, nn.Dense(5), shared)
    params = net.collect_params()
    assert len(params) == 4
    trainer = Trainer([*params.values(), *params.values()], "sgd")
    assert repr(trainer).endswith("parameters: 0 ready, 4 pending)")
    net(torch.rand(3, 5)).sum().backward()
    trainer.step(3)
    assert len(trainer.optimizer.param_groups[0]["params"]) == 4


def test_stale_gradient_is_an_error_unless_ignored():
    net = TwoHeads()
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    x = torch.rand(2, 5)
    net(x, "ab").sum().backward()
    trainer.step(2)
    trainer.zero_grad()
    net(x, "a").sum().backward()  # head_b is READY but not used by this batch
    before = net.head_b.weight.detach().clone()
    with pytest.raises(RuntimeError, match=r"'head_b.weight', 'head_b.bias' have no gradient"):
        trainer.step(2)
    trainer.step(2, ignore_stale_grad=True)
    assert torch.equal(net.head_b.weight.detach(), before)


def test_parameters_ready_at_construction_join_at_once():
    net = nn.Sequential(nn.Dense(8, in_units=5), nn.Dense(3)).initialize()
    trainer = Trainer(net.collect_params(), "adagrad", {"learning_rate": 0.1})
    # initialize() created every parameter whose shape is known: 1.bias (3,) too
    assert trainer.pending == ["1.weight"]
    held = trainer.optimizer.param_groups[0]["params"]
    assert [id(p) for p in held] == [id(net[0].weight), id(net[0].bias), id(net[1].bias)]
    assert repr(trainer) == (
        "Trainer('adagrad' (torch.optim.Adagrad), lr=0.1, parameters: 3 ready, 1 pending)"
    )


def test_lr_scheduler_attached_before_the_first_batch_drives_late_parameters():
    net = _mlp()
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.4})
    scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    for x, y in _batches(2):
        trainer.zero_grad()
        F.cross_entropy(net(x), y, reduction="sum").backward()
        trainer.step(len(x))
        scheduler.step()
    assert trainer.learning_rate == pytest.approx(0.1)
    assert len(trainer.optimizer.param_groups[0]["params"]) == 4


# -- gradients: rescale and clip ---------------------------------------------------------
def test_rescale_grad_and_clip_gradient():
    net = nn.Sequential(nn.Dense(3, in_units=4)).initialize()
    trainer = Trainer(
        net.collect_params(),
        "sgd",
        {"learning_rate": 1.0, "rescale_grad": 2.0, "clip_gradient": 0.05},
    )
    x = torch.randn(8, 4)
    net(x).pow(2).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    before = [p.detach().clone() for p in net.parameters()]
    trainer.step(8)
    for p, b, g in zip(net.parameters(), before, grads, strict=True):
        expected = b - (g * 2.0 / 8).clamp(-0.05, 0.05)
        torch.testing.assert_close(p.detach(), expected)
    assert any((g * 2.0 / 8).abs().max() > 0.05 for g in grads)  # the clip did clip


# -- names and errors --------------------------------------------------------------------
def test_gluon_names_map_to_torch_names():
    net = nn.Sequential(nn.Dense(2, in_units=2)).initialize()
    params = net.collect_params()
    adam = Trainer(
        params, "adam", {"learning_rate": 0.01, "beta2": 0.9, "epsilon": 1e-6, "wd": 0.1}
    )
    group = adam.optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        0.01,
        (0.9, 0.9),
        1e-6,
        0.1,
    )
    rms = Trainer(params, "rmsprop", {"gamma1": 0.95, "centered": True})
    assert rms.optimizer.param_groups[0]["alpha"] == 0.95
    assert rms.optimizer.param_groups[0]["centered"] is True
    nag = Trainer(params, "nag").optimizer.param_groups[0]
    assert (nag["nesterov"], nag["momentum"]) == (True, 0.9)
    by_class = Trainer(params, torch.optim.Adam, {"learning_rate": 0.5, "betas": (0.5, 0.6)})
    assert isinstance(by_class.optimizer, torch.optim.Adam)
    assert by_class.optimizer.param_groups[0]["betas"] == (0.5, 0.6)


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; use one of sgd, nag, adam"):
        Trainer(_mlp().collect_params(), "adamm")
    with pytest.raises(ValueError, match=r"unknown optimizer 'lamb'"):  # torch has no Lamb
        Trainer(_mlp().collect_params(), "lamb")
    with pytest.raises(TypeError, match="not an optimizer instance"):
        Trainer(_mlp().collect_params(), torch.optim.SGD([torch.zeros(1, requires_grad=True)]))
    with pytest.raises(TypeError, match="must be a name"):
        Trainer(_mlp().collect_params(), 3)


def test_unknown_or_conflicting_keys_are_clear_errors():
    params = _mlp().collect_params()
    with pytest.raises(ValueError) as err:
        Trainer(params, "adam", {"learning_rate": 0.1, "beta3": 0.5})
    message = str(err.value)
    assert "unknown optimizer_params key 'beta3' for 'adam' (torch.optim.Adam)" in message
    for accepted in ("learning_rate", "beta1", "betas", "amsgrad", "clip_gradient"):
        assert accepted in message
    with pytest.raises(ValueError, match="unknown optimizer_params key 'momentum' for 'adam'"):
        Trainer(params, "adam", {"momentum": 0.9})
    with pytest.raises(ValueError, match="gives 'lr' twice"):
        Trainer(params, "sgd", {"learning_rate": 0.1, "lr": 0.2})
    with pytest.raises(ValueError, match="needs momentum > 0"):
        Trainer(params, "nag", {"momentum": 0.0})
    with pytest.raises(ValueError, match="Invalid learning rate"):  # torch's own check, at once
        Trainer(params, "sgd", {"learning_rate": -1.0})
    with pytest.raises(TypeError, match="'x' is a str, not a parameter"):
        Trainer({"x": "nope"}, "sgd")


def test_set_learning_rate():
    net = _mlp()
    trainer = Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    assert trainer.learning_rate == 0.01
    trainer.set_learning_rate(0.5)
    assert trainer.learning_rate == 0.5
    net(torch.rand(2, 5)).sum().backward()
    trainer.step(2)  # the parameters join with the new rate
    assert trainer.learning_rate == 0.5
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.5]
    assert Trainer(_mlp().collect_params(), "sgd").learning_rate == 1e-3  # torch's default


# -- saved states ------------------------------------------------------------------------
def _train(net: torch.nn.Module, trainer: Trainer, batches) -> None:
    for x, y in batches:
        trainer.zero_grad()
        F.cross_entropy(net(x), y, reduction="sum").backward()
        trainer.step(len(x))


@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad", "asgd", "rprop"])
def test_save_and_load_states_continue_training_identically(tmp_path, name):
    gluon = CASES[name][0]
    batches = _batches(4, seed=2)
    torch.manual_seed(0)
    net = _mlp()
    trainer = Trainer(net.collect_params(), name, gluon)
    _train(net, trainer, batches[:2])
    trainer.set_learning_rate(trainer.learning_rate * 0.5)
    path = tmp_path / "trainer.states"
    trainer.save_states(path)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    _train(net, trainer, batches[2:])

    # a new network whose first layer is READY at once and whose second is deferred:
    # the states of the first apply now, those of the second when it joins
    net2 = nn.Sequential(nn.Dense(8, activation="relu", in_units=5), nn.Dense(3)).initialize()
    trainer2 = Trainer(net2.collect_params(), name, gluon)
    trainer2.load_states(path)
    assert trainer2.learning_rate == trainer.learning_rate
    assert trainer2.pending == ["1.weight"]
    net2.load_state_dict(weights)  # the second layer becomes READY without a batch
    _train(net2, trainer2, batches[2:])
    for (n, a), b in zip(net.named_parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b), n
    assert [f for f in os.listdir(tmp_path) if f != "trainer.states"] == []  # no temp left


def test_states_saved_while_pending_are_kept(tmp_path):
    """States loaded for pending parameters survive a save before they join."""
    net = _mlp()
    trainer = Trainer(net.collect_params(), "adam")
    _train(net, trainer, _batches(1))
    trainer.save_states(tmp_path / "a")
    t2 = Trainer(_mlp().collect_params(), "adam")
    t2.load_states(tmp_path / "a")
    t2.save_states(tmp_path / "b")
    a = torch.load(tmp_path / "a", weights_only=True)
    b = torch.load(tmp_path / "b", weights_only=True)
    assert a["params"].keys() == b["params"].keys()
    for name in a["params"]:
        assert a["params"][name]["shape"] == b["params"][name]["shape"]
        for key, value in a["params"][name]["state"].items():
            assert torch.equal(value, b["params"][name]["state"][key])


def test_loaded_states_for_another_shape_fail_at_the_join(tmp_path):
    net = _mlp()
    trainer = Trainer(net.collect_params(), "adam")
    _train(net, trainer, _batches(1))
    trainer.save_states(tmp_path / "s")
    net2 = _mlp()
    t2 = Trainer(net2.collect_params(), "adam")
    t2.load_states(tmp_path / "s")  # shapes unknown yet: nothing to compare
    net2(torch.rand(2, 7)).sum().backward()  # 7 input features, the file has 5
    with pytest.raises(ValueError, match=r"loaded for '0.weight' are for shape \(8, 5\)"):
        t2.step(2)


def test_load_states_errors_name_the_file_and_parameter(tmp_path):
    net = _mlp()
    trainer = Trainer(net.collect_params(), "adam")
    _train(net, trainer, _batches(1))
    path = tmp_path / "adam.states"
    trainer.save_states(path)

    with pytest.raises(ValueError, match=r"Adam optimizer, but this Trainer uses 'sgd'"):
        Trainer(net.collect_params(), "sgd").load_states(path)
    other = nn.Sequential(nn.Dense(8), nn.Dense(4), nn.Dense(3))
    with pytest.raises(ValueError, match=r"adam.states: does not match .*no states for '2.weight'"):
        Trainer(other.collect_params(), "adam").load_states(path)
    wide = nn.Sequential(nn.Dense(9), nn.Dense(3))
    with pytest.raises(
        ValueError, match=r"parameter '0.weight' are for shape \(8, 5\), but .*\(9, -1\)"
    ):
        Trainer(wide.collect_params(), "adam").load_states(path)
    narrow = nn.Sequential(nn.Dense(8, in_units=4), nn.Dense(3))
    with pytest.raises(ValueError, match=r"'0.weight' are for shape \(8, 5\), but .*\(8, 4\)"):
        Trainer(narrow.collect_params(), "adam").load_states(path)

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage: not a Trainer states file that can be read"):
        trainer.load_states(garbage)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated: not a Trainer states file"):
        trainer.load_states(truncated)
    weights = tmp_path / "weights.pt"
    torch.save(net.state_dict(), weights)
    with pytest.raises(ValueError, match=r"weights\.pt: not a lateinit Trainer states file"):
        trainer.load_states(weights)
    with pytest.raises(FileNotFoundError):
        trainer.load_states(tmp_path / "missing")


class _Payload:
    """An object a weights-only load must refuse to rebuild."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_states_never_unpickles_objects(tmp_path):
    evil = tmp_path / "evil"
    torch.save({"format": "lateinit.Trainer.states", "x": _Payload()}, evil)
    trainer = Trainer(_mlp().collect_params(), "adam")
    with pytest.raises(ValueError, match="evil: not a Trainer states file that can be read safely"):
        trainer.load_states(evil)


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    net = _mlp()
    trainer = Trainer(net.collect_params(), "sgd")
    path = tmp_path / "s"
    trainer.save_states(path)
    old = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_states(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["s"]


# -- plain torch optimizers over deferred parameters (docs/design.md, "Training") ------------------
@pytest.mark.parametrize("cls", [torch.optim.SGD, torch.optim.Adam])
def test_plain_torch_optimizer_built_before_the_first_batch(cls):
    torch.manual_seed(0)
    net = _mlp()
    opt = cls(net.parameters(), lr=0.05)
    ref = ropt = None
    for x, y in _batches(4):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        if ref is None:
            ref = _twin(net)
            ropt = cls(ref.parameters(), lr=0.05)
        loss.backward()
        opt.step()
        ropt.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        ropt.step()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", ["sgd", "nag", "adam", "adamw", "adagrad"])
def test_rescaling_is_fused_into_the_update_and_matches_the_unfused_trainer(name):
    # The Trainer builds torch's fused kernels when it can and hands them 1/scale as
    # grad_scale, instead of a separate pass over the gradients; the trajectory is the
    # one of the unfused Trainer (foreach=False: torch's default CPU kernels), batch sizes
    # varying, a head joining after the first steps (a zero momentum buffer, which is
    # torch's first step without dampening).
    gluon = {**CASES[name][0]} if name in CASES else {"learning_rate": 0.05}
    runs = []
    for extra in ({}, {"foreach": False}):
        torch.manual_seed(3)
        net = TwoHeads()
        trainer = Trainer(net.collect_params(), name, {**gluon, **extra})
        for i, (x, y) in enumerate(_batches(5, seed=4)):
            n = len(x) - i % 3  # batch sizes 6, 5, 4, 6, 5
            out = net(x[:n], "ab" if i >= 2 else "a")  # head b joins at the third step
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # head b waits, once
                F.cross_entropy(out, y[:n], reduction="sum").backward()
                trainer.step(n)
        fused = all(g.get("fused") for g in trainer.optimizer.param_groups)
        runs.append((fused, {k: v.detach().clone() for k, v in net.state_dict().items()}))
    (fused, values), (unfused, reference) = runs
    assert fused and not unfused
    for key, value in values.items():
        torch.testing.assert_close(value, reference[key], rtol=1e-5, atol=1e-6, msg=key)


def test_rescaling_is_not_fused_when_the_kernels_cannot_take_it():
    net = _mlp()
    net(torch.ones(1, 5))
    for name, params in [
        ("sgd", {"learning_rate": 0.1, "dampening": 0.5}),  # fused first step differs
        ("sgd", {"learning_rate": 0.1, "foreach": True}),  # an implementation chosen
        ("rmsprop", {"learning_rate": 0.1}),  # no fused kernel in torch
    ]:
        trainer = Trainer(net.collect_params(), name, params)
        assert not any(g.get("fused") for g in trainer.optimizer.param_groups), (name, params)
