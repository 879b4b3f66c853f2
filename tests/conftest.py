"""Shared helpers for the behaviour tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

import lateinit


def snapshot(module: torch.nn.Module) -> dict[str, tuple[Any, ...]]:
    """Everything observable about each parameter: identity, class, state, shape, values.

    READY values are cloned, so a later comparison is bit-exact.
    """
    out: dict[str, tuple[Any, ...]] = {}
    for name, p in module.named_parameters():
        if lateinit.is_deferred(p):
            out[name] = (id(p), type(p), "deferred", tuple(p.shape), p.dtype, p.device.type)
        else:
            out[name] = (id(p), type(p), "ready", tuple(p.shape), p.dtype, p.detach().clone())
    return out


def assert_same_snapshot(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]):
    assert before.keys() == after.keys()
    for name in before:
        a, b = before[name], after[name]
        assert a[:5] == b[:5], f"{name}: {a[:5]} != {b[:5]}"
        if a[2] == "ready":
            assert torch.equal(a[5], b[5]), f"{name}: values changed"
        else:
            assert a[5] == b[5], f"{name}: device changed"


def assert_all_ready(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert not lateinit.is_deferred(p), name
        assert type(p) is torch.nn.Parameter, f"{name} is a {type(p)}"


@pytest.fixture(scope="session")
def h() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules are imported with importlib)."""
    return SimpleNamespace(
        snapshot=snapshot,
        assert_same_snapshot=assert_same_snapshot,
        assert_all_ready=assert_all_ready,
    )
