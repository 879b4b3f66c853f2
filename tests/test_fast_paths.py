"""The lean paths of construction and the first call keep torch's and lateinit's
semantics: registration hooks and overrides still run, a constant fill needs no
generator, a progress total is counted only when a bar is shown, and a deferred
parameter cannot be subclassed (it is told by its exact type)."""

from __future__ import annotations

import pytest
import torch

import lateinit
from lateinit import init, nn
from lateinit.progress import Progress


def test_global_parameter_registration_hook_sees_deferred_parameters() -> None:
    seen: list[tuple[str, str]] = []

    def hook(module: torch.nn.Module, name: str, param: torch.Tensor) -> None:
        seen.append((type(module).__name__, name))

    handle = torch.nn.modules.module.register_module_parameter_registration_hook(hook)
    try:
        layer = nn.Dense(4)
    finally:
        handle.remove()
    assert seen == [("Dense", "weight"), ("Dense", "bias")]
    assert list(dict(layer.named_parameters())) == ["weight", "bias"]


def test_register_parameter_override_runs_for_a_new_deferred_parameter() -> None:
    calls: list[str] = []

    class Logged(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.scale = lateinit.Parameter((-1,), init="ones")

        def register_parameter(self, name: str, param: torch.nn.Parameter | None) -> None:
            calls.append(name)
            super().register_parameter(name, param)

        def infer_param_shapes(self, x: torch.Tensor) -> None:
            self.scale.shape = (x.shape[-1],)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale

    layer = Logged()
    assert calls == ["scale"]
    assert layer(torch.ones(2, 3)).tolist() == [[1.0] * 3] * 2


def test_a_name_taken_by_the_class_is_refused_as_torch_does() -> None:
    class Clash(nn.Block):
        def __init__(self) -> None:
            super().__init__()
            self.forward_hint = lateinit.Parameter((2, -1))

        @property
        def forward_hint(self) -> int:  # a class attribute of the same name
            return 0

    with pytest.raises((KeyError, AttributeError)):
        Clash()


def test_plain_settings_and_tables_keep_torch_semantics() -> None:
    layer = nn.Dense(3, in_units=2)
    layer.bias = None  # a parameter's name: torch keeps the entry, set to None
    assert "bias" in layer._parameters and layer._parameters["bias"] is None
    assert layer(torch.ones(1, 2)).shape == (1, 3)
    with pytest.raises(TypeError):
        layer.weight = 3  # not a parameter: torch's TypeError
    layer.note = "kept"
    assert layer.__dict__["note"] == "kept"


def test_constant_fills_need_no_generator() -> None:
    assert not init.Zero().draws and not init.One().draws and not init.Constant(2).draws
    assert init.Xavier().draws and init.Normal().draws and init.resolve(torch.nn.init.ones_).draws

    class Noisy(init.Constant):  # a Constant whose fill draws: it gets its generator
        def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
            assert generator is not None
            tensor.uniform_(generator=generator)

    assert Noisy(0).draws
    p = lateinit.Parameter((3,), init=Noisy(0))
    p.initialize()
    assert not lateinit.is_deferred(p)


def test_constant_fill_keeps_values_and_rng_stream() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dense(4, in_units=3, weight_initializer="zeros"))
    net.initialize()
    after = torch.rand(2)
    torch.manual_seed(0)
    net2 = nn.Sequential(nn.Dense(4, in_units=3, weight_initializer="zeros"))
    net2.initialize()
    assert torch.equal(torch.rand(2), after)  # same draws from the global RNG
    assert net[0].weight.abs().sum().item() == 0.0


def test_progress_total_counted_only_when_shown() -> None:
    asked: list[int] = []

    def remaining() -> int:
        asked.append(1)
        return 100

    with Progress(remaining, "creating", enabled=False) as bar:
        bar.advance(10)
    assert asked == []  # never shown: never counted
    bar = Progress(remaining, "creating", enabled=False)
    bar.advance(30)
    assert bar.total == 130 and asked == [1]  # bytes done by then + the rest
    assert bar.total == 130 and asked == [1]  # counted once


def test_parameter_cannot_be_subclassed() -> None:
    with pytest.raises(TypeError, match="cannot be subclassed"):

        class Mine(lateinit.Parameter):
            pass


def test_gate_takes_an_unhashable_callable_from_user_code() -> None:
    class Op:  # defines __eq__ without __hash__: unhashable
        __name__ = "op"

        def __eq__(self, other: object) -> bool:
            return self is other

        def __call__(self, t: torch.Tensor) -> torch.Tensor:
            return t

    p = lateinit.Parameter((2, -1))
    with pytest.raises(lateinit.DeferredInitializationError):
        torch.overrides.handle_torch_function(Op(), (p,), p)
    assert p.is_leaf and p.dtype == torch.float32  # the getters answered first
