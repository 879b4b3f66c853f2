"""Basic layers: Dense, Activation, Dropout, Flatten, Lambda, Identity, Embedding."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .. import init as _init
from ..block import Block
from ..explain import layer_label, locate
from ..parameter import Parameter
from ..shapes import ShapeMismatchError, fmt_shape, in_size

__all__ = ["Dense", "Activation", "Dropout", "Flatten", "Lambda", "Identity", "Embedding"]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softrelu": F.softplus,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "elu": F.elu,
    "selu": F.selu,
    "leaky_relu": F.leaky_relu,
    "log_sigmoid": F.logsigmoid,
    "mish": F.mish,
}


def get_activation(act: str | Callable[..., Any] | None) -> Callable[..., Any] | None:
    """Resolve an activation given by name (``"relu"``...) or as a callable."""
    if act is None or callable(act):
        return act
    if isinstance(act, str) and act.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[act.lower()]
    raise ValueError(
        f"unknown activation {act!r}; use one of {', '.join(sorted(_ACTIVATIONS))} "
        "or pass a callable"
    )


def act_name(act: str | Callable[..., Any] | None) -> str:
    """An activation's name for ``repr`` (``"relu"``, a function's ``__name__``)."""
    if act is None or isinstance(act, str):
        return act or ""
    return getattr(act, "__name__", type(act).__name__)


class Dense(Block):
    """A fully connected layer, ``y = act(x @ W.T + b)``, with the input size inferred.

    Args:
        units: output size.
        activation: ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softrelu"``,
            ``"softsign"``, ``"gelu"``, ``"silu"``... or any callable; ``None`` for none.
        use_bias: add a bias.
        flatten: Gluon semantics: ``True`` flattens all axes but the first
            (``(N, d1, d2...) -> (N, d1*d2*...)``); ``False`` applies to the last axis.
        in_units: the input size; inferred from the first batch when ``None`` (or 0, as Gluon).
        weight_initializer: the weight's own initializer; when ``None`` the one given to
            ``initialize(init)`` is used, else torch's ``nn.Linear`` distribution
            ``U(-1/sqrt(in_units), 1/sqrt(in_units))``.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        dtype, device: where and how the parameters are created.

    Shapes: input ``(N, *)``, output ``(N, units)`` (flatten) or ``(*, units)``.
    Parameters: ``weight (units, in_units)``, ``bias (units,)``.

    Example:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Dense(4, activation="relu")
        >>> layer
        Dense(-1 -> 4, relu)
        >>> layer(torch.rand(2, 3, 5)).shape
        torch.Size([2, 4])
        >>> layer
        Dense(15 -> 4, relu)
    """

    _in_size_arg = "in_units"

    def __init__(
        self,
        units: int,
        activation: str | Callable[..., Any] | None = None,
        use_bias: bool = True,
        flatten: bool = True,
        in_units: int | None = None,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        known = in_size(in_units, "in_units", "Dense")
        self._units = units
        self._flatten = flatten
        self._activation = activation
        self._act = get_activation(activation)
        self.weight = Parameter(
            (units, known),
            weight_initializer,
            dtype=dtype,
            device=device,
            default_init=_init.linear_default(),
        )
        self.bias = (
            Parameter((units,), bias_initializer, dtype=dtype, device=device) if use_bias else None
        )

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        if x.dim() == 0:
            raise ShapeMismatchError(
                "Dense needs an input with at least one dim (features). Fix: give it a "
                "batch of feature vectors, e.g. x.reshape(1, -1)"
            )
        in_units = math.prod(x.shape[1:]) if self._flatten and x.dim() > 2 else x.shape[-1]
        self.weight.shape = (self._units, in_units)

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        where = (
            "the size of axis 1, or the product of all axes after the first"
            if self._flatten
            else "the size of the last axis"
        )
        return f"it expects in_units={size} input features ({where})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            flat = x.reshape(x.shape[0], -1) if self._flatten and x.dim() > 2 else x
            out = F.linear(flat, self.weight, self.bias)
        except (RuntimeError, IndexError) as err:
            raise self._explain(err, x)
        return out if self._act is None else self._act(out)

    def extra_repr(self) -> str:
        in_units = self.weight.shape[1]
        act = act_name(self._activation)
        return f"{in_units} -> {self._units}" + (f", {act}" if act else "")


class Activation(Block):
    """Apply an activation function by name (``"relu"``...) or a callable.

    Example:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.Activation("relu")(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    def __init__(self, activation: str | Callable[..., Any]) -> None:
        super().__init__()
        self._activation = activation
        self._act = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._act(x)  # type: ignore[misc]

    def extra_repr(self) -> str:
        return act_name(self._activation)


class Dropout(Block):
    """Zero inputs with probability ``rate`` in training (scaling the rest by
    ``1/(1-rate)``); identity in eval mode.

    Args:
        rate: the drop probability.
        axes: axes along which one mask is shared (Gluon's ``axes``): e.g. ``(1,)`` drops
            whole time steps of an ``(N, T, C)`` input together.
    """

    def __init__(self, rate: float, axes: Sequence[int] = ()) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self._rate = rate
        self._axes = tuple(axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self._rate == 0.0:
            return x
        if not self._axes:
            return F.dropout(x, self._rate, True)
        shape = [
            1 if (i in self._axes or i - x.dim() in self._axes) else s
            for i, s in enumerate(x.shape)
        ]
        keep = 1.0 - self._rate
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self._rate}" + (f", axes={self._axes}" if self._axes else "")


class Flatten(Block):
    """Flatten all axes but the first: ``(N, d1, d2, ...) -> (N, d1*d2*...)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0:
            raise ShapeMismatchError(
                f"Flatten needs an input with a batch axis, got shape {fmt_shape(tuple(x.shape))}"
            )
        return x.reshape(x.shape[0], -1)


class Lambda(Block):
    """Wrap a function as a layer: a callable, or the name of a function in
    ``torch.nn.functional`` or ``torch`` (``Lambda("tanh")``).

    Example:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.Lambda(lambda x: x * 2)(torch.ones(2))
        tensor([2., 2.])
    """

    def __init__(self, function: str | Callable[..., Any]) -> None:
        super().__init__()
        if isinstance(function, str):
            fn = getattr(F, function, None) or getattr(torch, function, None)
            if fn is None or not callable(fn):
                raise ValueError(
                    f"Lambda: {function!r} is not a function of torch.nn.functional or torch; "
                    "pass a callable instead"
                )
            self._fn = fn
        elif callable(function):
            self._fn = function
        else:
            raise TypeError(f"Lambda: expected a callable or a name, got {type(function).__name__}")
        self._name = function if isinstance(function, str) else getattr(function, "__name__", "")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return self._name


class Identity(Block):
    """Return the input unchanged."""

    def forward(self, x: Any) -> Any:
        return x


class Embedding(Block):
    """Map integer indices to vectors: a lookup table of ``input_dim`` rows.

    Args:
        input_dim: the number of indices (vocabulary size).
        output_dim: the size of each vector.
        weight_initializer: the table's initializer (default: ``N(0, 1)``, as
            ``torch.nn.Embedding``).
        sparse_grad: produce sparse gradients.
        dtype, device: where and how the table is created.

    Shapes: input ``(*)`` of integers in ``[0, input_dim)``, output ``(*, output_dim)``.

    Example:
        >>> import torch
        >>> from lateinit import nn
        >>> emb = nn.Embedding(10, 4)
        >>> emb(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 4])
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        weight_initializer: Any = None,
        sparse_grad: bool = False,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self._input_dim = input_dim
        self._output_dim = output_dim
        self._sparse = sparse_grad
        self.weight = Parameter(
            (input_dim, output_dim),
            weight_initializer,
            dtype=dtype,
            device=device,
            default_init=_init.Normal(1.0),  # torch.nn.Embedding's N(0, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return F.embedding(x, self.weight, sparse=self._sparse)
        except (RuntimeError, IndexError) as err:
            raise self._explain_indices(err, x)

    def _explain_indices(self, err: BaseException, x: torch.Tensor) -> BaseException:
        label = layer_label(self, locate(self)[1])
        if x.is_floating_point() or x.is_complex():
            return TypeError(
                f"{label} needs integer indices, got a {str(x.dtype).replace('torch.', '')} "
                "input. Fix: pass x.long()."
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self._input_dim):
            return IndexError(
                f"{label} got indices in [{int(x.min())}, {int(x.max())}], but its table has "
                f"input_dim={self._input_dim} rows (valid indices 0..{self._input_dim - 1}). "
                "Fix: build it with a larger input_dim, or map the indices into range."
            )
        return err

    def extra_repr(self) -> str:
        return f"{self._input_dim} -> {self._output_dim}"
