"""Elman RNNs h_t = φ(W h_{t-1} + V x_t + b) whose W is constrained: softly orthogonal, projected onto the
orthogonal group after each step, or contractive (‖W‖ < 1)."""

import math

import torch
from torch import Tensor, nn

from arnn.cells.base import check_positive
from arnn.cells.elman import ElmanCell, activation
from arnn.errors import ConfigError


def orthogonality_error(w: Tensor) -> Tensor:
    """‖WᵀW − I‖_F."""
    return torch.linalg.matrix_norm(w.t() @ w - torch.eye(w.shape[1], device=w.device, dtype=w.dtype))


class SoftOrthogonalRNNCell(ElmanCell):
    """Soft orthogonality (Vorontsov et al. 2017): an Elman RNN trained with the penalty λ‖WᵀW − I‖_F²."""

    def __init__(
        self, input_size: int, hidden_size: int, penalty_weight: float = 0.1, nonlinearity: str = "tanh"
    ) -> None:
        super().__init__(input_size, hidden_size, activation(nonlinearity))
        if not penalty_weight >= 0:
            raise ConfigError(f"model.penalty_weight must be >= 0, got {penalty_weight}")
        self.penalty_weight = float(penalty_weight)
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(self.hidden_size, self.hidden_size))[0])

    def recurrent_matrix(self) -> Tensor:
        return self.weight

    def penalty(self) -> Tensor | None:
        return self.penalty_weight * orthogonality_error(self.weight).square() if self.penalty_weight else None


class ProjectedOrthogonalRNNCell(ElmanCell):
    """The URNN of Emami et al. (NeurIPS 2019): h_t = relu(W h_{t-1} + F x_t + b) with W kept orthogonal (real unitary)
    by replacing it, after every optimizer step, with the nearest orthogonal matrix U Vᵀ from its SVD W = U S Vᵀ."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "relu") -> None:
        super().__init__(input_size, hidden_size, activation(nonlinearity))
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(self.hidden_size, self.hidden_size))[0])

    def recurrent_matrix(self) -> Tensor:
        return self.weight

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        u, _, vh = torch.linalg.svd(self.weight)
        self.weight.copy_(u @ vh)


PARAMETRIZATIONS = ("spectral", "gram")


class ContractiveRNNCell(ElmanCell):
    """Contractive RNN (Emami et al., NeurIPS 2019), ‖W‖ < 1 by construction:
    spectral: W = ρ·A/‖A‖₂ with ρ = bound·σ(s) learnable in (0, bound), bound < 1;
    gram:     W = I − ε AᵀA/‖A‖_F² (the paper's teacher form; ‖W‖ < 1 when A has full rank, 0 < ε ≤ 1)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        parametrization: str = "spectral",
        bound: float = 0.99,
        eps: float = 0.01,
        nonlinearity: str = "relu",
    ) -> None:
        super().__init__(input_size, hidden_size, activation(nonlinearity))
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigError(
                f"model.parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}"
            )
        if not 0 < bound < 1:
            raise ConfigError(f"model.bound must be in (0, 1) for ‖W‖ < 1, got {bound}")
        check_positive("eps", eps, 0.01)
        if eps > 1:
            raise ConfigError(f"model.eps must be <= 1 for the gram parametrization to contract, got {eps}")
        self.parametrization = parametrization
        self.bound = float(bound)
        self.eps = float(eps)
        n = self.hidden_size
        self.a = nn.Parameter(torch.randn(n, n) / math.sqrt(n))
        self.scale_logit = nn.Parameter(torch.tensor(2.0)) if parametrization == "spectral" else None

    def recurrent_matrix(self) -> Tensor:
        if self.parametrization == "spectral":
            return self.bound * torch.sigmoid(self.scale_logit) * self.a / torch.linalg.matrix_norm(self.a, ord=2)
        gram = self.a.t() @ self.a
        eye = torch.eye(self.hidden_size, device=self.a.device, dtype=self.a.dtype)
        return eye - self.eps * gram / gram.trace()
