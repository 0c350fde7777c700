"""The time-varying antisymmetric neural ODE of Nestaas (2022 notes, eqs. 3–6): the weights flow jointly with the state.

    x' = σ((A(t) − A(t)ᵀ − γI) x + b(t) + V u(t)),   A' = g(A),   b' = h(b),   u(t) = u_k on [(k−1)dt, k·dt).

With g = h = 0 it is the antisymmetric ODE of `arnn.cells.ode` (A − Aᵀ = W − Wᵀ, b the input bias).
"""

import torch
from torch import Tensor, nn

from arnn.cells.antisymmetric import StoredAntisymmetric
from arnn.cells.base import check_positive, check_sigma_w, input_projection
from arnn.cells.ode import ACTIVATIONS, PiecewiseConstantODECell, interval_of
from arnn.errors import ConfigError

PARAMETER_MAPS = ("linear", "mlp")


def parameter_map(kind: str, size: int, width: int, key: str) -> nn.Module:
    """A small learnable map z ↦ y of R^size applied to the last dimension (each row of a matrix): `linear`
    y = G z + c, or `mlp` y = G₂ tanh(G₁ z + c₁) + c₂ with `width` hidden units. Its last layer starts at zero, so the
    map starts as y = 0 and still receives gradients."""
    if kind not in PARAMETER_MAPS:
        raise ConfigError(
            f"model.{key} must be one of {', '.join(PARAMETER_MAPS)}, got {kind!r}; set e.g. model.{key}=linear"
        )
    if kind == "linear":
        layers = [nn.Linear(size, size)]
    else:
        layers = [nn.Linear(size, width), nn.Tanh(), nn.Linear(width, size)]
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class TimeVaryingField:
    """f(t, y) for y = [x; A; bᵀ], the rows of x (B, n), A (n, n) and b (1, n) stacked into one (B + n + 1, n)
    tensor: f = [σ(x Mᵀ + b + d_k); g(A); h(b)], M = A − Aᵀ − γI, for t in interval k (`interval_of`).

    One tensor rather than a tuple: torchdiffeq would flatten and split a tuple at every evaluation, which more than
    doubles the autograd nodes per step. d_k = V u_k is `samples[k]` itself (precomputed), or `samples[k]` = u_k
    times V when `projection` = V is given.
    """

    def __init__(
        self,
        cell: "TimeVaryingAntisymmetricODECell",
        batch: int,
        samples: Tensor,
        times: Tensor,
        projection: Tensor | None = None,
    ) -> None:
        self.cell = cell
        self.sizes = (batch, cell.hidden_size, 1)
        self.rows = samples.unbind(0)  # views made once: see PiecewiseConstantField
        self.times = times
        self.projection = projection
        self.activation = ACTIVATIONS[cell.activation][0]

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        x, a, b = y.split(self.sizes)
        drive = self.rows[interval_of(self.times, t)]
        if self.projection is not None:
            drive = nn.functional.linear(drive, self.projection)
        shift = b + drive if self.cell.gamma == 0 else b + drive - self.cell.gamma * x
        dx = self.activation(torch.addmm(shift, x, a.t() - a))  # x (A − Aᵀ)ᵀ = x (Aᵀ − A)
        return torch.cat([dx, self.cell.flow_scale * torch.cat([self.cell.g(a), self.cell.h(b)])])


class TimeVaryingAntisymmetricODECell(StoredAntisymmetric, PiecewiseConstantODECell):
    """x' = σ((A − Aᵀ − γI) x + b + V u(t)), A' = g(A), b' = h(b): (x, A, b) solved jointly by torchdiffeq, as
    `PiecewiseConstantODECell` describes (solvers, substeps, tolerances, adjoint).

    g acts on each row of A and h on b, each `flow_scale` s times a `linear` map or a one-hidden-layer `mlp` of
    `flow_width` units (`parameter_map`), so the flow adds O(n²) parameters, not O(n⁴). A(0) is W, the strict upper
    triangle that ode_arnn stores (every antisymmetric A(0) − A(0)ᵀ arises from one), b(0) is V's bias, and both are
    initialised as in ode_arnn. g and h start at zero (their last layers are zero), so at initialisation A and b stay
    constant and the cell computes ode_arnn's dynamics; training moves them.

    s changes no model (the maps absorb it), only how far an optimizer step moves the flow: Adam moves each parameter
    by about lr per step whatever its gradient, and the flow's parameters act over the whole sequence. On sysid
    (t = 100, 32 units, Adam lr 0.01) the first step with s = 1 grew max |A| ten-thousand-fold for a linear g (A grows
    exponentially) and ten-fold for a mlp g (its rate is bounded), and the next gradient was NaN or infinite; with
    s = 0.01 max |A| moved by 1.5%.

    A and b do not depend on the input or the batch: they are integrated once per solve, shared by the batch, in one
    tensor with x (`TimeVaryingField`; adaptive solvers control the error of x, A and b together). They start from
    A(0), b(0) at each call, so time starts at 0 in every `forward` (and `step`): a sequence split into calls is
    not the model that one call over it is.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        g: str = "linear",
        h: str = "linear",
        flow_width: int = 16,
        flow_scale: float = 0.01,
        gamma: float = 0.0,
        sigma_w: float = 1.0,
        activation: str = "tanh",
        dt: float = 1.0,
        solver: str = "rk4",
        substeps: int = 1,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        adjoint: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, activation, dt, solver, substeps, rtol, atol, adjoint)
        check_sigma_w(sigma_w)
        if int(flow_width) != flow_width or flow_width < 1:
            raise ConfigError(
                f"model.flow_width must be an integer >= 1, got {flow_width}; set e.g. model.flow_width=16"
            )
        check_positive("flow_scale", flow_scale, 0.01)
        self.sigma_w = float(sigma_w)
        self.flow_width = int(flow_width)
        self.flow_scale = float(flow_scale)
        n = self.hidden_size
        self.input_proj = input_projection(self.input_size, n)  # V, and b(0) as its bias
        self.init_antisymmetric(gamma, self.sigma_w)
        self.g = parameter_map(g, n, self.flow_width, "g")
        self.h = parameter_map(h, n, self.flow_width, "h")

    def recurrent_map(self) -> tuple[Tensor, Tensor]:
        return self.recurrent_operands()

    def recurrent_operands(self) -> tuple[Tensor, Tensor]:
        """(A(0), b(0)): A(0) = W, strictly upper triangular (`w_upper`), computed once per solve."""
        n = self.hidden_size
        upper = self.w_upper.new_zeros(n, n).index_put((self.upper_index[0], self.upper_index[1]), self.w_upper)
        return upper, self.input_proj.bias

    def trajectories(self, inputs: Tensor, x0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (T + 1, B, n), A (T + 1, n, n) and b (T + 1, n) at t_0 = 0, ..., t_T under the inputs (T, B, m)."""
        times = self.grid(inputs.shape[0], x0)
        a0, b0 = self.recurrent_map()
        y0 = torch.cat([x0, a0, b0.unsqueeze(0)])
        weight = self.input_proj.weight
        if not self.adjoint:
            field = TimeVaryingField(self, x0.shape[0], nn.functional.linear(inputs, weight), times)
            solution = self.integrate(field, y0, times, ())
        else:
            # As in ode_arnn: V (not the (T, B, n) drive) in the adjoint state; A(0) and b(0) get theirs through y0.
            field = TimeVaryingField(self, x0.shape[0], inputs, times, projection=weight)
            parameters = (weight, *self.g.parameters(), *self.h.parameters())
            parameters += (inputs,) if inputs.requires_grad else ()
            solution = self.integrate(field, y0, times, parameters)
        x, a, b = solution.split(field.sizes, dim=1)
        return x, a, b.squeeze(1)

    def solve(self, inputs: Tensor, x0: Tensor) -> Tensor:
        return self.trajectories(inputs, x0)[0]
