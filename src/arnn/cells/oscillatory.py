"""Coupled oscillatory RNN, coRNN (Rusch & Mishra — ICLR 2021).

A network of damped, coupled, forced oscillators: y'' = tanh(W y + 𝒲 y' + V u + b) − γ y − ε y'.
"""

import math

import torch
from torch import Tensor, nn

from arnn.backends.unrolled import unrolled
from arnn.cells.base import SequenceEncoder, check_positive
from arnn.errors import ConfigError

DAMPINGS = ("explicit", "implicit")


class CoupledOscillatorCell(SequenceEncoder):
    """coRNN, the second-order ODE with z = y' discretised IMEX (explicit in the force, then y from the new z):

        z_n = z_{n-1} + Δt·(tanh(W y_{n-1} + 𝒲 z_{n-1} + V u_n + b) − γ y_{n-1} − ε z_{n-1}),
        y_n = y_{n-1} + Δt·z_n.

    damping="explicit" damps z_{n-1}, as the authors' code (tk-rusch/coRNN), which produced the published numbers;
    damping="implicit" damps z_n, as the paper's text writes it:
        z_n = (z_{n-1} + Δt·(tanh(W y_{n-1} + 𝒲 z_{n-1} + V u_n + b) − γ y_{n-1})) / (1 + Δt ε).
    The state is the pair (y, z); the outputs are the y_n. Defaults are the paper's sequential-MNIST values
    (n = 256): Δt = 0.042, γ = 2.7, ε = 4.7.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        dt: float = 0.042,
        gamma: float = 2.7,
        epsilon: float = 4.7,
        damping: str = "explicit",
    ) -> None:
        super().__init__(input_size, hidden_size)
        check_positive("dt", dt, 0.042)
        if not gamma >= 0:
            raise ConfigError(f"model.gamma must be >= 0, got {gamma}; set e.g. model.gamma=2.7")
        if not epsilon >= 0:
            raise ConfigError(f"model.epsilon must be >= 0, got {epsilon}; set e.g. model.epsilon=4.7")
        if damping not in DAMPINGS:
            raise ConfigError(f"model.damping must be one of {', '.join(DAMPINGS)}, got {damping!r}")
        self.damping = damping
        self.dt = float(dt)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        n = self.hidden_size
        self.input_proj = nn.Linear(self.input_size, n)  # V u + b
        self.recurrent_weight = nn.Parameter(torch.empty(n, 2 * n))  # [W 𝒲], applied to [y; z]
        # The authors' code keeps [V W 𝒲] and b in one nn.Linear(m + 2n, n): U(−k, k) with k = 1/√(m + 2n).
        bound = 1 / math.sqrt(self.input_size + 2 * n)
        for parameter in (self.input_proj.weight, self.input_proj.bias, self.recurrent_weight):
            nn.init.uniform_(parameter, -bound, bound)

    def default_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros.clone()

    def _recur(self, u_t: Tensor, yz: Tensor, w_t: Tensor) -> Tensor:
        """One step on the concatenated state [y, z] (B, 2n), so W y + 𝒲 z is a single matmul."""
        y, z = yz.split(self.hidden_size, dim=-1)
        force = torch.tanh(torch.addmm(u_t, yz, w_t)) - self.gamma * y
        if self.damping == "explicit":
            z = z + self.dt * (force - self.epsilon * z)
        else:
            z = (z + self.dt * force) / (1 + self.dt * self.epsilon)
        return torch.cat([y + self.dt * z, z], dim=-1)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        yz = self._recur(self.input_proj(x_t), torch.cat(state, dim=-1), self.recurrent_weight.t())
        y, z = yz.split(self.hidden_size, dim=-1)
        return y, z

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        y0, z0 = self.default_state(x.shape[0], x) if state is None else state
        w_t = self.recurrent_weight.t()
        states, yz = unrolled(
            lambda u_t, yz: self._recur(u_t, yz, w_t), self.input_proj(x), torch.cat([y0, z0], dim=-1)
        )
        y, z = yz.split(self.hidden_size, dim=-1)
        return states[..., : self.hidden_size], (y, z)
