"""Generic checks that every layer case (tests/cases.py) must pass.

Each ``check_*`` takes a :class:`cases.LayerCase` and asserts one promise of the library.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

import lateinit
from layercase import LayerCase


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


def _shape_of(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return tuple(_shape_of(o) for o in out)
    return out


def _state(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}


def ready(case: LayerCase, eager: bool = False, seed: int = 0) -> tuple[Any, tuple[Any, ...]]:
    """A layer made READY by one batch (deferred) or by initialize() (eager), in eval mode."""
    torch.manual_seed(seed + 1)
    inputs = case.inputs()
    torch.manual_seed(seed)
    layer = case.build(eager)
    if eager:
        layer.initialize()
    layer.eval()
    with torch.no_grad():
        layer(*inputs)
    return layer, inputs


def check_deferred_equals_eager(case: LayerCase) -> None:
    deferred, _ = ready(case, eager=False)
    eager, _ = ready(case, eager=True)
    a, b = _state(deferred), _state(eager)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert torch.equal(a[name], b[name]), f"{case.id}: {name} differs deferred vs eager"


def check_output_and_count(case: LayerCase) -> None:
    layer, inputs = ready(case)
    out = layer(*inputs)
    assert _shape_of(case.output(out)) == case.output_shape
    assert sum(p.numel() for p in layer.parameters()) == case.n_params
    assert not any(lateinit.is_deferred(t) for t in [*layer.parameters(), *layer.buffers()])
    assert all(type(p) is torch.nn.Parameter for p in layer.parameters())
    assert all("forward" not in m.__dict__ for m in layer.modules())


def check_mismatch(case: LayerCase) -> None:
    if case.bad_inputs is None:
        return
    layer, inputs = ready(case)
    before = _state(layer)
    try:
        layer(*case.bad_inputs())
    except lateinit.ShapeMismatchError as err:
        message = str(err)
        assert (case.mismatch_layer or type(layer).__name__) in message, message
        assert "Fix" in message
    else:
        raise AssertionError(f"{case.id}: an input of another size did not raise")
    after = _state(layer)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        out = layer(*inputs)
    assert _shape_of(case.output(out)) == case.output_shape


def check_state_dict_round_trip(case: LayerCase) -> None:
    deferred, inputs = ready(case, seed=0)
    eager, _ = ready(case, eager=True, seed=123)
    eager.load_state_dict(deferred.state_dict())
    with torch.no_grad():
        for a, b in zip(_tensors(deferred(*inputs)), _tensors(eager(*inputs)), strict=True):
            assert torch.equal(a, b)


def check_compile(case: LayerCase) -> None:
    if not case.compile:
        return
    layer, inputs = ready(case)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    with torch.no_grad():
        want, got = _tensors(layer(*inputs)), _tensors(compiled(*inputs))
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(a, b)


def check_repr(case: LayerCase) -> None:
    torch.manual_seed(0)
    layer = case.build()
    before = repr(layer)
    has_unknown = any(
        lateinit.is_deferred(p) and -1 in tuple(p.shape)
        for p in [*layer.parameters(), *layer.buffers()]
    )
    layer(*case.inputs())
    after = repr(layer)
    assert "-1" not in after or not has_unknown
    if has_unknown:
        assert before != after


def check_float64(case: LayerCase) -> None:
    if not case.float64:
        return
    torch.manual_seed(0)
    layer = case.build()
    layer.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    inputs = tuple(
        t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
        for t in case.inputs()
    )
    out = layer(*inputs)
    assert all(p.dtype == torch.float64 for p in layer.parameters())
    assert all(
        t.dtype == torch.float64 for t in _tensors(case.output(out)) if t.is_floating_point()
    )


def check_twin(case: LayerCase) -> None:
    """Same outputs and input gradients as the ``torch.nn`` twin on copied weights."""
    if case.twin is None:
        return
    layer, inputs = ready(case)
    twin = case.twin().eval()
    if case.copy_to_twin is not None:
        case.copy_to_twin(layer, twin)
    ours_in = tuple(t.clone().requires_grad_(t.is_floating_point()) for t in inputs)
    twin_leaves = tuple(t.clone().requires_grad_(t.is_floating_point()) for t in inputs)
    twin_in = case.twin_inputs(twin_leaves) if case.twin_inputs is not None else twin_leaves
    ours_out = _tensors(case.output(layer(*ours_in)))
    twin_out = _tensors(case.twin_output(twin(*twin_in)))
    assert len(ours_out) == len(twin_out)
    for a, b in zip(ours_out, twin_out, strict=True):
        torch.testing.assert_close(a, b, atol=case.atol, rtol=1e-4)
    floating = [t for t in ours_out if t.is_floating_point()]
    if not any(t.requires_grad for t in floating):
        return
    sum(t.sum() for t in ours_out if t.requires_grad).backward()
    sum(t.sum() for t in twin_out if t.requires_grad).backward()
    for a, b in zip(ours_in, twin_leaves, strict=True):
        if a.grad is not None or b.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, atol=case.atol * 10, rtol=1e-3)


def check_deepcopy(case: LayerCase) -> None:
    torch.manual_seed(0)
    layer = case.build().eval()
    clone = copy.deepcopy(layer)
    inputs = case.inputs()
    with torch.no_grad():
        for a, b in zip(_tensors(layer(*inputs)), _tensors(clone(*inputs)), strict=True):
            assert torch.equal(a, b)


CHECKS = [
    check_deferred_equals_eager,
    check_output_and_count,
    check_mismatch,
    check_state_dict_round_trip,
    check_compile,
    check_repr,
    check_float64,
    check_twin,
    check_deepcopy,
]
