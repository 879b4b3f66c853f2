"""Convolutions: Conv1D/2D/3D and their transposes, with the input channels inferred.

All six layers share one base class, ``_Conv``; a subclass only names its number of
spatial dims, whether it is transposed, and its torch kernel. Channels-last layouts
(``NWC``/``NHWC``/``NDHWC``) move the channel axis around the channels-first kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .. import init as _init
from ..block import Block
from ..parameter import Parameter
from ..shapes import ShapeMismatchError, fmt_shape, in_size
from .basic import (
    KERNEL_ERRORS,
    act_name,
    check_flag,
    check_float_inputs,
    explain_call,
    feature_count,
    get_activation,
    known_size,
)

__all__ = [
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
]

#: A size given as one int for every spatial dim, or one per dim.
IntOrTuple = int | Sequence[int]

_CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


# -- helpers shared with pool.py ----------------------------------------------------------
def ntuple(value: Any, n: int, name: str, owner: str, minimum: int) -> tuple[int, ...]:
    """``3 -> (3, 3)``; a sequence must have ``n`` ints, each at least ``minimum``."""
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value,) * n
    else:
        try:
            out = tuple(value)
        except TypeError:
            out = ()
        if len(out) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
            raise ValueError(f"{owner}: {name} must be an int or {n} ints, got {value!r}")
    if any(v < minimum for v in out):
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return out


def check_layout(layout: str | None, n: int, owner: str) -> tuple[str, bool]:
    """The layout string (default channels-first) and whether it is channels-last."""
    if layout is None:
        return _CHANNELS_FIRST[n], False
    if layout == _CHANNELS_FIRST[n]:
        return layout, False
    if layout == _CHANNELS_LAST[n]:
        return layout, True
    raise ValueError(
        f"{owner}: layout must be {_CHANNELS_FIRST[n]!r} (default) or {_CHANNELS_LAST[n]!r}, "
        f"got {layout!r}"
    )


def _axes(layout: str) -> str:
    """``"NCHW" -> "(N, C, H, W)"``."""
    return "(" + ", ".join(layout) + ")"


def split_input(
    block: Block, x: torch.Tensor, n: int, layout: str, channels_last: bool
) -> tuple[int, tuple[int, ...]]:
    """Check the number of dims of ``x`` and return its channel count and spatial sizes.

    A batched input has ``n + 2`` dims; an unbatched one (as torch accepts) ``n + 1``.
    Raises ShapeMismatchError for any other number of dims.
    """
    if x.dim() not in (n + 1, n + 2):
        kind = type(block).__name__
        other_dims = [m for m in (1, 2, 3) if m != n]
        others = [kind.replace(f"{n}D", f"{m}D", 1) for m in other_dims]
        raise ShapeMismatchError(
            f"{kind} expects a {n + 2}-D input {_axes(layout)} (or {n + 1}-D "
            f"{_axes(layout[1:])} without the batch axis), got {x.dim()} dims. Fix: pass "
            f"inputs laid out as {layout}, or use {' or '.join(others)} for data with "
            f"{' or '.join(str(m) for m in other_dims)} spatial dims"
        )
    shape = tuple(x.shape)
    if channels_last:
        return shape[-1], shape[-n - 1 : -1]
    return shape[-n - 1], shape[-n:]


def too_small(
    spatial: Sequence[int], out: Sequence[int], reason: str, fix: str
) -> ShapeMismatchError:
    """The error for an input whose spatial size leaves an empty output."""
    return ShapeMismatchError(
        f"its spatial size {fmt_shape(tuple(spatial))} is too small for {reason}: the output "
        f"would be {fmt_shape(tuple(out))}. Fix: {fix}"
    )


def pool_out(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    """Output length of a convolution/pooling window, exactly as torch computes it."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - span + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _in_channels_of(weight: torch.Tensor, groups: int, transposed: bool) -> int | None:
    """A convolution's input channels read from its weight's shape (torch's layout);
    ``None`` while unknown."""
    if transposed:
        return known_size(weight.shape[0])
    known = known_size(weight.shape[1])
    return None if known is None else known * groups


class _InChannelsEntry:
    """What a convolution's ``__dict__`` holds under ``in_channels``.

    The attribute itself is the class property ``_Conv.in_channels`` (computed from
    the weight's shape, so it is right however the shape became known: first batch,
    ``infer_shape``, ``load_state_dict``, a parameter file). torch's
    ``_ConvNd.extra_repr`` formats ``self.__dict__`` instead of reading attributes; this
    entry formats as the same value. It holds the layer's parameter table (never the
    layer: no reference cycle), which copies and pickles with the layer.
    """

    def __init__(self, table: dict[str, Any], groups: int, transposed: bool) -> None:
        self.table = table
        self.groups = groups
        self.transposed = transposed

    def value(self) -> int | None:
        return _in_channels_of(self.table["weight"], self.groups, self.transposed)

    def __format__(self, spec: str) -> str:
        return format(self.value(), spec)

    def __repr__(self) -> str:
        return repr(self.value())


# -- the shared base ----------------------------------------------------------------------
class _Conv(Block):
    """The base of the six convolution layers (see ``Conv2D`` for the arguments).

    Each layer is also its torch twin (``Conv2D`` a ``torch.nn.Conv2d``,
    ``Conv2DTranspose`` a ``torch.nn.ConvTranspose2d``...), with the twin's attributes
    (``in_channels``: ``None`` until the input channels are known, ``out_channels``,
    ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``,
    ``output_padding``, ``transposed``, ``padding_mode="zeros"``). Its forward stays
    lateinit's (``activation``, channels-last ``layout``); the twin's attributes describe
    the channels-first convolution inside it and are not read by it.
    """

    _in_size_arg = "in_channels"
    _ndim: ClassVar[int]
    _transpose: ClassVar[bool] = False
    _kernel: ClassVar[Callable[..., torch.Tensor]]

    def __init__(
        self,
        channels: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = 1,
        padding: IntOrTuple | str = 0,
        *,
        output_padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        layout: str | None = None,
        activation: str | Callable[..., Any] | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name, n = type(self).__name__, self._ndim
        known = self._check_channels(channels, groups, in_channels)
        self._kernel_size = ntuple(kernel_size, n, "kernel_size", name, 1)
        self._strides = ntuple(strides, n, "strides", name, 1)
        self._dilation = ntuple(dilation, n, "dilation", name, 1)
        self._padding = self._check_padding(padding, strides)
        self._out_padding = self._check_output_padding(output_padding)
        self._layout, self._channels_last = check_layout(layout, n, name)
        self._channels = channels
        self._groups = groups
        self._activation = activation
        self._act = get_activation(activation, name)
        check_flag(use_bias, "use_bias", name)
        if self._transpose:
            shape = (known, channels // groups, *self._kernel_size)
            self._args: tuple[Any, ...] = (
                self._strides,
                self._padding,
                self._out_padding,
                groups,
                self._dilation,
            )
        else:
            shape = (channels, known // groups if known > 0 else -1, *self._kernel_size)
            self._args = (self._strides, self._padding, self._dilation, groups)
        # torch's kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in
        # from dim 1 times the kernel size (for transposes too, as torch computes it).
        self.weight = Parameter(
            shape,
            weight_initializer,
            dtype=dtype,
            device=device,
            default_init=_init.linear_default(),
        )
        self.bias = (
            Parameter((channels,), bias_initializer, dtype=dtype, device=device)
            if use_bias
            else None
        )
        self._twin_attributes(padding)

    def _twin_attributes(self, padding: Any) -> None:
        """Set the attributes torch's ``_ConvNd`` constructor sets (it never runs)."""
        n = self._ndim
        self.__dict__["in_channels"] = _InChannelsEntry(
            self._parameters, self._groups, self._transpose
        )
        self.out_channels = self._channels
        self.kernel_size = self._kernel_size
        self.stride = self._strides
        self.padding = padding if isinstance(padding, str) else self._padding  # "valid" too
        self.dilation = self._dilation
        self.transposed = self._transpose
        self.output_padding = self._out_padding
        self.groups = self._groups
        self.padding_mode = "zeros"
        # what torch gives F.pad for a padding_mode other than "zeros" (as torch computes it)
        pads = [0, 0] * n
        for i, (k, d) in enumerate(zip(self._kernel_size, self._dilation, strict=True)):
            if self._padding == "same":
                left, right = d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2
            else:
                left = right = self._padding[i]
            pads[2 * (n - 1 - i)], pads[2 * (n - 1 - i) + 1] = left, right
        self._reversed_padding_repeated_twice = pads

    @property
    def in_channels(self) -> int | None:  # type: ignore[override]
        """torch's name of the input channels: ``None`` until they are known."""
        return _in_channels_of(self.weight, self._groups, self._transpose)

    # -- constructor checks -------------------------------------------------------------
    def _check_channels(self, channels: Any, groups: Any, in_channels: Any) -> int:
        """Validate ``channels``/``groups``/``in_channels``; the input channels or -1."""
        name = type(self).__name__
        for arg, value in (("channels", channels), ("groups", groups)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        known = in_size(in_channels, "in_channels", name)
        for arg, value in (("channels", channels), ("in_channels", known)):
            if value > 0 and value % groups:
                raise ValueError(
                    f"{name}: {arg}={value} is not divisible by groups={groups}; "
                    "both in_channels and channels must be multiples of groups"
                )
        return known

    def _check_padding(self, padding: Any, strides: Any) -> tuple[int, ...] | str:
        """Ints, or ``"same"``/``"valid"`` for a (non-transposed) convolution."""
        name, n = type(self).__name__, self._ndim
        if not isinstance(padding, str) or self._transpose:
            return ntuple(padding, n, "padding", name, 0)
        if padding not in ("same", "valid"):
            raise ValueError(f"{name}: padding must be ints, 'same' or 'valid', got {padding!r}")
        if padding == "same" and self._strides != (1,) * n:
            raise ValueError(f"{name}: padding='same' needs strides=1, got {strides!r}")
        return padding if padding == "same" else (0,) * n

    def _check_output_padding(self, output_padding: Any) -> tuple[int, ...]:
        """Transposes only, and smaller than the strides or the dilation."""
        name = type(self).__name__
        out = ntuple(output_padding, self._ndim, "output_padding", name, 0)
        if not self._transpose and any(out):
            raise ValueError(
                f"{name}: output_padding applies to transposed convolutions only "
                f"(use {name}Transpose)"
            )
        for op, s, d in zip(out, self._strides, self._dilation, strict=True):
            if op >= max(s, d):
                raise ValueError(
                    f"{name}: output_padding must be smaller than strides or dilation, got "
                    f"output_padding={out}, strides={self._strides}, "
                    f"dilation={self._dilation}"
                )
        return out

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        check_float_inputs(self, x)
        n = self._ndim
        c, spatial = split_input(self, x, n, self._layout, self._channels_last)
        feature_count(c, f"input channels (axis {self._layout.index('C')} of {self._layout})")
        if c % self._groups:
            known = self._in_channels()
            expects = f" (it expects in_channels={known})" if known > 0 else ""
            raise ShapeMismatchError(
                f"its {c} input channels are not divisible by groups={self._groups}{expects}. "
                f"Fix: feed a multiple of {self._groups} channels on axis "
                f"{self._layout.index('C')} of its {self._layout} input, or change groups"
            )
        k = self._kernel_size
        if self._transpose:
            self.weight.shape = (c, self._channels // self._groups, *k)
            out = [
                (size - 1) * s - 2 * p + d * (kk - 1) + op + 1
                for size, kk, s, p, d, op in zip(
                    spatial,
                    k,
                    self._strides,
                    self._padding,
                    self._dilation,
                    self._out_padding,
                    strict=True,
                )
            ]
            reason = f"padding {fmt_shape(self._padding)}"
            fix = "use less padding, or feed larger inputs"
        else:
            self.weight.shape = (self._channels, c // self._groups, *k)
            if self._padding == "same":
                return
            out = [
                pool_out(size, kk, s, p, d, False)
                for size, kk, s, p, d in zip(
                    spatial, k, self._strides, self._padding, self._dilation, strict=True
                )
            ]
            reason = f"kernel_size {fmt_shape(k)}" + (
                f" with dilation {fmt_shape(self._dilation)}" if max(self._dilation) > 1 else ""
            )
            fix = (
                "feed larger inputs, downsample less before this layer, or use a smaller "
                "kernel_size or dilation, or more padding"
            )
        if min(out) < 1:
            raise too_small(spatial, out, reason, fix)

    def _in_channels(self) -> int:
        """The input channels, or -1 while unknown."""
        if self._transpose:
            return self.weight.shape[0]
        known = self.weight.shape[1]
        return known * self._groups if known > 0 else -1

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        in_channels = size if self._transpose else size * self._groups
        return (
            f"it expects in_channels={in_channels} input channels (axis "
            f"{self._layout.index('C')} of its {self._layout} input)"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            y = x.movedim(-1, -self._ndim - 1) if self._channels_last else x
            out = self._kernel(y, self.weight, self.bias, *self._args)
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)
        if self._act is not None:
            out = self._act(out)
        return out.movedim(-self._ndim - 1, -1) if self._channels_last else out

    def extra_repr(self) -> str:
        n = self._ndim
        parts = [
            f"{self._in_channels()} -> {self._channels}",
            f"kernel_size={self._kernel_size}",
            f"stride={self._strides}",
        ]
        if self._padding == "same" or any(self._padding):
            parts.append(f"padding={self._padding}")
        if any(self._out_padding):
            parts.append(f"output_padding={self._out_padding}")
        if self._dilation != (1,) * n:
            parts.append(f"dilation={self._dilation}")
        if self._groups != 1:
            parts.append(f"groups={self._groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self._channels_last:
            parts.append(f"layout={self._layout}")
        act = act_name(self._activation)
        if act:
            parts.append(act)
        return ", ".join(parts)


class Conv2D(_Conv, torch.nn.Conv2d):
    """A 2-D convolution over `(N, C, H, W)` images, with the input channels inferred.

    The number of input channels (`in_channels`) is read from the first batch (axis 1
    of `NCHW` inputs, the last axis of `NHWC` ones): the weight is created with
    shape `(channels, -1, *kernel_size)` and gets its real shape on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state
    dict or a parameter file). Until then `in_channels` is `None`.

    A `torch.nn.Conv2d` (`isinstance`, torch's `weight`/`bias` names and
    `state_dict` keys, and its attributes `in_channels`, `out_channels`,
    `kernel_size`, `stride`, `padding`, `dilation`, `groups`, `output_padding`);
    `activation` and the channels-last `layout` are lateinit's (Gluon's).
    Arguments after `padding` are keyword-only. As in torch, an unbatched input
    (without the `N` axis) is accepted too.

    Args:
        channels: the number of output channels (torch's `out_channels`).
        kernel_size: the window size: an int, or two ints.
        strides: the step of the window: an int, or two ints.
        padding: zeros added on both sides of each spatial dim (an int or two ints), or
            `"same"` (output size = input size; needs `strides=1`) or `"valid"` (no padding).
        output_padding: transposed convolutions only; must stay 0 here.
        dilation: the spacing between the kernel's taps: an int, or two ints.
        groups: split input and output channels into this many groups convolved
            separately; `in_channels` and `channels` must be multiples of it.
        layout: `"NCHW"` (default, channels first) or channels-last `"NHWC"`.
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"gelu"`... (as
            [`Dense`][lateinit.nn.Dense]) or any callable; `None` for none.
        use_bias: add a bias per output channel.
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.Conv2d` distribution
            `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
            `fan_in = in_channels // groups * prod(kernel_size)`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        in_channels: the number of input channels; inferred from the first batch when
            `None` (or 0, as Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, in_channels, H, W)` (`(N, H, W, in_channels)` for `NHWC`).
        - Output: `(N, channels, H_out, W_out)` (channels last for `NHWC`); each
          spatial size is
          `(size + 2*padding - dilation*(kernel_size-1) - 1) // strides + 1` (with
          `padding="same"`: the input's size).
        - `weight`: `(channels, in_channels // groups, *kernel_size)`; `bias`:
          `(channels,)` (same names in torch and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Conv2D(64, 3, activation="relu")
        >>> layer
        Conv2D(-1 -> 64, kernel_size=(3, 3), stride=(1, 1), relu)
        >>> tuple(layer.weight.shape), layer.in_channels
        ((64, -1, 3, 3), None)
        >>> layer(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 64, 30, 30])
        >>> layer, tuple(layer.weight.shape)
        (Conv2D(3 -> 64, kernel_size=(3, 3), stride=(1, 1), relu), (64, 3, 3, 3))
        >>> nn.Conv2D(8, 3, padding="same", layout="NHWC")(torch.rand(2, 10, 10, 3)).shape
        torch.Size([2, 10, 10, 8])
    """

    _ndim = 2
    _kernel = staticmethod(F.conv2d)


class Conv1D(_Conv, torch.nn.Conv1d):
    """A 1-D convolution over `(N, C, W)` sequences, with the input channels inferred.

    The number of input channels (`in_channels`) is read from the first batch (axis 1
    of `NCW` inputs, the last axis of `NWC` ones): the weight is created with
    shape `(channels, -1, *kernel_size)` and gets its real shape on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state
    dict or a parameter file). Until then `in_channels` is `None`.

    A `torch.nn.Conv1d` (`isinstance`, torch's `weight`/`bias` names and
    `state_dict` keys, and its attributes `in_channels`, `out_channels`,
    `kernel_size`, `stride`, `padding`, `dilation`, `groups`, `output_padding`);
    `activation` and the channels-last `layout` are lateinit's (Gluon's).
    Arguments after `padding` are keyword-only. As in torch, an unbatched input
    (without the `N` axis) is accepted too.

    Args:
        channels: the number of output channels (torch's `out_channels`).
        kernel_size: the window size: an int, or one int.
        strides: the step of the window: an int, or one int.
        padding: zeros added on both sides of each spatial dim (an int or one int), or
            `"same"` (output size = input size; needs `strides=1`) or `"valid"` (no padding).
        output_padding: transposed convolutions only; must stay 0 here.
        dilation: the spacing between the kernel's taps: an int, or one int.
        groups: split input and output channels into this many groups convolved
            separately; `in_channels` and `channels` must be multiples of it.
        layout: `"NCW"` (default, channels first) or channels-last `"NWC"`.
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"gelu"`... (as
            [`Dense`][lateinit.nn.Dense]) or any callable; `None` for none.
        use_bias: add a bias per output channel.
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.Conv1d` distribution
            `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
            `fan_in = in_channels // groups * prod(kernel_size)`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        in_channels: the number of input channels; inferred from the first batch when
            `None` (or 0, as Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, in_channels, W)` (`(N, W, in_channels)` for `NWC`).
        - Output: `(N, channels, W_out)` (channels last for `NWC`); each
          spatial size is
          `(size + 2*padding - dilation*(kernel_size-1) - 1) // strides + 1` (with
          `padding="same"`: the input's size).
        - `weight`: `(channels, in_channels // groups, *kernel_size)`; `bias`:
          `(channels,)` (same names in torch and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Conv1D(8, 3, padding=1)
        >>> layer, tuple(layer.weight.shape)
        (Conv1D(-1 -> 8, kernel_size=(3,), stride=(1,), padding=(1,)), (8, -1, 3))
        >>> layer(torch.rand(2, 5, 16)).shape
        torch.Size([2, 8, 16])
        >>> layer, layer.in_channels
        (Conv1D(5 -> 8, kernel_size=(3,), stride=(1,), padding=(1,)), 5)
    """

    _ndim = 1
    _kernel = staticmethod(F.conv1d)


class Conv3D(_Conv, torch.nn.Conv3d):
    """A 3-D convolution over `(N, C, D, H, W)` volumes, with the input channels inferred.

    The number of input channels (`in_channels`) is read from the first batch (axis 1
    of `NCDHW` inputs, the last axis of `NDHWC` ones): the weight is created with
    shape `(channels, -1, *kernel_size)` and gets its real shape on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state
    dict or a parameter file). Until then `in_channels` is `None`.

    A `torch.nn.Conv3d` (`isinstance`, torch's `weight`/`bias` names and
    `state_dict` keys, and its attributes `in_channels`, `out_channels`,
    `kernel_size`, `stride`, `padding`, `dilation`, `groups`, `output_padding`);
    `activation` and the channels-last `layout` are lateinit's (Gluon's).
    Arguments after `padding` are keyword-only. As in torch, an unbatched input
    (without the `N` axis) is accepted too.

    Args:
        channels: the number of output channels (torch's `out_channels`).
        kernel_size: the window size: an int, or three ints.
        strides: the step of the window: an int, or three ints.
        padding: zeros added on both sides of each spatial dim (an int or three ints), or
            `"same"` (output size = input size; needs `strides=1`) or `"valid"` (no padding).
        output_padding: transposed convolutions only; must stay 0 here.
        dilation: the spacing between the kernel's taps: an int, or three ints.
        groups: split input and output channels into this many groups convolved
            separately; `in_channels` and `channels` must be multiples of it.
        layout: `"NCDHW"` (default, channels first) or channels-last `"NDHWC"`.
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"gelu"`... (as
            [`Dense`][lateinit.nn.Dense]) or any callable; `None` for none.
        use_bias: add a bias per output channel.
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.Conv3d` distribution
            `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
            `fan_in = in_channels // groups * prod(kernel_size)`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        in_channels: the number of input channels; inferred from the first batch when
            `None` (or 0, as Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, in_channels, D, H, W)` (`(N, D, H, W, in_channels)` for `NDHWC`).
        - Output: `(N, channels, D_out, H_out, W_out)` (channels last for `NDHWC`); each
          spatial size is
          `(size + 2*padding - dilation*(kernel_size-1) - 1) // strides + 1` (with
          `padding="same"`: the input's size).
        - `weight`: `(channels, in_channels // groups, *kernel_size)`; `bias`:
          `(channels,)` (same names in torch and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Conv3D(4, (1, 3, 3), strides=(1, 2, 2))
        >>> tuple(layer.weight.shape)
        (4, -1, 1, 3, 3)
        >>> layer(torch.rand(1, 2, 4, 9, 9)).shape
        torch.Size([1, 4, 4, 4, 4])
        >>> tuple(layer.weight.shape)
        (4, 2, 1, 3, 3)
    """

    _ndim = 3
    _kernel = staticmethod(F.conv3d)


class Conv2DTranspose(_Conv, torch.nn.ConvTranspose2d):
    """A 2-D transposed convolution (learned upsampling), with the input channels inferred.

    The gradient of a strided convolution with respect to its input: each input
    position spreads a `kernel_size` window over the output, so the spatial size grows
    (by about `strides` times). Padding takes ints only (no `"same"`).

    The number of input channels (`in_channels`) is read from the first batch (axis 1
    of `NCHW` inputs, the last axis of `NHWC` ones): the weight is created with
    shape `(-1, channels // groups, *kernel_size)` and gets its real shape on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state
    dict or a parameter file). Until then `in_channels` is `None`.

    A `torch.nn.ConvTranspose2d` (`isinstance`, torch's `weight`/`bias` names and
    `state_dict` keys, and its attributes `in_channels`, `out_channels`,
    `kernel_size`, `stride`, `padding`, `dilation`, `groups`, `output_padding`);
    `activation` and the channels-last `layout` are lateinit's (Gluon's).
    Arguments after `padding` are keyword-only. As in torch, an unbatched input
    (without the `N` axis) is accepted too.

    Args:
        channels: the number of output channels (torch's `out_channels`).
        kernel_size: the window size: an int, or two ints.
        strides: the step of the window: an int, or two ints.
        padding: zeros added on both sides of each spatial dim (an int or two ints); it
            removes `dilation*(kernel_size-1) - padding` from each side of the full output.
        output_padding: extra size added to one side of each spatial dim of the output
            (an int or two ints, smaller than `strides` or `dilation`): picks which of the
            input sizes that a strided convolution maps to one size this layer restores.
        dilation: the spacing between the kernel's taps: an int, or two ints.
        groups: split input and output channels into this many groups convolved
            separately; `in_channels` and `channels` must be multiples of it.
        layout: `"NCHW"` (default, channels first) or channels-last `"NHWC"`.
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"gelu"`... (as
            [`Dense`][lateinit.nn.Dense]) or any callable; `None` for none.
        use_bias: add a bias per output channel.
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.ConvTranspose2d` distribution
            `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
            `fan_in = channels // groups * prod(kernel_size)`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        in_channels: the number of input channels; inferred from the first batch when
            `None` (or 0, as Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, in_channels, H, W)` (`(N, H, W, in_channels)` for `NHWC`).
        - Output: `(N, channels, H_out, W_out)` (channels last for `NHWC`); each
          spatial size is
          `(size-1)*strides - 2*padding + dilation*(kernel_size-1) + output_padding + 1`.
        - `weight`: `(in_channels, channels // groups, *kernel_size)` (torch's layout
          for transposed convolutions); `bias`: `(channels,)` (same names in torch
          and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Conv2DTranspose(16, 4, strides=2, padding=1)
        >>> layer
        Conv2DTranspose(-1 -> 16, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))
        >>> layer(torch.rand(2, 32, 8, 8)).shape
        torch.Size([2, 16, 16, 16])
        >>> tuple(layer.weight.shape)
        (32, 16, 4, 4)
    """

    _ndim = 2
    _transpose = True
    _kernel = staticmethod(F.conv_transpose2d)


class Conv1DTranspose(_Conv, torch.nn.ConvTranspose1d):
    """A 1-D transposed convolution (learned upsampling), with the input channels inferred.

    The gradient of a strided convolution with respect to its input: each input
    position spreads a `kernel_size` window over the output, so the spatial size grows
    (by about `strides` times). Padding takes ints only (no `"same"`).

    The number of input channels (`in_channels`) is read from the first batch (axis 1
    of `NCW` inputs, the last axis of `NWC` ones): the weight is created with
    shape `(-1, channels // groups, *kernel_size)` and gets its real shape on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state
    dict or a parameter file). Until then `in_channels` is `None`.

    A `torch.nn.ConvTranspose1d` (`isinstance`, torch's `weight`/`bias` names and
    `state_dict` keys, and its attributes `in_channels`, `out_channels`,
    `kernel_size`, `stride`, `padding`, `dilation`, `groups`, `output_padding`);
    `activation` and the channels-last `layout` are lateinit's (Gluon's).
    Arguments after `padding` are keyword-only. As in torch, an unbatched input
    (without the `N` axis) is accepted too.

    Args:
        channels: the number of output channels (torch's `out_channels`).
        kernel_size: the window size: an int, or one int.
        strides: the step of the window: an int, or one int.
        padding: zeros added on both sides of each spatial dim (an int or one int); it
            removes `dilation*(kernel_size-1) - padding` from each side of the full output.
        output_padding: extra size added to one side of each spatial dim of the output
            (an int or one int, smaller than `strides` or `dilation`): picks which of the
            input sizes that a strided convolution maps to one size this layer restores.
        dilation: the spacing between the kernel's taps: an int, or one int.
        groups: split input and output channels into this many groups convolved
            separately; `in_channels` and `channels` must be multiples of it.
        layout: `"NCW"` (default, channels first) or channels-last `"NWC"`.
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"gelu"`... (as
            [`Dense`][lateinit.nn.Dense]) or any callable; `None` for none.
        use_bias: add a bias per output channel.
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.ConvTranspose1d` distribution
            `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
            `fan_in = channels // groups * prod(kernel_size)`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        in_channels: the number of input channels; inferred from the first batch when
            `None` (or 0, as Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, in_channels, W)` (`(N, W, in_channels)` for `NWC`).
        - Output: `(N, channels, W_out)` (channels last for `NWC`); each
          spatial size is
          `(size-1)*strides - 2*padding + dilation*(kernel_size-1) + output_padding + 1`.
        - `weight`: `(in_channels, channels // groups, *kernel_size)` (torch's layout
          for transposed convolutions); `bias`: `(channels,)` (same names in torch
          and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Conv1DTranspose(4, 3, strides=2, output_padding=1)
        >>> tuple(layer.weight.shape)
        (-1, 4, 3)
        >>> layer(torch.rand(2, 6, 10)).shape
        torch.Size([2, 4, 22])
        >>> tuple(layer.weight.shape), layer.in_channels
        ((6, 4, 3), 6)
    """

    _ndim = 1
    _transpose = True
    _kernel = staticmethod(F.conv_transpose1d)


class Conv3DTranspose(_Conv, torch.nn.ConvTranspose3d):
    """A 3-D transposed convolution (learned upsampling), with the input channels inferred.

    The gradient of a strided convolution with respect to its input: each input
    position spreads a `kernel_size` window over the output, so the spatial size grows
    (by about `strides` times). Padding takes ints only (no `"same"`).

    The number of input channels (`in_channels`) is read from the first batch (axis 1
    of `NCDHW` inputs, the last axis of `NDHWC` ones): the weight is created with
    shape `(-1, channels // groups, *kernel_size)` and gets its real shape on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state
    dict or a parameter file). Until then `in_channels` is `None`.

    A `torch.nn.ConvTranspose3d` (`isinstance`, torch's `weight`/`bias` names and
    `state_dict` keys, and its attributes `in_channels`, `out_channels`,
    `kernel_size`, `stride`, `padding`, `dilation`, `groups`, `output_padding`);
    `activation` and the channels-last `layout` are lateinit's (Gluon's).
    Arguments after `padding` are keyword-only. As in torch, an unbatched input
    (without the `N` axis) is accepted too.

    Args:
        channels: the number of output channels (torch's `out_channels`).
        kernel_size: the window size: an int, or three ints.
        strides: the step of the window: an int, or three ints.
        padding: zeros added on both sides of each spatial dim (an int or three ints); it
            removes `dilation*(kernel_size-1) - padding` from each side of the full output.
        output_padding: extra size added to one side of each spatial dim of the output
            (an int or three ints, smaller than `strides` or `dilation`): picks which of the
            input sizes that a strided convolution maps to one size this layer restores.
        dilation: the spacing between the kernel's taps: an int, or three ints.
        groups: split input and output channels into this many groups convolved
            separately; `in_channels` and `channels` must be multiples of it.
        layout: `"NCDHW"` (default, channels first) or channels-last `"NDHWC"`.
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"gelu"`... (as
            [`Dense`][lateinit.nn.Dense]) or any callable; `None` for none.
        use_bias: add a bias per output channel.
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.ConvTranspose3d` distribution
            `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
            `fan_in = channels // groups * prod(kernel_size)`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        in_channels: the number of input channels; inferred from the first batch when
            `None` (or 0, as Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, in_channels, D, H, W)` (`(N, D, H, W, in_channels)` for `NDHWC`).
        - Output: `(N, channels, D_out, H_out, W_out)` (channels last for `NDHWC`); each
          spatial size is
          `(size-1)*strides - 2*padding + dilation*(kernel_size-1) + output_padding + 1`.
        - `weight`: `(in_channels, channels // groups, *kernel_size)` (torch's layout
          for transposed convolutions); `bias`: `(channels,)` (same names in torch
          and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Conv3DTranspose(2, 3, strides=2, output_padding=1)
        >>> layer(torch.rand(1, 4, 3, 3, 3)).shape
        torch.Size([1, 2, 8, 8, 8])
        >>> tuple(layer.weight.shape)
        (4, 2, 3, 3, 3)
    """

    _ndim = 3
    _transpose = True
    _kernel = staticmethod(F.conv_transpose3d)
