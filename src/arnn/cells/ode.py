"""ODE cells whose input is held constant between samples, solved by torchdiffeq (`PiecewiseConstantODECell`), and
the antisymmetric neural ODE (Nestaas, 2022 notes, eq. 6 with constant A):

    x'(t) = σ((W − Wᵀ − γI) x(t) + V u(t) + b),   u(t) = u_k for t ∈ [t_{k−1}, t_k), t_k = k·dt.

Forward Euler with one step of size ε per sample is the A-RNN (arnn.cells.antisymmetric); here any torchdiffeq
solver integrates the same vector field, and with σ = identity, b = 0 and no input the flow is x(t) = exp(tM) x(0),
orthogonal when γ = 0 (see `python -m arnn.analysis ode_norm`).
"""

from abc import abstractmethod
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from arnn.cells.antisymmetric import StoredAntisymmetric
from arnn.cells.base import SequenceEncoder, check_positive, check_sigma_w, input_projection
from arnn.errors import ConfigError

# One-step methods only: a multistep method (the Adams family) carries derivatives from before a jump of u into
# the steps after it, and scipy_solver is not differentiable.
FIXED_GRID_SOLVERS = ("euler", "midpoint", "heun2", "heun3", "rk4")
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
SOLVER_NAMES = FIXED_GRID_SOLVERS + ADAPTIVE_SOLVERS
CHUNK_INTERVALS = 32
"""Intervals per torchdiffeq call of a fixed-grid solve without the adjoint (`PiecewiseConstantODECell.integrate`)."""
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    # σ and σ' as a function of σ's output
    "tanh": (torch.tanh, lambda y: 1 - y * y),
    "identity": (lambda z: z, torch.ones_like),
}


def symmetric_jacobian_norm(slope: Tensor, antisymmetric: Tensor, gamma: float) -> Tensor:
    """‖J + Jᵀ‖²_F for J = diag(d)(S − γI), S antisymmetric, one value per row d of `slope` (..., n).

    (J + Jᵀ)_ij = (d_i − d_j) S_ij − 2γ d_i δ_ij, so, expanding the square (S_ii = 0),
    ‖J + Jᵀ‖²_F = Σ_ij (d_i − d_j)² S_ij² + 4γ² Σ_i d_i² = 2 Σ_i d_i² r_i − 2 dᵀ P d + 4γ² ‖d‖²
    with P = S ∘ S and r_i = Σ_j P_ij: O(n²) per row, no n × n matrix per row.
    """
    squares = antisymmetric * antisymmetric
    d2 = slope * slope
    return 2 * d2 @ squares.sum(1) - 2 * ((slope @ squares) * slope).sum(-1) + 4 * gamma**2 * d2.sum(-1)


def interval_of(times: Tensor, t: Tensor) -> int:
    """k for t ∈ (t_k, t_{k+1}) on the grid `times`; at a grid point t_k itself the left interval k − 1 (0 at t_0).

    The solvers evaluate a field at a grid point only when told which side they want (torchdiffeq's `perturb` nudges
    t by one ulp: NEXT at a step's start, PREV at its end), and without a nudge only where an integration starts: at
    t_0 going forward, and at t_k going backward in the adjoint pass, which then integrates over (t_{k−1}, t_k).
    """
    index = int(torch.searchsorted(times, t.reshape(1).to(times.dtype))) - 1
    return min(max(index, 0), len(times) - 2)


class PiecewiseConstantField:
    """f(t, x) = σ(x M_kᵀ + d_k) for t in interval k of `times` (`interval_of`).

    d_k is `samples[k]` itself (the drive V u_k + b, precomputed), or V u_k + b with `samples[k]` = u_k when
    `projection` = (V, b) is given. M_k is `matrix` (n, n), or its row k when it holds one matrix per interval
    (T, n, n).
    """

    def __init__(
        self,
        matrix: Tensor,
        samples: Tensor,
        times: Tensor,
        activation: Callable[[Tensor], Tensor],
        projection: tuple[Tensor, Tensor | None] | None = None,
    ) -> None:
        self.matrix = matrix
        # One view per interval, made once: a call's backward then reaches only its own row (all rows meet once, in
        # the single backward of `unbind`). Indexing `samples` inside the call gave every call a (T, B, n) gradient,
        # an O(T²) backward.
        self.rows = samples.unbind(0)
        self.matrices = matrix.unbind(0) if matrix.dim() == 3 else None
        self.times = times
        self.activation = activation
        self.projection = projection

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        index = interval_of(self.times, t)
        drive = self.rows[index]
        if self.projection is not None:
            drive = nn.functional.linear(drive, *self.projection)
        matrix = self.matrix if self.matrices is None else self.matrices[index]
        return self.activation(x @ matrix.t() + drive)


def _subdivided_grid(substeps: int, func: object, y0: Tensor, t: Tensor) -> Tensor:
    """Each interval of `t` cut into `substeps` equal solver steps; the points of `t` stay on the grid exactly."""
    fractions = torch.arange(substeps, dtype=t.dtype, device=t.device) / substeps
    inner = t[:-1, None] + (t[1:] - t[:-1])[:, None] * fractions
    return torch.cat([inner.reshape(-1), t[-1:]])


class PiecewiseConstantODECell(SequenceEncoder):
    """An ODE cell x' = f(t, x) driven by u(t) = u_k on [(k−1)dt, k·dt): the outputs are x(t_1), ..., x(t_T) on the
    grid t_k = k·dt, solved by torchdiffeq in one pass over the grid (`step` solves one interval).

    u jumps at every grid point, which the solvers must not smooth over: fixed-grid solvers get `perturb=True` (each
    step evaluates f just inside its own interval), adaptive ones `jump_t` at the grid points (no step straddles a
    jump, and f is re-evaluated on the far side). `substeps` solver steps per interval apply to fixed-grid solvers,
    `rtol`/`atol` to adaptive ones. With `adjoint=True` gradients come from the adjoint ODE (torchdiffeq's
    `odeint_adjoint`: memory for the T states only, none for the solver's stages) instead of backpropagating
    through the solver. Subclasses give `solve`, the whole trajectory from x(0).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation: str,
        dt: float,
        solver: str,
        substeps: int,
        rtol: float,
        atol: float,
        adjoint: bool,
    ) -> None:
        super().__init__(input_size, hidden_size)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if solver not in SOLVER_NAMES:
            raise ConfigError(f"model.solver must be one of {', '.join(SOLVER_NAMES)}, got {solver!r}")
        if int(substeps) != substeps or substeps < 1:
            raise ConfigError(f"model.substeps must be an integer >= 1, got {substeps}; set e.g. model.substeps=1")
        check_positive("dt", dt, 0.1)
        check_positive("rtol", rtol, 1e-3)
        check_positive("atol", atol, 1e-4)
        self.activation = activation
        self.dt = float(dt)
        self.solver = solver
        self.substeps = int(substeps)
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.adjoint = bool(adjoint)

    def grid(self, steps: int, like: Tensor) -> Tensor:
        """t_0 = 0, t_1 = dt, ..., t_T, in the dtype and on the device of `like`."""
        # Built in float64 then cast, so the grid, the jump times and the fields' look-up agree to the last bit.
        return (torch.arange(steps + 1, dtype=torch.float64, device=like.device) * self.dt).to(like.dtype)

    def integrate(
        self, field: Callable[[Tensor, Tensor], Tensor], y0: Tensor, times: Tensor, adjoint_params: tuple[Tensor, ...]
    ) -> Tensor:
        """The solution at every point of `times` (T + 1, ...) from y0.

        `adjoint_params` are the tensors the field depends on, for the adjoint pass (used when `adjoint` is on).
        """
        arguments = {"rtol": self.rtol, "atol": self.atol, "method": self.solver}
        if self.solver in ADAPTIVE_SOLVERS:
            # Steps end exactly on every grid point (outputs are then solver steps, not interpolants): jumps of u
            # inside, plain stops at both ends (the far end of an adjoint interval is t_{k-1}).
            options = {"jump_t": times[1:-1], "step_t": times[[0, -1]]}
        else:
            options = {"perturb": True}
            if self.substeps > 1:
                options["grid_constructor"] = partial(_subdivided_grid, self.substeps)
        if self.adjoint:
            return odeint_adjoint(field, y0, times, adjoint_params=adjoint_params, options=options, **arguments)
        # torchdiffeq writes each output into one preallocated tensor (`solution[j] = y`), and the backward of each
        # write copies all of it: O(T²) for one call over T outputs. Calls over chunks of CHUNK_INTERVALS keep it
        # O(T · CHUNK_INTERVALS); a fixed grid gives the same values either way. Adaptive solvers keep one call (and
        # the O(T²) copies), so that their step size carries over from sample to sample.
        if self.solver in ADAPTIVE_SOLVERS:
            return odeint(field, y0, times, options=options, **arguments)
        pieces, state = [], y0
        for start in range(0, len(times) - 1, CHUNK_INTERVALS):
            solution = odeint(field, state, times[start : start + CHUNK_INTERVALS + 1], options=options, **arguments)
            pieces.append(solution if start == 0 else solution[1:])
            state = solution[-1]
        return torch.cat(pieces)

    def default_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.hidden_size)

    @abstractmethod
    def solve(self, inputs: Tensor, x0: Tensor) -> Tensor:
        """x(t_0 = 0), x(t_1), ..., x(t_T) (T + 1, B, n) from x0 (B, n) under the inputs u_1, ..., u_T (T, B, m)."""

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x0 = self.default_state(x.shape[0], x) if state is None else state
        states = self.solve(x.transpose(0, 1), x0)[1:]
        return states.transpose(0, 1), states[-1]

    def step(self, x_t: Tensor, state: Tensor) -> Tensor:
        """x(dt) from x(0) = state under the constant input x_t."""
        return self.solve(x_t.unsqueeze(0), state)[-1]


class AntisymmetricODECell(StoredAntisymmetric, PiecewiseConstantODECell):
    """Antisymmetric neural ODE (Nestaas, 2022 notes): x' = σ((W − Wᵀ − γI) x + V u(t) + b),
    u(t) = u_k on [(k−1)dt, k·dt).

    Solved as `PiecewiseConstantODECell` describes. W − Wᵀ, V and b are stored and initialised as in the A-RNN, so
    `solver=euler, dt=ε` is the A-RNN.

    Adjoint-norm regulariser (`adjoint_weight` > 0): the adjoint a(t) = ∂L/∂x(t) obeys a' = −aJ, J = ∂f/∂x, so
    d‖a‖²/dt = −a(J + Jᵀ)aᵀ, and ‖a‖ stays constant for every a iff J + Jᵀ = 0 along the trajectory. Here
    J = D M with D = diag(σ'(M x + V u + b)), M = S − γI, and ‖J + Jᵀ‖²_F has the closed form of
    `symmetric_jacobian_norm`. `forward` evaluates it at the state entering each interval, x(t_{k−1}) with u_k, and
    `penalty()` returns adjoint_weight × its mean over batch and steps, from the latest `forward`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        gamma: float = 0.0,
        sigma_w: float = 1.0,
        activation: str = "tanh",
        dt: float = 1.0,
        solver: str = "rk4",
        substeps: int = 1,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        adjoint: bool = False,
        adjoint_weight: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, activation, dt, solver, substeps, rtol, atol, adjoint)
        check_sigma_w(sigma_w)
        if not adjoint_weight >= 0:
            raise ConfigError(
                f"model.adjoint_weight must be >= 0, got {adjoint_weight}; set e.g. model.adjoint_weight=0.01"
            )
        self.sigma_w = float(sigma_w)
        self.adjoint_weight = float(adjoint_weight)
        self._penalty: Tensor | None = None
        n = self.hidden_size
        self.input_proj = input_projection(self.input_size, n)
        self.init_antisymmetric(gamma, self.sigma_w)

    def solve(self, inputs: Tensor, x0: Tensor) -> Tensor:
        times = self.grid(inputs.shape[0], x0)
        if not self.adjoint:
            return self.integrate(self.vector_field(self.input_proj(inputs), times), x0, times, ())
        # The adjoint pass integrates one extra state per adjoint parameter: with V and b there, rather than the
        # (T, B, n) drive, each of its T solves stays O(B n + n²) instead of O(T B n).
        projection = (self.input_proj.weight, self.input_proj.bias)
        field = PiecewiseConstantField(self.recurrent_map(), inputs, times, ACTIVATIONS[self.activation][0], projection)
        parameters = (field.matrix, *projection, *((inputs,) if inputs.requires_grad else ()))
        return self.integrate(field, x0, times, parameters)

    def vector_field(self, drive: Tensor, times: Tensor) -> PiecewiseConstantField:
        """f(t, x) for the drive V u_k + b (T, B, n) held over the grid `times` (T + 1)."""
        return PiecewiseConstantField(self.recurrent_map(), drive, times, ACTIVATIONS[self.activation][0])

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        outputs, final = super().forward(x, state)
        if self.adjoint_weight > 0:
            x0 = self.default_state(x.shape[0], x) if state is None else state
            entering = torch.cat([x0.unsqueeze(1), outputs[:, :-1]], 1)
            self._penalty = self.adjoint_weight * self.jacobian_asymmetry(entering, self.input_proj(x)).mean()
        return outputs, final

    def jacobian_asymmetry(self, states: Tensor, drive: Tensor) -> Tensor:
        """‖J + Jᵀ‖²_F of the vector field at each state (..., n) under the matching drive (..., n)."""
        activation, slope = ACTIVATIONS[self.activation]
        output = activation(states @ self.recurrent_matrix().t() + drive)
        return symmetric_jacobian_norm(slope(output), self.antisymmetric_matrix(), self.gamma)

    def penalty(self) -> Tensor | None:
        """adjoint_weight × mean ‖J + Jᵀ‖²_F over the batch and steps of the latest `forward`; None when off."""
        return self._penalty if self.adjoint_weight > 0 else None
