"""Kronecker recurrent units (Jose, Cissé, Fleuret — ICML 2018, arXiv 2017)."""

import math
from functools import reduce

import torch
from torch import Tensor, nn

from arnn.cells.complex_state import ComplexStateCell, random_unitary
from arnn.errors import ConfigError

# Consecutive factors are multiplied out, once per forward, into Kronecker blocks of at most this size, so a step
# runs ⌈log₃₂ n⌉ small GEMMs instead of log₂ n: ~3× faster fwd+bwd on CPU at n = 128…512, where the step's cost is
# the number of operations, not the O(B n · block) arithmetic. For n ≤ MAX_BLOCK the one block is W itself.
MAX_BLOCK = 32


def kronecker_matvec(h: Tensor, factors_t: tuple[Tensor, ...]) -> Tensor:
    """(W₁ ⊗ … ⊗ W_k) h for each row h of (B, n), given factors_t = (W_kᵀ, …, W₁ᵀ), last factor first.

    The square factors may differ in size; n is the product of their sizes. h is viewed as a (B, f₁, …, f_k)
    tensor. Each pass contracts the last axis with one factor and moves the new axis to the front, so after k
    passes the axes are back in order: O(B n Σ_l f_l) work, W (n × n) never formed.
    """
    batch, n = h.shape
    for w_t in factors_t:
        f = w_t.shape[0]
        h = (h.reshape(batch, n // f, f) @ w_t).transpose(1, 2).reshape(batch, n)
    return h


class KroneckerRecurrentCell(ComplexStateCell):
    """KRU: h_t = modReLU((W₁ ⊗ W₂ ⊗ … ⊗ W_k) h_{t-1} + V x_t), complex h ∈ Cⁿ, W_l ∈ C^{f×f}, n = fᵏ.

    The factors start unitary and are kept near U(f) by the soft penalty λ Σ_l ‖W_lᴴ W_l − I‖²_F, so W is
    near unitary with only 2kf² real parameters. Complex parameters are stored as real and imaginary parts;
    outputs are [Re h, Im h].
    """

    def __init__(self, input_size: int, hidden_size: int, factor_size: int = 2, penalty_weight: float = 1e-3) -> None:
        super().__init__(input_size, hidden_size)
        if not (isinstance(factor_size, int) and factor_size >= 2):
            raise ConfigError(
                f"model.factor_size must be an integer >= 2, got {factor_size!r}; set e.g. model.factor_size=2"
            )
        n = self.hidden_size
        depth = round(math.log(n, factor_size)) if n > 1 else 0
        if depth < 1 or factor_size**depth != n:
            raise ConfigError(
                f"model.hidden_size must be a power of model.factor_size={factor_size} (W is a Kronecker product of "
                f"{factor_size}×{factor_size} factors), got {n}; "
                f"set e.g. model.hidden_size={factor_size ** max(depth, 1)}"
            )
        if not penalty_weight >= 0:
            raise ConfigError(
                f"model.penalty_weight must be >= 0, got {penalty_weight}; set e.g. model.penalty_weight=0.001"
            )
        self.factor_size = factor_size
        self.penalty_weight = float(penalty_weight)
        factors = torch.stack([random_unitary(factor_size) for _ in range(depth)])
        self.factors_real = nn.Parameter(factors.real.contiguous())  # (k, f, f)
        self.factors_imag = nn.Parameter(factors.imag.contiguous())

    def factors(self) -> Tensor:
        """The complex factors W_1 … W_k, stacked as (k, f, f)."""
        return torch.complex(self.factors_real, self.factors_imag)

    def recurrent_matrix(self) -> Tensor:
        """The dense W = W₁ ⊗ … ⊗ W_k (n×n), for tests only; the recurrence applies blocks of ≤ MAX_BLOCK rows."""
        return reduce(torch.kron, self.factors().unbind(0))

    def unitarity_error(self) -> Tensor:
        """Σ_l ‖W_lᴴ W_l − I‖²_F."""
        w = self.factors()
        eye = torch.eye(self.factor_size, dtype=w.dtype, device=w.device)
        return (w.conj().transpose(-2, -1) @ w - eye).abs().square().sum()

    def penalty(self) -> Tensor | None:
        """λ Σ_l ‖W_lᴴ W_l − I‖²_F, or None when λ = 0."""
        return self.penalty_weight * self.unitarity_error() if self.penalty_weight else None

    def recurrent_operands(self) -> tuple[Tensor, ...]:
        """The transposed Kronecker blocks of at most MAX_BLOCK rows, last first: the operands of `kronecker_matvec`."""
        per_block = max(1, int(math.log(MAX_BLOCK, self.factor_size) + 1e-9))
        blocks = [reduce(torch.kron, chunk.unbind(0)) for chunk in self.factors().split(per_block)]
        return tuple(block.t() for block in reversed(blocks))

    def apply_recurrent(self, h: Tensor, factors_t: tuple[Tensor, ...]) -> Tensor:
        return kronecker_matvec(h, factors_t)
