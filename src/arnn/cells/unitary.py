"""Unitary evolution RNN (Arjovsky, Shah, Bengio — ICML 2016)."""

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from arnn.cells.complex_state import ComplexStateCell
from arnn.errors import ConfigError


class _Factors(NamedTuple):
    """What W = D₃ R₂ F⁻¹ D₂ Π R₁ F D₁ needs, computed once per forward: exp(iθ_k), ū_k and 2u_k, u_k = v_k/‖v_k‖."""

    d1: Tensor
    d2: Tensor
    d3: Tensor
    u1_conj: Tensor
    u1_twice: Tensor
    u2_conj: Tensor
    u2_twice: Tensor


def _reflect(h: Tensor, u_conj: Tensor, u_twice: Tensor) -> Tensor:
    """(I − 2 u uᴴ) h for each row h, with ‖u‖ = 1, given ū and 2u."""
    return h - (h @ u_conj).unsqueeze(-1) * u_twice


class UnitaryRNNCell(ComplexStateCell):
    """uRNN: h_t = modReLU(W h_{t-1} + V x_t), complex h ∈ Cⁿ, W = D₃ R₂ F⁻¹ D₂ Π R₁ F D₁.

    D_k = diag(exp(iθ_k)), R_k = I − 2 v_k v_kᴴ/‖v_k‖², F the unitary DFT, Π a fixed permutation drawn from
    `permutation_seed`. W is unitary for any parameter values, with 7n real parameters and O(n log n) per step.
    Complex parameters are stored as real and imaginary parts; outputs are [Re h, Im h].
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        permutation_seed: int = 0,
        input_init: str = "normal",
        trainable_h0: bool = False,
        mod_bias_bound: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, input_init, trainable_h0, mod_bias_bound)
        if not isinstance(permutation_seed, int) or permutation_seed < 0:
            raise ConfigError(
                f"model.permutation_seed must be an integer >= 0, got {permutation_seed!r}; "
                "set e.g. model.permutation_seed=0"
            )
        self.permutation_seed = permutation_seed
        n = self.hidden_size
        self.phases = nn.Parameter(torch.empty(3, n).uniform_(-math.pi, math.pi))  # θ_1, θ_2, θ_3
        self.reflection_real = nn.Parameter(torch.empty(2, n).uniform_(-1, 1))  # Re v_1, Re v_2
        self.reflection_imag = nn.Parameter(torch.empty(2, n).uniform_(-1, 1))
        generator = torch.Generator().manual_seed(permutation_seed)
        self.register_buffer("permutation", torch.randperm(n, generator=generator))

    def recurrent_operands(self) -> _Factors:
        d1, d2, d3 = torch.polar(torch.ones_like(self.phases), self.phases).unbind(0)
        v = torch.complex(self.reflection_real, self.reflection_imag)
        u = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        # conj().resolve_conj(): a lazily conjugated operand would be materialised again in every step's matmul
        u1_conj, u2_conj = u.conj().resolve_conj().unbind(0)
        u1_twice, u2_twice = (2 * u).unbind(0)
        return _Factors(d1, d2, d3, u1_conj, u1_twice, u2_conj, u2_twice)

    def apply_recurrent(self, h: Tensor, f: _Factors) -> Tensor:
        """W h for each row h of (B, n): the factors applied right to left."""
        h = torch.fft.fft(h * f.d1, norm="ortho")
        h = _reflect(h, f.u1_conj, f.u1_twice)[:, self.permutation] * f.d2
        return _reflect(torch.fft.ifft(h, norm="ortho"), f.u2_conj, f.u2_twice) * f.d3

    def recurrent_matrix(self) -> Tensor:
        """The dense complex W (n×n), for tests and analysis; the recurrence never forms it."""
        eye = torch.eye(self.hidden_size, dtype=self.phases.dtype.to_complex(), device=self.phases.device)
        return self.apply_recurrent(eye, self.recurrent_operands()).t()  # row j of the result is (W e_j)ᵀ
