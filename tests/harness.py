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
    """Same outputs and input gradients as the ``torch.nn`` twin on copied weights. When
    the twin is the plain torch class the layer is an instance of, the weights go through
    ``state_dict`` strictly, both ways: the same keys, shapes and values."""
    if case.twin is None:
        return
    layer, inputs = ready(case)
    twin = case.twin().eval()
    if isinstance(layer, type(twin)) and type(twin).__module__.startswith("torch.nn"):
        assert list(layer.state_dict()) == list(twin.state_dict()), case.id
        twin.load_state_dict(layer.state_dict(), strict=True)
        back = case.build().eval()
        back(*inputs)  # READY, with values of its own
        back.load_state_dict(twin.state_dict(), strict=True)
        for name, value in back.state_dict().items():
            assert torch.equal(value, layer.state_dict()[name]), f"{case.id}: {name}"
    elif case.copy_to_twin is not None:
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


def check_infer_shape(case: LayerCase) -> None:
    """``infer_shape`` on specs of the case's inputs gives the real forward's output shapes
    (``None`` where they depend on a ``None`` leading dim), leaves every parameter SHAPED
    and unallocated with the real forward's shapes, and ``initialize()`` then creates the
    same values as the real forward under the same seed."""
    from lateinit.parameter import placeholder

    def specs(inputs: tuple[Any, ...], free: frozenset[int] = frozenset()) -> tuple[Any, ...]:
        return tuple(
            lateinit.Spec(
                ((None,) if i in free else tuple(t.shape[:1])) + tuple(t.shape[1:]), t.dtype
            )
            if isinstance(t, torch.Tensor)
            else t
            for i, t in enumerate(inputs)
        )

    def shapes(out: Any) -> Any:  # Specs and tensors alike: shapes and dtypes
        if isinstance(out, (torch.Tensor, lateinit.Spec)):
            return (tuple(out.shape), out.dtype)
        if isinstance(out, (list, tuple)):
            return tuple(shapes(o) for o in out)
        return out

    def merge(a: Any, b: Any) -> Any:  # two real runs: dims that differ become None
        if isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], torch.dtype):
            return (tuple(x if x == y else None for x, y in zip(a[0], b[0], strict=True)), a[1])
        return tuple(merge(x, y) for x, y in zip(a, b, strict=True))

    def tensor_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
        named = [*module.named_parameters(), *module.named_buffers()]
        return {n: tuple(t.shape) for n, t in named}

    def grow(inputs: tuple[Any, ...], which: frozenset[int]) -> tuple[Any, ...]:
        return tuple(torch.cat([t, t]) if i in which else t for i, t in enumerate(inputs))

    torch.manual_seed(1)
    inputs = case.inputs()
    torch.manual_seed(0)
    real = case.build().eval()
    with torch.no_grad():
        want = shapes(case.output(real(*inputs)))

    torch.manual_seed(0)
    layer = case.build().eval()
    deferred = [t for t in [*layer.parameters(), *layer.buffers()] if lateinit.is_deferred(t)]
    ids = {n: id(t) for n, t in [*layer.named_parameters(), *layer.named_buffers()]}
    rng = torch.get_rng_state()

    def assert_shaped_not_allocated() -> None:
        assert {n: id(t) for n, t in [*layer.named_parameters(), *layer.named_buffers()]} == ids
        for t in deferred:
            assert lateinit.is_deferred(t), f"{case.id}: infer_shape allocated {t!r}"
            assert -1 not in tuple(t.shape), f"{case.id}: {t!r} not SHAPED"
            assert placeholder(t).numel() == 0 and t.device.type == "cpu", f"{case.id}: {t!r}"
        assert tensor_shapes(layer) == tensor_shapes(real), case.id

    got = shapes(case.output(layer.infer_shape(*specs(inputs))))
    assert got == want, f"{case.id}: infer_shape {got} != real forward {want}"
    assert_shaped_not_allocated()
    assert torch.equal(torch.get_rng_state(), rng), f"{case.id}: RNG state changed"

    # A None leading dim: on every tensor input whose dim 0 the READY layer accepts at
    # another size (all of them together, else the first one alone; an unbatched conv's
    # dim 0 is its channels, a recurrent layer's initial states' dim 0 its layers).
    tensors = frozenset(i for i, t in enumerate(inputs) if isinstance(t, torch.Tensor) and t.dim())
    free: frozenset[int] = frozenset()
    for which in [tensors, *(frozenset({i}) for i in sorted(tensors))]:
        try:
            with torch.no_grad():
                grown = shapes(case.output(real(*grow(inputs, which))))
        except Exception:
            continue
        free = which
        break
    if free:
        got = shapes(case.output(layer.infer_shape(*specs(inputs, free))))
        expected = merge(want, grown)
        assert got == expected, f"{case.id}: None batch: infer_shape {got} != {expected}"
        assert_shaped_not_allocated()

    layer.initialize()
    assert not any(lateinit.is_deferred(t) for t in [*layer.parameters(), *layer.buffers()])
    assert all(type(p) is torch.nn.Parameter for p in layer.parameters())
    a, b = _state(layer), _state(real)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].device.type == "cpu", f"{case.id}: {name} on {a[name].device}"
        assert torch.equal(a[name], b[name]), f"{case.id}: {name} differs infer_shape vs real"
    with torch.no_grad():
        for x, y in zip(_tensors(layer(*inputs)), _tensors(real(*inputs)), strict=True):
            assert torch.equal(x, y), case.id


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
    check_infer_shape,
]
