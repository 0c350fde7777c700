"""AntisymmetricRNN, its gated variant (Chang, Chen, Haber, Chi — ICLR 2019) and the paper's ablation model.

All three are forward-Euler steps h_t = h_{t-1} + ε·φ(M h_{t-1}, V x_t + b) and differ in M and φ.
"""

import math

import torch
from torch import Tensor, nn

from arnn.backends import check_backend, resolve_backend, scans
from arnn.backends.unrolled import unrolled
from arnn.cells.base import SequenceEncoder, check_positive, check_sigma_w, input_projection
from arnn.errors import ConfigError


class _EulerCell(SequenceEncoder):
    """Shared parts: ε, σ_w, the input projection of all gates, and the choice of backend (arnn.backends), which is
    resolved at each forward from the input's device, so a model moved to a GPU after construction runs the GPU
    path."""

    gates: int

    def __init__(
        self, input_size: int, hidden_size: int, eps: float = 0.01, sigma_w: float = 1.0, backend: str = "auto"
    ) -> None:
        super().__init__(input_size, hidden_size)
        check_positive("eps", eps, 0.01)
        check_sigma_w(sigma_w)
        check_backend(backend)
        if backend != "auto":  # a forced backend that no device of this machine can run fails before training
            resolve_backend(backend, "cuda" if torch.cuda.is_available() else "cpu", self.hidden_size)
        self.eps = float(eps)
        self.sigma_w = float(sigma_w)
        self.backend = backend
        self.input_proj = input_projection(self.input_size, self.gates * self.hidden_size)

    def recurrent_matrix(self) -> Tensor:
        """M, the matrix applied to h_{t-1}."""
        raise NotImplementedError

    def recurrent_map(self) -> Tensor:
        return self.recurrent_matrix()

    def default_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.hidden_size)

    def project_inputs(self, x: Tensor) -> Tensor:
        """V x_t + b of all steps of x (B, T, m) in one matmul, time-major so the scan reads contiguous rows:
        (T, B, n), or (T, B, 2, n) for the gated cells (gate, candidate)."""
        u = self.input_proj(x.transpose(0, 1).contiguous())
        return u.view(*u.shape[:2], self.gates, self.hidden_size).squeeze(2)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0 = self.default_state(x.shape[0], x) if state is None else state
        if self.backend == "unrolled":
            return unrolled(self.step, x, h0)
        u = self.project_inputs(x)
        shape = (u.shape[0], u.shape[1], self.gates == 2)
        ungated, gated = scans(resolve_backend(self.backend, u.device, self.hidden_size, u.dtype, shape))
        h_all = (gated if self.gates == 2 else ungated)(u, h0, self.recurrent_map(), self.eps)
        return h_all.transpose(0, 1), h_all[-1]


class _Ungated(_EulerCell):
    """h_t = h_{t-1} + ε·tanh(M h_{t-1} + V x_t + b)."""

    gates = 1

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        return h + self.eps * torch.tanh(h @ self.recurrent_matrix().t() + self.input_proj(x_t))


class _Gated(_EulerCell):
    """z_t = σ(M h_{t-1} + V_z x_t + b_z), h_t = h_{t-1} + ε z_t ⊙ tanh(M h_{t-1} + V_h x_t + b_h)."""

    gates = 2

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        mh = h @ self.recurrent_matrix().t()
        u_z, u_h = self.input_proj(x_t).chunk(2, dim=-1)
        return h + self.eps * torch.sigmoid(mh + u_z) * torch.tanh(mh + u_h)


class StoredAntisymmetric:
    """Mixin for an nn.Module holding S = W − Wᵀ as the strict upper triangle of W (n(n−1)/2 numbers, `w_upper`)
    and the diffusion γ, giving M = S − γI; shared by the A-RNN cells and the antisymmetric ODE cell."""

    hidden_size: int
    gamma: float
    w_upper: nn.Parameter
    upper_index: Tensor

    def init_antisymmetric(self, gamma: float, sigma_w: float) -> None:
        """Check γ ≥ 0 and draw W − Wᵀ distributed as for W ~ N(0, σ_w²/n): entries of variance 2σ_w²/n."""
        if not gamma >= 0:
            raise ConfigError(f"model.gamma (diffusion) must be >= 0, got {gamma}; set e.g. model.gamma=0.01")
        self.gamma = float(gamma)
        n = self.hidden_size
        self.register_buffer("upper_index", torch.triu_indices(n, n, offset=1), persistent=False)
        self.w_upper = nn.Parameter(torch.randn(n * (n - 1) // 2) * sigma_w * math.sqrt(2 / n))

    def antisymmetric_matrix(self) -> Tensor:
        """W − Wᵀ, built from the stored upper triangle."""
        n = self.hidden_size
        w = self.w_upper.new_zeros(n, n).index_put((self.upper_index[0], self.upper_index[1]), self.w_upper)
        return w - w.t()

    def recurrent_matrix(self) -> Tensor:
        """M = W − Wᵀ − γI."""
        eye = torch.eye(self.hidden_size, device=self.w_upper.device, dtype=self.w_upper.dtype)
        return self.antisymmetric_matrix() - self.gamma * eye

    def recurrent_map(self) -> Tensor:
        return self.recurrent_matrix()


class _Antisymmetric(StoredAntisymmetric, _EulerCell):
    """An Euler cell whose recurrent matrix is M = W − Wᵀ − γI."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        eps: float = 0.01,
        gamma: float = 0.01,
        sigma_w: float = 1.0,
        backend: str = "auto",
    ) -> None:
        super().__init__(input_size, hidden_size, eps, sigma_w, backend)
        self.init_antisymmetric(gamma, self.sigma_w)


class AntisymmetricCell(_Ungated, _Antisymmetric):
    """A-RNN: h_t = h_{t-1} + ε·tanh((W − Wᵀ − γI) h_{t-1} + V x_t + b)."""


class GatedAntisymmetricCell(_Gated, _Antisymmetric):
    """Gated A-RNN, the gate sharing M = W − Wᵀ − γI:
    z_t = σ(M h_{t-1} + V_z x_t + b_z), h_t = h_{t-1} + ε z_t ⊙ tanh(M h_{t-1} + V_h x_t + b_h)."""


class GatedAblationCell(_Gated):
    """The paper's ablation: the gated A-RNN equation with an unstructured W (no antisymmetry, no γ):
    z_t = σ(W h_{t-1} + V_z x_t + b_z), h_t = h_{t-1} + ε z_t ⊙ tanh(W h_{t-1} + V_h x_t + b_h), W ~ N(0, σ_w²/n)."""

    def __init__(
        self, input_size: int, hidden_size: int, eps: float = 0.01, sigma_w: float = 1.0, backend: str = "auto"
    ) -> None:
        super().__init__(input_size, hidden_size, eps, sigma_w, backend)
        n = self.hidden_size
        self.weight = nn.Parameter(torch.randn(n, n) * self.sigma_w / math.sqrt(n))

    def recurrent_matrix(self) -> Tensor:
        return self.weight
