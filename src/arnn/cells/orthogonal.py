"""Orthogonal RNNs h_t = φ(W h_{t-1} + V x_t + b) with W = map(B), B skew-symmetric, so WᵀW = I exactly:
expRNN (Lezcano-Casado & Martínez-Rubio 2019), map = exp, and scoRNN (Helfrich et al. 2018), map = Cayley.

φ is modReLU (expRNN's default) or tanh. W comes from `torch.nn.utils.parametrizations.orthogonal` without the
dynamic trivialization (`use_trivialization=False`), so W = map(B) with B = L − Lᵀ, L the stored lower triangle.
"""

import math
from abc import abstractmethod

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from arnn.cells.complex_state import mod_relu
from arnn.cells.elman import ElmanCell
from arnn.errors import ConfigError

NONLINEARITIES = ("modrelu", "tanh")
INITS = ("cayley", "henaff")


class ModReLU(nn.Module):
    """modReLU(z)_j = sign(z_j)·relu(|z_j| + b_j), the real form of Arjovsky et al.'s modReLU used by expRNN."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(features).uniform_(-0.01, 0.01))  # expRNN's init

    def forward(self, z: Tensor) -> Tensor:
        return mod_relu(z, self.bias)


class _OrthogonalRNNCell(ElmanCell):
    """h_t = φ(W h_{t-1} + V x_t + b), W = map(B) computed once per forward.

    With modReLU its bias is the b of the equation and V has none (as in expRNN); with tanh, b is V's bias.
    B starts block-diagonal, W rotating the unit pairs (2i, 2i+1): init="henaff" by angles θ_i ~ U[−θ_max, θ_max];
    init="cayley" as the authors' MNIST runs (expRNN and scoRNN code, `cayley_init_`): their skew block entry
    a_i = −tan(s_i/2), s_i ~ U(0, π/2), which each cell's map reads in its own convention (`cayley_entry`).
    """

    orthogonal_map: str
    max_angle: float

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "modrelu", init: str = "cayley") -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ConfigError(f"model.nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {nonlinearity!r}")
        if init not in INITS:
            raise ConfigError(f"model.init must be one of {', '.join(INITS)}, got {init!r}")
        self.init = init
        phi = ModReLU(hidden_size) if nonlinearity == "modrelu" else nn.Tanh()
        super().__init__(input_size, hidden_size, phi, input_bias=nonlinearity == "tanh")
        self.nonlinearity = nonlinearity
        n = self.hidden_size
        nn.init.kaiming_normal_(self.input_proj.weight, nonlinearity="relu")  # expRNN's init of V
        if self.input_proj.bias is not None:
            nn.init.zeros_(self.input_proj.bias)
        self.recurrent = parametrizations.orthogonal(
            nn.Linear(n, n, bias=False), orthogonal_map=self.orthogonal_map, use_trivialization=False
        )
        with torch.no_grad():
            # The parametrization reads only the lower triangle L of what it stores: B = L − Lᵀ.
            self.recurrent.parametrizations.weight.original.copy_(self.initial_skew().tril())

    @staticmethod
    @abstractmethod
    def skew_entry(angle: Tensor) -> Tensor:
        """The entry s of a block [[0, s], [−s, 0]] of B whose image under the map rotates by `angle`."""

    @staticmethod
    @abstractmethod
    def cayley_entry(authors: Tensor) -> Tensor:
        """Our block entry of B for the authors' `cayley_init_` entry a."""

    def initial_skew(self) -> Tensor:
        """B = ⊕_i [[0, s_i], [−s_i, 0]] (see the class docstring for s_i); odd n: the last unit is left alone."""
        n = self.hidden_size
        if self.init == "henaff":
            entries = self.skew_entry(torch.empty(n // 2).uniform_(-self.max_angle, self.max_angle))
        else:
            entries = self.cayley_entry(-torch.tan(torch.empty(n // 2).uniform_(0, math.pi / 2) / 2))
        first = torch.arange(0, n - 1, 2)
        upper = torch.zeros(n, n)
        upper[first, first + 1] = entries
        return upper - upper.t()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """ "orthogonal": what the map reads (B's lower triangle), which expRNN and scoRNN train at their own lr."""
        return {"orthogonal": [self.recurrent.parametrizations.weight.original]}

    def recurrent_matrix(self) -> Tensor:
        """W = map(B); inside `parametrize.cached()` the map runs once, otherwise on every call."""
        return self.recurrent.weight

    def free_parameters(self) -> int:
        """B counts n(n−1)/2, its strict lower triangle, not the n² numbers stored."""
        n = self.hidden_size
        return super().free_parameters() - n * n + n * (n - 1) // 2

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # cached(): every read of the weight in this block reuses one evaluation of the map (PITFALLS.md).
        with parametrize.cached():
            return super().forward(x, state)


class ExpRNNCell(_OrthogonalRNNCell):
    """expRNN: h_t = φ(exp(B) h_{t-1} + V x_t + b), B skew-symmetric.

    Henaff init: B's blocks are the rotation angles themselves, θ_i ~ U[−π, π]; cayley init: B = the authors' A
    (their W = exp(A)), rotations by tan(s/2) ∈ [0, 1].
    """

    orthogonal_map = "matrix_exp"
    max_angle = math.pi

    @staticmethod
    def skew_entry(angle: Tensor) -> Tensor:
        return angle

    @staticmethod
    def cayley_entry(authors: Tensor) -> Tensor:
        return authors


class ScoRNNCell(_OrthogonalRNNCell):
    """scoRNN: h_t = φ(W h_{t-1} + V x_t + b), W = (I − B/2)⁻¹(I + B/2)·D (Cayley), B skew-symmetric, D diagonal
    whose last round(negative_fraction·n) entries are −1 and the others +1 (scoRNN's scaling matrix, 17 of 170 on
    MNIST; with none, D = I and W has no eigenvalue −1).

    The Cayley map rotates a block [[0, s], [−s, 0]] by 2·atan(s/2); henaff's θ_i ~ U[−π/2, π/2] keeps |s| ≤ 2, away
    from the map's flat tails. `input_bound` set: V ~ U(±input_bound) and modReLU bias 0, as scoRNN's code;
    None: expRNN's kaiming-normal V and bias U(±0.01).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "modrelu",
        init: str = "cayley",
        negative_fraction: float = 0.0,
        input_bound: float | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, nonlinearity, init)
        if not 0 <= negative_fraction <= 1:
            raise ConfigError(f"model.negative_fraction must be between 0 and 1, got {negative_fraction}")
        if input_bound is not None and not 0 < input_bound < float("inf"):
            raise ConfigError(f"model.input_bound must be a positive number or null, got {input_bound}")
        negative_ones = round(negative_fraction * self.hidden_size)
        scaling = torch.ones(self.hidden_size)
        scaling[self.hidden_size - negative_ones :] = -1
        self.register_buffer("scaling", scaling)
        if input_bound is not None:
            nn.init.uniform_(self.input_proj.weight, -input_bound, input_bound)
            if isinstance(self.activation, ModReLU):
                nn.init.zeros_(self.activation.bias)

    def recurrent_matrix(self) -> Tensor:
        """W = Cayley(B)·D: D scales W's columns."""
        return super().recurrent_matrix() * self.scaling

    orthogonal_map = "cayley"
    max_angle = math.pi / 2

    @staticmethod
    def skew_entry(angle: Tensor) -> Tensor:
        return 2 * torch.tan(angle / 2)

    @staticmethod
    def cayley_entry(authors: Tensor) -> Tensor:
        """scoRNN's W = (I + A)⁻¹(I − A) is ours with B = −2A: rotations by s ~ U(0, π/2)."""
        return -2 * authors
