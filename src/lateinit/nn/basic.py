"""Basic layers: Dense, Activation, Dropout, Flatten, Lambda, Identity, Embedding."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .. import init as _init
from ..block import Block
from ..explain import input_type_error, layer_label, locate
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


#: What a kernel raises for an input it cannot take: a non-tensor (TypeError,
#: AttributeError), a dtype it has no implementation for (NotImplementedError), a shape
#: that does not fit (RuntimeError, IndexError). Layers catch these around their kernels
#: and translate them on the error path; the happy path pays nothing.
KERNEL_ERRORS = (RuntimeError, IndexError, TypeError, AttributeError, NotImplementedError)


def get_activation(
    act: str | Callable[..., Any] | None, owner: str = ""
) -> Callable[..., Any] | None:
    """Resolve an activation given by name (``"relu"``...) or as a callable.

    ``owner`` (the layer's type) starts the messages: an unknown name is a ValueError,
    anything else that is neither a name nor a callable a TypeError.
    """
    if act is None or callable(act):
        return act
    prefix = f"{owner}: " if owner else ""
    if not isinstance(act, str):
        raise TypeError(
            f"{prefix}activation must be a name ({', '.join(sorted(_ACTIVATIONS))}), a "
            f"callable or None, got {act!r}"
        )
    if act.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[act.lower()]
    raise ValueError(
        f"{prefix}activation must be one of {', '.join(sorted(_ACTIVATIONS))} or a callable, "
        f"got {act!r}"
    )


def positive_int(value: Any, arg: str, owner: str) -> int:
    """A size or count given to a constructor: a positive int (a bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {arg} must be a positive int, got {value!r}")
    return value


def check_rate(value: Any, arg: str, owner: str) -> float:
    """A dropout rate given to a constructor: a number in ``[0, 1)`` (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{owner}: {arg} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_flag(value: Any, arg: str, owner: str) -> bool:
    """An on/off switch given to a constructor: a bool (or the int 0 or 1)."""
    if not isinstance(value, int) or value not in (0, 1):
        raise TypeError(f"{owner}: {arg} must be True or False, got {value!r}")
    return bool(value)


def _received(x: Any) -> str:
    """An input as a message names it: ``None``, ``a list``, ``an int64 tensor``."""
    if x is None:
        return "None"
    if isinstance(x, torch.Tensor):
        kind = str(x.dtype).replace("torch.", "")
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} tensor"
    kind = type(x).__module__ + "." + type(x).__name__
    kind = kind.removeprefix("builtins.")
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def tensor_input_error(block: torch.nn.Module, x: Any) -> TypeError | None:
    """A TypeError naming ``block`` when ``x`` is not a tensor (error path only)."""
    if isinstance(x, torch.Tensor):
        return None
    return input_type_error(
        block,
        _received(x),
        "it takes a torch.Tensor. Fix: convert the input, e.g. "
        "torch.as_tensor(x, dtype=torch.float32).",
    )


def float_input_error(block: torch.nn.Module, x: Any) -> TypeError | None:
    """A TypeError naming ``block`` when ``x`` is not a floating-point tensor (integer,
    bool or complex data, or no tensor at all), else ``None``. Runs in layers' hooks and
    in ``except`` branches only."""
    if not isinstance(x, torch.Tensor):
        return tensor_input_error(block, x)
    if x.is_floating_point():
        return None
    return input_type_error(
        block,
        _received(x),
        "it takes floating-point tensors. Fix: convert the input, e.g. x.float() "
        "(or x.to(the parameters' dtype)).",
    )


def check_float_inputs(block: torch.nn.Module, *inputs: Any) -> None:
    """Raise ``float_input_error`` for the first input that is not a floating tensor."""
    for x in inputs:
        error = float_input_error(block, x)
        if error is not None:
            raise error


def explain_call(
    block: Block, err: BaseException, *inputs: Any, floats: bool = True
) -> BaseException:
    """The error to raise for a layer's failed kernel call (``except`` branches only): a
    TypeError naming the layer for an input it cannot take (not a tensor; with
    ``floats``, not floating-point), else the layer's own explanation of ``err``."""
    for x in inputs:
        error = float_input_error(block, x) if floats else tensor_input_error(block, x)
        if error is not None:
            error.__cause__ = err
            return error
    return block._explain(err, *inputs)


def meta_input(x: Any) -> bool:
    """Whether ``x`` is a plain, contiguous meta tensor: an input a layer's
    ``_meta_forward`` answers for (see :func:`meta_output`)."""
    return type(x) is torch.Tensor and x.is_meta and x.is_contiguous()


def meta_stand_in(t: Any, dtype: torch.dtype, shape: tuple[int, ...] | None = None) -> bool:
    """Whether a layer's parameter or buffer is a meta stand-in (what data-free inference
    puts in the tables of the module it runs) of this dtype (and shape)."""
    return (
        (type(t) is torch.nn.Parameter or type(t) is torch.Tensor)
        and t.is_meta
        and t.dtype is dtype
        and (shape is None or tuple(t.shape) == shape)
    )


def meta_output(shape: Any, dtype: torch.dtype) -> torch.Tensor:
    """A layer's output in data-free inference, from the shapes alone: a contiguous meta
    tensor.

    Layers whose meta kernel is slow (torch runs its Python decomposition op by op:
    ``rms_norm`` ~0.4 ms, ``layer_norm`` ~0.7 ms on meta) define ``_meta_forward(*inputs)``:
    the output ``forward`` gives on meta inputs, or ``NotImplemented`` for any call it
    does not answer (then ``forward`` runs, and raises what it raises). Only
    ``inference.Inference`` calls it, after the layer's ``infer_param_shapes`` and with
    meta stand-ins in its tables, never with a dispatch mode (a FLOP count) or grad on,
    and with torch functions' Python handlers off (so it must run no user code): the
    READY path never sees it. It must give what ``forward`` gives (shape, dtype, strides:
    ``tests/test_meta_forward.py`` compares them on a table of cases)."""
    return torch.empty(shape, dtype=dtype, device="meta")


def feature_count(size: int, axis: str) -> int:
    """A feature/channel count read from an input in a hook: an input with none (a
    zero-size axis) would create a zero-size weight, so it is a ShapeMismatchError."""
    if size < 1:
        raise ShapeMismatchError(
            f"it has no {axis} (that axis has size 0), and a layer cannot learn from zero "
            "features. Fix: feed at least one feature per sample"
        )
    return size


def known_size(size: int) -> int | None:
    """A size read from a deferred parameter's shape: ``None`` while unknown (-1)."""
    return None if size < 0 else size


def act_name(act: str | Callable[..., Any] | None) -> str:
    """An activation's name for ``repr`` (``"relu"``, a function's ``__name__``)."""
    if act is None or isinstance(act, str):
        return act or ""
    return getattr(act, "__name__", type(act).__name__)


class Dense(Block, torch.nn.Linear):
    """A fully connected layer, `y = act(x @ weight.T + bias)`, with the input size inferred.

    The number of input features (`in_units`, torch's `in_features`) is read from the
    first batch: the weight is created with shape `(units, -1)` and gets its real shape
    `(units, in_units)` on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a parameter
    file). Until then `in_features` is `None`.

    A `torch.nn.Linear` from construction on (`isinstance`; torch's `weight`/`bias`
    names and `state_dict` keys), with `in_features` and `out_features` read from the
    weight's shape. Without `activation`, a Dense computes what `torch.nn.Linear`
    computes on `(N, in_units)` inputs (on any input with `flatten=False`); `activation`
    and `flatten` are Gluon's and stay lateinit's: [`to_torch`][lateinit.to_torch] gives
    exact torch modules.

    Args:
        units: the output size (torch's `out_features`).
        activation: `"relu"`, `"sigmoid"`, `"tanh"`, `"softrelu"`, `"softsign"`,
            `"gelu"`, `"silu"`... or any callable, applied to the output; `None` for none.
        use_bias: add a bias.
        flatten: Gluon semantics: `True` flattens all axes but the first
            (`(N, d1, d2...) -> (N, d1*d2*...)`); `False` applies the layer to the last
            axis.
        in_units: the input size; inferred from the first batch when `None` (or 0, as
            Gluon).
        weight_initializer: the weight's own initializer; when `None` the one given to
            `initialize(init)` is used, else torch's `nn.Linear` distribution
            `U(-1/sqrt(in_units), 1/sqrt(in_units))`.
        bias_initializer: the bias's initializer (Gluon's default: zeros).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(N, *)` with `flatten=True` (`in_units` is the product of the axes
          after the first); `(*, in_units)` with `flatten=False`.
        - Output: `(N, units)` with `flatten=True`; `(*, units)` with `flatten=False`.
        - `weight`: `(units, in_units)`; `bias`: `(units,)` (same names in torch and
          Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.Dense(4, activation="relu")
        >>> layer, tuple(layer.weight.shape), layer.in_features
        (Dense(-1 -> 4, relu), (4, -1), None)
        >>> layer(torch.rand(2, 3, 5)).shape  # flatten=True: 3*5 input features
        torch.Size([2, 4])
        >>> layer, tuple(layer.weight.shape), layer.in_features
        (Dense(15 -> 4, relu), (4, 15), 15)
        >>> nn.Dense(4, flatten=False)(torch.rand(2, 3, 5)).shape
        torch.Size([2, 3, 4])
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
        positive_int(units, "units", "Dense")
        known = in_size(in_units, "in_units", "Dense")
        self._units = units
        self._flatten = check_flag(flatten, "flatten", "Dense")
        self._activation = activation
        self._act = get_activation(activation, "Dense")
        check_flag(use_bias, "use_bias", "Dense")
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

    # torch.nn.Linear's attributes, from the weight's shape (class properties: torch's
    # constructor, which would set them on the instance, never runs)
    @property
    def in_features(self) -> int | None:  # type: ignore[override]
        """torch's name of the input size: ``None`` until it is known."""
        return known_size(self.weight.shape[1])

    @property
    def out_features(self) -> int | None:  # type: ignore[override]
        """torch's name of the output size (``units``)."""
        return known_size(self.weight.shape[0])

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        check_float_inputs(self, x)
        if x.dim() == 0:
            raise ShapeMismatchError(
                "Dense needs an input with at least one dim (features). Fix: give it a "
                "batch of feature vectors, e.g. x.reshape(1, -1)"
            )
        flat = self._flatten and x.dim() > 2
        in_units = math.prod(x.shape[1:]) if flat else x.shape[-1]
        axes = "axes after the first" if flat else "last axis"
        feature_count(in_units, f"input features ({axes})")
        self._parameters["weight"].shape = (self._units, in_units)

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        where = (
            "the size of axis 1, or the product of all axes after the first"
            if self._flatten
            else "the size of the last axis"
        )
        return f"it expects in_units={size} input features ({where})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            # flatten(1), not reshape(N, -1): an empty batch has no -1 to infer
            flat = x.flatten(1) if self._flatten and x.dim() > 2 else x
            out = F.linear(flat, self.weight, self.bias)
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)
        return out if self._act is None else self._act(out)

    def _meta_forward(self, x: Any) -> Any:
        """``forward`` on a meta input, from the shapes (see :func:`meta_output`)."""
        if not meta_input(x) or not x.is_floating_point() or x.dim() == 0:
            return NotImplemented
        params = self._parameters
        weight, bias = params["weight"], params.get("bias")
        if not meta_stand_in(weight, x.dtype) or weight.dim() != 2:
            return NotImplemented
        units, n_in = weight.shape
        if self._flatten and x.dim() > 2:
            lead, features = (x.shape[0],), math.prod(x.shape[1:])
        else:
            lead, features = tuple(x.shape[:-1]), x.shape[-1]
        if n_in != features or (bias is not None and not meta_stand_in(bias, x.dtype, (units,))):
            return NotImplemented
        if self._act is not None and not isinstance(self._activation, str):
            return NotImplemented  # a callable activation: the forward runs it
        return meta_output((*lead, units), x.dtype)  # a named one keeps shape and layout

    def extra_repr(self) -> str:
        in_units = self.weight.shape[1]
        act = act_name(self._activation)
        return f"{in_units} -> {self._units}" + (f", {act}" if act else "")


class Activation(Block):
    """Apply an activation function, given by name (`"relu"`...) or as a callable.

    Has no parameters, so nothing is deferred: the output has the input's shape.

    Args:
        activation: one of `"relu"`, `"sigmoid"`, `"tanh"`, `"softrelu"` (softplus),
            `"softplus"`, `"softsign"`, `"gelu"`, `"silu"`, `"swish"` (silu), `"elu"`,
            `"selu"`, `"leaky_relu"`, `"log_sigmoid"`, `"mish"`, or any callable taking and
            returning a tensor. `None` is refused: use [`Identity`][lateinit.nn.Identity].

    Shape:
        - Input: `(*)`, any shape.
        - Output: `(*)`, the input's shape.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> act = nn.Activation("relu")
        >>> act
        Activation(relu)
        >>> act(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    def __init__(self, activation: str | Callable[..., Any]) -> None:
        super().__init__()
        if activation is None:
            raise TypeError(
                "Activation: activation must be a name (relu, tanh...) or a callable, got "
                "None. Fix: name an activation, or use Identity() for none"
            )
        self._activation = activation
        self._act = get_activation(activation, "Activation")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._act(x)  # type: ignore[misc]
        except KERNEL_ERRORS as err:
            error = float_input_error(self, x)
            if error is None:
                raise
            raise error from err

    def _meta_forward(self, x: Any) -> Any:
        """``forward`` on a meta input, from the shapes (see :func:`meta_output`): a named
        activation keeps the input's shape, dtype and layout."""
        if not meta_input(x) or not x.is_floating_point() or not isinstance(self._activation, str):
            return NotImplemented
        return meta_output(x.shape, x.dtype)

    def extra_repr(self) -> str:
        return act_name(self._activation)


class Dropout(Block):
    """Randomly zero inputs in training (Gluon's and torch's inverted dropout).

    In training mode each element is zeroed with probability `rate` and the others are
    scaled by `1 / (1 - rate)`, so the expected value is unchanged; in eval mode
    (`layer.eval()`) the layer returns its input. No parameters, nothing deferred.

    Args:
        rate: the drop probability, in `[0, 1)`.
        axes: axes along which one mask is shared (Gluon's `axes`): e.g. `(1,)` drops
            whole time steps of an `(N, T, C)` input together. An int is one axis; `()`
            (default) draws one mask value per element.

    Shape:
        - Input: `(*)`, any shape.
        - Output: `(*)`, the input's shape.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> drop = nn.Dropout(0.5)
        >>> drop
        Dropout(p=0.5)
        >>> x = torch.ones(2, 1000)
        >>> y = drop(x)  # training mode: about half are 0, the rest 2
        >>> y.shape, sorted(y.unique().tolist())
        (torch.Size([2, 1000]), [0.0, 2.0])
        >>> torch.equal(drop.eval()(x), x)  # eval mode: the identity
        True
        >>> y = nn.Dropout(0.5, axes=(1,))(torch.ones(2, 3, 4))  # one mask for all of axis 1
        >>> bool((y == y[:, :1]).all())
        True
    """

    def __init__(self, rate: float, axes: Sequence[int] = ()) -> None:
        super().__init__()
        check_rate(rate, "rate", "Dropout")
        if isinstance(axes, int) and not isinstance(axes, bool):
            axes = (axes,)
        try:
            self._axes = tuple(axes)
        except TypeError:
            self._axes = ("?",)  # type: ignore[assignment]
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in self._axes):
            raise TypeError(f"Dropout: axes must be an int or a tuple of ints, got {axes!r}")
        self._rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self._rate == 0.0:
            return x
        try:
            if not self._axes:
                return F.dropout(x, self._rate, True)
            shape = [
                1 if (i in self._axes or i - x.dim() in self._axes) else s
                for i, s in enumerate(x.shape)
            ]
            keep = 1.0 - self._rate
            mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
            return x * mask / keep
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)

    def extra_repr(self) -> str:
        return f"p={self._rate}" + (f", axes={self._axes}" if self._axes else "")


class Flatten(Block):
    """Flatten all axes but the first: `(N, d1, d2, ...) -> (N, d1*d2*...)`.

    A 1-D input `(N,)` becomes `(N, 1)`, as in Gluon. No parameters, nothing deferred.

    Shape:
        - Input: `(N, *)`.
        - Output: `(N, prod(*))`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.Flatten()(torch.rand(2, 3, 4, 5)).shape
        torch.Size([2, 60])
        >>> net = nn.Sequential(nn.Conv2D(8, 3), nn.Flatten(), nn.Dense(10, flatten=False))
        >>> net(torch.rand(2, 3, 6, 6)).shape, tuple(net[2].weight.shape)
        (torch.Size([2, 10]), (10, 128))
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            # flatten(1), not reshape(N, -1): an empty batch has no -1 to infer
            return x.flatten(1)
        except KERNEL_ERRORS as err:
            error = tensor_input_error(self, x)
            if error is not None:
                raise error from err
            if x.dim() == 1:  # (N,) -> (N, 1), as Gluon
                return x.reshape(x.shape[0], 1)
            raise ShapeMismatchError(
                f"{layer_label(self, locate(self)[1])} needs an input with a batch axis, got "
                f"shape {fmt_shape(tuple(x.shape))}. Fix: give it a batch, e.g. x.reshape(1, -1)"
            ) from None


class Lambda(Block):
    """Wrap a function as a layer.

    The function is called with the layer's inputs (all positional and keyword
    arguments) and its result is returned. No parameters, nothing deferred.

    Args:
        function: a callable, or the name of a function in `torch.nn.functional` or
            `torch` (`Lambda("tanh")`, `Lambda("relu")`).

    Shape:
        - Input and output: whatever the function takes and returns.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> nn.Lambda(lambda x: x * 2)(torch.ones(2))
        tensor([2., 2.])
        >>> relu = nn.Lambda("relu")
        >>> relu, relu(torch.tensor([-1.0, 3.0]))
        (Lambda(relu), tensor([0., 3.]))
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
    """Return the input unchanged (a placeholder layer, e.g. for "no activation" or "no
    downsampling" branches).

    Shape:
        - Input: anything.
        - Output: the input itself.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> x = torch.rand(2, 3)
        >>> nn.Identity()(x) is x
        True
    """

    def forward(self, x: Any) -> Any:
        return x


class Embedding(Block, torch.nn.Embedding):
    """Map integer indices to vectors: a lookup table of `input_dim` rows.

    Both sizes are given, so nothing is deferred: the table is created at construction,
    with shape `(input_dim, output_dim)`. A `torch.nn.Embedding` (`isinstance`, `weight`,
    `num_embeddings`, `embedding_dim`, `sparse`; `padding_idx`/`max_norm` are `None`, as
    torch's defaults).

    Args:
        input_dim: the number of indices (vocabulary size; torch's `num_embeddings`).
        output_dim: the size of each vector (torch's `embedding_dim`).
        weight_initializer: the table's initializer (default: `N(0, 1)`, as
            `torch.nn.Embedding`).
        sparse_grad: produce sparse gradients (torch's `sparse`).
        dtype: the table's dtype (default: torch's default dtype).
        device: the device the table is created on.

    Shape:
        - Input: `(*)`, integers in `[0, input_dim)`.
        - Output: `(*, output_dim)`.
        - `weight`: `(input_dim, output_dim)` (same name in torch and Gluon).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> emb = nn.Embedding(10, 4)
        >>> emb, tuple(emb.weight.shape)
        (Embedding(10 -> 4), (10, 4))
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
        self._input_dim = positive_int(input_dim, "input_dim", "Embedding")
        self._output_dim = positive_int(output_dim, "output_dim", "Embedding")
        self._sparse = check_flag(sparse_grad, "sparse_grad", "Embedding")
        # torch.nn.Embedding's attributes (its constructor never runs)
        self.num_embeddings = input_dim
        self.embedding_dim = output_dim
        self.padding_idx = None
        self.max_norm = None
        self.norm_type = 2.0
        self.scale_grad_by_freq = False
        self.sparse = self._sparse
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
        except KERNEL_ERRORS as err:
            raise self._explain_indices(err, x)

    def _meta_forward(self, x: Any) -> Any:
        """``forward`` on meta indices, from the shapes (see :func:`meta_output`)."""
        weight = self._parameters["weight"]
        if (
            type(x) is not torch.Tensor
            or not x.is_meta
            or x.dtype not in (torch.int64, torch.int32)
            or type(weight) not in (torch.nn.Parameter, torch.Tensor)
            or not weight.is_meta
            or weight.dim() != 2
        ):
            return NotImplemented
        return meta_output((*x.shape, weight.shape[1]), weight.dtype)

    def _explain_indices(self, err: BaseException, x: Any) -> BaseException:
        if not isinstance(x, torch.Tensor):
            return input_type_error(
                self,
                _received(x),
                "it takes a tensor of integer indices. Fix: convert the input, e.g. "
                "torch.as_tensor(x, dtype=torch.long).",
            )
        label = layer_label(self, locate(self)[1])
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
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
