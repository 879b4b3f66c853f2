"""``lateinit.fastmeta``: every rule gives what torch gives on meta tensors (shape, dtype,
strides), or declines; checked on random cases (shapes with size-1 dims and broadcasting,
several dtypes, contiguous, transposed, sliced and expanded tensors, Python numbers) and
on the cases data-free inference meets in a Llama's forward."""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lateinit import fastmeta
from lateinit.fastmeta import RULES, FastMeta

DTYPES = [torch.float32] * 4 + [torch.float16, torch.bfloat16, torch.float64, torch.int64]


def layout(t: torch.Tensor) -> tuple[Any, ...]:
    return tuple(t.shape), t.dtype, t.stride(), t.device.type, t.requires_grad


def random_shape(rng: random.Random, ndim: int | None = None) -> tuple[int, ...]:
    ndim = rng.randint(0, 4) if ndim is None else ndim
    return tuple(rng.choice([1, 1, 2, 3, 5]) for _ in range(ndim))


def partner(rng: random.Random, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape`` (mostly), or one that may not."""
    kind = rng.random()
    if kind < 0.3:
        return shape
    if kind < 0.8:
        out = list(shape[rng.randint(0, len(shape)) :]) if shape else []
        return tuple(1 if rng.random() < 0.4 else d for d in out)
    return random_shape(rng)


def tensor(rng: random.Random, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A meta tensor of this shape: contiguous, or another layout of the same shape
    (dims permuted, sliced, expanded, channels-last, odd strides on size-1 dims)."""
    kind = rng.random()
    if kind < 0.45 or not shape:
        return torch.empty(shape, dtype=dtype, device="meta")
    if kind < 0.6:  # dims permuted (a transpose, or any order)
        order = list(range(len(shape)))
        rng.shuffle(order)
        inverse = sorted(range(len(order)), key=order.__getitem__)
        base = torch.empty([shape[d] for d in order], dtype=dtype, device="meta")
        return base.permute(*inverse)
    if kind < 0.7:  # a slice of a larger tensor, maybe of a permuted one
        big = tensor(rng, (*shape[:-1], shape[-1] * 2), dtype)
        return big[..., ::2]
    if kind < 0.8:  # expanded: a stride of 0
        ones = tuple(1 if rng.random() < 0.5 else d for d in shape)
        return torch.empty(ones, dtype=dtype, device="meta").expand(shape)
    if kind < 0.9 and len(shape) == 4:
        return torch.empty(shape, dtype=dtype, device="meta", memory_format=torch.channels_last)
    # contiguous, with odd strides on its size-1 dims
    t = torch.empty(shape, dtype=dtype, device="meta")
    strides = [
        s if d != 1 else rng.choice([1, 7, 100]) for s, d in zip(t.stride(), shape, strict=True)
    ]
    return t.as_strided(shape, strides)


def check(func: Any, *args: Any, **kwargs: Any) -> bool:
    """Call ``func`` with and without FastMeta and compare (the same layout, or the same
    error); True when a rule answered the call."""
    with torch.no_grad():
        try:
            want = func(*args, **kwargs)
        except Exception as err:  # torch refuses: so does the call under the mode
            with pytest.raises(type(err)), FastMeta():
                func(*args, **kwargs)
            return False
        with FastMeta():
            got = func(*args, **kwargs)
        answered = RULES[func](*args, **kwargs) is not NotImplemented
    if not isinstance(want, torch.Tensor):  # Tensor.__pow__(2, t): NotImplemented
        assert got is want and not answered, (func, args, kwargs, got)
        return False
    assert layout(got) == layout(want), (func, args, kwargs, layout(got), layout(want))
    return answered


BINARY = [
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.pow,
    torch.Tensor.add,
    torch.Tensor.mul,
    torch.Tensor.__rsub__,
    torch.Tensor.__rdiv__,
    torch.Tensor.__rpow__,
    torch.Tensor.__pow__,
    torch.Tensor.__truediv__,
]


@pytest.mark.parametrize("func", BINARY, ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_binary_rules_agree_with_torch(func):
    rng = random.Random(zlib.crc32(func.__qualname__.encode()))  # the same every run
    answered = 0
    for _ in range(600):
        shape = random_shape(rng)
        dtype = rng.choice(DTYPES)
        a = tensor(rng, shape, dtype)
        kind = rng.random()
        if kind < 0.2:
            b: Any = rng.choice([2, 0.5, -1, True, 1j])
        else:
            b = tensor(
                rng, partner(rng, shape), dtype if rng.random() < 0.85 else rng.choice(DTYPES)
            )
        args = (a, b) if rng.random() < 0.7 or not isinstance(b, torch.Tensor) else (b, a)
        if func in (torch.Tensor.__rsub__, torch.Tensor.__rdiv__, torch.Tensor.__rpow__):
            args = (a, b)  # self is the tensor
        kwargs = (
            {"alpha": rng.choice([2, 0.5])}
            if func in (torch.add, torch.sub) and rng.random() < 0.3
            else {}
        )
        answered += check(func, *args, **kwargs)
    assert answered > 50  # the common cases are answered


UNARY = [
    torch.neg,
    torch.cos,
    torch.Tensor.sin,
    torch.rsqrt,
    torch.Tensor.exp,
    torch.sigmoid,
    torch.relu,
    torch.Tensor.__neg__,
    F.silu,
    F.relu,
    F.gelu,
]


@pytest.mark.parametrize("func", UNARY, ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_unary_rules_agree_with_torch(func):
    rng = random.Random(7)
    answered = 0
    for _ in range(300):
        x = tensor(rng, random_shape(rng), rng.choice(DTYPES))
        kwargs: dict[str, Any] = {}
        if func is F.gelu and rng.random() < 0.5:
            kwargs = {"approximate": rng.choice(["tanh", "none", "bad"])}
        if func in (F.silu, F.relu) and rng.random() < 0.3:
            kwargs = {"inplace": rng.random() < 0.5}
            if kwargs["inplace"]:
                assert RULES[func](x, **kwargs) is NotImplemented
                continue
        answered += check(func, x, **kwargs)
    assert answered > 30


def test_arange_rule_agrees_with_torch():
    rng = random.Random(3)
    answered = 0
    for _ in range(300):
        n = rng.randint(1, 3)
        args = tuple(rng.randint(-9, 20) for _ in range(n))
        kwargs: dict[str, Any] = {"device": rng.choice(["meta", torch.device("meta"), "cpu", None])}
        if kwargs["device"] is None:
            del kwargs["device"]
        if rng.random() < 0.8:
            kwargs["dtype"] = rng.choice(
                [torch.float32, torch.int64, torch.float64, torch.float16, None]
            )
        answered += check(torch.arange, *args, **kwargs)
    assert answered > 50
    for args in [(0, 128, 2), (16,), (1.5,), (0, 10, 0)]:
        check(torch.arange, *args, device="meta", dtype=torch.float32)


def test_joining_rules_agree_with_torch():
    rng = random.Random(11)
    answered = 0
    for _ in range(800):
        func = rng.choice([torch.stack, torch.cat, torch.concat])
        shape = random_shape(rng, rng.randint(0, 4))
        dtype = rng.choice(DTYPES[:5])
        parts = []
        for _ in range(rng.randint(1, 3)):
            other = list(shape)
            if func is not torch.stack and shape and rng.random() < 0.5:
                other[rng.randrange(len(shape))] = rng.choice([1, 2, 4])
            parts.append(tensor(rng, tuple(other), dtype if rng.random() < 0.9 else torch.float64))
        dim = rng.randint(-len(shape) - 1, len(shape) + 1)
        answered += check(func, parts if rng.random() < 0.5 else tuple(parts), dim)
    assert answered > 50


def test_outer_rule_agrees_with_torch():
    rng = random.Random(5)
    for _ in range(100):
        a = tensor(rng, random_shape(rng, rng.choice([1, 1, 2])), rng.choice(DTYPES))
        b = tensor(rng, random_shape(rng, 1), rng.choice(DTYPES))
        check(torch.outer, a, b)
        check(torch.Tensor.outer, a, b)


def test_attention_rule_agrees_with_torch():
    rng = random.Random(13)
    answered = 0
    for _ in range(300):
        batch = random_shape(rng, rng.randint(1, 3))
        L, S, E, Ev = (rng.choice([1, 2, 3, 5]) for _ in range(4))
        dtype = rng.choice(DTYPES[:5])
        q = tensor(rng, (*batch, L, E), dtype)
        k = tensor(rng, (*batch, S, E if rng.random() < 0.9 else E + 1), dtype)
        kb = batch if rng.random() < 0.9 else random_shape(rng, len(batch))
        v = tensor(rng, (*kb, S, Ev), dtype if rng.random() < 0.9 else torch.float64)
        kwargs: dict[str, Any] = {}
        if rng.random() < 0.4:
            kwargs["is_causal"] = rng.random() < 0.5
        if rng.random() < 0.2:
            kwargs["scale"] = 0.5
        if rng.random() < 0.1:
            kwargs["attn_mask"] = torch.empty((L, S), dtype=torch.bool, device="meta")
        if rng.random() < 0.1:
            kwargs["dropout_p"] = 0.1
        answered += check(F.scaled_dot_product_attention, q, k, v, **kwargs)
    assert answered > 50


def test_mode_answers_a_llama_layer_as_torch_does():
    """A rotary decoder's ops under FastMeta: the same outputs as without it, and the
    mode answers (not torch) most of the slow ones."""
    from lateinit.zoo.llama import rotary

    def layer(x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = x.view(b, t, 4, 8).transpose(1, 2)
        q = rotary(q)
        h = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        h = h.transpose(1, 2).reshape(b, t, -1) + x
        return F.silu(h) * h - 1

    x = torch.empty((1031, 16, 32), device="meta")
    with torch.no_grad():
        want = layer(x)
        seen: list[Any] = []

        class Counting(FastMeta):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                rule = RULES.get(func)
                if rule is not None and rule(*args, **(kwargs or {})) is not NotImplemented:
                    seen.append(func)
                return super().__torch_function__(func, types, args, kwargs)

        with Counting():
            got = layer(x)
    assert layout(got) == layout(want)
    assert len(seen) >= 12, seen


def test_mode_passes_through_with_grad_or_a_dispatch_mode():
    x = torch.empty((3, 4), device="meta")
    with FastMeta():
        y = x * x  # grad on: torch computes it (the rule is not consulted)
        assert layout(y) == layout(torch.empty((3, 4), device="meta"))
        assert fastmeta.only_fast_modes()
    assert fastmeta.only_fast_modes()
