"""ODEtoODE (Choromanski et al., NeurIPS 2020; Nestaas, 2022 notes, §2): the state's ODE with a weight matrix that flows
on the orthogonal group.

    x' = σ(W(t) x + V u(t) + b),   W' = W b_θ(W),   b_θ(W) = (K − Kᵀ) + (WᵀP − PᵀW),   W(0)ᵀW(0) = I.

b_θ is skew-symmetric, so d(WᵀW)/dt = b_θᵀ WᵀW + WᵀW b_θ = 0 at WᵀW = I: W stays orthogonal. The choice of b_θ:
K − Kᵀ turns W at a constant rate, and WᵀP − PᵀW makes W' = P − W Pᵀ W, twice the Riemannian gradient of tr(PᵀW)
on the orthogonal group, which pulls W towards the orthogonal factor of P. b_θ has no explicit t: the inputs give x
its time dependence, and a term polynomial in t would grow with the sequence (t = 100 at T = 1000, dt = 0.1).
"""

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from arnn.cells.base import input_projection
from arnn.cells.ode import ACTIVATIONS, FIXED_GRID_SOLVERS, PiecewiseConstantField, PiecewiseConstantODECell
from arnn.errors import ConfigError


def quarter_turns(n: int) -> Tensor:
    """B₀ = (π/2) Q J Qᵀ, Q from `nn.init.orthogonal_`, J = ⊕ [[0, 1], [−1, 0]] (odd n: a last zero row and column).

    B₀ is skew-symmetric and exp(B₀) = Q J Qᵀ (J² = −I on the pairs, so exp(θJ) = cos θ I + sin θ J): an orthogonal
    matrix whose eigenvalues are ±i in random directions (and 1 in one for odd n).
    """
    q = nn.init.orthogonal_(torch.empty(n, n))
    j = torch.zeros(n, n)
    first = torch.arange(0, n - 1, 2)
    j[first, first + 1] = 1.0
    j[first + 1, first] = -1.0
    return (math.pi / 2) * q @ j @ q.t()


class ODEToODECell(PiecewiseConstantODECell):
    """ODEtoODE: x' = σ(W(t) x + V u(t) + b) with W(t) on the orthogonal group, W' = W b_θ(W) (module docstring).

    W is advanced once per input interval by the exponential of its frozen generator (the Lie–Euler step),
    W_{k+1} = W_k · matrix_exp(dt · b_θ(W_k)): every factor is orthogonal, so W_k stays on the group up to rounding,
    which adds up over the steps (‖WᵀW − I‖_F after 1000 steps, n = 4 to 64: 2e-13 to 4e-12 in float64, 1e-4 to
    1e-3 in float32), where Euler's W_k + dt W_k b_θ(W_k) adds dt² b_θᵀb_θ to WᵀW at every step. One matrix_exp per
    step, shared by the batch. x is integrated by torchdiffeq's fixed-grid solvers as in ode_arnn
    (`PiecewiseConstantODECell`: `solver`, `substeps`), with W held at W_k over interval k, as u is; the splitting
    is first order in dt whatever the solver.

    W(0) = exp(L − Lᵀ) (`parametrizations.orthogonal`, onto the rotations) starts at Q J Qᵀ (`quarter_turns`), so
    at x = 0 the linearised dynamics x' = W(0) x neither grow nor decay, as for the antisymmetric cells (a
    Haar-random orthogonal W(0) has eigenvalues with real parts up to 1, whose modes grow like eᵗ until tanh
    saturates). K and P start at 0, so W(t) = W(0) at initialisation; V and b are initialised as in ode_arnn.
    W starts from W(0) at each call: time starts at 0 in every `forward` (and `step`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation: str = "tanh",
        dt: float = 1.0,
        solver: str = "rk4",
        substeps: int = 1,
    ) -> None:
        super().__init__(input_size, hidden_size, activation, dt, solver, substeps, 1e-3, 1e-4, adjoint=False)
        if solver not in FIXED_GRID_SOLVERS:  # W is known on the grid of the input samples only
            raise ConfigError(
                f"model.solver must be a fixed-grid solver for odetoode, one of {', '.join(FIXED_GRID_SOLVERS)}; "
                f"got {solver!r}"
            )
        n = self.hidden_size
        self.input_proj = input_projection(self.input_size, n)
        # W(0) = exp(L − Lᵀ) from the stored lower triangle L, computed in the module's dtype (orthogonal to its
        # rounding error); `use_trivialization=False` keeps no base matrix, which would hold float32 rounding.
        self.initial = parametrizations.orthogonal(nn.Linear(n, n, bias=False), use_trivialization=False)
        with torch.no_grad():
            self.initial.parametrizations.weight.original.copy_(quarter_turns(n).tril())
        self.register_buffer("upper_index", torch.triu_indices(n, n, offset=1), persistent=False)
        self.rotation_upper = nn.Parameter(torch.zeros(n * (n - 1) // 2))  # K, strict upper triangle
        self.pull = nn.Parameter(torch.zeros(n, n))  # P

    def recurrent_map(self) -> tuple[Tensor, Tensor]:
        return self.recurrent_operands()

    def recurrent_operands(self) -> tuple[Tensor, Tensor]:
        """(W(0), K), K strictly upper triangular, computed once per solve."""
        n = self.hidden_size
        upper = self.rotation_upper.new_zeros(n, n)
        return self.initial.weight, upper.index_put((self.upper_index[0], self.upper_index[1]), self.rotation_upper)

    def generator(self, w: Tensor, upper: Tensor) -> Tensor:
        """b_θ(W) = Z − Zᵀ with Z = K + WᵀP, i.e. (K − Kᵀ) + (WᵀP − PᵀW): skew-symmetric to the last bit."""
        z = upper + w.t() @ self.pull
        return z - z.t()

    def weights(self, steps: int) -> Tensor:
        """W_0, ..., W_steps (steps + 1, n, n) at t_k = k·dt, by Lie–Euler steps W_{k+1} = W_k exp(dt b_θ(W_k))."""
        w, upper = self.recurrent_map()
        flow = [w]
        for _ in range(steps):
            w = w @ torch.linalg.matrix_exp(self.dt * self.generator(w, upper))
            flow.append(w)
        return torch.stack(flow)

    def solve(self, inputs: Tensor, x0: Tensor) -> Tensor:
        steps = inputs.shape[0]
        times = self.grid(steps, x0)
        matrices = self.weights(steps - 1)  # W_k on interval k; W_T would act only after the last output
        field = PiecewiseConstantField(matrices, self.input_proj(inputs), times, ACTIVATIONS[self.activation][0])
        return self.integrate(field, x0, times, ())
