"""Recurrent cells (one time step): RNNCell, LSTMCell, GRUCell, SequentialRNNCell.

Gluon's cells, with the input size inferred from the first step. ``cell(x, states)``
returns ``(output, new_states)``, ``begin_state(batch_size)`` the zero states (a list),
``unroll(length, inputs)`` runs a whole sequence step by step (Gluon's API throughout).

``RNNCell``, ``LSTMCell`` and ``GRUCell`` are instances of their ``torch.nn`` twins
(``torch.nn.RNNCell``...) without running the twin's constructor, as the recurrent
layers are (docs/design.md, "Layers are torch layers"): parameters have torch's names
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``; gates in torch's order, which is
Gluon's), so ``state_dict()`` loads into the twin and back, and each step calls torch's
own cell kernel (``torch.rnn_tanh_cell``, ``lstm_cell``, ``gru_cell``): the values are
the twin's. Gluon's names (``i2h_weight``, ``h2h_weight``, ``i2h_bias``, ``h2h_bias``)
are aliases. Where Gluon and torch disagree on the call, Gluon's form is kept (states in
a list, ``(output, states)`` back); ``lateinit.to_torch`` is the way to torch's form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import torch

from .. import init as _init
from ..block import Block
from ..explain import layer_label, locate
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
    positive_int,
)
from .rnn import state_device

__all__ = ["RecurrentCell", "RNNCell", "LSTMCell", "GRUCell", "SequentialRNNCell"]

_LAYOUTS = ("NTC", "TNC")
_KERNELS: dict[str, Callable[..., Any]] = {
    "tanh": torch.rnn_tanh_cell,
    "relu": torch.rnn_relu_cell,
}


def _time_axis(layout: Any, owner: str) -> int:
    if not isinstance(layout, str) or layout not in _LAYOUTS:
        raise ValueError(f"{owner}.unroll: layout must be 'NTC' or 'TNC', got {layout!r}")
    return layout.find("T")


class RecurrentCell(Block):
    """The base of the recurrent cells: one time step, `cell(x, states) -> (output,
    new_states)`, plus Gluon's `begin_state` and `unroll`.

    [`RNNCell`][lateinit.nn.RNNCell], [`LSTMCell`][lateinit.nn.LSTMCell],
    [`GRUCell`][lateinit.nn.GRUCell] and [`SequentialRNNCell`][lateinit.nn.SequentialRNNCell]
    are recurrent cells. A cell of your own subclasses it and implements
    `forward(x, states)` (returning the output and the list of new states) and
    `state_shapes()` (the states' shapes with `0` for the batch size); `begin_state`,
    `state_info` and `unroll` then work as for the built-in cells.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> class RunningSum(nn.RecurrentCell):
        ...     def state_shapes(self):
        ...         return [(0, 3)]
        ...     def forward(self, x, states):
        ...         h = states[0] + x
        ...         return h, [h]
        >>> cell = RunningSum()
        >>> outputs, [h] = cell.unroll(4, torch.ones(2, 4, 3))
        >>> outputs.shape, h[0]
        (torch.Size([2, 4, 3]), tensor([4., 4., 4.]))
        >>> isinstance(nn.LSTMCell(8), nn.RecurrentCell)
        True
    """

    def state_shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the states, with `0` for the batch size.

        A subclass defines it (Gluon's `state_info` gives the same shapes as dicts).

        Returns:
            One shape per state: `[(0, hidden_size)]` for an RNN or GRU cell,
            `[(0, hidden_size), (0, hidden_size)]` (`h`, `c`) for an LSTM cell.

        Examples:
            >>> from lateinit import nn
            >>> nn.LSTMCell(8).state_shapes()
            [(0, 8), (0, 8)]
        """
        raise NotImplementedError(f"{type(self).__name__} must define state_shapes()")

    def state_info(self, batch_size: int = 0) -> list[dict[str, Any]]:
        """Gluon's `state_info`: one `{"shape": ..., "__layout__": "NC"}` dict per state.

        Args:
            batch_size: the batch size put in the shapes (0: unknown, as Gluon).

        Returns:
            A list of dicts, in the order of
            [`state_shapes`][lateinit.nn.RecurrentCell.state_shapes].

        Examples:
            >>> from lateinit import nn
            >>> nn.GRUCell(8).state_info(batch_size=4)
            [{'shape': (4, 8), '__layout__': 'NC'}]
        """
        return [
            {"shape": (batch_size, *shape[1:]), "__layout__": "NC"} for shape in self.state_shapes()
        ]

    def _state_ref(self) -> torch.Tensor | None:
        """A tensor whose dtype and device the states follow by default."""
        return next(iter(self.parameters()), None)

    def begin_state(
        self,
        batch_size: int = 0,
        func: Callable[..., torch.Tensor] = torch.zeros,
        *,
        device: torch.device | str | None = None,
        ctx: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> list[torch.Tensor]:
        """The initial states (Gluon's `begin_state`), zeros by default.

        Works before the input size is known: the states' shapes depend on the hidden size
        only. They follow the parameters' dtype and device unless `dtype`/`device` say
        otherwise.

        Args:
            batch_size: the batch size `N`.
            func: makes each state from its shape and `dtype`/`device` keywords
                (`torch.zeros` by default; `torch.ones`, `torch.randn`...).
            device: the states' device (default: the parameters').
            ctx: Gluon's name of `device` (give one or the other).
            dtype: the states' dtype (default: the parameters').
            **kwargs: more keyword arguments for `func`.

        Returns:
            A list of tensors `(batch_size, hidden_size)`: `[h]`, or `[h, c]` for an LSTM
            cell.

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> cell = nn.LSTMCell(8)
            >>> [tuple(s.shape) for s in cell.begin_state(4)], cell.input_size
            ([(4, 8), (4, 8)], None)
            >>> cell.begin_state(2, dtype=torch.float64, ctx="cpu")[0].dtype
            torch.float64
        """
        ref = self._state_ref()
        name = type(self).__name__
        kwargs["dtype"] = dtype if dtype is not None or ref is None else ref.dtype
        if ref is None:
            ref = torch.empty(0)
        kwargs["device"] = state_device(device, ctx, ref, name)
        return [func((batch_size, *shape[1:]), **kwargs) for shape in self.state_shapes()]

    def unroll(
        self,
        length: int,
        inputs: torch.Tensor | Sequence[torch.Tensor],
        begin_state: Sequence[torch.Tensor] | None = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: torch.Tensor | None = None,
    ) -> tuple[Any, list[torch.Tensor]]:
        """Run `length` time steps (Gluon's `unroll`).

        Args:
            length: the number of time steps; must match the inputs.
            inputs: a tensor `(N, T, C)` (`layout="NTC"`) or `(T, N, C)` (`"TNC"`), or a list
                of `T` tensors `(N, C)`.
            begin_state: the initial states; `None`: zeros
                ([`begin_state`][lateinit.nn.RecurrentCell.begin_state]) in the inputs' dtype
                and device.
            layout: where the time axis is, `"NTC"` (Gluon's default) or `"TNC"`.
            merge_outputs: `True`: one tensor, stacked on the time axis; `False`: a list of
                `T` tensors; `None`: the form the inputs came in.
            valid_length: optional `(N,)` lengths: outputs past a sequence's length are zeros
                and its states are those after its last valid step (as Gluon).

        Returns:
            `(outputs, states)`: the outputs of every step and the states after the last
            step.

        Examples:
            >>> import torch
            >>> from lateinit import nn
            >>> cell = nn.LSTMCell(8)
            >>> outputs, (h, c) = cell.unroll(5, torch.rand(2, 5, 3), layout="NTC")
            >>> outputs.shape, h.shape, cell.input_size
            (torch.Size([2, 5, 8]), torch.Size([2, 8]), 3)
        """
        name = type(self).__name__
        axis = _time_axis(layout, name)
        if isinstance(inputs, torch.Tensor):
            if inputs.dim() < 2:
                raise ShapeMismatchError(
                    f"{name}.unroll expects inputs of at least 2 dims with time on axis "
                    f"{axis} (layout {layout!r}), got shape {fmt_shape(tuple(inputs.shape))}"
                    ". Fix: pass (N, T, C) for 'NTC' or (T, N, C) for 'TNC', or a list of "
                    "(N, C) steps"
                )
            steps = list(inputs.unbind(axis))
            merge = True if merge_outputs is None else merge_outputs
        else:
            steps = list(inputs)
            merge = False if merge_outputs is None else merge_outputs
        if len(steps) != length:
            raise ShapeMismatchError(
                f"{name}.unroll: length={length} but the inputs have {len(steps)} time "
                f"steps (axis {axis} of layout {layout!r}). Fix: pass length={len(steps)}"
            )
        if begin_state is None:
            if not steps:
                raise ValueError(f"{name}.unroll: no time steps and no begin_state")
            first = steps[0]
            begin_state = self.begin_state(first.shape[0], device=first.device, dtype=first.dtype)
        states = list(begin_state)
        outputs: list[torch.Tensor] = []
        history: list[list[torch.Tensor]] = []
        for x in steps:
            out, states = self(x, states)
            outputs.append(out)
            if valid_length is not None:
                history.append(list(states))
        if valid_length is not None and outputs:
            outputs, states = _mask(outputs, history, valid_length)
        if merge:
            return torch.stack(outputs, axis), states
        return outputs, states


def _mask(
    outputs: list[torch.Tensor], history: list[list[torch.Tensor]], valid_length: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gluon's ``valid_length``: zero the outputs past each sequence's length; the states
    after each sequence's last valid step."""
    steps = len(outputs)
    lengths = valid_length.to(device=outputs[0].device, dtype=torch.long)
    live = torch.arange(steps, device=lengths.device)[:, None] < lengths[None, :]  # (T, N)
    masked = [
        torch.where(live[t].reshape(-1, *([1] * (o.dim() - 1))), o, torch.zeros_like(o))
        for t, o in enumerate(outputs)
    ]
    last = (lengths - 1).clamp(min=0)
    states = []
    for k in range(len(history[0])):
        stacked = torch.stack([h[k] for h in history])  # (T, N, ...)
        index = last.reshape(1, -1, *([1] * (stacked.dim() - 2))).expand(1, *stacked.shape[1:])
        states.append(stacked.gather(0, index)[0])
    return masked, states


class _TorchCell(RecurrentCell):
    """The shared single cell; subclasses set ``_gates`` and ``_n_states`` and inherit
    their ``torch.nn`` twin after this class (lateinit's methods win)."""

    _in_size_arg = "input_size"
    _gates: ClassVar[int] = 1
    _n_states: ClassVar[int] = 1
    _gluon_names: ClassVar[dict[str, str]] = {
        "i2h_weight": "weight_ih",
        "h2h_weight": "weight_hh",
        "i2h_bias": "bias_ih",
        "h2h_bias": "bias_hh",
    }

    def __init__(
        self,
        hidden_size: int,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        input_size: int | None = None,
        use_bias: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        kind = type(self).__name__
        positive_int(hidden_size, "hidden_size", kind)
        check_flag(use_bias, "use_bias", kind)
        known = in_size(input_size, "input_size", kind)
        # torch.nn.RNNCellBase's attributes (input_size: a property, from the weight)
        self.hidden_size = hidden_size
        self.bias = bool(use_bias)
        gate_size = self._gates * hidden_size
        default = _init.Uniform(1.0 / math.sqrt(hidden_size))  # torch.nn.RNNCell's
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        self.weight_ih = Parameter(
            (gate_size, known), i2h_weight_initializer, default_init=default, **kw
        )
        self.weight_hh = Parameter(
            (gate_size, hidden_size), h2h_weight_initializer, default_init=default, **kw
        )
        if use_bias:
            self.bias_ih = Parameter((gate_size,), i2h_bias_initializer, **kw)
            self.bias_hh = Parameter((gate_size,), h2h_bias_initializer, **kw)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    @property
    def input_size(self) -> int | None:  # type: ignore[override]
        """torch's ``input_size``: ``None`` until known (the first step or
        ``infer_shape``)."""
        return known_size(self.weight_ih.shape[1])

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(0, self.hidden_size)] * self._n_states

    def _state_ref(self) -> torch.Tensor:
        return self._parameters["weight_hh"]  # type: ignore[return-value]

    def _states(self, x: torch.Tensor, states: Any) -> list[torch.Tensor]:
        """The states as a list of ``_n_states`` tensors (zeros when ``None``), or a
        TypeError naming the cell."""
        if states is None:
            try:
                zeros = x.new_zeros((x.shape[0], self.hidden_size))
            except KERNEL_ERRORS as err:
                raise explain_call(self, err, x) from None
            return [zeros] * self._n_states
        if self._n_states == 1 and isinstance(states, torch.Tensor):
            return [states]
        if (
            isinstance(states, (list, tuple))
            and len(states) == self._n_states
            and all(isinstance(s, torch.Tensor) for s in states)
        ):
            return list(states)
        want = "a list [h, c] of two tensors" if self._n_states == 2 else "a list [h]"
        raise TypeError(
            f"{layer_label(self, locate(self)[1])} expects states as {want} shaped "
            f"(N, hidden_size), got {type(states).__name__}. Fix: start from "
            "cell.begin_state(batch_size) and pass on the states each step returns"
        )

    def infer_param_shapes(self, x: torch.Tensor, states: Any = None) -> None:
        check_float_inputs(self, x)
        if x.dim() != 2:
            raise ShapeMismatchError(
                f"{type(self).__name__} expects one time step (N, C), not a "
                f"{x.dim()}-D input. Fix: pass x[:, t] of a (N, T, C) batch, or use "
                "cell.unroll(T, x) for the whole sequence"
            )
        features = feature_count(x.shape[1], "input features (axis 1, C)")
        self.weight_ih.shape = (self._gates * self.hidden_size, features)

    def _describe_expected(self, param: str, dim: int, size: int) -> str:
        return f"it expects input_size={size} features on axis 1 (C of (N, C))"

    def forward(self, x: torch.Tensor, states: Any = None) -> tuple[Any, list[torch.Tensor]]:
        """One step: ``(output, new_states)``, the states a list (Gluon's)."""
        p = self._parameters
        hx = self._states(x, states)
        try:
            return self._step(x, hx, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
        except KERNEL_ERRORS as err:
            raise explain_call(self, err, x)

    def _step(self, x: Any, hx: list[Any], w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
        raise NotImplementedError

    def extra_repr(self) -> str:
        size = self.weight_ih.shape[1]
        s = f"{size} -> {self.hidden_size}"
        return s if self.bias else s + ", use_bias=False"


class RNNCell(_TorchCell, torch.nn.RNNCell):
    """An Elman RNN cell, `h' = act(W_ih x + b_ih + W_hh h + b_hh)`, with the input size
    inferred; output `h'`, states `[h']`.

    The number of input features (`input_size`) is read from the first step (the
    last axis of `x`): `weight_ih` is created with shape `(hidden_size, -1)` and
    gets its real shape on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a
    parameter file). Until then `input_size` is `None`; the states of
    [`begin_state`][lateinit.nn.RecurrentCell.begin_state] need only `hidden_size`.

    A `torch.nn.RNNCell` (`nonlinearity` is `activation`), computed by torch's cell
    kernel for `"tanh"` and `"relu"`. Called as `cell(x, states)` (Gluon's form;
    `states=None` means zeros), it returns `(output, new_states)`.

    Args:
        hidden_size: the size of the hidden state (and of the output).
        activation: `"tanh"` (default) or `"relu"` (torch's kernels), or another of
            Gluon's activations (`"sigmoid"`, `"softsign"`...) or a callable, which compute
            the same formula with that activation.
        i2h_weight_initializer: the input-to-hidden weight's own initializer; when
            `None` the one given to `initialize(init)` is used, else torch's
            `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
        h2h_weight_initializer: the hidden-to-hidden weight's own initializer (same
            default).
        i2h_bias_initializer: the input-to-hidden bias's initializer (Gluon's default:
            zeros).
        h2h_bias_initializer: the hidden-to-hidden bias's initializer (Gluon's default:
            zeros).
        input_size: the number of input features; inferred from the first step when
            `None` (or 0, as Gluon).
        use_bias: add the two bias vectors (torch's `bias`).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: a step `x` `(N, input_size)`, and the states: a list `[h]` (or `h`).
        - Output: `(output, new_states)`: `output` `(N, hidden_size)`, `new_states` a list
          like the states, each `(N, hidden_size)`.
        - `weight_ih` (Gluon: `i2h_weight`): `(hidden_size, input_size)`; `weight_hh`
          (Gluon: `h2h_weight`): `(hidden_size, hidden_size)`; `bias_ih` (Gluon:
          `i2h_bias`) and `bias_hh` (Gluon: `h2h_bias`): `(hidden_size,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> cell = nn.RNNCell(8)
        >>> cell, tuple(cell.weight_ih.shape)
        (RNNCell(-1 -> 8, tanh), (8, -1))
        >>> out, [h] = cell(torch.rand(2, 3), cell.begin_state(2))
        >>> out.shape, cell.input_size, cell.i2h_weight is cell.weight_ih
        (torch.Size([2, 8]), 3, True)
    """

    def __init__(
        self,
        hidden_size: int,
        activation: str | Callable[..., Any] = "tanh",
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        input_size: int | None = None,
        use_bias: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        act = get_activation(activation, "RNNCell")
        super().__init__(
            hidden_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            input_size,
            use_bias,
            dtype,
            device,
        )
        self.nonlinearity = act_name(activation)  # torch.nn.RNNCell's
        self._kernel = _KERNELS.get(activation) if isinstance(activation, str) else None
        self._act = act

    def _step(self, x: Any, hx: list[Any], w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
        if self._kernel is not None:
            h = self._kernel(x, hx[0], w_ih, w_hh, b_ih, b_hh)
        else:
            linear = torch.nn.functional.linear
            h = self._act(linear(x, w_ih, b_ih) + linear(hx[0], w_hh, b_hh))
        return h, [h]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.nonlinearity}"


class LSTMCell(_TorchCell, torch.nn.LSTMCell):
    """A long short-term memory cell (gates: input, forget, cell, output, in torch's and
    Gluon's order), with the input size inferred; output `h'`, states `[h', c']`.

    The number of input features (`input_size`) is read from the first step (the
    last axis of `x`): `weight_ih` is created with shape `(4*hidden_size, -1)` and
    gets its real shape on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a
    parameter file). Until then `input_size` is `None`; the states of
    [`begin_state`][lateinit.nn.RecurrentCell.begin_state] need only `hidden_size`.

    A `torch.nn.LSTMCell`, computed by its kernel (`torch.lstm_cell`). Called as
    `cell(x, states)` (Gluon's form; `states=None` means zeros), it returns
    `(output, new_states)`.

    Args:
        hidden_size: the size of the hidden state (and of the output).
        i2h_weight_initializer: the input-to-hidden weight's own initializer; when
            `None` the one given to `initialize(init)` is used, else torch's
            `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
        h2h_weight_initializer: the hidden-to-hidden weight's own initializer (same
            default).
        i2h_bias_initializer: the input-to-hidden bias's initializer (Gluon's default:
            zeros).
        h2h_bias_initializer: the hidden-to-hidden bias's initializer (Gluon's default:
            zeros).
        input_size: the number of input features; inferred from the first step when
            `None` (or 0, as Gluon).
        use_bias: add the two bias vectors (torch's `bias`).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: a step `x` `(N, input_size)`, and the states: a list `[h, c]`.
        - Output: `(output, new_states)`: `output` `(N, hidden_size)`, `new_states` a list
          like the states, each `(N, hidden_size)`.
        - `weight_ih` (Gluon: `i2h_weight`): `(4*hidden_size, input_size)`; `weight_hh`
          (Gluon: `h2h_weight`): `(4*hidden_size, hidden_size)`; `bias_ih` (Gluon:
          `i2h_bias`) and `bias_hh` (Gluon: `h2h_bias`): `(4*hidden_size,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> cell = nn.LSTMCell(4)
        >>> tuple(cell.weight_ih.shape), cell.input_size
        ((16, -1), None)
        >>> out, (h, c) = cell(torch.rand(2, 3), cell.begin_state(batch_size=2, ctx="cpu"))
        >>> out.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
        >>> tuple(cell.weight_ih.shape), isinstance(cell, torch.nn.LSTMCell)
        ((16, 3), True)
    """

    _gates = 4
    _n_states = 2

    def _step(self, x: Any, hx: list[Any], w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
        h, c = torch.lstm_cell(x, hx, w_ih, w_hh, b_ih, b_hh)
        return h, [h, c]


class GRUCell(_TorchCell, torch.nn.GRUCell):
    """A gated recurrent unit cell (gates: reset, update, new, in torch's and Gluon's
    order), with the input size inferred; output `h'`, states `[h']`.

    The number of input features (`input_size`) is read from the first step (the
    last axis of `x`): `weight_ih` is created with shape `(3*hidden_size, -1)` and
    gets its real shape on the first call (or from
    [`Block.infer_shape`][lateinit.Block.infer_shape], a loaded state dict or a
    parameter file). Until then `input_size` is `None`; the states of
    [`begin_state`][lateinit.nn.RecurrentCell.begin_state] need only `hidden_size`.

    A `torch.nn.GRUCell`, computed by its kernel (`torch.gru_cell`). Called as
    `cell(x, states)` (Gluon's form; `states=None` means zeros), it returns
    `(output, new_states)`.

    Args:
        hidden_size: the size of the hidden state (and of the output).
        i2h_weight_initializer: the input-to-hidden weight's own initializer; when
            `None` the one given to `initialize(init)` is used, else torch's
            `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`.
        h2h_weight_initializer: the hidden-to-hidden weight's own initializer (same
            default).
        i2h_bias_initializer: the input-to-hidden bias's initializer (Gluon's default:
            zeros).
        h2h_bias_initializer: the hidden-to-hidden bias's initializer (Gluon's default:
            zeros).
        input_size: the number of input features; inferred from the first step when
            `None` (or 0, as Gluon).
        use_bias: add the two bias vectors (torch's `bias`).
        dtype: the parameters' dtype (default: torch's default dtype).
        device: the device the parameters are created on.

    Shape:
        - Input: a step `x` `(N, input_size)`, and the states: a list `[h]` (or `h`).
        - Output: `(output, new_states)`: `output` `(N, hidden_size)`, `new_states` a list
          like the states, each `(N, hidden_size)`.
        - `weight_ih` (Gluon: `i2h_weight`): `(3*hidden_size, input_size)`; `weight_hh`
          (Gluon: `h2h_weight`): `(3*hidden_size, hidden_size)`; `bias_ih` (Gluon:
          `i2h_bias`) and `bias_hh` (Gluon: `h2h_bias`): `(3*hidden_size,)`.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> cell = nn.GRUCell(6)
        >>> out, [h] = cell(torch.rand(2, 3), cell.begin_state(2))
        >>> out.shape, tuple(cell.weight_ih.shape), tuple(cell.h2h_weight.shape)
        (torch.Size([2, 6]), (18, 3), (18, 6))
    """

    _gates = 3

    def _step(self, x: Any, hx: list[Any], w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
        h = torch.gru_cell(x, hx[0], w_ih, w_hh, b_ih, b_hh)
        return h, [h]


class SequentialRNNCell(RecurrentCell):
    """A stack of recurrent cells run as one cell: each step runs them in order, each one's
    output the next one's input.

    The states are all the cells' states, concatenated in order. Each cell infers its own
    input size on the first step (the first from the data, the others from the previous
    cell's output).

    Args:
        *cells: the cells (any [`RecurrentCell`][lateinit.nn.RecurrentCell]); more can be
            appended with [`add`][lateinit.nn.SequentialRNNCell.add].

    Shape:
        - Input: a step `x` `(N, input_size)` and the states (every cell's, in order).
        - Output: `(output, new_states)`: the last cell's output and every cell's new
          states.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> stack = nn.SequentialRNNCell(nn.LSTMCell(8), nn.GRUCell(4))
        >>> states = stack.begin_state(2)
        >>> len(states), [tuple(s.shape) for s in states]
        (3, [(2, 8), (2, 8), (2, 4)])
        >>> outputs, states = stack.unroll(5, torch.rand(5, 2, 3), layout="TNC")
        >>> outputs.shape, stack[0].input_size, stack[1].input_size
        (torch.Size([5, 2, 4]), 3, 8)
    """

    def __init__(self, *cells: RecurrentCell) -> None:
        super().__init__()
        for cell in cells:
            self.add(cell)

    def add(self, cell: RecurrentCell) -> None:
        """Append a cell at the end of the stack.

        Args:
            cell: any [`RecurrentCell`][lateinit.nn.RecurrentCell]
                ([`LSTMCell`][lateinit.nn.LSTMCell], [`GRUCell`][lateinit.nn.GRUCell]...).

        Raises:
            TypeError: `cell` is not a recurrent cell.

        Examples:
            >>> from lateinit import nn
            >>> stack = nn.SequentialRNNCell()
            >>> stack.add(nn.LSTMCell(8))
            >>> stack.add(nn.GRUCell(4))
            >>> len(stack), stack.state_shapes()
            (2, [(0, 8), (0, 8), (0, 4)])
        """
        if not isinstance(cell, RecurrentCell):
            raise TypeError(
                f"SequentialRNNCell.add: expected a recurrent cell (RNNCell, LSTMCell, "
                f"GRUCell, ...), got {type(cell).__name__}"
            )
        self.add_module(str(len(self._modules)), cell)

    def _cells(self) -> list[RecurrentCell]:
        return list(self._modules.values())  # type: ignore[arg-type]

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [shape for cell in self._cells() for shape in cell.state_shapes()]

    def begin_state(  # type: ignore[override]
        self, batch_size: int = 0, func: Callable[..., torch.Tensor] = torch.zeros, **kwargs: Any
    ) -> list[torch.Tensor]:
        """Every cell's ``begin_state``, concatenated (same arguments as the cells')."""
        return [s for cell in self._cells() for s in cell.begin_state(batch_size, func, **kwargs)]

    def forward(self, x: torch.Tensor, states: Any = None) -> tuple[Any, list[torch.Tensor]]:
        if states is None:
            states = self.begin_state(x.shape[0], device=x.device, dtype=x.dtype)
        states = list(states)
        want = len(self.state_shapes())
        if len(states) != want:
            raise TypeError(
                f"{layer_label(self, locate(self)[1])} expects {want} states (each cell's, "
                f"in order), got {len(states)}. Fix: start from begin_state(batch_size)"
            )
        new: list[torch.Tensor] = []
        start = 0
        for cell in self._cells():
            n = len(cell.state_shapes())
            x, cell_states = cell(x, states[start : start + n])
            new += cell_states
            start += n
        return x, new

    def __getitem__(self, index: int) -> RecurrentCell:
        return self._cells()[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[RecurrentCell]:
        return iter(self._cells())
