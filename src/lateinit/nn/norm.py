"""Normalization layers: BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm.

Every layer is an instance of its ``torch.nn`` twin (``BatchNorm`` of
``torch.nn.modules.batchnorm._BatchNorm``, ``LayerNorm`` of ``torch.nn.LayerNorm``,
``GroupNorm`` of ``torch.nn.GroupNorm``, ``RMSNorm`` of ``torch.nn.RMSNorm``,
``InstanceNorm`` of ``torch.nn.modules.instancenorm._InstanceNorm``), with the twin's
names: a per-channel scale ``weight`` and shift ``bias`` of shape ``(in_channels,)``
(Gluon's ``gamma`` and ``beta``, which stay usable as aliases: ``bn.gamma is
bn.weight``), BatchNorm's ``running_mean``, ``running_var`` (Gluon's ``moving_mean``,
``moving_var``) and ``num_batches_tracked``, and the twin's attributes (``eps``,
``num_features``, ``normalized_shape``...). ``in_channels`` is inferred from the first
batch when omitted; until then the size attributes (``num_features``,
``normalized_shape``, ``num_channels``) read ``None``. The layers share one base
(``_Norm``) for the parameters, their inference and their error messages, and
differ only in the fused torch kernel they call and the axis handling. The twin's
constructor never runs (it would allocate tensors of a known size): each layer sets the
twin's attributes itself, and computes the size attributes from its tensors' shapes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ..block import Block
from ..explain import autocast_on, dtype_error, layer_label, locate
from ..parameter import Parameter, ParamRecord, deferred_buffer, is_deferred
from ..shapes import ShapeMismatchError, fmt_shape, in_size
from .basic import (
    KERNEL_ERRORS,
    check_flag,
    check_float_inputs,
    explain_call,
    feature_count,
    meta_input,
    meta_output,
    meta_stand_in,
)

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm"]


def _check_epsilon(layer: str, epsilon: float) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise ValueError(f"{layer}: epsilon must be a float >= 0, got {epsilon!r}")
    return float(epsilon)


def _batch_counter(device: torch.device | str | None) -> Parameter:
    """BatchNorm's ``num_batches_tracked``: a deferred int64 scalar buffer of zeros,
    created with the layer's other tensors (on the first input's device). It draws no
    seed (zeros need none), so the values drawn for the tensors declared after it are
    those they had before it existed."""
    record = ParamRecord((), "zeros", 0)
    record.buffer = True  # materializes as a plain tensor
    record.device_explicit = device is not None
    empty = torch.empty(0, dtype=torch.long, device=device)
    return Parameter.from_record(record, empty, requires_grad=False)


def _last_axis_meta(x: Any, weight: Any, bias: Any) -> Any:
    """LayerNorm's and RMSNorm's output on a meta input (``_meta_forward``): the input's
    shape and dtype, or NotImplemented unless every per-channel tensor is a stand-in of
    the input's dtype sized by its last axis."""
    if not meta_input(x) or not x.is_floating_point() or x.dim() == 0:
        return NotImplemented
    channels = (x.shape[-1],)
    for t in (weight, bias):
        if t is not None and not meta_stand_in(t, x.dtype, channels):
            return NotImplemented
    return meta_output(x.shape, x.dtype)


class _Norm(Block):
    """Shared base: per-channel ``weight``/``bias`` (Gluon's ``gamma``/``beta``) of shape
    ``(C,)``, with ``C`` the size of the channel axis, inferred from the first batch.

    Subclasses set ``_min_dims`` and ``_layout`` (for messages), may add per-channel
    deferred buffers (their names in ``_per_channel``), and write ``forward``. Each also
    inherits its torch twin (after this class: lateinit's ``forward``, ``extra_repr``,
    ``reset_parameters``, ``_apply``... win) and declares its Gluon names
    (``_gluon_names``).
    """

    _in_size_arg = "in_channels"
    _min_dims = 2
    _layout = "(N, C, ...)"
    _per_channel: tuple[str, ...] = ("weight", "bias")
    _options: tuple[str, ...] = ("center", "scale")  # shown in the repr when False
    _has_bias = True  # torch.nn.RMSNorm has no bias slot at all

    weight: torch.nn.Parameter | None
    bias: torch.nn.Parameter | None
    eps: float | None

    def __init__(
        self,
        axis: int,
        epsilon: float | None,
        center: bool,
        scale: bool,
        beta_initializer: Any,
        gamma_initializer: Any,
        in_channels: int | None,
        dtype: torch.dtype | None,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"{name}: axis must be an int, got {axis!r}")
        self._axis = axis
        self.eps = epsilon if epsilon is None else _check_epsilon(name, epsilon)
        self._center = check_flag(center, "center", name)
        self._scale = check_flag(scale, "scale", name)
        channels = in_size(in_channels, "in_channels", name)
        # Declared in the same order (weight, bias) whether or not in_channels is given,
        # so that the seeds (hence the values) are the same deferred and eager.
        self.register_parameter(
            "weight",
            Parameter((channels,), gamma_initializer, dtype=dtype, device=device)
            if scale
            else None,
        )
        if self._has_bias:
            self.register_parameter(
                "bias",
                Parameter((channels,), beta_initializer, dtype=dtype, device=device)
                if center
                else None,
            )

    # -- inference ------------------------------------------------------------------------
    def _channels_of(self, x: torch.Tensor) -> int:
        """The size of the channel axis of ``x`` (a ShapeMismatchError if it has none)."""
        ndim = x.dim()
        axis = self._axis + ndim if self._axis < 0 else self._axis
        if ndim < self._min_dims or not 0 <= axis < ndim or (self._min_dims > 1 and axis == 0):
            raise ShapeMismatchError(
                f"{type(self).__name__} expects an input {self._layout} of at least "
                f"{self._min_dims} dims with its channels {self._axis_words()}, got shape "
                f"{fmt_shape(tuple(x.shape))}"
            )
        return x.shape[axis]

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        check_float_inputs(self, x)
        channels = feature_count(self._channels_of(x), f"channels ({self._axis_words()})")
        for name in self._per_channel:
            t = getattr(self, name)
            if isinstance(t, Parameter):  # deferred (or a probe while explaining an error)
                t.shape = (channels,)
        # The rank of the input that sized the layer: lateinit.to_torch picks torch's
        # BatchNorm1d/2d/3d (InstanceNorm1d/2d/3d) by it. A hint only, never read here.
        self.__dict__["_input_dim"] = x.dim()

    def _check_input_dim(self, input: torch.Tensor) -> None:
        """torch's hook (the twins' ``forward`` call it): at least ``_min_dims`` dims."""
        if input.dim() < self._min_dims:
            raise ValueError(
                f"expected at least {self._min_dims}D input (got {input.dim()}D input)"
            )

    def _refuse_dtype(self, x: torch.Tensor, ref: torch.Tensor) -> None:
        """Called when ``x``'s dtype differs from the parameters' (``ref``): a TypeError
        naming the layer, as Dense gives (torch's norm kernels would silently mix a
        half-precision input with float32 parameters), except under autocast."""
        check_float_inputs(self, x)
        if autocast_on(x.device.type):
            return
        error = dtype_error(self, [x])
        if error is None:  # no parameters (center=False, scale=False): the statistics
            got, want = (str(t.dtype).replace("torch.", "") for t in (x, ref))
            error = TypeError(
                f"{layer_label(self, locate(self)[1])} got a {got} input but its running "
                f"statistics are {want}. Fix: convert the input (x.to(torch.{want})), or "
                f"create the layer in {got}: net.initialize(dtype=torch.{got}) or "
                f"net.to(torch.{got}) before the first batch."
            )
        raise error

    def _too_few_values(self, err: ValueError, fix: str) -> ShapeMismatchError:
        """torch's "Expected more than 1 value per channel", naming the layer (error path):
        the input is too small to normalize, a shape problem."""
        path = locate(self)[1]
        return ShapeMismatchError(
            f"{layer_label(self, path)}: {err}. Fix: {fix}.", layer=path or type(self).__name__
        )

    def _axis_words(self) -> str:
        return "on the last axis" if self._axis == -1 else f"on axis {self._axis}"

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        return f"it expects in_channels={size} channels {self._axis_words()}"

    # -- sizes and repr -------------------------------------------------------------------
    def _channels(self) -> int | None:
        """The number of channels: ``-1`` while unknown, ``None`` without per-channel
        tensors (a LayerNorm without weight and bias)."""
        for name in self._per_channel:
            t = getattr(self, name)
            if t is not None:
                return int(t.shape[0])
        return None

    def _known_channels(self) -> int | None:
        """The number of channels once known, else ``None`` (the twins' size attributes)."""
        channels = self._channels()
        return None if channels is None or channels < 0 else channels

    def _axis_repr(self) -> str:
        # "last" rather than -1: in a repr, -1 marks a size that is not known yet.
        return "axis=last" if self._axis == -1 else f"axis={self._axis}"

    def _repr_parts(self) -> list[str]:
        return [self._axis_repr(), f"eps={self.eps}"]

    def extra_repr(self) -> str:
        channels = self._channels()
        parts = [] if channels is None else [str(channels)]
        parts += self._repr_parts()
        parts += [f"{opt}=False" for opt in self._options if not getattr(self, f"_{opt}")]
        return ", ".join(parts)


class BatchNorm(_Norm, _BatchNorm):
    """Batch normalization (Ioffe & Szegedy, 2015), with the number of channels inferred.

    The number of channels `C` (the size of axis `axis`) is read from the first batch:
    `weight`, `bias` and the running statistics are created with shape `(-1,)` and get
    their real shape `(C,)` on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a parameter
    file). Until then `num_features` is `None`.

    A `torch.nn.modules.batchnorm._BatchNorm` (the base of `torch.nn.BatchNorm1d/2d/3d`)
    for any input rank, with torch's names: `weight`, `bias`, `running_mean`,
    `running_var`, `num_batches_tracked` (Gluon's `gamma`, `beta`, `moving_mean`,
    `moving_var` are aliases, and keys with those names load). Its `state_dict` loads
    into `torch.nn.BatchNorm2d` (of the same size) and back.

    In training, normalizes each channel with the mean and (biased) variance of the batch
    over every axis but `axis`, then scales by `weight` and shifts by `bias`; the running
    statistics are updated with the unbiased batch variance and `num_batches_tracked`
    counts the batches, as torch does. In eval mode (or with `use_global_stats=True`) the
    running statistics are used and not updated.

    The `momentum` argument follows Gluon's convention, the opposite of torch's:
    `running = momentum * running + (1 - momentum) * batch`. Gluon's `momentum=0.9` is
    torch's `momentum=0.1` (`torch.nn.BatchNorm2d` default). Where the two conflict torch
    wins: the attribute `bn.momentum` is torch's, `1 - momentum` (`None` selects torch's
    cumulative average); the repr shows Gluon's.

    Attributes (torch's): `num_features` (`None` until the number of channels is known),
    `eps`, `momentum` (torch's convention), `affine` (`center or scale`),
    `track_running_stats` (`True`).

    Args:
        axis: the channel axis: `1` for `(N, C, ...)` inputs, `-1` for channels-last
            `(N, ..., C)` inputs.
        momentum: Gluon momentum of the running statistics (see above), in `[0, 1]`.
        epsilon: added to the variance for numerical stability (the attribute `eps`).
        center: learn a shift `bias`; `False` drops it.
        scale: learn a scale `weight`; `False` drops it.
        use_global_stats: always normalize with the running statistics (and never update
            them), in training too: freezes a pre-trained BatchNorm.
        beta_initializer: the initializer of `bias` (Gluon's `beta`; default zeros).
        gamma_initializer: the initializer of `weight` (Gluon's `gamma`; default ones).
        running_mean_initializer: the initializer of `running_mean` (default zeros).
        running_variance_initializer: the initializer of `running_var` (default ones).
        in_channels: the number of channels; inferred from the first batch when `None`
            (or `0`, as in Gluon).
        dtype: the parameters' and statistics' dtype (default: torch's default dtype).
        device: the device the parameters and statistics are created on.

    Shape:
        - Input: `(N, C)`, `(N, C, L)`, `(N, C, H, W)` or `(N, C, D, H, W)`, with `C` on
          `axis`.
        - Output: the input's shape.
        - Parameters `weight` (Gluon: `gamma`) and `bias` (Gluon: `beta`): `(C,)`.
        - Buffers `running_mean` (Gluon: `moving_mean`) and `running_var` (Gluon:
          `moving_var`): `(C,)` (deferred until the first batch, then plain tensors);
          `num_batches_tracked`: `()` (int64).

    Examples:
        >>> import torch
        >>> from lateinit import is_deferred, nn
        >>> bn = nn.BatchNorm()
        >>> bn, bn.num_features, tuple(bn.weight.shape)
        (BatchNorm(-1, axis=1, eps=1e-05, momentum=0.9), None, (-1,))
        >>> isinstance(bn, torch.nn.modules.batchnorm._BatchNorm), bn.gamma is bn.weight
        (True, True)
        >>> is_deferred(bn.running_mean)
        True
        >>> bn(torch.randn(8, 3, 4, 4)).shape
        torch.Size([8, 3, 4, 4])
        >>> bn, bn.num_features, bn.momentum
        (BatchNorm(3, axis=1, eps=1e-05, momentum=0.9), 3, 0.09999999999999998)
        >>> type(bn.running_mean), tuple(bn.running_var.shape), int(bn.num_batches_tracked)
        (<class 'torch.Tensor'>, (3,), 1)
        >>> list(bn.state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    _per_channel = ("weight", "bias", "running_mean", "running_var")
    _gluon_names: ClassVar[dict[str, str]] = {
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_var": "running_var",
    }

    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor
    momentum: float | None

    def __init__(
        self,
        axis: int = 1,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        use_global_stats: bool = False,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        running_mean_initializer: Any = "zeros",
        running_variance_initializer: Any = "ones",
        in_channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            axis,
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            in_channels,
            dtype,
            device,
        )
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum!r}")
        self._momentum = float(momentum)  # Gluon's, for the repr
        self.momentum = 1.0 - float(momentum)  # torch's convention
        self.affine = self._center or self._scale
        self.track_running_stats = True
        self._use_global_stats = check_flag(use_global_stats, "use_global_stats", "BatchNorm")
        channels = in_size(in_channels, "in_channels", "BatchNorm")
        for name, initializer in (
            ("running_mean", running_mean_initializer),
            ("running_var", running_variance_initializer),
        ):
            self.register_buffer(
                name, deferred_buffer((channels,), initializer, dtype=dtype, device=device)
            )
        self.register_buffer("num_batches_tracked", _batch_counter(device))

    @property
    def num_features(self) -> int | None:  # type: ignore[override]
        """The number of channels (torch's attribute); ``None`` until it is known."""
        return self._known_channels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            mean = self.running_mean
            if x.dtype is not mean.dtype:
                self._refuse_dtype(x, mean)
            training = self.training and not self._use_global_stats
            momentum = self.momentum
            if momentum is None and training:  # torch's cumulative moving average
                momentum = 1.0 / (float(self.num_batches_tracked) + 1.0)
            moved = self._axis != 1
            h = x.movedim(self._axis, 1) if moved else x
            out = F.batch_norm(
                h,
                mean,
                self.running_var,
                self.weight,
                self.bias,
                training,
                momentum,  # type: ignore[arg-type]
                self.eps,  # type: ignore[arg-type]
            )
            if training:  # counted once the batch is through, as a failed call changes nothing
                self.num_batches_tracked.add_(1)
            return out.movedim(1, self._axis) if moved else out
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)
        except ValueError as err:  # one value per channel: no batch statistics in training
            raise self._too_few_values(
                err,
                "train with more than one value per channel (a batch of several samples), "
                "or use the running statistics: .eval() or use_global_stats=True",
            ) from err

    def _load_from_state_dict(
        self,
        state_dict: Any,
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """As torch's: a state dict without ``num_batches_tracked`` (written before torch
        had it, by Gluon, or by lateinit before it was a twin: no version 2 metadata)
        loads, with a count of 0 for a layer whose counter is not created yet."""
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and key not in state_dict:
            if is_deferred(self.num_batches_tracked):
                state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _gluon_momentum(self) -> float | None:
        """The momentum in Gluon's convention (the constructor's), from torch's."""
        if self.momentum is None:
            return None
        if 1.0 - self._momentum == self.momentum:
            return self._momentum  # as given, without rounding
        return 1.0 - self.momentum

    def _repr_parts(self) -> list[str]:
        parts = [self._axis_repr(), f"eps={self.eps}", f"momentum={self._gluon_momentum()}"]
        if self._use_global_stats:
            parts.append("use_global_stats=True")
        return parts


class LayerNorm(_Norm, torch.nn.LayerNorm):
    """Layer normalization (Ba et al., 2016) over the last axis, its size inferred.

    The size `C` of the last axis is read from the first batch: `weight` and `bias` are
    created with shape `(-1,)` and get their real shape `(C,)` on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a parameter
    file). Until then `normalized_shape` is `None`.

    A `torch.nn.LayerNorm` with a one-dim `normalized_shape`, with torch's names
    (`weight`, `bias`; Gluon's `gamma`, `beta` are aliases). Normalizes each sample over
    its last axis (mean and biased variance of that axis), then scales by `weight` and
    shifts by `bias`. Only `axis=-1` is supported: move another axis last first
    (`x.movedim(axis, -1)`).

    Attributes (torch's): `normalized_shape` (`(C,)`; `None` until `C` is known, and
    always without weight and bias, as any size is then accepted), `eps`,
    `elementwise_affine` (`center or scale`).

    Args:
        axis: must be `-1`.
        epsilon: added to the variance for numerical stability (the attribute `eps`).
        center: learn a shift `bias`; `False` drops it.
        scale: learn a scale `weight`; `False` drops it.
        beta_initializer: the initializer of `bias` (Gluon's `beta`; default zeros).
        gamma_initializer: the initializer of `weight` (Gluon's `gamma`; default ones).
        in_channels: the size of the last axis; inferred from the first batch when `None`
            (or `0`, as in Gluon).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(*, C)`.
        - Output: `(*, C)`, the input's shape.
        - `weight` (Gluon: `gamma`) and `bias` (Gluon: `beta`): `(C,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> ln = nn.LayerNorm()
        >>> ln, ln.normalized_shape, tuple(ln.weight.shape)
        (LayerNorm(-1, eps=1e-05), None, (-1,))
        >>> ln(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
        >>> ln, ln.normalized_shape, isinstance(ln, torch.nn.LayerNorm)
        (LayerNorm(16, eps=1e-05), (16,), True)
    """

    _min_dims = 1
    _layout = "(*, C)"
    _gluon_names: ClassVar[dict[str, str]] = {"gamma": "weight", "beta": "bias"}

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        in_channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if axis != -1:
            raise ValueError(
                f"LayerNorm normalizes over the last axis only (axis=-1), got axis={axis!r}. "
                "Fix: move that axis last (x.movedim(axis, -1)) before the layer, or use "
                "GroupNorm(num_groups=1) to normalize over every axis but the batch."
            )
        super().__init__(
            axis,
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            in_channels,
            dtype,
            device,
        )
        self.elementwise_affine = self._center or self._scale

    @property
    def normalized_shape(self) -> tuple[int, ...] | None:  # type: ignore[override]
        """``(C,)`` (torch's attribute); ``None`` until ``C`` is known."""
        channels = self._known_channels()
        return None if channels is None else (channels,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            weight, bias = self.weight, self.bias
            ref = weight if weight is not None else bias
            if ref is not None and x.dtype is not ref.dtype:
                self._refuse_dtype(x, ref)
            return F.layer_norm(x, x.shape[-1:], weight, bias, self.eps)  # type: ignore[arg-type]
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)

    def _meta_forward(self, x: Any) -> Any:
        """``forward`` on a meta input, from the shapes (``nn.basic.meta_output``)."""
        return _last_axis_meta(x, self._parameters.get("weight"), self._parameters.get("bias"))

    def _repr_parts(self) -> list[str]:
        return [f"eps={self.eps}"]


class RMSNorm(_Norm, torch.nn.RMSNorm):
    """Root-mean-square normalization (Zhang & Sennrich, 2019) over the last axis, its size
    inferred.

    The size `C` of the last axis is read from the first batch: `weight` is created with
    shape `(-1,)` and gets its real shape `(C,)` on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a parameter
    file). Until then `normalized_shape` is `None`.

    A `torch.nn.RMSNorm` with a one-dim `normalized_shape`:
    `y = x / sqrt(mean(x**2, last axis) + epsilon) * weight`; no centering, no shift. Its
    scale is `weight` (Gluon's `gamma`, an alias). The default `epsilon=1e-6` is that of
    the LLaMA and T5 reference implementations, which this layer mostly serves;
    `torch.nn.RMSNorm`'s default `eps=None` uses the machine epsilon of the input's dtype
    (`1.19e-7` in float32), which `epsilon=None` selects here too.

    Attributes (torch's): `normalized_shape` (`(C,)`; `None` until `C` is known, and
    always without `weight`), `eps`, `elementwise_affine` (`scale`).

    Args:
        axis: must be `-1`.
        epsilon: added to the mean square; `None` for `torch.finfo(x.dtype).eps`.
        scale: learn a scale `weight`; `False` drops it.
        gamma_initializer: the initializer of `weight` (Gluon's `gamma`; default ones).
        in_channels: the size of the last axis; inferred from the first batch when `None`
            (or `0`).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(*, C)`.
        - Output: `(*, C)`, the input's shape.
        - `weight` (Gluon: `gamma`): `(C,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> norm = nn.RMSNorm()
        >>> norm, norm.normalized_shape
        (RMSNorm(-1, eps=1e-06), None)
        >>> norm(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
        >>> norm, norm.normalized_shape, tuple(norm.gamma.shape)
        (RMSNorm(16, eps=1e-06), (16,), (16,))
    """

    _min_dims = 1
    _layout = "(*, C)"
    _options = ("scale",)
    _per_channel = ("weight",)
    _has_bias = False
    _gluon_names: ClassVar[dict[str, str]] = {"gamma": "weight"}

    def __init__(
        self,
        axis: int = -1,
        epsilon: float | None = 1e-6,
        scale: bool = True,
        gamma_initializer: Any = "ones",
        in_channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if axis != -1:
            raise ValueError(
                f"RMSNorm normalizes over the last axis only (axis=-1), got axis={axis!r}. "
                "Fix: move that axis last (x.movedim(axis, -1)) before the layer."
            )
        super().__init__(
            axis, epsilon, False, scale, "zeros", gamma_initializer, in_channels, dtype, device
        )
        self.elementwise_affine = self._scale

    @property
    def normalized_shape(self) -> tuple[int, ...] | None:  # type: ignore[override]
        """``(C,)`` (torch's attribute); ``None`` until ``C`` is known."""
        channels = self._known_channels()
        return None if channels is None else (channels,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            weight = self.weight
            if weight is not None and x.dtype is not weight.dtype:
                self._refuse_dtype(x, weight)
            return F.rms_norm(x, x.shape[-1:], weight, self.eps)
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)

    def _meta_forward(self, x: Any) -> Any:
        """``forward`` on a meta input, from the shapes (``nn.basic.meta_output``)."""
        return _last_axis_meta(x, self._parameters.get("weight"), None)

    def _repr_parts(self) -> list[str]:
        return [f"eps={self.eps}"]


class GroupNorm(_Norm, torch.nn.GroupNorm):
    """Group normalization (Wu & He, 2018), with the number of channels inferred.

    The number of channels `C` (axis 1) is read from the first batch: `weight` and
    `bias` are created with shape `(-1,)` and get their real shape `(C,)` on the first
    call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict
    or a parameter file). Until then `num_channels` is `None`.

    A `torch.nn.GroupNorm`, with torch's names (`weight`, `bias`; Gluon's `gamma`,
    `beta` are aliases). Splits the channels (axis 1) into `num_groups` groups and
    normalizes each sample over each group (its channels and every spatial position),
    then scales by `weight` and shifts by `bias` per channel. `num_groups=1` normalizes
    over every axis but the batch (a LayerNorm over `(C, *spatial)` with per-channel
    affine).

    Attributes (torch's): `num_groups`, `num_channels` (`None` until known, and always
    without weight and bias), `eps`, `affine` (`center or scale`).

    Args:
        num_groups: the number of groups; must divide the number of channels.
        epsilon: added to the variance for numerical stability (the attribute `eps`).
        center: learn a shift `bias`; `False` drops it.
        scale: learn a scale `weight`; `False` drops it.
        beta_initializer: the initializer of `bias` (Gluon's `beta`; default zeros).
        gamma_initializer: the initializer of `weight` (Gluon's `gamma`; default ones).
        in_channels: the number of channels; inferred from the first batch when `None`
            (or `0`).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, C, *)`.
        - Output: `(N, C, *)`, the input's shape.
        - `weight` (Gluon: `gamma`) and `bias` (Gluon: `beta`): `(C,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> gn = nn.GroupNorm(num_groups=2)
        >>> gn, gn.num_channels
        (GroupNorm(-1, num_groups=2, eps=1e-05), None)
        >>> gn(torch.randn(2, 6, 4, 4)).shape
        torch.Size([2, 6, 4, 4])
        >>> gn, gn.num_channels, tuple(gn.beta.shape)
        (GroupNorm(6, num_groups=2, eps=1e-05), 6, (6,))
    """

    _layout = "(N, C, *)"
    _gluon_names: ClassVar[dict[str, str]] = {"gamma": "weight", "beta": "bias"}

    def __init__(
        self,
        num_groups: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        in_channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups <= 0:
            raise ValueError(f"GroupNorm: num_groups must be a positive int, got {num_groups!r}")
        super().__init__(
            1,
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            in_channels,
            dtype,
            device,
        )
        self.num_groups = num_groups
        self.affine = self._center or self._scale
        if isinstance(in_channels, int) and in_channels > 0 and in_channels % num_groups:
            raise ValueError(
                f"GroupNorm: in_channels={in_channels} is not divisible by "
                f"num_groups={num_groups}. Fix: choose num_groups dividing the channels."
            )

    @property
    def num_channels(self) -> int | None:  # type: ignore[override]
        """The number of channels (torch's attribute); ``None`` until it is known."""
        return self._known_channels()

    def _channels_of(self, x: torch.Tensor) -> int:
        channels = super()._channels_of(x)
        if channels % self.num_groups:
            raise ShapeMismatchError(
                f"GroupNorm(num_groups={self.num_groups}) needs a number of channels "
                f"divisible by num_groups, but the input has {channels} channels on axis 1 "
                f"(shape {fmt_shape(tuple(x.shape))}). Fix: feed a number of channels that is "
                f"a multiple of {self.num_groups}, or build the layer with num_groups "
                f"dividing {channels}"
            )
        return channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            weight, bias = self.weight, self.bias
            ref = weight if weight is not None else bias
            if ref is not None and x.dtype is not ref.dtype:
                self._refuse_dtype(x, ref)
            return F.group_norm(x, self.num_groups, weight, bias, self.eps)  # type: ignore[arg-type]
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)
        except ValueError as err:  # a single value per group: nothing to normalize
            raise self._too_few_values(
                err, "give each group more than one value (more channels or spatial positions)"
            ) from err

    def _repr_parts(self) -> list[str]:
        return [f"num_groups={self.num_groups}", f"eps={self.eps}"]


class InstanceNorm(_Norm, _InstanceNorm):
    """Instance normalization (Ulyanov et al., 2016), with the number of channels inferred.

    The number of channels `C` (the size of axis `axis`) is read from the first batch:
    `weight` and `bias` are created with shape `(-1,)` and get their real shape `(C,)` on
    the first call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded
    state dict or a parameter file). Until then `num_features` is `None`.

    A `torch.nn.modules.instancenorm._InstanceNorm` (the base of
    `torch.nn.InstanceNorm1d/2d/3d`) for any input rank, with torch's names (`weight`,
    `bias`; Gluon's `gamma`, `beta` are aliases). Normalizes each sample and each channel
    over its spatial positions (mean and biased variance), then scales by `weight` and
    shifts by `bias` per channel. Keeps no running statistics (as
    `torch.nn.InstanceNorm2d` by default: `track_running_stats=False`, and
    `running_mean`, `running_var`, `num_batches_tracked` are `None`): training and eval
    behave alike. Unlike Gluon's (`scale=False`), `scale` defaults to `True`, as
    `torch.nn.InstanceNorm2d(affine=True)`.

    Attributes (torch's): `num_features` (`None` until known, and always without weight
    and bias), `eps`, `momentum` (`0.1`, unused), `affine` (`center or scale`),
    `track_running_stats` (`False`).

    Args:
        axis: the channel axis: `1` for `(N, C, ...)` inputs, `-1` for channels-last.
        epsilon: added to the variance for numerical stability (the attribute `eps`).
        center: learn a shift `bias`; `False` drops it.
        scale: learn a scale `weight`; `False` drops it.
        beta_initializer: the initializer of `bias` (Gluon's `beta`; default zeros).
        gamma_initializer: the initializer of `weight` (Gluon's `gamma`; default ones).
        in_channels: the number of channels; inferred from the first batch when `None`
            (or `0`).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, C, L)`, `(N, C, H, W)` or `(N, C, D, H, W)`, with `C` on `axis`.
        - Output: the input's shape.
        - `weight` (Gluon: `gamma`) and `bias` (Gluon: `beta`): `(C,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> norm = nn.InstanceNorm()
        >>> norm.num_features, tuple(norm.weight.shape)
        (None, (-1,))
        >>> norm(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
        >>> norm, norm.num_features
        (InstanceNorm(3, axis=1, eps=1e-05), 3)
    """

    _min_dims = 3
    _layout = "(N, C, *spatial)"
    _gluon_names: ClassVar[dict[str, str]] = {"gamma": "weight", "beta": "bias"}

    def __init__(
        self,
        axis: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        in_channels: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(
            axis,
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            in_channels,
            dtype,
            device,
        )
        self.momentum = 0.1
        self.affine = self._center or self._scale
        self.track_running_stats = False
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, None)  # as torch without running statistics

    @property
    def num_features(self) -> int | None:  # type: ignore[override]
        """The number of channels (torch's attribute); ``None`` until it is known."""
        return self._known_channels()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            weight, bias = self.weight, self.bias
            ref = weight if weight is not None else bias
            if ref is not None and x.dtype is not ref.dtype:
                self._refuse_dtype(x, ref)
            moved = self._axis != 1
            h = x.movedim(self._axis, 1) if moved else x
            out = F.instance_norm(h, weight=weight, bias=bias, eps=self.eps)  # type: ignore[arg-type]
            return out.movedim(1, self._axis) if moved else out
        except KERNEL_ERRORS as err:
            empty = self._empty_batch(x)
            if empty is not None:
                return empty
            raise explain_call(self, err, x)
        except ValueError as err:  # a single spatial position: no statistics to normalize with
            raise self._too_few_values(
                err, "feed inputs with more than one spatial position per channel"
            ) from err

    def _empty_batch(self, x: Any) -> torch.Tensor | None:
        """The output for an empty batch (error path only): torch's kernel refuses one
        when it has affine parameters, so normalize without them and apply them here
        (``None`` when ``x`` is not such a batch, or does not fit)."""
        if not isinstance(x, torch.Tensor) or x.numel() or x.dim() < self._min_dims:
            return None
        try:
            moved = self._axis != 1
            h = x.movedim(self._axis, 1) if moved else x
            if h.shape[0]:
                return None
            out = F.instance_norm(h, eps=self.eps)  # type: ignore[arg-type]
            per_channel = (1, -1) + (1,) * (h.dim() - 2)
            if self.weight is not None:
                out = out * self.weight.reshape(per_channel)
            if self.bias is not None:
                out = out + self.bias.reshape(per_channel)
            return out.movedim(1, self._axis) if moved else out
        except KERNEL_ERRORS:
            return None
