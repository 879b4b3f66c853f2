"""``to_torch``: a READY lateinit network as plain ``torch.nn`` modules.

Every lateinit layer is an instance of its torch twin (``nn.Dense`` is a
``torch.nn.Linear``), which is what tools that go by ``isinstance`` need (PEFT,
torchinfo, fvcore). Tools that look up ``type(module)`` exactly (ptflops' default
backend, ``torch.ao.quantization.quantize_dynamic``) cannot see a subclass, and a Gluon
layer does more than its twin (``Dense`` flattens and applies an activation). For them,
:func:`to_torch` builds a network of exact torch classes that **shares** the READY
network's parameters and buffers (training one trains the other) and gives the same
outputs:

- ``Dense`` -> ``Linear`` (in a ``Sequential`` with ``Flatten`` and the activation when
  the layer has them); ``Conv*D``/``Conv*DTranspose`` -> ``Conv*d``/``ConvTranspose*d``;
  pools -> ``MaxPool*d``/``AvgPool*d``/``AdaptiveMaxPool*d``/``AdaptiveAvgPool*d``;
  ``BatchNorm`` -> ``BatchNorm1d/2d/3d``, ``InstanceNorm`` -> ``InstanceNorm1d/2d/3d``
  (by the rank of the input the layer saw: pass example inputs when unsure),
  ``LayerNorm``, ``GroupNorm``, ``RMSNorm``, ``Embedding``, ``RNN``/``LSTM``/``GRU`` (in
  a :class:`RecurrentOutput` that returns the output sequence, as lateinit's layer called
  without states does),
  ``Activation``, ``Dropout``, ``Flatten``, ``Identity``; ``Sequential`` ->
  ``torch.nn.Sequential``.
- Any other block (attention, ``Residual``, your own) is copied shallowly with its
  children converted: its own forward runs on torch modules.
- Channels-last layouts keep their axis moves (a small module around the torch layer).

Example:
    >>> import torch, lateinit
    >>> from lateinit import nn
    >>> net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(2))
    >>> x = torch.randn(3, 5)
    >>> y = net(x)
    >>> plain = lateinit.to_torch(net)
    >>> [type(m).__name__ for m in plain.modules()]
    ['Sequential', 'Sequential', 'Flatten', 'Linear', 'ReLU', 'Sequential', 'Flatten', 'Linear']
    >>> torch.equal(plain(x), y), plain[0][1].weight is net[0].weight
    (True, True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .block import Block
from .nn.basic import Activation, Dense, Dropout, Embedding, Flatten, Identity
from .nn.containers import Sequential
from .nn.conv import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose
from .nn.norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from .nn.pool import (
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalAvgPool3D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPool3D,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
)
from .nn.rnn import GRU, LSTM, RNN
from .parameter import Parameter
from .shapes import DeferredInitializationError, fmt_list, not_ready_fixes

__all__ = ["to_torch"]

_ACTIVATIONS: dict[Any, Callable[[], torch.nn.Module]] = {
    F.relu: torch.nn.ReLU,
    torch.sigmoid: torch.nn.Sigmoid,
    torch.tanh: torch.nn.Tanh,
    F.softplus: torch.nn.Softplus,
    F.softsign: torch.nn.Softsign,
    F.gelu: torch.nn.GELU,
    F.silu: torch.nn.SiLU,
    F.elu: torch.nn.ELU,
    F.selu: torch.nn.SELU,
    F.leaky_relu: torch.nn.LeakyReLU,
    F.logsigmoid: torch.nn.LogSigmoid,
    F.mish: torch.nn.Mish,
}


class Call(torch.nn.Module):
    """A plain module calling a function (an activation given as a callable, a Lambda)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class ChannelsLast(torch.nn.Module):
    """Runs a channels-first torch layer on a channels-last input (``NHWC``...)."""

    def __init__(self, layer: torch.nn.Module, ndim: int) -> None:
        super().__init__()
        self.layer = layer
        self.ndim = ndim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x.movedim(-1, -self.ndim - 1))
        return y.movedim(-self.ndim - 1, -1)


class RecurrentOutput(torch.nn.Module):
    """A torch ``RNN``/``LSTM``/``GRU`` called as lateinit's layer without states: the
    output sequence only (torch's module returns ``(output, states)``). The torch module
    is ``.rnn``, for calls with states."""

    def __init__(self, rnn: torch.nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def to_torch(net: torch.nn.Module, *example_inputs: Any) -> torch.nn.Module:
    """A network of plain `torch.nn` modules sharing `net`'s parameters and buffers.

    For tools that look up `type(module)` exactly (some FLOP counters,
    `torch.ao.quantization.quantize_dynamic`) and for `torch.jit.script`: each lateinit
    layer becomes its exact torch class (`Dense` -> `Linear`, in a `Sequential` with
    `Flatten` and the activation when the layer has them; `Conv2D` -> `Conv2d`;
    `BatchNorm` -> `BatchNorm1d/2d/3d` by the rank of the input it saw...); any other
    block is copied shallowly with its children converted.

    Args:
        net: a READY network (every parameter created).
        *example_inputs: optional inputs to run `net` on once (no gradients) to learn
            the input rank of `BatchNorm`/`InstanceNorm` layers that have not seen
            data in this process (torch has one class per rank).

    Returns:
        A new module tree; `net` is unchanged. The converted network gives the same
        outputs, and training either one trains both (the parameter objects are
        shared).

    Raises:
        DeferredInitializationError: some parameter is not READY yet (the message names
            them).

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Dense(4, activation="relu"), nn.Dense(2))
        >>> x = torch.ones(3, 5)
        >>> _ = net(x)  # READY
        >>> plain = lateinit.to_torch(net)
        >>> plain[0]
        Sequential(
          (0): Flatten(start_dim=1, end_dim=-1)
          (1): Linear(in_features=5, out_features=4, bias=True)
          (2): ReLU()
        )
        >>> torch.equal(plain(x), net(x)), plain[0][1].weight is net[0].weight
        (True, True)
    """
    pending = [n for n, p in net.named_parameters() if isinstance(p, Parameter)]
    if pending:
        raise DeferredInitializationError(
            f"to_torch() needs a READY network; {len(pending)} parameter(s) are not "
            f"created yet ({fmt_list(repr(n) for n in pending)}). Fix: {not_ready_fixes()}."
        )
    ranks: dict[int, int] = {}
    if example_inputs:
        handles = [
            m.register_forward_pre_hook(lambda mod, args: ranks.__setitem__(id(mod), args[0].dim()))
            for m in net.modules()
            if isinstance(m, (BatchNorm, InstanceNorm))
        ]
        try:
            with torch.no_grad():
                was_training = net.training
                net.eval()
                net(*example_inputs)
                net.train(was_training)
        finally:
            for h in handles:
                h.remove()
    return _convert(net, ranks, {})


def _convert(module: torch.nn.Module, ranks: dict[int, int], memo: dict[int, Any]) -> Any:
    if id(module) in memo:  # a block used twice stays one module
        return memo[id(module)]
    for kinds, converter in _CONVERTERS:
        if isinstance(module, kinds):
            out = converter(module, ranks)
            break
    else:
        if isinstance(module, Sequential):
            out = torch.nn.Sequential(*(_convert(m, ranks, memo) for m in module))
        elif isinstance(module, Block) or any(isinstance(c, Block) for c in module.modules()):
            out = copy.copy(module)  # its own forward, on converted children
            out.__dict__ = dict(module.__dict__)
            out.__dict__["_modules"] = {
                k: (_convert(v, ranks, memo) if v is not None else None)
                for k, v in module._modules.items()
            }
        else:
            out = module  # plain torch already
    out.train(module.training)
    memo[id(module)] = out
    return out


def _share(target: torch.nn.Module, source: torch.nn.Module, names: tuple[str, ...]) -> None:
    """Put ``source``'s tensors (the same objects) into ``target`` under torch's names."""
    for name in names:
        value = getattr(source, name, None)
        if name in target._parameters:
            target._parameters[name] = value
        elif name in target._buffers:
            target._buffers[name] = value


def _with_activation(layer: torch.nn.Module, act: Any, flatten: bool) -> torch.nn.Module:
    parts: list[torch.nn.Module] = [torch.nn.Flatten()] if flatten else []
    parts.append(layer)
    if act is not None:
        make = _ACTIVATIONS.get(act)
        parts.append(make() if make is not None else Call(act))
    return parts[0] if len(parts) == 1 else torch.nn.Sequential(*parts)


def _dense(layer: Dense, ranks: dict[int, int]) -> torch.nn.Module:
    out_features, in_features = tuple(layer.weight.shape)
    linear = torch.nn.Linear(in_features, out_features, bias=layer.bias is not None, device="meta")
    _share(linear, layer, ("weight", "bias"))
    return _with_activation(linear, layer._act, layer._flatten)


_CONV_CLASSES = {
    (1, False): torch.nn.Conv1d,
    (2, False): torch.nn.Conv2d,
    (3, False): torch.nn.Conv3d,
    (1, True): torch.nn.ConvTranspose1d,
    (2, True): torch.nn.ConvTranspose2d,
    (3, True): torch.nn.ConvTranspose3d,
}


def _conv(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    n, transpose = layer._ndim, layer._transpose
    weight_shape = tuple(layer.weight.shape)
    groups = layer._groups
    if transpose:
        in_channels, out_channels = weight_shape[0], weight_shape[1] * groups
    else:
        out_channels, in_channels = weight_shape[0], weight_shape[1] * groups
    kwargs: dict[str, Any] = {
        "stride": layer._strides,
        "padding": layer._padding,
        "dilation": layer._dilation,
        "groups": groups,
        "bias": layer.bias is not None,
        "device": "meta",
    }
    if transpose:
        kwargs["output_padding"] = layer._out_padding
    conv = _CONV_CLASSES[(n, transpose)](in_channels, out_channels, layer._kernel_size, **kwargs)
    _share(conv, layer, ("weight", "bias"))
    inner: torch.nn.Module = ChannelsLast(conv, n) if layer._channels_last else conv
    return _with_activation(inner, layer._act, False)


def _pool(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    n = layer._ndim
    if isinstance(layer, (MaxPool1D, MaxPool2D, MaxPool3D)):
        cls: Any = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d)[n - 1]
        pool = cls(layer._pool_size, layer._strides, layer._padding, ceil_mode=layer._ceil_mode)
    else:
        cls = (torch.nn.AvgPool1d, torch.nn.AvgPool2d, torch.nn.AvgPool3d)[n - 1]
        extra = {} if n == 1 else {"divisor_override": None}
        pool = cls(
            layer._pool_size,
            layer._strides,
            layer._padding,
            ceil_mode=layer._ceil_mode,
            count_include_pad=layer._args[1] if len(layer._args) > 1 else True,
            **extra,
        )
    return ChannelsLast(pool, n) if layer._channels_last else pool


def _global_pool(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    name = type(layer).__name__
    n = int(name[-2])
    kind = "Max" if "Max" in name else "Avg"
    cls = getattr(torch.nn, f"Adaptive{kind}Pool{n}d")
    pool = cls(1)
    return ChannelsLast(pool, n) if getattr(layer, "_channels_last", False) else pool


def _rank_of(layer: Any, ranks: dict[int, int]) -> int:
    rank = ranks.get(id(layer), getattr(layer, "_input_dim", None))
    if rank is None:
        raise ValueError(
            f"to_torch(): {type(layer).__name__} works on inputs of any rank, but torch has "
            "one class per rank (BatchNorm1d/2d/3d) and this layer's input rank is not "
            "known. Fix: pass example inputs, to_torch(net, x)."
        )
    return int(rank)


def _norm_tensor(layer: Any, torch_name: str, gluon_name: str) -> Any:
    if torch_name in layer._parameters or torch_name in layer._buffers:
        return getattr(layer, torch_name)
    return getattr(layer, gluon_name, None)


def _copy_norm(target: torch.nn.Module, layer: Any) -> torch.nn.Module:
    for torch_name, gluon_name in (
        ("weight", "gamma"),
        ("bias", "beta"),
        ("running_mean", "moving_mean"),
        ("running_var", "moving_var"),
    ):
        value = _norm_tensor(layer, torch_name, gluon_name)
        if torch_name in target._parameters:
            target._parameters[torch_name] = value
        elif torch_name in target._buffers:
            target._buffers[torch_name] = value
    if "num_batches_tracked" in target._buffers and "num_batches_tracked" in layer._buffers:
        target._buffers["num_batches_tracked"] = layer._buffers["num_batches_tracked"]
    return target


def _affine_size(layer: Any) -> int:
    for name in ("weight", "gamma", "running_mean", "moving_mean"):
        t = layer._parameters.get(name, layer._buffers.get(name))
        if t is not None:
            return int(t.shape[0])
    raise ValueError(f"to_torch(): {type(layer).__name__} has no per-channel tensor to size it")


def _batch_norm(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    rank = _rank_of(layer, ranks)
    cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}.get(
        rank, torch.nn.BatchNorm3d
    )
    affine = _norm_tensor(layer, "weight", "gamma") is not None
    bn = cls(
        _affine_size(layer),
        eps=layer.eps,
        momentum=layer.momentum,
        affine=affine,
        track_running_stats=True,
        device="meta",
    )
    if not affine and _norm_tensor(layer, "bias", "beta") is not None:
        raise ValueError("to_torch(): a BatchNorm with a shift but no scale has no torch twin")
    _copy_norm(bn, layer)
    if getattr(layer, "_use_global_stats", False):
        bn.track_running_stats = True
        bn.eval()
    return bn


def _layer_norm(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    affine = _norm_tensor(layer, "weight", "gamma") is not None
    has_bias = _norm_tensor(layer, "bias", "beta") is not None
    norm = torch.nn.LayerNorm(
        _affine_size(layer), eps=layer.eps, elementwise_affine=affine, bias=has_bias,
        device="meta",
    )  # fmt: skip
    return _copy_norm(norm, layer)


def _group_norm(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    affine = _norm_tensor(layer, "weight", "gamma") is not None
    norm = torch.nn.GroupNorm(
        layer.num_groups, _affine_size(layer), eps=layer.eps, affine=affine, device="meta"
    )
    return _copy_norm(norm, layer)


def _rms_norm(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    affine = _norm_tensor(layer, "weight", "gamma") is not None
    norm = torch.nn.RMSNorm(
        _affine_size(layer), eps=layer.eps, elementwise_affine=affine, device="meta"
    )
    return _copy_norm(norm, layer)


def _instance_norm(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    rank = _rank_of(layer, ranks)
    cls = {3: torch.nn.InstanceNorm1d, 4: torch.nn.InstanceNorm2d}.get(
        rank, torch.nn.InstanceNorm3d
    )
    affine = _norm_tensor(layer, "weight", "gamma") is not None
    norm = cls(_affine_size(layer), eps=layer.eps, affine=affine, device="meta")
    return _copy_norm(norm, layer)


def _embedding(layer: Embedding, ranks: dict[int, int]) -> torch.nn.Module:
    num, dim = tuple(layer.weight.shape)
    emb = torch.nn.Embedding(num, dim, sparse=layer._sparse, device="meta")
    _share(emb, layer, ("weight",))
    return emb


def _rnn(layer: Any, ranks: dict[int, int]) -> torch.nn.Module:
    kind = {RNN: "RNN", LSTM: "LSTM", GRU: "GRU"}[type(layer)]
    first = next(iter(layer._parameters.values()))
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
    input_size = tuple(first.shape)[1]
    hidden = first.shape[0] // gates
    kwargs: dict[str, Any] = {
        "num_layers": layer.num_layers,
        "bias": layer.bias,
        "batch_first": layer.batch_first,
        "dropout": layer.dropout,
        "bidirectional": layer.bidirectional,
        "device": "meta",
    }
    if kind == "RNN":
        kwargs["nonlinearity"] = layer.nonlinearity
    out = getattr(torch.nn, kind)(input_size, hidden, **kwargs)
    ours = list(layer._parameters.values())
    for name, param in zip(out._flat_weights_names, ours, strict=True):
        out._parameters[name] = param
    out._init_flat_weights()
    return RecurrentOutput(out)


def _activation(layer: Activation, ranks: dict[int, int]) -> torch.nn.Module:
    make = _ACTIVATIONS.get(layer._act)
    return make() if make is not None else Call(layer._act)


def _dropout(layer: Dropout, ranks: dict[int, int]) -> torch.nn.Module:
    if layer._axes:
        return Call(layer.forward)  # Gluon's axes= (shared masks) has no torch twin
    return torch.nn.Dropout(layer._rate)


_CONVERTERS: list[tuple[Any, Callable[[Any, dict[int, int]], torch.nn.Module]]] = [
    (Dense, _dense),
    ((Conv1D, Conv2D, Conv3D, Conv1DTranspose, Conv2DTranspose, Conv3DTranspose), _conv),
    ((MaxPool1D, MaxPool2D, MaxPool3D, AvgPool1D, AvgPool2D, AvgPool3D), _pool),
    (
        (
            GlobalMaxPool1D,
            GlobalMaxPool2D,
            GlobalMaxPool3D,
            GlobalAvgPool1D,
            GlobalAvgPool2D,
            GlobalAvgPool3D,
        ),
        _global_pool,
    ),
    (BatchNorm, _batch_norm),
    (LayerNorm, _layer_norm),
    (GroupNorm, _group_norm),
    (RMSNorm, _rms_norm),
    (InstanceNorm, _instance_norm),
    (Embedding, _embedding),
    ((RNN, LSTM, GRU), _rnn),
    (Activation, _activation),
    (Dropout, _dropout),
    (Flatten, lambda layer, ranks: torch.nn.Flatten()),
    (Identity, lambda layer, ranks: torch.nn.Identity()),
]
