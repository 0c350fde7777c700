"""Lipschitz RNN (Erichson, Azencot, Queiruga, Hodgkinson, Mahoney — ICLR 2021).

A linear part plus a Lipschitz nonlinearity: h' = A_β h + tanh(W_β h + U x + b).
"""

import torch
from torch import Tensor, nn

from arnn.backends.unrolled import unrolled
from arnn.cells.base import SequenceEncoder, check_positive
from arnn.errors import ConfigError


def symmetric_skew_blend(m: Tensor, beta: float, gamma: float) -> Tensor:
    """(1 − β)(M + Mᵀ) + β(M − Mᵀ) − γI: β = 1 gives a skew-symmetric matrix shifted by −γI."""
    eye = torch.eye(m.shape[0], device=m.device, dtype=m.dtype)
    return (1 - beta) * (m + m.t()) + beta * (m - m.t()) - gamma * eye


class LipschitzRNNCell(SequenceEncoder):
    """Lipschitz RNN, forward Euler (the paper's RK2 variant is not implemented):

        h_t = h_{t-1} + ε·(A_β h_{t-1} + tanh(W_β h_{t-1} + U x_t + b)),
        A_β = (1 − β)(M_A + M_Aᵀ) + β(M_A − M_Aᵀ) − γ_A I,  W_β likewise from M_W and γ_W.

    Defaults ε = 0.03, β = 0.75, γ_A = γ_W = 0.001 are the paper's ordered pixel-MNIST values (n = 128).
    M_A, M_W start with entries N(0, (init_std / n)²), the scale of the authors' code; init_std = 0.1 is the value
    of their final README (erichson/LipschitzRNN; 6 and 32 were earlier defaults, with which A_β starts with
    eigenvalues of positive real part at n = 128). U x + b is an nn.Linear with torch's default initialisation, as
    there.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        eps: float = 0.03,
        beta: float = 0.75,
        gamma_a: float = 0.001,
        gamma_w: float = 0.001,
        init_std: float = 0.1,
    ) -> None:
        super().__init__(input_size, hidden_size)
        check_positive("eps", eps, 0.03)
        if not 0 <= beta <= 1:
            raise ConfigError(f"model.beta must be in [0, 1], got {beta}; set e.g. model.beta=0.75")
        for name, value in (("gamma_a", gamma_a), ("gamma_w", gamma_w)):
            if not value >= 0:
                raise ConfigError(f"model.{name} must be >= 0, got {value}; set e.g. model.{name}=0.001")
        check_positive("init_std", init_std, 0.1)
        self.eps = float(eps)
        self.beta = float(beta)
        self.gamma_a = float(gamma_a)
        self.gamma_w = float(gamma_w)
        self.init_std = float(init_std)
        n = self.hidden_size
        self.input_proj = nn.Linear(self.input_size, n)  # U x + b
        self.m_a = nn.Parameter(torch.randn(n, n) * (self.init_std / n))
        self.m_w = nn.Parameter(torch.randn(n, n) * (self.init_std / n))

    def recurrent_map(self) -> tuple[Tensor, Tensor]:
        return self.recurrent_matrices()

    def recurrent_matrices(self) -> tuple[Tensor, Tensor]:
        """(A_β, W_β)."""
        return (
            symmetric_skew_blend(self.m_a, self.beta, self.gamma_a),
            symmetric_skew_blend(self.m_w, self.beta, self.gamma_w),
        )

    def _stacked_transposes(self) -> Tensor:
        """[A_βᵀ W_βᵀ] (n, 2n), so A_β h and W_β h come from one matmul per step."""
        return torch.cat(self.recurrent_map(), dim=0).t()

    def _recur(self, u_t: Tensor, h: Tensor, aw_t: Tensor) -> Tensor:
        ah, wh = (h @ aw_t).split(self.hidden_size, dim=-1)
        return h + self.eps * (ah + torch.tanh(wh + u_t))

    def default_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.hidden_size)

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        return self._recur(self.input_proj(x_t), h, self._stacked_transposes())

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0 = self.default_state(x.shape[0], x) if state is None else state
        aw_t = self._stacked_transposes()  # A_β and W_β once per sequence, not once per step
        return unrolled(lambda u_t, h: self._recur(u_t, h, aw_t), self.input_proj(x), h0)
