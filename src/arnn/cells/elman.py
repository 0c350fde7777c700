"""The Elman frame h_t = φ(W h_{t-1} + V x_t + b) shared by the cells that differ only in how W is made."""

from abc import abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor, nn

from arnn.backends.unrolled import unrolled
from arnn.cells.base import SequenceEncoder
from arnn.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def activation(nonlinearity: str) -> Callable[[Tensor], Tensor]:
    """The elementwise φ named by `model.nonlinearity`."""
    if nonlinearity not in ACTIVATIONS:
        raise ConfigError(f"model.nonlinearity must be one of {', '.join(ACTIVATIONS)}, got {nonlinearity!r}")
    return ACTIVATIONS[nonlinearity]


class ElmanCell(SequenceEncoder):
    """h_t = φ(W h_{t-1} + V x_t + b); W = `recurrent_matrix()` is computed once per forward, V x_t + b for all
    steps in one matmul before the loop."""

    def __init__(
        self, input_size: int, hidden_size: int, phi: Callable[[Tensor], Tensor], input_bias: bool = True
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.activation = phi
        self.input_proj = nn.Linear(self.input_size, self.hidden_size, bias=input_bias)

    @abstractmethod
    def recurrent_matrix(self) -> Tensor:
        """W."""

    def recurrent_map(self) -> Tensor:
        return self.recurrent_matrix()

    def default_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.hidden_size)

    def _recur(self, u_t: Tensor, h: Tensor, w_t: Tensor) -> Tensor:
        return self.activation(torch.addmm(u_t, h, w_t))

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        return self._recur(self.input_proj(x_t), h, self.recurrent_matrix().t())

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0 = self.default_state(x.shape[0], x) if state is None else state
        w_t = self.recurrent_map().t()
        return unrolled(lambda u_t, h: self._recur(u_t, h, w_t), self.input_proj(x), h0)
