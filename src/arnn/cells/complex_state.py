"""The shared frame of complex-state unitary cells: h_t = modReLU(W h_{t-1} + V x_t), outputs [Re h, Im h]."""

import math
from abc import abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from arnn.backends.unrolled import unrolled
from arnn.cells.base import SequenceEncoder
from arnn.errors import ConfigError

INPUT_INITS = ("normal", "glorot")


def mod_relu(z: Tensor, bias: Tensor) -> Tensor:
    """modReLU(z)_j = sgn(z_j)·relu(|z_j| + b_j), sgn(z) = z/|z| and sgn(0) = 0; complex or real z (then
    sgn = sign), real b.

    Exact for every z, as in the expRNN and scoRNN code: at z_j = 0 the value and the gradient are 0 (torch's sgn and
    abs have zero gradient there), so a state that is exactly 0, e.g. over a run of zero pixels from h_0 = 0, stays 0
    with zero gradients. (A modulus clamped at some ε would scale the gradient there by relu(b)/ε instead.)
    """
    return torch.sgn(z) * torch.relu(z.abs() + bias)


def random_unitary(n: int) -> Tensor:
    """A unitary n×n matrix: Q of the QR factorisation of a complex Gaussian, phases fixed by R's diagonal."""
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.cfloat))
    return q * (r.diagonal() / r.diagonal().abs())


class ComplexStateCell(SequenceEncoder):
    """h_t = modReLU(W h_{t-1} + V x_t), complex h ∈ Cⁿ, complex V (stored as [Re V; Im V]), real modReLU bias.

    Initialisation: V ~ N(0, 1/(2m)) (`input_init="normal"`) or Glorot-uniform (`"glorot"`, the uRNN code's);
    modReLU bias U(±mod_bias_bound); h_0 zero, or trained from U(±√(3/2n)) (`trainable_h0`, the uRNN code's).

    Subclasses say how W acts: `recurrent_operands()` is computed once per forward (`recurrent_map`: a matrix, factors)
    and `apply_recurrent(h, operands)` returns W h for each row of h. Outputs are [Re h, Im h] (2n features).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        input_init: str = "normal",
        trainable_h0: bool = False,
        mod_bias_bound: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size)
        if input_init not in INPUT_INITS:
            raise ConfigError(f"model.input_init must be one of {', '.join(INPUT_INITS)}, got {input_init!r}")
        if not 0 <= mod_bias_bound < float("inf"):
            raise ConfigError(f"model.mod_bias_bound must be a number >= 0, got {mod_bias_bound}")
        n, m = self.hidden_size, self.input_size
        self.input_proj = nn.Linear(m, 2 * n, bias=False)
        if input_init == "normal":
            nn.init.normal_(self.input_proj.weight, std=1 / math.sqrt(2 * m))
        else:  # Glorot-uniform over the (m, 2n) real matrix [Re V, Im V], as the uRNN code
            bound = math.sqrt(6 / (m + 2 * n))
            nn.init.uniform_(self.input_proj.weight, -bound, bound)
        bias = torch.empty(n).uniform_(-mod_bias_bound, mod_bias_bound) if mod_bias_bound else torch.zeros(n)
        self.mod_bias = nn.Parameter(bias)
        # h_0 = Re + i·Im, each U(±√(3/2n)) as the uRNN code, trained; else zero
        self.h0 = nn.Parameter(torch.empty(2, n).uniform_(-1, 1) * math.sqrt(3 / (2 * n))) if trainable_h0 else None

    @abstractmethod
    def recurrent_operands(self) -> Any:
        """What `apply_recurrent` needs, computed once per forward."""

    @abstractmethod
    def apply_recurrent(self, h: Tensor, operands: Any) -> Tensor:
        """W h for each row of h (B, n)."""

    def recurrent_map(self) -> Any:
        return self.recurrent_operands()

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    def default_state(self, batch_size: int, like: Tensor) -> Tensor:
        if self.h0 is None:
            return torch.zeros(batch_size, self.hidden_size, dtype=like.dtype.to_complex(), device=like.device)
        return torch.complex(self.h0[0], self.h0[1]).to(like.dtype.to_complex()).expand(batch_size, -1)

    def _project(self, x: Tensor) -> Tensor:
        """V x as a complex tensor, for all steps of x at once."""
        u = self.input_proj(x)
        return torch.complex(u[..., : self.hidden_size], u[..., self.hidden_size :])

    def _recur(self, u_t: Tensor, h: Tensor, operands: Any) -> Tensor:
        return mod_relu(self.apply_recurrent(h, operands) + u_t, self.mod_bias)

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        return self._recur(self._project(x_t), h, self.recurrent_operands())

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0 = self.default_state(x.shape[0], x) if state is None else state
        operands = self.recurrent_map()
        states, h = unrolled(lambda u_t, h: self._recur(u_t, h, operands), self._project(x), h0)
        return torch.cat([states.real, states.imag], dim=-1), h
