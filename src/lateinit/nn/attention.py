"""Attention layers: MultiHeadAttention and TransformerEncoderLayer, sizes inferred."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .. import init as _init
from ..block import Block
from ..explain import layer_label, locate
from ..parameter import Parameter
from ..shapes import ShapeMismatchError, fmt_shape
from .basic import (
    KERNEL_ERRORS,
    Dense,
    Dropout,
    check_flag,
    check_float_inputs,
    check_rate,
    feature_count,
    float_input_error,
    get_activation,
    positive_int,
    tensor_input_error,
)
from .norm import LayerNorm

__all__ = ["MultiHeadAttention", "TransformerEncoderLayer"]

# torch.nn.MultiheadAttention draws its input projections with xavier_uniform_: on the
# packed (3E, E) ``in_proj_weight`` when key and value sizes equal the model size, else on
# each (E, kdim) weight separately. Same distributions, per (units, in) weight:
_XAVIER_SEPARATE = _init.Xavier("uniform", "avg", 3.0)  # U(+-sqrt(6 / (units + in)))
_XAVIER_PACKED = _init.Xavier("uniform", "avg", 1.5)  # U(+-sqrt(6 / (4 units))), square


def _positive(name: str, value: int | None, owner: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"{owner}: {name} must be a positive int or None, got {value!r}")


def _causal_mask(mask: torch.Tensor, tq: int, tk: int) -> torch.Tensor:
    """Combine a user mask with the causal (top-left aligned lower-triangular) mask."""
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=mask.device).tril()
    if mask.dtype == torch.bool:
        return mask & allowed
    return mask.masked_fill(~allowed, float("-inf"))


class MultiHeadAttention(Block):
    """Multi-head scaled dot-product attention, with the query, key and value sizes inferred.

    Queries, keys and values are projected to `units` features, split into `num_heads`
    heads of `units // num_heads` features, attended with `softmax(q k^T / sqrt(d)) v`
    (torch's fused `F.scaled_dot_product_attention`), merged and projected by an output
    layer. Keys and values may have another feature size than the queries
    (cross-attention).

    The input feature sizes `query_units`, `key_units` and `value_units` are read from
    the first batch (the last axis of each input), each on its own; `units`, when not
    given, is the query's feature size. The query, key and value projection weights are
    created with shape `(units, -1)` (all parameters with `-1` for `units` too when it is
    not given) and get their real shapes on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a parameter
    file).

    Args:
        num_heads: the number of heads; must divide `units`.
        units: the model size (the projections' and the output's feature size); when
            `None` it is the query's feature size, inferred from the first batch.
        use_bias: add biases to the four projections.
        dropout: the dropout rate on the attention weights (training only).
        causal: each query position `i` attends only to key positions `j <= i`
            (top-left aligned lower-triangular mask, as `is_causal` of
            `F.scaled_dot_product_attention`).
        weight_initializer: the projection weights' own initializer; when `None` the one
            given to `initialize(init)` is used, else the distributions of
            `torch.nn.MultiheadAttention` (`xavier_uniform_` on the input projections,
            packed when the key and value sizes equal `units`; `nn.Linear`'s on the output
            projection).
        bias_initializer: the biases' initializer (zeros, as Gluon and torch).
        query_units: the query's feature size; inferred from the first batch when `None`.
        key_units: the key's feature size; inferred from the first batch when `None`.
        value_units: the value's feature size; inferred from the first batch when `None`.
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        Called as `attn(query, key=None, value=None, mask=None)`:

        - `query`: `(N, Tq, query_units)`; `key`: `(N, Tk, key_units)` (default:
          `query`, self-attention); `value`: `(N, Tk, value_units)` (default: `key`).
          Extra leading batch axes are allowed.
        - `mask` (optional): broadcastable to `(N, num_heads, Tq, Tk)` (e.g. `(Tq, Tk)`,
          or `(N, 1, 1, Tk)` for key padding): a boolean mask where `True` means *attend*
          (the opposite of `torch.nn.MultiheadAttention`'s `attn_mask`), or a float mask
          added to the attention scores (`-inf` blocks). With `causal=True` a mask is
          combined with the causal one.
        - Output: `(N, Tq, units)`.
        - Parameters: `query_weight` `(units, query_units)`, `key_weight`
          `(units, key_units)`, `value_weight` `(units, value_units)`, `out_weight`
          `(units, units)`, and the biases `query_bias`, `key_bias`, `value_bias`,
          `out_bias` `(units,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> attn = nn.MultiHeadAttention(num_heads=2)
        >>> attn, tuple(attn.key_weight.shape)
        (MultiHeadAttention(-1 -> -1, num_heads=2), (-1, -1))
        >>> q, kv = torch.rand(3, 5, 8), torch.rand(3, 7, 6)
        >>> attn(q, kv).shape  # cross-attention: 5 queries of 8 features, 7 keys of 6
        torch.Size([3, 5, 8])
        >>> attn, tuple(attn.key_weight.shape)
        (MultiHeadAttention(8 -> 8, num_heads=2, key_units=6, value_units=6), (8, 6))
        >>> causal = nn.MultiHeadAttention(4, units=16, causal=True)
        >>> causal(torch.rand(2, 5, 8)).shape
        torch.Size([2, 5, 16])
    """

    _in_size_arg = "query_units/key_units/value_units"

    def __init__(
        self,
        num_heads: int,
        units: int | None = None,
        use_bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        query_units: int | None = None,
        key_units: int | None = None,
        value_units: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        positive_int(num_heads, "num_heads", name)
        for arg, value in (
            ("units", units),
            ("query_units", query_units),
            ("key_units", key_units),
            ("value_units", value_units),
        ):
            _positive(arg, value, name)
        if units is not None and units % num_heads:
            raise ValueError(
                f"{name}: units={units} is not divisible by num_heads={num_heads}. Fix: "
                "choose units as a multiple of num_heads (each head gets units // num_heads "
                "features)."
            )
        self._num_heads = num_heads
        self._units = units
        self._dropout = check_rate(dropout, "dropout", name)
        self._causal = check_flag(causal, "causal", name)
        check_flag(use_bias, "use_bias", name)
        e = units or -1
        sizes = {"query": query_units, "key": key_units, "value": value_units, "out": units}
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        for proj, in_size in sizes.items():
            weight = Parameter(
                (e, in_size or -1),
                weight_initializer,
                **kw,
                default_init=_init.linear_default() if proj == "out" else None,
                in_size_arg=f"{proj}_units" if proj != "out" else "",
            )
            bias = Parameter((e,), bias_initializer, **kw) if use_bias else None
            setattr(self, f"{proj}_weight", weight)
            setattr(self, f"{proj}_bias", bias)
        self._set_projection_defaults()

    def _set_projection_defaults(self) -> None:
        """torch packs the input projections when key and value sizes equal the model
        size; pick the matching distribution from the sizes known so far."""
        shapes = [tuple(getattr(self, f"{p}_weight").shape) for p in ("query", "key", "value")]
        packed = all(units == in_size for units, in_size in shapes)
        for proj, (units, in_size) in zip(("query", "key", "value"), shapes, strict=True):
            square = units == in_size and units != -1
            weight = getattr(self, f"{proj}_weight")
            if isinstance(weight, Parameter):  # still deferred
                weight.default_init = _XAVIER_PACKED if packed and square else _XAVIER_SEPARATE

    def infer_param_shapes(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        check_float_inputs(self, query, *(t for t in (key, value) if t is not None))
        if mask is not None:
            self._check_mask(mask, query)
        key = query if key is None else key
        value = key if value is None else value
        for what, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() >= 1:
                feature_count(t.shape[-1], f"{what} features (last axis of the {what})")
            if t.dim() < 2:
                raise ShapeMismatchError(
                    f"the {what} must have shape (N, T, C) (batch, sequence, features), got "
                    f"shape {fmt_shape(tuple(t.shape))}"
                )
        if key.shape[-2] != value.shape[-2]:
            raise ShapeMismatchError(
                f"key {fmt_shape(tuple(key.shape))} and value {fmt_shape(tuple(value.shape))} "
                "must have the same sequence length Tk (axis -2). Fix: pass one value per key"
            )
        try:
            batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
        except RuntimeError:
            raise ShapeMismatchError(
                f"the batch axes of query {fmt_shape(tuple(query.shape))}, key "
                f"{fmt_shape(tuple(key.shape))} and value {fmt_shape(tuple(value.shape))} do "
                "not match (nor broadcast). Fix: pass batches of the same size"
            ) from None
        units = self._units or self.out_weight.shape[0]
        if units == -1:
            units = query.shape[-1]
            if units % self._num_heads:
                raise ShapeMismatchError(
                    f"units={units} (the query's feature size, as units was not given) is not "
                    f"divisible by num_heads={self._num_heads}. Fix: pass units=... as a "
                    "multiple of num_heads, or change num_heads"
                )
        if mask is not None:
            target = (*batch, self._num_heads, query.shape[-2], key.shape[-2])
            try:
                fits = torch.broadcast_shapes(tuple(mask.shape), target) == target
            except RuntimeError:
                fits = False
            if not fits:
                raise ShapeMismatchError(
                    f"the mask of shape {fmt_shape(tuple(mask.shape))} does not broadcast to "
                    f"(N, num_heads, Tq, Tk) = {fmt_shape(target)}. Fix: pass a mask of "
                    "shape (Tq, Tk), (N, 1, Tq, Tk) or (N, num_heads, Tq, Tk)"
                )
        self.query_weight.shape = (units, query.shape[-1])
        self.key_weight.shape = (units, key.shape[-1])
        self.value_weight.shape = (units, value.shape[-1])
        self.out_weight.shape = (units, units)
        for proj in ("query", "key", "value", "out"):
            bias = getattr(self, f"{proj}_bias")
            if bias is not None:
                bias.shape = (units,)
        self._set_projection_defaults()

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        proj = param.split("_")[0]
        if proj in ("query", "key", "value") and dim == 1:
            return f"it expects {proj}_units={size} features on the last axis of the {proj}"
        return super()._describe_expected(param, dim, size)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        k_in = query if key is None else key
        v_in = k_in if value is None else value
        h = self._num_heads
        causal = self._causal
        try:
            if mask is not None and mask.device != query.device:
                raise RuntimeError("the mask is on another device than the query")
            if value is not None and v_in.shape[-2] != k_in.shape[-2]:
                # the CPU kernel does not check this (it reads past the values)
                raise RuntimeError("key and value sequence lengths differ")
            q = F.linear(query, self.query_weight, self.query_bias)
            k = F.linear(k_in, self.key_weight, self.key_bias)
            v = F.linear(v_in, self.value_weight, self.value_bias)
            # (*, T, units) -> (*, heads, T, units // heads)
            q = q.unflatten(-1, (h, -1)).transpose(-3, -2)
            k = k.unflatten(-1, (h, -1)).transpose(-3, -2)
            v = v.unflatten(-1, (h, -1)).transpose(-3, -2)
            if causal and mask is not None:
                mask = _causal_mask(mask, q.shape[-2], k.shape[-2])
                causal = False
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=self._dropout if self.training else 0.0,
                is_causal=causal,
            )
            out = F.linear(out.transpose(-3, -2).flatten(-2), self.out_weight, self.out_bias)
        except KERNEL_ERRORS as err:
            raise self._explain_call(err, query, key, value, mask)
        return out

    def _explain_call(
        self, err: BaseException, query: Any, key: Any, value: Any, mask: Any
    ) -> BaseException:
        """The error for a failed call (``except`` branch only): an input that is no
        floating tensor, a bad mask, else the layer's own explanation."""
        for x in (query, *(t for t in (key, value) if t is not None)):
            error = float_input_error(self, x)
            if error is not None:
                error.__cause__ = err
                return error
        if mask is not None:
            error = self._mask_error(mask, query)
            if error is not None:
                error.__cause__ = err
                return error
        return self._explain(err, query, key, value, mask)

    def _mask_error(self, mask: Any, query: torch.Tensor) -> BaseException | None:
        """A mask that is no tensor, or lives on another device than the query (error
        path only; torch's kernel may read it as garbage rather than fail)."""
        error = tensor_input_error(self, mask)
        if error is not None or mask.device == query.device:
            return error
        return RuntimeError(
            f"{layer_label(self, locate(self)[1])} got a mask on {mask.device} but its query "
            f"is on {query.device}. Fix: create the mask on the inputs' device "
            f"(mask.to(query.device))."
        )

    def _check_mask(self, mask: Any, query: torch.Tensor) -> None:
        error = self._mask_error(mask, query)
        if error is not None:
            raise error

    def extra_repr(self) -> str:
        units, q = self.query_weight.shape
        k, v = self.key_weight.shape[1], self.value_weight.shape[1]
        parts = [f"{q} -> {units}", f"num_heads={self._num_heads}"]
        if k != q:
            parts.append(f"key_units={k}")
        if v != q:
            parts.append(f"value_units={v}")
        if self._dropout:
            parts.append(f"dropout={self._dropout}")
        if self._causal:
            parts.append("causal")
        if self.query_bias is None:
            parts.append("use_bias=False")
        return ", ".join(parts)


class _ModelSizeDense(Dense):
    """The feed-forward block's second Dense when the model size is inferred: its output
    size is not known from its own input (the hidden activations), so it takes it from
    the sibling attention layer, which has inferred it by the time this layer first runs.
    Behaves and prints as a ``Dense`` once shaped."""

    def __init__(
        self,
        source: MultiHeadAttention,
        in_units: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        Block.__init__(self)
        self._units = None  # type: ignore[assignment]
        self._flatten = False
        self._activation = None
        self._act = None
        # A plain reference (not a registered child): the attention belongs to the parent.
        self.__dict__["_size_source"] = source
        # Declared as Dense declares them (same order, initializers and seeds).
        self.weight = Parameter(
            (-1, in_units), None, dtype=dtype, device=device, default_init=_init.linear_default()
        )
        self.bias = Parameter((-1,), "zeros", dtype=dtype, device=device)

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        units = self.__dict__["_size_source"].out_weight.shape[0]
        if units == -1:
            raise RuntimeError(
                "the feed-forward output size (the model size) is known once the encoder "
                "layer's attention has seen a batch. Fix: call the TransformerEncoderLayer, "
                "not its dense2 alone, or give it units=..."
            )
        self.weight.shape = (units, x.shape[-1])
        self.bias.shape = (units,)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]} -> {self.weight.shape[0]}"

    def _get_name(self) -> str:
        return "Dense"


class TransformerEncoderLayer(Block):
    """A Transformer encoder layer: self-attention and a feed-forward block, each with a
    residual connection and layer normalization; the model size is inferred.

    Post-norm (`norm_first=False`, the original Transformer):

        x = norm1(x + attention(x)); x = norm2(x + ffn(x))

    pre-norm (`norm_first=True`):

        x = x + attention(norm1(x)); x = x + ffn(norm2(x))

    where `ffn(x) = dense2(dropout(activation(dense1(x))))`. Dropout (rate `dropout`) is
    also applied to the attention weights and to each residual branch, as in
    `torch.nn.TransformerEncoderLayer`.

    When `units` is `None` the model size is read from the first batch (the last axis of
    `x`): the attention's projections, `dense1`'s weight, `dense2`'s weight and bias and
    the layer norms start deferred and get their shapes on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape]).

    Children: `attention` ([`MultiHeadAttention`][lateinit.nn.MultiHeadAttention]),
    `dense1`, `dense2` ([`Dense`][lateinit.nn.Dense], `flatten=False`), `norm1`, `norm2`
    ([`LayerNorm`][lateinit.nn.LayerNorm]), `dropout`, `dropout1`, `dropout2`
    ([`Dropout`][lateinit.nn.Dropout]).

    Args:
        units: the model size (the input's and output's feature size); inferred from the
            first batch when `None`.
        num_heads: the number of attention heads; must divide `units`.
        hidden_size: the feed-forward block's hidden size.
        dropout: the dropout rate (training only).
        activation: the feed-forward activation: `"relu"`, `"gelu"`... or a callable.
        norm_first: pre-norm when `True`, post-norm when `False`.
        layer_norm_eps: the layer normalizations' epsilon.
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        Called as `layer(x, mask=None)`:

        - `x`: `(N, T, units)`.
        - `mask` (optional): as in [`MultiHeadAttention`][lateinit.nn.MultiHeadAttention]
          (boolean, `True` = attend, or additive float), broadcastable to
          `(N, num_heads, T, T)`.
        - Output: `(N, T, units)`, the input's shape.
        - Parameters: `dense1.weight` `(hidden_size, units)`, `dense2.weight`
          `(units, hidden_size)`, those of `attention` (with `units` for every size) and
          `norm1`/`norm2` (`(units,)`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.TransformerEncoderLayer(num_heads=2, hidden_size=32)
        >>> tuple(layer.dense2.weight.shape), tuple(layer.norm1.weight.shape)
        ((-1, 32), (-1,))
        >>> net = nn.Sequential(layer, nn.TransformerEncoderLayer(num_heads=2, hidden_size=32))
        >>> net(torch.rand(3, 5, 8)).shape
        torch.Size([3, 5, 8])
        >>> tuple(layer.dense2.weight.shape), tuple(layer.norm1.weight.shape)
        ((8, 32), (8,))
    """

    _in_size_arg = "units"

    def __init__(
        self,
        units: int | None = None,
        num_heads: int = 8,
        hidden_size: int = 2048,
        dropout: float = 0.0,
        activation: str | Callable[..., Any] = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _positive("units", units, name)
        positive_int(hidden_size, "hidden_size", name)
        positive_int(num_heads, "num_heads", name)
        check_rate(dropout, "dropout", name)
        get_activation(activation, name)
        check_flag(norm_first, "norm_first", name)
        if units is not None and units % num_heads:
            raise ValueError(
                f"{name}: units={units} is not divisible by num_heads={num_heads}. Fix: "
                "choose units as a multiple of num_heads."
            )
        self._norm_first = norm_first
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        # Declared in torch.nn.TransformerEncoderLayer's order.
        self.attention = MultiHeadAttention(
            num_heads,
            units,
            dropout=dropout,
            query_units=units,
            key_units=units,
            value_units=units,
            **kw,
        )
        self.dense1 = Dense(hidden_size, activation=activation, flatten=False, in_units=units, **kw)
        self.dropout = Dropout(dropout)
        self.dense2: Dense = (
            Dense(units, flatten=False, in_units=hidden_size, **kw)
            if units is not None
            else _ModelSizeDense(self.attention, hidden_size, **kw)
        )
        self.norm1 = LayerNorm(epsilon=layer_norm_eps, in_channels=units, **kw)
        self.norm2 = LayerNorm(epsilon=layer_norm_eps, in_channels=units, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.dense2(self.dropout(self.dense1(x))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self._norm_first:
            x = x + self.dropout1(self.attention(self.norm1(x), mask=mask))
            return x + self._ffn(self.norm2(x))
        x = self.norm1(x + self.dropout1(self.attention(x, mask=mask)))
        return self.norm2(x + self._ffn(x))

    def extra_repr(self) -> str:
        units = self.attention.out_weight.shape[0]
        norm = "pre-norm" if self._norm_first else "post-norm"
        return (
            f"units={units}, num_heads={self.attention._num_heads}, "
            f"hidden_size={self.dense1._units}, {norm}"
        )
