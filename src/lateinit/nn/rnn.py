"""Recurrent layers: RNN, LSTM, GRU, with the input size inferred.

All three share one base (``_RNNLayer``) and differ only in their gate count and the
fused torch kernel they call (``torch._VF.rnn_tanh``/``rnn_relu``/``lstm``/``gru``, the
kernels behind ``torch.nn.RNN``/``LSTM``/``GRU``): the whole sequence and every layer run in
one kernel call, never a Python loop over time steps.

Each layer is an instance of its ``torch.nn`` twin (``isinstance(LSTM(8), torch.nn.LSTM)``)
without running the twin's constructor: parameters have torch's names (``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``), declared in torch's
``_flat_weights_names`` order, gates in torch's order (LSTM: input, forget, cell, output;
GRU: reset, update, new), so ``state_dict()`` loads into the twin and back. Gluon's names
(``l0_i2h_weight``, ``r0_h2h_bias`` for the reverse direction, ``l1_...`` for later
layers) stay aliases: attributes, ``collect_params()`` lookups and keys being loaded.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import math
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import _VF
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .. import init as _init
from ..block import Block
from ..explain import layer_label, locate
from ..parameter import Parameter, active_journal, is_deferred
from ..shapes import ShapeMismatchError, fmt_shape, in_size
from .basic import (
    KERNEL_ERRORS,
    check_flag,
    check_float_inputs,
    check_rate,
    feature_count,
    float_input_error,
    positive_int,
)

__all__ = ["RNN", "LSTM", "GRU", "state_device"]

_LAYOUTS = ("TNC", "NTC")
_MODES = {"tanh": "rnn_tanh", "relu": "rnn_relu"}

State = torch.Tensor | Sequence[torch.Tensor]


def state_device(
    device: torch.device | str | None,
    ctx: torch.device | str | None,
    ref: torch.Tensor,
    owner: str,
) -> torch.device:
    """The device of a recurrent layer's or cell's ``begin_state``: ``device``, or
    Gluon's ``ctx=`` (the same thing), else ``ref``'s (a parameter's, deferred or not).
    Both given and different is a ``ValueError``."""
    if device is not None and ctx is not None and torch.device(device) != torch.device(ctx):
        raise ValueError(
            f"{owner}.begin_state: device={device!r} and ctx={ctx!r} disagree; ctx is "
            "Gluon's name for device: give one of them"
        )
    chosen = device if device is not None else ctx
    return ref.device if chosen is None else torch.device(chosen)


class _RNNLayer(Block):
    """The shared recurrent layer; subclasses set ``_gates`` and ``_mode`` (the kernel) and
    also inherit their ``torch.nn`` twin (after this class: lateinit's methods win).

    The twin's attributes: ``input_size`` (``None`` until known, then the size: read from
    the layer-0 weight), ``hidden_size``, ``num_layers``, ``bias`` (``use_bias``),
    ``batch_first`` (``layout == "NTC"``), ``dropout``, ``bidirectional``, ``proj_size``
    (always 0), ``mode`` (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``, ``"RNN_RELU"``), and
    torch's weight lists (``_flat_weights_names``, ``_all_weights``, ``_flat_weights``),
    kept in step with the parameters for torch's own methods; the forward reads the
    parameters from ``_parameters`` by name (so ``functional_call`` and shared parameters
    work, and a replica used by ``infer_shape`` never reads the live module's list).
    """

    _in_size_arg = "input_size"
    _gates: ClassVar[int] = 1
    _mode: str = "rnn_tanh"  # the name of the fused kernel in torch._VF
    _n_states: ClassVar[int] = 1  # LSTM: 2 (h, c)

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0.0,
        bidirectional: bool = False,
        input_size: int | None = None,
        use_bias: bool = True,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        kind = type(self).__name__
        positive_int(hidden_size, "hidden_size", kind)
        positive_int(num_layers, "num_layers", kind)
        if not isinstance(layout, str) or layout not in _LAYOUTS:
            raise ValueError(f"{kind}: layout must be 'TNC' or 'NTC', got {layout!r}")
        check_rate(dropout, "dropout", kind)
        check_flag(bidirectional, "bidirectional", kind)
        check_flag(use_bias, "use_bias", kind)
        input_size = in_size(input_size, "input_size", kind)
        # torch.nn.RNNBase's attributes (input_size: a property, from the weights)
        self.mode = self._mode.upper()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(use_bias)
        self.batch_first = layout == "NTC"
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = 0
        self._dirs = 2 if bidirectional else 1
        self._flattened = False  # cuDNN weight compaction done for the current storage

        gate_size = self._gates * hidden_size
        weight_default = _init.Uniform(1.0 / math.sqrt(hidden_size))  # torch.nn.LSTM's
        flat_names: list[str] = []
        all_weights: list[list[str]] = []
        gluon: dict[str, str] = {}
        for layer in range(num_layers):
            in_dim = input_size if layer == 0 else hidden_size * self._dirs
            for direction in range(self._dirs):
                declared = [
                    ("weight_ih", "i2h_weight", (gate_size, in_dim), i2h_weight_initializer),
                    ("weight_hh", "h2h_weight", (gate_size, hidden_size), h2h_weight_initializer),
                ]
                if use_bias:
                    declared += [
                        ("bias_ih", "i2h_bias", (gate_size,), i2h_bias_initializer),
                        ("bias_hh", "h2h_bias", (gate_size,), h2h_bias_initializer),
                    ]
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                names = []
                for what, gluon_what, shape, initializer in declared:
                    name = what + suffix  # torch's: weight_ih_l0, bias_hh_l1_reverse
                    param = Parameter(
                        shape,
                        initializer,
                        dtype=dtype,
                        device=device,
                        default_init=weight_default if what.startswith("weight") else None,
                    )
                    self.register_parameter(name, param)
                    names.append(name)
                    gluon[f"{'lr'[direction]}{layer}_{gluon_what}"] = name  # Gluon's name
                flat_names += names
                all_weights.append(names)
        # The fused kernel's weight list, in torch's _flat_weights_names order.
        self._flat_weights_names = flat_names
        self._all_weights = all_weights
        self._gluon = gluon
        self._sync_flat_weights()
        # The parameters whose dim 1 is the input size (layer 0, each direction).
        self._input_names = ("weight_ih_l0", "weight_ih_l0_reverse")[: self._dirs]

    # -- the twin's view --------------------------------------------------------------
    @property
    def input_size(self) -> int | None:  # type: ignore[override]
        """torch's ``input_size``: the number of input features, ``None`` until known
        (inferred from the first batch or ``infer_shape``)."""
        size = self._parameters["weight_ih_l0"].shape[1]  # type: ignore[union-attr]
        return None if size == -1 else int(size)

    @property
    def _layout(self) -> str:
        return "NTC" if self.batch_first else "TNC"

    def gluon_names(self) -> dict[str, str]:
        """Gluon's parameter names -> torch's (``{"l0_i2h_weight": "weight_ih_l0",
        "r0_h2h_bias": "bias_hh_l0_reverse", ...}``)."""
        return dict(self.__dict__.get("_gluon", {}))

    def _torch_name(self, name: str) -> str:
        gluon = self.__dict__.get("_gluon")
        return name if gluon is None else gluon.get(name, name)

    def __getattr__(self, name: str) -> Any:
        # Only names not found the normal way come here (torch.nn.Module's parameters
        # included): a Gluon name reads the torch-named parameter. The forward never
        # comes here (it reads self._parameters).
        try:
            return super().__getattr__(name)
        except AttributeError:
            canonical = self.__dict__.get("_gluon", {}).get(name)
            if canonical is None:
                raise
            return super().__getattr__(canonical)

    def _sync_flat_weights(self) -> None:
        """torch's ``_flat_weights`` from the parameters, as
        ``torch.nn.RNNBase._init_flat_weights`` without the cuDNN flattening.

        ``_flat_weight_refs`` (torch keeps weak references, to notice swapped weights) stay
        ``None``: a weak reference would stop ``torch.utils.swap_tensors``, which moves a
        deferred parameter between device types (meta <-> cpu) in place, and the forward
        reads the parameters by name anyway."""
        params = self._parameters
        flat = [params.get(name) for name in self._flat_weights_names]
        self._flat_weights = flat
        self._flat_weight_refs = [None] * len(flat)

    # -- shapes -----------------------------------------------------------------------
    def infer_param_shapes(self, inputs: torch.Tensor, states: State | None = None) -> None:
        check_float_inputs(self, inputs)
        order = "T, N, C" if self._layout == "TNC" else "N, T, C"
        if inputs.dim() != 3:
            raise ShapeMismatchError(
                f"{type(self).__name__} expects a 3-D input ({order}) in layout "
                f"{self._layout!r}, not {inputs.dim()}-D. Fix: add the missing axis "
                f"(a single sequence: x.unsqueeze({1 if self._layout == 'TNC' else 0}))"
            )
        gate_size = self._gates * self.hidden_size
        features = feature_count(inputs.shape[2], "input features (axis 2, C)")
        for name in self._input_names:
            getattr(self, name).shape = (gate_size, features)
        if states is not None:
            self._check_states(inputs, states)

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        return f"it expects input_size={size} features on axis 2 (C of {self._layout})"

    def _state_shape(self, inputs: torch.Tensor) -> tuple[int, int, int]:
        batch = inputs.shape[0 if self.batch_first else 1]
        return (self.num_layers * self._dirs, batch, self.hidden_size)

    def _states_tuple(self, states: Any) -> tuple[torch.Tensor, ...]:
        """The states as a tuple of ``_n_states`` tensors, or a TypeError naming the layer."""
        if self._n_states == 1 and isinstance(states, torch.Tensor):
            return (states,)
        if (
            isinstance(states, (list, tuple))
            and len(states) == self._n_states
            and all(isinstance(s, torch.Tensor) for s in states)
        ):
            return tuple(states)
        want = "a list [h, c] of two tensors" if self._n_states == 2 else "a tensor h (or [h])"
        got = (
            f"a {type(states).__name__} of {len(states)}"
            if isinstance(states, (list, tuple))
            else f"a {type(states).__name__}"
        )
        raise TypeError(
            f"{layer_label(self, locate(self)[1])} expects initial states as {want}, got "
            f"{got}. Fix: pass states shaped (num_layers*directions, N, hidden_size), e.g. "
            "layer.begin_state(batch_size)."
        )

    def _check_states(self, inputs: torch.Tensor, states: Any) -> None:
        want = self._state_shape(inputs)
        for s in self._states_tuple(states):
            if tuple(s.shape) != want:
                names = "[h, c]" if self._n_states == 2 else "h"
                got = ", ".join(fmt_shape(tuple(t.shape)) for t in self._states_tuple(states))
                raise ShapeMismatchError(
                    f"{type(self).__name__} expects initial states {names} of shape "
                    f"{fmt_shape(want)} (num_layers*directions, N, hidden_size), got {got}. "
                    "Fix: make the states match the batch size and hidden_size "
                    "(layer.begin_state(batch_size))"
                )

    # -- compute ----------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, states: State | None = None) -> Any:
        """Run the whole sequence through the fused kernel.

        Returns the output alone when ``states`` is ``None``, else ``(output, new_states)``
        (Gluon semantics), the new states in the form the states were given.
        """
        params = self._parameters
        flat = [params[name] for name in self._flat_weights_names]
        if not self._flattened:
            self.flatten_parameters()
        try:
            # The CPU (oneDNN) kernel does not check sizes: a wrong input or state size
            # would silently compute garbage, so check here (as torch.nn.LSTM does).
            if inputs.dim() != 3 or inputs.shape[2] != flat[0].shape[1]:
                raise RuntimeError(f"input of shape {tuple(inputs.shape)} does not fit")
            if states is None:
                zeros = inputs.new_zeros(self._state_shape(inputs))
                hx: Any = (zeros, zeros) if self._n_states == 2 else zeros
            else:
                hx = self._states_tuple(states)
                want = self._state_shape(inputs)
                if any(s.shape != want for s in hx):
                    raise RuntimeError("initial states of the wrong shape")
                if self._n_states == 1:
                    hx = hx[0]
            if (
                inputs.device.type == "meta"
                and inputs.dtype == flat[0].dtype
                and _get_current_dispatch_mode() is None
            ):
                result = self._meta_result(inputs)
            else:
                result = getattr(_VF, self._mode)(
                    inputs,
                    hx,
                    flat,
                    self.bias,
                    self.num_layers,
                    self.dropout,
                    self.training,
                    self.bidirectional,
                    self.batch_first,
                )
        except KERNEL_ERRORS as err:
            error = float_input_error(self, inputs)
            if error is not None:
                raise error from err
            if inputs.dim() == 3 and inputs.shape[1 if self.batch_first else 0] == 0:
                path = locate(self)[1]
                raise ShapeMismatchError(
                    f"{layer_label(self, path)} got an input of shape "
                    f"{fmt_shape(tuple(inputs.shape))} with no time steps; torch's recurrent "
                    "kernels need at least one. Fix: skip empty sequences (an empty batch "
                    "is fine)",
                    layer=path or type(self).__name__,
                ) from err
            raise self._explain(err, inputs, states)
        if states is None:
            return result[0]
        if self._n_states == 2:
            return result[0], [result[1], result[2]]
        return result[0], (result[1] if isinstance(states, torch.Tensor) else [result[1]])

    def _meta_result(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The kernel's outputs as meta tensors, from the shapes alone (``infer_shape``):
        torch's meta version of the fused kernel runs its Python decomposition step by
        step, which for a long (or ``None``-sized) sequence takes seconds. A FLOP count
        (a dispatch mode is active) takes the kernel's path."""
        steps = inputs.shape[:2]
        out = inputs.new_empty((*steps, self._dirs * self.hidden_size))
        state = inputs.new_empty(self._state_shape(inputs))
        return (out, state, state) if self._n_states == 2 else (out, state)

    def begin_state(
        self,
        batch_size: int = 0,
        func: Any = torch.zeros,
        *,
        device: torch.device | str | None = None,
        ctx: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> list[torch.Tensor]:
        """Initial states (Gluon's ``begin_state``): a list of ``_n_states`` tensors
        ``(num_layers*directions, batch_size, hidden_size)`` made by ``func`` (zeros by
        default), in the parameters' dtype and device unless ``dtype``/``device`` say
        otherwise (Gluon's ``ctx=`` is ``device=``). Works before the input size is known.

        Examples:
            >>> from lateinit import nn
            >>> h, c = nn.LSTM(8, num_layers=2).begin_state(3, ctx="cpu")
            >>> h.shape, c.device.type
            (torch.Size([2, 3, 8]), 'cpu')
        """
        ref = self._parameters[self._flat_weights_names[0]]
        kwargs["dtype"] = ref.dtype if dtype is None else dtype
        kwargs["device"] = state_device(device, ctx, ref, type(self).__name__)
        shape = (self.num_layers * self._dirs, batch_size, self.hidden_size)
        return [func(shape, **kwargs) for _ in range(self._n_states)]

    def flatten_parameters(self) -> None:
        """Compact the weights into one cuDNN buffer (as ``torch.nn.LSTM`` does), so the
        cuDNN kernel need not copy them on every call. A no-op off CUDA or while any
        parameter is deferred; run automatically at the first call after a move."""
        params = self._parameters
        flat = [params.get(name) for name in self._flat_weights_names]
        if any(w is None or is_deferred(w) for w in flat):
            return  # (None: torch.nn.RNNBase._apply calls this while Block._apply has
            # taken the deferred parameters out)
        # Inside a first pass that may still roll back, check again at the next call.
        self._flattened = active_journal() is None
        first = flat[0]
        if first is None or any(
            w.dtype != first.dtype or not w.is_cuda or not torch.backends.cudnn.is_acceptable(w)
            for w in flat
        ):
            return
        if len({w.data_ptr() for w in flat}) != len(flat):
            return  # aliased weights (shared): keep the copying path, as torch does
        import torch.backends.cudnn.rnn as cudnn_rnn

        with torch.cuda.device_of(first), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                torch._cudnn_rnn_flatten_weight(
                    flat,
                    4 if self.bias else 2,
                    first.shape[1],
                    cudnn_rnn.get_cudnn_mode(self.mode),
                    self.hidden_size,
                    0,
                    self.num_layers,
                    self.batch_first,
                    self.bidirectional,
                )

    def _apply(self, fn: Any, recurse: bool = True) -> _RNNLayer:
        # Block._apply (deferred parameters keep their identity), then torch.nn.RNNBase's
        # (re-reads _flat_weights and flattens a READY layer on CUDA, setting _flattened)
        self._flattened = False
        out = super()._apply(fn, recurse)
        self._sync_flat_weights()  # with the deferred parameters back in place
        return out  # type: ignore[return-value]

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # torch.nn.RNNBase's makes weak references again
        self._sync_flat_weights()
        self._flattened = False

    def extra_repr(self) -> str:
        in_size = self.input_size
        s = f"{-1 if in_size is None else in_size} -> {self.hidden_size}, {self._layout}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional"
        if not self.bias:
            s += ", use_bias=False"
        return s


class RNN(_RNNLayer, torch.nn.RNN):
    """An Elman RNN, `h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)`, with the input size
    inferred.

    The number of input features (`input_size`) is read from the first batch (the
    last axis): the layer-0 input weights `weight_ih_l0` (and `weight_ih_l0_reverse`)
    are created with shape `(hidden_size, -1)` and get their real shape on the
    first call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded
    state dict or a parameter file). Until then `input_size` is `None`. The initial
    states of `begin_state(batch_size)` need only `hidden_size`: they can be made
    before.

    A `torch.nn.RNN` (`nonlinearity` is `activation`), computed by one fused kernel call
    per forward (`torch._VF.rnn_tanh` / `rnn_relu`). Calling `layer(inputs)` returns the
    output alone; `layer(inputs, states)` returns `(output, new_states)` (Gluon
    semantics), the states in the form they were given: a tensor `h` (or a list `[h]`).

    Args:
        hidden_size: the size of the hidden state.
        num_layers: stacked layers; layer `k > 0` reads the previous one's output.
        activation: `"tanh"` (default) or `"relu"` (torch's `nonlinearity`).
        layout: `"TNC"` (sequence first, the default, as Gluon) or `"NTC"` (batch
            first: torch's `batch_first=True`).
        dropout: dropout on the outputs of each layer but the last, in training only.
        bidirectional: add a reverse direction; the outputs of both directions are
            concatenated (`2*hidden_size` features).
        input_size: the number of input features; inferred from the first batch when
            `None` (or 0, as Gluon).
        use_bias: add the two bias vectors (i2h and h2h) of each layer and direction
            (torch's `bias`).
        i2h_weight_initializer: the input-to-hidden weights' own initializer; when `None`
            the one given to `initialize(init)` is used, else torch's
            `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
        h2h_weight_initializer: the hidden-to-hidden weights' own initializer (same
            default).
        i2h_bias_initializer: the input-to-hidden biases' initializer (Gluon's default:
            zeros).
        h2h_bias_initializer: the hidden-to-hidden biases' initializer (Gluon's default:
            zeros).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(T, N, input_size)` (`"TNC"`) or `(N, T, input_size)` (`"NTC"`).
        - Output: `(T, N, D*hidden_size)` or `(N, T, D*hidden_size)`, with `D = 2` if
          bidirectional else 1.
        - States: `h` (a tensor, or a list `[h]`), each `(num_layers*D, N, hidden_size)`.
        - Parameters of layer `k` (torch's names; Gluon's `l{k}_i2h_weight`,
          `l{k}_h2h_weight`, `l{k}_i2h_bias`, `l{k}_h2h_bias` are aliases):
          `weight_ih_l{k}` `(hidden_size, in)`, `weight_hh_l{k}`
          `(hidden_size, hidden_size)`, `bias_ih_l{k}`, `bias_hh_l{k}`
          `(hidden_size,)`, with `in = input_size` for `k = 0`, else `D*hidden_size`;
          the reverse direction's end in `_reverse` (Gluon: `r{k}_...`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> layer = nn.RNN(8, activation="relu")
        >>> layer, layer.input_size, tuple(layer.weight_ih_l0.shape)
        (RNN(-1 -> 8, TNC, relu), None, (8, -1))
        >>> layer(torch.rand(5, 2, 3)).shape  # (time, batch, features)
        torch.Size([5, 2, 8])
        >>> layer, layer.input_size, tuple(layer.weight_ih_l0.shape)
        (RNN(3 -> 8, TNC, relu), 3, (8, 3))
        >>> out, h = layer(torch.rand(5, 2, 3), torch.zeros(1, 2, 8))
        >>> out.shape, h.shape
        (torch.Size([5, 2, 8]), torch.Size([1, 2, 8]))
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        activation: str = "tanh",
        layout: str = "TNC",
        dropout: float = 0.0,
        bidirectional: bool = False,
        input_size: int | None = None,
        use_bias: bool = True,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(activation, str) or activation not in _MODES:
            raise ValueError(f"RNN: activation must be 'tanh' or 'relu', got {activation!r}")
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            use_bias,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            dtype,
            device,
        )
        self.nonlinearity = activation  # torch.nn.RNN's
        self._mode = _MODES[activation]
        self.mode = self._mode.upper()  # "RNN_TANH" or "RNN_RELU"

    def extra_repr(self) -> str:
        base, sep, rest = super().extra_repr().partition(self._layout)
        return f"{base}{sep}, {self.nonlinearity}{rest}"


class LSTM(_RNNLayer, torch.nn.LSTM):
    """A long short-term memory layer (gates: input, forget, cell, output), with the input
    size inferred.

    The number of input features (`input_size`) is read from the first batch (the
    last axis): the layer-0 input weights `weight_ih_l0` (and `weight_ih_l0_reverse`)
    are created with shape `(4*hidden_size, -1)` and get their real shape on the
    first call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded
    state dict or a parameter file). Until then `input_size` is `None`. The initial
    states of `begin_state(batch_size)` need only `hidden_size`: they can be made
    before.

    A `torch.nn.LSTM`, computed by one fused kernel call per forward (`torch._VF.lstm`).
    Calling `layer(inputs)` returns the output alone; `layer(inputs, states)` returns
    `(output, new_states)` (Gluon semantics), the states as a list `[h, c]`.

    Args:
        hidden_size: the size of the hidden state.
        num_layers: stacked layers; layer `k > 0` reads the previous one's output.
        layout: `"TNC"` (sequence first, the default, as Gluon) or `"NTC"` (batch
            first: torch's `batch_first=True`).
        dropout: dropout on the outputs of each layer but the last, in training only.
        bidirectional: add a reverse direction; the outputs of both directions are
            concatenated (`2*hidden_size` features).
        input_size: the number of input features; inferred from the first batch when
            `None` (or 0, as Gluon).
        use_bias: add the two bias vectors (i2h and h2h) of each layer and direction
            (torch's `bias`).
        i2h_weight_initializer: the input-to-hidden weights' own initializer; when `None`
            the one given to `initialize(init)` is used, else torch's
            `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
        h2h_weight_initializer: the hidden-to-hidden weights' own initializer (same
            default).
        i2h_bias_initializer: the input-to-hidden biases' initializer (Gluon's default:
            zeros).
        h2h_bias_initializer: the hidden-to-hidden biases' initializer (Gluon's default:
            zeros).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(T, N, input_size)` (`"TNC"`) or `(N, T, input_size)` (`"NTC"`).
        - Output: `(T, N, D*hidden_size)` or `(N, T, D*hidden_size)`, with `D = 2` if
          bidirectional else 1.
        - States: a list `[h, c]`, each `(num_layers*D, N, hidden_size)`.
        - Parameters of layer `k` (torch's names; Gluon's `l{k}_i2h_weight`,
          `l{k}_h2h_weight`, `l{k}_i2h_bias`, `l{k}_h2h_bias` are aliases):
          `weight_ih_l{k}` `(4*hidden_size, in)`, `weight_hh_l{k}`
          `(4*hidden_size, hidden_size)`, `bias_ih_l{k}`, `bias_hh_l{k}`
          `(4*hidden_size,)`, with `in = input_size` for `k = 0`, else `D*hidden_size`;
          the reverse direction's end in `_reverse` (Gluon: `r{k}_...`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> lstm = nn.LSTM(16, num_layers=2, bidirectional=True, layout="NTC")
        >>> lstm
        LSTM(-1 -> 16, NTC, num_layers=2, bidirectional)
        >>> isinstance(lstm, torch.nn.LSTM), lstm.input_size
        (True, None)
        >>> x = torch.rand(4, 10, 3)  # (batch, time, features)
        >>> lstm(x).shape
        torch.Size([4, 10, 32])
        >>> out, (h, c) = lstm(x, lstm.begin_state(batch_size=4))
        >>> h.shape, tuple(lstm.weight_ih_l0.shape), lstm.input_size
        (torch.Size([4, 4, 16]), (64, 3), 3)
        >>> lstm.l0_i2h_weight is lstm.weight_ih_l0  # Gluon's name: an alias
        True
    """

    _gates = 4
    _mode = "lstm"
    _n_states = 2


class GRU(_RNNLayer, torch.nn.GRU):
    """A gated recurrent unit layer (gates: reset, update, new), with the input size
    inferred.

    The number of input features (`input_size`) is read from the first batch (the
    last axis): the layer-0 input weights `weight_ih_l0` (and `weight_ih_l0_reverse`)
    are created with shape `(3*hidden_size, -1)` and get their real shape on the
    first call (or from [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded
    state dict or a parameter file). Until then `input_size` is `None`. The initial
    states of `begin_state(batch_size)` need only `hidden_size`: they can be made
    before.

    A `torch.nn.GRU`, computed by one fused kernel call per forward (`torch._VF.gru`).
    Calling `layer(inputs)` returns the output alone; `layer(inputs, states)` returns
    `(output, new_states)` (Gluon semantics), the states in the form they were given: a
    tensor `h` (or a list `[h]`).

    Args:
        hidden_size: the size of the hidden state.
        num_layers: stacked layers; layer `k > 0` reads the previous one's output.
        layout: `"TNC"` (sequence first, the default, as Gluon) or `"NTC"` (batch
            first: torch's `batch_first=True`).
        dropout: dropout on the outputs of each layer but the last, in training only.
        bidirectional: add a reverse direction; the outputs of both directions are
            concatenated (`2*hidden_size` features).
        input_size: the number of input features; inferred from the first batch when
            `None` (or 0, as Gluon).
        use_bias: add the two bias vectors (i2h and h2h) of each layer and direction
            (torch's `bias`).
        i2h_weight_initializer: the input-to-hidden weights' own initializer; when `None`
            the one given to `initialize(init)` is used, else torch's
            `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
        h2h_weight_initializer: the hidden-to-hidden weights' own initializer (same
            default).
        i2h_bias_initializer: the input-to-hidden biases' initializer (Gluon's default:
            zeros).
        h2h_bias_initializer: the hidden-to-hidden biases' initializer (Gluon's default:
            zeros).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: `(T, N, input_size)` (`"TNC"`) or `(N, T, input_size)` (`"NTC"`).
        - Output: `(T, N, D*hidden_size)` or `(N, T, D*hidden_size)`, with `D = 2` if
          bidirectional else 1.
        - States: `h` (a tensor, or a list `[h]`), each `(num_layers*D, N, hidden_size)`.
        - Parameters of layer `k` (torch's names; Gluon's `l{k}_i2h_weight`,
          `l{k}_h2h_weight`, `l{k}_i2h_bias`, `l{k}_h2h_bias` are aliases):
          `weight_ih_l{k}` `(3*hidden_size, in)`, `weight_hh_l{k}`
          `(3*hidden_size, hidden_size)`, `bias_ih_l{k}`, `bias_hh_l{k}`
          `(3*hidden_size,)`, with `in = input_size` for `k = 0`, else `D*hidden_size`;
          the reverse direction's end in `_reverse` (Gluon: `r{k}_...`).

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> gru = nn.GRU(8, bidirectional=True)
        >>> gru.input_size, tuple(gru.weight_ih_l0_reverse.shape)
        (None, (24, -1))
        >>> out, h = gru(torch.rand(5, 2, 3), torch.zeros(2, 2, 8))
        >>> out.shape, h.shape
        (torch.Size([5, 2, 16]), torch.Size([2, 2, 8]))
        >>> gru.input_size, tuple(gru.r0_i2h_weight.shape)
        (3, (24, 3))
    """

    _gates = 3
    _mode = "gru"


# -- torch.compile ----------------------------------------------------------------------
# Dynamo refuses every instance of torch.nn.RNN/LSTM/GRU ("Attempted to wrap RNN, GRU, or
# LSTM") unless torch._dynamo.config.allow_rnn is set, since torch's own forward (weak
# references, cuDNN re-flattening) does not trace well. These layers are instances of
# those classes, but their forward is one fused kernel call, which dynamo traces whole
# (it did before they were twins). So dynamo's module wrapper is told to allow_rnn for
# these layers only (plain torch.nn.LSTMs keep torch's behaviour): patched once dynamo is
# imported (importing it here would double lateinit's import time), by a one-shot import
# hook; nothing runs outside compilation.

_BUILDER = "torch._dynamo.variables.builder"


def _let_dynamo_trace(builder: Any) -> None:
    """Wrap ``VariableBuilder.wrap_module`` of dynamo's ``builder`` module so that it wraps
    an ``_RNNLayer`` as if ``allow_rnn`` were set. Does nothing on a torch whose
    dynamo has no such method (a graph break then names ``allow_rnn``)."""
    cls = getattr(builder, "VariableBuilder", None)
    original = getattr(cls, "wrap_module", None)
    config = sys.modules.get("torch._dynamo.config")
    if original is None or config is None or getattr(original, "_lateinit_rnn", False):
        return

    def wrap_module(self: Any, value: torch.nn.Module) -> Any:
        if isinstance(value, _RNNLayer) and not config.allow_rnn:
            with config.patch(allow_rnn=True):
                return original(self, value)
        return original(self, value)

    wrap_module._lateinit_rnn = True  # type: ignore[attr-defined]
    cls.wrap_module = wrap_module  # type: ignore[union-attr]


class _PatchDynamoOnImport(importlib.abc.MetaPathFinder):
    """A one-shot import hook: once dynamo's ``builder`` module has run, patch it."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != _BUILDER:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the other finders'
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_then_patch(module: Any) -> None:
            exec_module(module)
            _let_dynamo_trace(module)

        loader.exec_module = exec_then_patch  # type: ignore[union-attr]  # this spec's own
        return spec


if _BUILDER in sys.modules:
    _let_dynamo_trace(sys.modules[_BUILDER])
elif not any(isinstance(f, _PatchDynamoOnImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _PatchDynamoOnImport())
