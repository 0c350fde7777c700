"""Baselines through torch's own recurrent layers (cuDNN on GPU), behind the arnn encoder contract."""

import torch
from torch import Tensor, nn

from arnn.cells.base import SequenceEncoder, State
from arnn.errors import ConfigError

_LAYERS: dict[str, tuple[type[nn.RNNBase], dict[str, str]]] = {
    "rnn_tanh": (nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
}


class TorchRecurrentEncoder(SequenceEncoder):
    """`kind` picks the layer: rnn_tanh / rnn_relu h_t = φ(W h_{t-1} + V x_t + b), lstm, gru."""

    def __init__(self, input_size: int, hidden_size: int, kind: str = "lstm", num_layers: int = 1) -> None:
        super().__init__(input_size, hidden_size)
        if kind not in _LAYERS:
            raise ConfigError(f"model.kind must be one of {', '.join(_LAYERS)}, got {kind!r}")
        if num_layers < 1:
            raise ConfigError(f"model.num_layers must be >= 1, got {num_layers}")
        layer, options = _LAYERS[kind]
        self.kind = kind
        self.rnn = layer(self.input_size, self.hidden_size, num_layers=num_layers, batch_first=True, **options)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.rnn(x, state)

    def step(self, x_t: Tensor, state: State) -> State:
        return self.rnn(x_t.unsqueeze(1), state)[1]

    def default_state(self, batch_size: int, like: Tensor) -> State:
        h = like.new_zeros(self.rnn.num_layers, batch_size, self.hidden_size)
        return (h, torch.zeros_like(h)) if self.kind == "lstm" else h
