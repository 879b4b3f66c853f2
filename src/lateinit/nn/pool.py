"""Pooling: MaxPool/AvgPool 1D/2D/3D and their global versions.

Pooling layers have no parameters, so nothing is inferred; their only checks are on the
input shape, and those run in the ``except`` branch around the kernel (on the error path
only): an input with the wrong number of dims, or too small for the window, is a
``ShapeMismatchError`` naming the layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..block import Block
from ..shapes import fmt_shape
from .basic import KERNEL_ERRORS, explain_call
from .conv import IntOrTuple, check_layout, ntuple, pool_out, split_input, too_small

__all__ = [
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
]


def dtype_refused(err: BaseException) -> bool:
    """Whether a pooling kernel refused its input's dtype (integer, bool or complex data
    it has no implementation for), rather than its shape."""
    return isinstance(err, NotImplementedError) or "dtype" in str(err)


def torch_window(value: Any, window: tuple[int, ...], as_tuple: bool) -> Any:
    """A pooling size as torch's pool classes keep it: the given int (or its checked
    tuple ``window``), always the tuple for those that convert (``AvgPool1d``)."""
    return window if as_tuple or not isinstance(value, int) else value


class _Pool(Block):
    """The base of MaxPool and AvgPool (see ``MaxPool2D`` for the arguments).

    Each layer is also its torch twin (``MaxPool2D`` a ``torch.nn.MaxPool2d``,
    ``AvgPool2D`` a ``torch.nn.AvgPool2d``...) with the twin's attributes
    (``kernel_size``, ``stride``, ``padding``, ``ceil_mode``, ... as torch keeps them for
    the same arguments); its forward stays lateinit's (channels-last ``layout``).
    """

    #: whether the twin keeps its sizes as tuples (torch's AvgPool1d), else as given
    _twin_tuples: ClassVar[bool] = False

    _ndim: ClassVar[int]
    _kernel: ClassVar[Callable[..., torch.Tensor]]

    def __init__(
        self,
        pool_size: IntOrTuple = 2,
        strides: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        ceil_mode: bool = False,
        layout: str | None = None,
    ) -> None:
        super().__init__()
        name, n = type(self).__name__, self._ndim
        self._pool_size = ntuple(pool_size, n, "pool_size", name, 1)
        self._strides = (
            self._pool_size if strides is None else ntuple(strides, n, "strides", name, 1)
        )
        self._padding = ntuple(padding, n, "padding", name, 0)
        if any(2 * p > k for p, k in zip(self._padding, self._pool_size, strict=True)):
            raise ValueError(
                f"{name}: padding must be at most half of pool_size, got padding="
                f"{self._padding} for pool_size={self._pool_size}"
            )
        self._ceil_mode = bool(ceil_mode)
        self._layout, self._channels_last = check_layout(layout, n, name)
        self._args: tuple[Any, ...] = ()
        # torch's pool attributes (its constructor never runs)
        tuples = self._twin_tuples
        self.kernel_size = torch_window(pool_size, self._pool_size, tuples)
        self.stride = (
            self.kernel_size if strides is None else torch_window(strides, self._strides, tuples)
        )
        self.padding = torch_window(padding, self._padding, tuples)
        self.ceil_mode = self._ceil_mode

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        """No parameters: only checks the input shape (called on the error path)."""
        _, spatial = split_input(self, x, self._ndim, self._layout, self._channels_last)
        windows = zip(spatial, self._pool_size, self._strides, self._padding, strict=True)
        out = [pool_out(size, k, s, p, 1, self._ceil_mode) for size, k, s, p in windows]
        if min(out) < 1:
            raise too_small(
                spatial,
                out,
                f"pool_size {fmt_shape(self._pool_size)}",
                "feed larger inputs, downsample less before this layer, or use a smaller "
                "pool_size, more padding or ceil_mode=True",
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            y = x.movedim(-1, -self._ndim - 1) if self._channels_last else x
            out = self._kernel(y, self._pool_size, self._strides, self._padding, *self._args)
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x, floats=dtype_refused(err))
        return out.movedim(-self._ndim - 1, -1) if self._channels_last else out

    def extra_repr(self) -> str:
        layout = f", layout={self._layout}" if self._channels_last else ""
        return (
            f"size={self._pool_size}, stride={self._strides}, padding={self._padding}, "
            f"ceil_mode={self._ceil_mode}{layout}"
        )


class _MaxPool(_Pool):
    def __init__(
        self,
        pool_size: IntOrTuple = 2,
        strides: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        ceil_mode: bool = False,
        layout: str | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, ceil_mode, layout)
        self._args = (1, self._ceil_mode)  # dilation, ceil_mode
        self.dilation = 1
        self.return_indices = False


class _AvgPool(_Pool):
    def __init__(
        self,
        pool_size: IntOrTuple = 2,
        strides: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        ceil_mode: bool = False,
        layout: str | None = None,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(pool_size, strides, padding, ceil_mode, layout)
        self._count_include_pad = bool(count_include_pad)
        self._args = (self._ceil_mode, self._count_include_pad)
        self.count_include_pad = self._count_include_pad
        if self._ndim > 1:  # torch's AvgPool1d has none
            self.divisor_override = None

    def extra_repr(self) -> str:
        extra = "" if self._count_include_pad else ", count_include_pad=False"
        return super().extra_repr() + extra


class MaxPool2D(_MaxPool, torch.nn.MaxPool2d):
    """Max pooling over `(N, C, H, W)` images: the maximum of each window.

    No parameters, so nothing is deferred: each channel is pooled on its own and
    the number of channels is kept. A `torch.nn.MaxPool2d` (`isinstance`, and
    torch's attributes `kernel_size`, `stride`, `padding`, `ceil_mode`); the
    channels-last `layout` is lateinit's (Gluon's).

    Args:
        pool_size: the window size: an int, or two ints.
        strides: the step of the window (an int, or two ints); `None` (default) means
            `pool_size` (windows that do not overlap).
        padding: implicit padding on both sides of each spatial dim (an int or
            two ints, at most half the window); padded positions never win the max.
        ceil_mode: round the output size up instead of down (keeps a last, partial
            window).
        layout: `"NCHW"` (default, channels first) or channels-last `"NHWC"`.

    Shape:
        - Input: `(N, C, H, W)` or unbatched `(C, H, W)` (channels last for
          `NHWC`).
        - Output: `(N, C, H_out, W_out)`; each spatial size is
          `(size + 2*padding - pool_size) // strides + 1` (rounded up with `ceil_mode`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> pool = nn.MaxPool2D(3, strides=2, padding=1)
        >>> pool(torch.rand(2, 8, 32, 32)).shape
        torch.Size([2, 8, 16, 16])
        >>> pool
        MaxPool2D(size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=False)
        >>> nn.MaxPool2D(layout="NHWC")(torch.rand(2, 32, 32, 8)).shape
        torch.Size([2, 16, 16, 8])
    """

    _ndim = 2
    _kernel = staticmethod(F.max_pool2d)


class MaxPool1D(_MaxPool, torch.nn.MaxPool1d):
    """Max pooling over `(N, C, W)` sequences: the maximum of each window.

    No parameters, so nothing is deferred: each channel is pooled on its own and
    the number of channels is kept. A `torch.nn.MaxPool1d` (`isinstance`, and
    torch's attributes `kernel_size`, `stride`, `padding`, `ceil_mode`); the
    channels-last `layout` is lateinit's (Gluon's).

    Args:
        pool_size: the window size: an int, or one int.
        strides: the step of the window (an int, or one int); `None` (default) means
            `pool_size` (windows that do not overlap).
        padding: implicit padding on both sides of each spatial dim (an int or
            one int, at most half the window); padded positions never win the max.
        ceil_mode: round the output size up instead of down (keeps a last, partial
            window).
        layout: `"NCW"` (default, channels first) or channels-last `"NWC"`.

    Shape:
        - Input: `(N, C, W)` or unbatched `(C, W)` (channels last for
          `NWC`).
        - Output: `(N, C, W_out)`; each spatial size is
          `(size + 2*padding - pool_size) // strides + 1` (rounded up with `ceil_mode`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> pool = nn.MaxPool1D()
        >>> pool(torch.rand(2, 4, 9)).shape
        torch.Size([2, 4, 4])
        >>> pool
        MaxPool1D(size=(2,), stride=(2,), padding=(0,), ceil_mode=False)
    """

    _ndim = 1
    _kernel = staticmethod(F.max_pool1d)


class MaxPool3D(_MaxPool, torch.nn.MaxPool3d):
    """Max pooling over `(N, C, D, H, W)` volumes: the maximum of each window.

    No parameters, so nothing is deferred: each channel is pooled on its own and
    the number of channels is kept. A `torch.nn.MaxPool3d` (`isinstance`, and
    torch's attributes `kernel_size`, `stride`, `padding`, `ceil_mode`); the
    channels-last `layout` is lateinit's (Gluon's).

    Args:
        pool_size: the window size: an int, or three ints.
        strides: the step of the window (an int, or three ints); `None` (default) means
            `pool_size` (windows that do not overlap).
        padding: implicit padding on both sides of each spatial dim (an int or
            three ints, at most half the window); padded positions never win the max.
        ceil_mode: round the output size up instead of down (keeps a last, partial
            window).
        layout: `"NCDHW"` (default, channels first) or channels-last `"NDHWC"`.

    Shape:
        - Input: `(N, C, D, H, W)` or unbatched `(C, D, H, W)` (channels last for
          `NDHWC`).
        - Output: `(N, C, D_out, H_out, W_out)`; each spatial size is
          `(size + 2*padding - pool_size) // strides + 1` (rounded up with `ceil_mode`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.MaxPool3D((1, 2, 2))(torch.rand(1, 3, 4, 8, 8)).shape
        torch.Size([1, 3, 4, 4, 4])
    """

    _ndim = 3
    _kernel = staticmethod(F.max_pool3d)


class AvgPool2D(_AvgPool, torch.nn.AvgPool2d):
    """Average pooling over `(N, C, H, W)` images: the mean of each window.

    No parameters, so nothing is deferred: each channel is pooled on its own and
    the number of channels is kept. A `torch.nn.AvgPool2d` (`isinstance`, and
    torch's attributes `kernel_size`, `stride`, `padding`, `ceil_mode`); the
    channels-last `layout` is lateinit's (Gluon's).

    Args:
        pool_size: the window size: an int, or two ints.
        strides: the step of the window (an int, or two ints); `None` (default) means
            `pool_size` (windows that do not overlap).
        padding: implicit padding on both sides of each spatial dim (an int or
            two ints, at most half the window); padded zeros count in the
            average unless `count_include_pad=False`.
        ceil_mode: round the output size up instead of down (keeps a last, partial
            window).
        layout: `"NCHW"` (default, channels first) or channels-last `"NHWC"`.
        count_include_pad: count the zero padding in each window's divisor (Gluon's and
            torch's default); `False` averages over the real positions only.

    Shape:
        - Input: `(N, C, H, W)` or unbatched `(C, H, W)` (channels last for
          `NHWC`).
        - Output: `(N, C, H_out, W_out)`; each spatial size is
          `(size + 2*padding - pool_size) // strides + 1` (rounded up with `ceil_mode`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> pool = nn.AvgPool2D()
        >>> pool(torch.rand(2, 8, 32, 32)).shape
        torch.Size([2, 8, 16, 16])
        >>> pool(torch.ones(1, 1, 4, 4))
        tensor([[[[1., 1.],
                  [1., 1.]]]])
    """

    _ndim = 2
    _kernel = staticmethod(F.avg_pool2d)


class AvgPool1D(_AvgPool, torch.nn.AvgPool1d):
    """Average pooling over `(N, C, W)` sequences: the mean of each window.

    No parameters, so nothing is deferred: each channel is pooled on its own and
    the number of channels is kept. A `torch.nn.AvgPool1d` (`isinstance`, and
    torch's attributes `kernel_size`, `stride`, `padding`, `ceil_mode`); the
    channels-last `layout` is lateinit's (Gluon's).

    Args:
        pool_size: the window size: an int, or one int.
        strides: the step of the window (an int, or one int); `None` (default) means
            `pool_size` (windows that do not overlap).
        padding: implicit padding on both sides of each spatial dim (an int or
            one int, at most half the window); padded zeros count in the
            average unless `count_include_pad=False`.
        ceil_mode: round the output size up instead of down (keeps a last, partial
            window).
        layout: `"NCW"` (default, channels first) or channels-last `"NWC"`.
        count_include_pad: count the zero padding in each window's divisor (Gluon's and
            torch's default); `False` averages over the real positions only.

    Shape:
        - Input: `(N, C, W)` or unbatched `(C, W)` (channels last for
          `NWC`).
        - Output: `(N, C, W_out)`; each spatial size is
          `(size + 2*padding - pool_size) // strides + 1` (rounded up with `ceil_mode`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.AvgPool1D(3, strides=1, padding=1)(torch.rand(2, 4, 9)).shape
        torch.Size([2, 4, 9])
        >>> nn.AvgPool1D()(torch.tensor([[[1.0, 3.0, 5.0, 7.0]]]))
        tensor([[[2., 6.]]])
    """

    _ndim = 1
    _kernel = staticmethod(F.avg_pool1d)
    _twin_tuples = True


class AvgPool3D(_AvgPool, torch.nn.AvgPool3d):
    """Average pooling over `(N, C, D, H, W)` volumes: the mean of each window.

    No parameters, so nothing is deferred: each channel is pooled on its own and
    the number of channels is kept. A `torch.nn.AvgPool3d` (`isinstance`, and
    torch's attributes `kernel_size`, `stride`, `padding`, `ceil_mode`); the
    channels-last `layout` is lateinit's (Gluon's).

    Args:
        pool_size: the window size: an int, or three ints.
        strides: the step of the window (an int, or three ints); `None` (default) means
            `pool_size` (windows that do not overlap).
        padding: implicit padding on both sides of each spatial dim (an int or
            three ints, at most half the window); padded zeros count in the
            average unless `count_include_pad=False`.
        ceil_mode: round the output size up instead of down (keeps a last, partial
            window).
        layout: `"NCDHW"` (default, channels first) or channels-last `"NDHWC"`.
        count_include_pad: count the zero padding in each window's divisor (Gluon's and
            torch's default); `False` averages over the real positions only.

    Shape:
        - Input: `(N, C, D, H, W)` or unbatched `(C, D, H, W)` (channels last for
          `NDHWC`).
        - Output: `(N, C, D_out, H_out, W_out)`; each spatial size is
          `(size + 2*padding - pool_size) // strides + 1` (rounded up with `ceil_mode`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.AvgPool3D()(torch.rand(1, 3, 4, 8, 8)).shape
        torch.Size([1, 3, 2, 4, 4])
    """

    _ndim = 3
    _kernel = staticmethod(F.avg_pool3d)


_ADAPTIVE_MAX = (torch.nn.AdaptiveMaxPool1d, torch.nn.AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool3d)


class _GlobalPool(Block):
    """The base of the global pools: one value per channel, spatial dims kept as 1.

    Each is also torch's adaptive pool to size 1 (``GlobalAvgPool2D`` a
    ``torch.nn.AdaptiveAvgPool2d``, ``GlobalMaxPool2D`` a ``torch.nn.AdaptiveMaxPool2d``),
    with ``output_size == 1``.
    """

    _ndim: ClassVar[int]
    _kernel: ClassVar[Callable[..., torch.Tensor]]

    def __init__(self, layout: str | None = None) -> None:
        super().__init__()
        self._layout, self._channels_last = check_layout(layout, self._ndim, type(self).__name__)
        self.output_size = 1  # torch's adaptive pool attributes (its constructor never runs)
        if isinstance(self, _ADAPTIVE_MAX):
            self.return_indices = False

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        """No parameters: only checks the number of input dims (called on the error path)."""
        split_input(self, x, self._ndim, self._layout, self._channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            if not 0 < x.dim() - self._ndim < 3:
                # the avg kernels (a mean over the last dims) take any number of leading dims
                raise RuntimeError(f"a {x.dim()}-D input")
            y = x.movedim(-1, -self._ndim - 1) if self._channels_last else x
            out = self._kernel(y, 1)
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x, floats=dtype_refused(err))
        return out.movedim(-self._ndim - 1, -1) if self._channels_last else out

    def extra_repr(self) -> str:
        return f"layout={self._layout}" if self._channels_last else ""


class GlobalMaxPool2D(_GlobalPool, torch.nn.AdaptiveMaxPool2d):
    """The maximum over all spatial positions of each channel: `(N, C, H, W) -> (N, C, 1, 1)`.

    No parameters, so nothing is deferred; the spatial axes are kept with size 1
    (Gluon's convention). Follow it with [`Flatten`][lateinit.nn.Flatten] or a
    [`Dense`][lateinit.nn.Dense] (which flattens) for `(N, C)`. A
    `torch.nn.AdaptiveMaxPool2d` with `output_size == 1`.

    Args:
        layout: `"NCHW"` (default, channels first) or channels-last `"NHWC"`.

    Shape:
        - Input: `(N, C, H, W)` (`(N, H, W, C)` for `NHWC`).
        - Output: `(N, C, 1, 1)` (`(N, 1, 1, C)` for `NHWC`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> pool = nn.GlobalMaxPool2D()
        >>> pool(torch.rand(2, 8, 7, 7)).shape
        torch.Size([2, 8, 1, 1])
        >>> nn.GlobalMaxPool2D(layout="NHWC")(torch.rand(2, 7, 7, 8)).shape
        torch.Size([2, 1, 1, 8])
    """

    _ndim = 2
    _kernel = staticmethod(F.adaptive_max_pool2d)


class GlobalMaxPool1D(_GlobalPool, torch.nn.AdaptiveMaxPool1d):
    """The maximum over all spatial positions of each channel: `(N, C, W) -> (N, C, 1)`.

    No parameters, so nothing is deferred; the spatial axes are kept with size 1
    (Gluon's convention). Follow it with [`Flatten`][lateinit.nn.Flatten] or a
    [`Dense`][lateinit.nn.Dense] (which flattens) for `(N, C)`. A
    `torch.nn.AdaptiveMaxPool1d` with `output_size == 1`.

    Args:
        layout: `"NCW"` (default, channels first) or channels-last `"NWC"`.

    Shape:
        - Input: `(N, C, W)` (`(N, W, C)` for `NWC`).
        - Output: `(N, C, 1)` (`(N, 1, C)` for `NWC`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.GlobalMaxPool1D()(torch.tensor([[[1.0, 5.0, 2.0]]]))
        tensor([[[5.]]])
    """

    _ndim = 1
    _kernel = staticmethod(F.adaptive_max_pool1d)


class GlobalMaxPool3D(_GlobalPool, torch.nn.AdaptiveMaxPool3d):
    """The maximum over all spatial positions of each channel.

    No parameters, so nothing is deferred; the spatial axes are kept with size 1
    (Gluon's convention). Follow it with [`Flatten`][lateinit.nn.Flatten] or a
    [`Dense`][lateinit.nn.Dense] (which flattens) for `(N, C)`. A
    `torch.nn.AdaptiveMaxPool3d` with `output_size == 1`.

    Args:
        layout: `"NCDHW"` (default, channels first) or channels-last `"NDHWC"`.

    Shape:
        - Input: `(N, C, D, H, W)` (`(N, D, H, W, C)` for `NDHWC`).
        - Output: `(N, C, 1, 1, 1)` (`(N, 1, 1, 1, C)` for `NDHWC`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.GlobalMaxPool3D()(torch.rand(2, 8, 3, 4, 5)).shape
        torch.Size([2, 8, 1, 1, 1])
    """

    _ndim = 3
    _kernel = staticmethod(F.adaptive_max_pool3d)


class GlobalAvgPool2D(_GlobalPool, torch.nn.AdaptiveAvgPool2d):
    """The mean over all spatial positions of each channel: `(N, C, H, W) -> (N, C, 1, 1)`.

    No parameters, so nothing is deferred; the spatial axes are kept with size 1
    (Gluon's convention). Follow it with [`Flatten`][lateinit.nn.Flatten] or a
    [`Dense`][lateinit.nn.Dense] (which flattens) for `(N, C)`. A
    `torch.nn.AdaptiveAvgPool2d` with `output_size == 1`.

    Args:
        layout: `"NCHW"` (default, channels first) or channels-last `"NHWC"`.

    Shape:
        - Input: `(N, C, H, W)` (`(N, H, W, C)` for `NHWC`).
        - Output: `(N, C, 1, 1)` (`(N, 1, 1, C)` for `NHWC`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> net = nn.Sequential(nn.Conv2D(16, 3), nn.GlobalAvgPool2D(), nn.Dense(10))
        >>> net(torch.rand(2, 3, 32, 32)).shape  # (2, 16, 1, 1) flattened by the Dense
        torch.Size([2, 10])
        >>> net[1](torch.rand(2, 8, 7, 7)).shape
        torch.Size([2, 8, 1, 1])
    """

    _ndim = 2
    _kernel = staticmethod(F.adaptive_avg_pool2d)


class GlobalAvgPool1D(_GlobalPool, torch.nn.AdaptiveAvgPool1d):
    """The mean over all spatial positions of each channel: `(N, C, W) -> (N, C, 1)`.

    No parameters, so nothing is deferred; the spatial axes are kept with size 1
    (Gluon's convention). Follow it with [`Flatten`][lateinit.nn.Flatten] or a
    [`Dense`][lateinit.nn.Dense] (which flattens) for `(N, C)`. A
    `torch.nn.AdaptiveAvgPool1d` with `output_size == 1`.

    Args:
        layout: `"NCW"` (default, channels first) or channels-last `"NWC"`.

    Shape:
        - Input: `(N, C, W)` (`(N, W, C)` for `NWC`).
        - Output: `(N, C, 1)` (`(N, 1, C)` for `NWC`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.GlobalAvgPool1D()(torch.tensor([[[1.0, 5.0, 3.0]]]))
        tensor([[[3.]]])
    """

    _ndim = 1
    _kernel = staticmethod(F.adaptive_avg_pool1d)


class GlobalAvgPool3D(_GlobalPool, torch.nn.AdaptiveAvgPool3d):
    """The mean over all spatial positions of each channel: `(N, C, D, H, W) -> (N, C, 1, 1, 1)`.

    No parameters, so nothing is deferred; the spatial axes are kept with size 1
    (Gluon's convention). Follow it with [`Flatten`][lateinit.nn.Flatten] or a
    [`Dense`][lateinit.nn.Dense] (which flattens) for `(N, C)`. A
    `torch.nn.AdaptiveAvgPool3d` with `output_size == 1`.

    Args:
        layout: `"NCDHW"` (default, channels first) or channels-last `"NDHWC"`.

    Shape:
        - Input: `(N, C, D, H, W)` (`(N, D, H, W, C)` for `NDHWC`).
        - Output: `(N, C, 1, 1, 1)` (`(N, 1, 1, 1, C)` for `NDHWC`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.GlobalAvgPool3D()(torch.rand(2, 8, 3, 4, 5)).shape
        torch.Size([2, 8, 1, 1, 1])
    """

    _ndim = 3
    _kernel = staticmethod(F.adaptive_avg_pool3d)
