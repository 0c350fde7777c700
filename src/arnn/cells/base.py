"""The contract every recurrent cell of arnn follows."""

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor, nn

from arnn.errors import ConfigError

State = Any
"""A cell's recurrent state: a tensor (B, n) for most cells, a tuple for LSTM-like cells."""


def check_positive(name: str, value: float, example: float) -> None:
    """Reject a non-positive config value with the key to change."""
    if not value > 0:
        raise ConfigError(f"model.{name} must be > 0, got {value}; set e.g. model.{name}={example}")


class SequenceEncoder(nn.Module, ABC):
    """Maps inputs (B, T, m) to all hidden outputs (B, T, n) and the final recurrent state."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_positive("hidden_size", hidden_size, 128)
        check_positive("input_size", input_size, 1)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)

    @abstractmethod
    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the recurrence over all T steps from `state` (zeros when None)."""

    @abstractmethod
    def step(self, x_t: Tensor, state: State) -> State:
        """One step of the recurrence, x_t (B, m); the readable reference for analysis and tests."""

    @abstractmethod
    def default_state(self, batch_size: int, like: Tensor) -> State:
        """The zero initial state for a batch, on the device and dtype of `like`."""
