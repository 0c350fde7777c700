"""The contract every recurrent cell of arnn follows."""

import math
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


def check_sigma_w(sigma_w: float) -> None:
    """Reject a negative (or NaN) σ_w, the scale of the random recurrent weights, with the key to change."""
    if not sigma_w >= 0:
        raise ConfigError(f"model.sigma_w must be >= 0, got {sigma_w}; set e.g. model.sigma_w=1")


def input_projection(input_size: int, output_size: int) -> nn.Linear:
    """V x + b with V ~ N(0, 1/m), m = input_size, and b = 0: the A-RNN paper's input initialisation."""
    projection = nn.Linear(input_size, output_size)
    nn.init.normal_(projection.weight, std=1 / math.sqrt(input_size))
    nn.init.zeros_(projection.bias)
    return projection


class SequenceEncoder(nn.Module, ABC):
    """Maps inputs (B, T, m) to all outputs (B, T, output_size) and the final recurrent state.

    Outputs are real: complex-state cells return [Re h, Im h], so `output_size` is 2n for them.
    Constrained cells use three optional hooks that the task modules call:
    `penalty()` is added to the loss, parameters in `manifold_parameters()` are left out of the optimizer,
    and `after_optimizer_step()` runs after every optimizer step (projections, retractions).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_positive("hidden_size", hidden_size, 128)
        check_positive("input_size", input_size, 1)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)

    @property
    def output_size(self) -> int:
        """Features per step of the outputs (what a readout sees)."""
        return self.hidden_size

    def penalty(self) -> Tensor | None:
        """A soft-constraint term to add to the training loss, or None."""
        return None

    def manifold_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by `after_optimizer_step` instead of the optimizer."""
        return []

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named groups of parameters whose learning rate `task.lr_scales` can scale (e.g. "orthogonal"); none by
        default."""
        return {}

    def recurrent_map(self) -> Any:
        """What forward computes from the weights once, before its time loop (M = W − Wᵀ − γI, an exp or Cayley
        map, unitary factors), for timing and analysis; None when the loop uses the weights as stored."""
        return None

    def after_optimizer_step(self) -> None:
        """Called after each optimizer step, gradients still in place; a no-op unless a cell needs it."""

    def free_parameters(self) -> int:
        """Degrees of freedom, as the papers count them (a unitary n×n matrix has n², not 2n²)."""
        return sum(p.numel() for p in self.parameters())

    @abstractmethod
    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the recurrence over all T steps from `state` (zeros when None)."""

    @abstractmethod
    def step(self, x_t: Tensor, state: State) -> State:
        """One step of the recurrence, x_t (B, m); the readable reference for analysis and tests."""

    @abstractmethod
    def default_state(self, batch_size: int, like: Tensor) -> State:
        """The zero initial state for a batch, on the device and dtype of `like`."""
