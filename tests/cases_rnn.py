"""Layer cases of the rnn family (rows of the table in cases.py)."""

from __future__ import annotations

from typing import Any

import torch

from lateinit.nn import Block, GRUCell, LSTMCell, RNNCell, SequentialRNNCell
from lateinit.nn.rnn import GRU, LSTM, RNN
from lateinit.testing import LayerCase, rand


def copy_rnn(ours: Any, twin: torch.nn.Module) -> None:
    """Copy every parameter by name (ours have the twin's names); the twin must end up
    fully overwritten."""
    layer = ours.lstm if isinstance(ours, (LSTMWithStates, LSTMCellWithStates)) else ours
    mine = dict(layer.named_parameters())
    theirs = dict(twin.named_parameters())
    assert sorted(mine) == sorted(theirs)
    with torch.no_grad():
        for name, p in mine.items():
            theirs[name].copy_(p)


class LSTMWithStates(Block):
    """An LSTM called with initial states, with ``h`` and ``c`` as separate tensor inputs
    (the checks of ``lateinit.testing`` clone each input, so a list ``[h, c]`` cannot be
    one)."""

    def __init__(self, hidden_size: int, input_size: int | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.lstm = LSTM(hidden_size, input_size=input_size, **kwargs)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Any:
        return self.lstm(x, [h, c])


class LSTMCellWithStates(Block):
    """An LSTMCell called with states ``[h, c]`` given as separate tensor inputs."""

    def __init__(self, hidden_size: int, input_size: int | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.lstm = LSTMCell(hidden_size, input_size=input_size, **kwargs)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> Any:
        return self.lstm(x, [h, c])


def stacked_cells(input_size: int | None = None) -> SequentialRNNCell:
    return SequentialRNNCell(LSTMCell(8, input_size=input_size), GRUCell(6, input_size=8))


def _cell_states(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out[1])  # the new states; torch's cells return h, or (h, c)


def _first(out: Any) -> Any:
    return out[0]  # the twin returns (output, h) or (output, (h, c)) always


def _flat_states(out: Any) -> tuple[torch.Tensor, ...]:
    output, (h, c) = out
    return (output, h, c)


def _n(gates: int, hidden: int, inputs: list[int]) -> int:
    """Parameter count: one (i2h, h2h, two biases) set per layer input size listed."""
    g = gates * hidden
    return sum(g * i + g * hidden + 2 * g for i in inputs)


CASES: list[LayerCase] = [
    LayerCase(
        "rnn_tanh",
        RNN,
        {"hidden_size": 8},
        {"input_size": 10},
        rand(5, 3, 10),
        (5, 3, 8),
        _n(1, 8, [10]),
        bad_inputs=rand(5, 3, 12),
        twin=lambda: torch.nn.RNN(10, 8),
        copy_to_twin=copy_rnn,
        twin_output=_first,
    ),
    LayerCase(
        "rnn_relu_ntc",
        RNN,
        {"hidden_size": 8, "activation": "relu", "layout": "NTC", "num_layers": 2},
        {"input_size": 10},
        rand(3, 5, 10),
        (3, 5, 8),
        _n(1, 8, [10, 8]),
        bad_inputs=rand(3, 5, 4),
        twin=lambda: torch.nn.RNN(10, 8, 2, nonlinearity="relu", batch_first=True),
        copy_to_twin=copy_rnn,
        twin_output=_first,
    ),
    LayerCase(
        "lstm_2layer_bidir",
        LSTM,
        {"hidden_size": 6, "num_layers": 2, "bidirectional": True},
        {"input_size": 7},
        rand(5, 3, 7),
        (5, 3, 12),
        2 * _n(4, 6, [7, 12]),
        bad_inputs=rand(5, 3, 9),
        twin=lambda: torch.nn.LSTM(7, 6, 2, bidirectional=True),
        copy_to_twin=copy_rnn,
        twin_output=_first,
    ),
    LayerCase(
        "gru_ntc",
        GRU,
        {"hidden_size": 8, "layout": "NTC"},
        {"input_size": 10},
        rand(3, 5, 10),
        (3, 5, 8),
        _n(3, 8, [10]),
        bad_inputs=rand(3, 5, 11),
        twin=lambda: torch.nn.GRU(10, 8, batch_first=True),
        copy_to_twin=copy_rnn,
        twin_output=_first,
    ),
    LayerCase(
        "gru_states_bidir",
        GRU,
        {"hidden_size": 4, "bidirectional": True},
        {"input_size": 6},
        lambda: (torch.randn(5, 3, 6), torch.randn(2, 3, 4)),
        ((5, 3, 8), (2, 3, 4)),
        2 * _n(3, 4, [6]),
        bad_inputs=lambda: (torch.randn(5, 3, 5), torch.randn(2, 3, 4)),
        twin=lambda: torch.nn.GRU(6, 4, bidirectional=True),
        copy_to_twin=copy_rnn,
    ),
    LayerCase(
        "lstm_states",
        LSTMWithStates,
        {"hidden_size": 8, "num_layers": 2},
        {"input_size": 10},
        lambda: (torch.randn(5, 3, 10), torch.randn(2, 3, 8), torch.randn(2, 3, 8)),
        ((5, 3, 8), (2, 3, 8), (2, 3, 8)),
        _n(4, 8, [10, 8]),
        bad_inputs=lambda: (torch.randn(5, 3, 12), torch.randn(2, 3, 8), torch.randn(2, 3, 8)),
        twin=lambda: torch.nn.LSTM(10, 8, 2),
        copy_to_twin=copy_rnn,
        twin_inputs=lambda t: (t[0], (t[1], t[2])),
        output=_flat_states,
        twin_output=_flat_states,
        mismatch_layer="'lstm' (LSTM)",
    ),
    LayerCase(
        "rnn_cell_tanh",
        RNNCell,
        {"hidden_size": 8},
        {"input_size": 10},
        rand(3, 10),
        (3, 8),
        _n(1, 8, [10]),
        bad_inputs=rand(3, 12),
        twin=lambda: torch.nn.RNNCell(10, 8),
        output=_first,
    ),
    LayerCase(
        "rnn_cell_relu_states",
        RNNCell,
        {"hidden_size": 8, "activation": "relu"},
        {"input_size": 10},
        lambda: (torch.randn(3, 10), torch.randn(3, 8)),
        (3, 8),
        _n(1, 8, [10]),
        bad_inputs=lambda: (torch.randn(3, 4), torch.randn(3, 8)),
        twin=lambda: torch.nn.RNNCell(10, 8, nonlinearity="relu"),
        output=_first,
    ),
    LayerCase(
        "lstm_cell",
        LSTMCell,
        {"hidden_size": 6},
        {"input_size": 7},
        rand(4, 7),
        ((4, 6), (4, 6)),
        _n(4, 6, [7]),
        bad_inputs=rand(4, 9),
        twin=lambda: torch.nn.LSTMCell(7, 6),
        output=_cell_states,
    ),
    LayerCase(
        "lstm_cell_states",
        LSTMCellWithStates,
        {"hidden_size": 8},
        {"input_size": 10},
        lambda: (torch.randn(3, 10), torch.randn(3, 8), torch.randn(3, 8)),
        ((3, 8), (3, 8)),
        _n(4, 8, [10]),
        bad_inputs=lambda: (torch.randn(3, 12), torch.randn(3, 8), torch.randn(3, 8)),
        twin=lambda: torch.nn.LSTMCell(10, 8),
        copy_to_twin=copy_rnn,
        twin_inputs=lambda t: (t[0], (t[1], t[2])),
        output=_cell_states,
        mismatch_layer="'lstm' (LSTMCell)",
    ),
    LayerCase(
        "gru_cell_states",
        GRUCell,
        {"hidden_size": 5},
        {"input_size": 6},
        lambda: (torch.randn(3, 6), torch.randn(3, 5)),
        (3, 5),
        _n(3, 5, [6]),
        bad_inputs=lambda: (torch.randn(3, 2), torch.randn(3, 5)),
        twin=lambda: torch.nn.GRUCell(6, 5),
        output=_first,
    ),
    LayerCase(
        "sequential_rnn_cell",
        stacked_cells,
        {},
        {"input_size": 10},
        rand(3, 10),
        ((3, 6), ((3, 8), (3, 8), (3, 6))),
        _n(4, 8, [10]) + _n(3, 6, [8]),
        bad_inputs=rand(3, 12),
        mismatch_layer="'0' (LSTMCell)",
    ),
]
