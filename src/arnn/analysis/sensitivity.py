"""The parameter sensitivity of a neural ODE, y(t) = [a(t) ∂f_θ/∂θ]ᵀ, whose integral is the gradient
(Nestaas, 2022 notes, §3; the adjoint of Chen et al., NeurIPS 2018).

For z' = f_θ(z, t) on [t0, t1], z(t0) independent of θ, a loss L of z at times in [t0, t1] and the adjoint
a(t) = ∂L/∂z(t) (a row),

    dL/dθ = −∫_{t1}^{t0} a(t) ∂f_θ(z(t), t)/∂θ dt = ∫_{t0}^{t1} y(t)ᵀ dt          (notes, eq. 23)
    ‖dL/dθ‖ ≤ ∫_{t0}^{t1} ‖y(t)‖ dt                                              (triangle inequality, always)
            = (t1 − t0) ‖y(t1)‖     only when ‖y(t)‖ is constant                  (notes, eq. 30)

The time axis is cut into pieces [t_{k−1}, t_k] on each of which f is smooth (the ODE-RNN's input u_k is held
there), each piece into `substeps` equal cells. z is solved cell by cell with torchdiffeq from the previous cell's
end plus a zero probe that requires grad, so one backward pass gives a(t) = ∂L/∂probe at every grid point (the left
limit at a piece's end, where the loss may read z, and the right limit at its start) and dL/dθ through the same
solves; y(t) is then one vector-Jacobian product of f with a(t) per point. The integrals are composite Simpson sums
per piece (scipy), so ‖∫ y dt − dL/dθ‖ measures the quadrature and solver error.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from scipy.integrate import simpson
from torch import Tensor
from torchdiffeq import odeint

PieceField = Callable[[int, Tensor, Tensor], Tensor]
"""f(k, t, z): the vector field on piece k, built from the current parameters on every call."""


@dataclass(frozen=True)
class Sensitivity:
    """y(t) on the grid and dL/dθ from autograd, θ flattened to p numbers."""

    times: Tensor  # (P, M + 1): the grid points of each piece
    y: Tensor  # (P, M + 1, p)
    gradient: Tensor  # (p,)
    loss: float

    @property
    def norms(self) -> Tensor:
        """‖y(t)‖ (P, M + 1)."""
        return self.y.norm(dim=-1)

    @property
    def span(self) -> float:
        """t1 − t0."""
        return float(self.times[-1, -1] - self.times[0, 0])

    def integral(self) -> Tensor:
        """∫ y(t) dt (p,), which equals dL/dθ."""
        pieces = [simpson(y.numpy(), x=t.numpy(), axis=0) for t, y in zip(self.times, self.y, strict=True)]
        return torch.as_tensor(sum(pieces))

    def norm_integral(self) -> float:
        """∫ ‖y(t)‖ dt."""
        return float(sum(simpson(n.numpy(), x=t.numpy()) for t, n in zip(self.times, self.norms, strict=True)))

    def endpoint_bound(self) -> float:
        """(t1 − t0) ‖y(t1)‖, the right side of (30)."""
        return self.span * float(self.norms[-1, -1])

    def restricted(self, columns: slice) -> "Sensitivity":
        """The same quantities for part of θ: the entries `columns` of the flattened θ, and y's matching columns."""
        return Sensitivity(self.times, self.y[..., columns], self.gradient[columns], self.loss)

    def summary(self) -> dict[str, float]:
        """Both sides of (30), the quadrature check ‖∫ y dt − dL/dθ‖ / ‖dL/dθ‖, and how far ‖y‖ is from constant."""
        norms, integral = self.norms, self.integral()
        gradient_norm = float(self.gradient.norm())
        return {
            "loss": self.loss,
            "grad_norm": gradient_norm,
            "norm_of_integral": float(integral.norm()),
            "quadrature_relative_error": float((integral - self.gradient).norm()) / max(gradient_norm, 1e-300),
            "integral_of_norm": self.norm_integral(),
            "endpoint_bound": self.endpoint_bound(),
            "y_norm_min": float(norms.min()),
            "y_norm_max": float(norms.max()),
            "y_norm_relative_spread": float((norms.max() - norms.min()) / norms.max()),
            "span": self.span,
        }


def piece_grid(bounds: Tensor, substeps: int) -> Tensor:
    """(P, M + 1) points: each piece [bounds[k], bounds[k + 1]] cut into M = `substeps` equal cells."""
    fractions = torch.linspace(0, 1, substeps + 1, dtype=bounds.dtype)
    return bounds[:-1, None] + (bounds[1:] - bounds[:-1])[:, None] * fractions


class ProbedSolve:
    """z on the grid of `piece_grid`, solved cell by cell with probes; `ends` are z at the pieces' ends (what a
    loss reads), `states[k][i]` z at point i of piece k, `probes` the matching zero tensors that require grad."""

    def __init__(
        self,
        field: PieceField,
        grid: Tensor,
        z0: Tensor,
        method: str = "dopri5",
        rtol: float = 1e-9,
        atol: float = 1e-11,
    ) -> None:
        self.field = field
        self.grid = grid
        self.probes: list[Tensor] = []
        self.states: list[list[Tensor]] = []
        z = z0
        for k, times in enumerate(grid):
            piece = [self._probed(z)]
            for i in range(1, len(times)):
                z = odeint(
                    lambda t, x, k=k: field(k, t, x),
                    piece[-1],
                    times[i - 1 : i + 1],
                    rtol=rtol,
                    atol=atol,
                    method=method,
                )[-1]
                piece.append(self._probed(z))
            self.states.append(piece)
            z = piece[-1]

    def _probed(self, z: Tensor) -> Tensor:
        probe = torch.zeros_like(z).requires_grad_()
        self.probes.append(probe)
        return z + probe

    @property
    def ends(self) -> list[Tensor]:
        return [piece[-1] for piece in self.states]

    def sensitivity(self, loss: Tensor, parameters: Sequence[Tensor]) -> Sensitivity:
        """y(t) at every grid point and dL/dθ for θ = `parameters`, from `loss` computed from `ends`."""
        grads = torch.autograd.grad(loss, [*self.probes, *parameters])
        adjoints = iter(grads[: len(self.probes)])
        rows = []
        for k, (times, piece) in enumerate(zip(self.grid, self.states, strict=True)):
            for t, z in zip(times, piece, strict=True):
                a = next(adjoints)
                vjp = torch.autograd.grad(self.field(k, t, z.detach()), parameters, grad_outputs=a)
                rows.append(torch.cat([part.reshape(-1) for part in vjp]))
        y = torch.stack(rows).reshape(*self.grid.shape, -1)
        gradient = torch.cat([part.reshape(-1) for part in grads[len(self.probes) :]])
        return Sensitivity(self.grid, y.detach(), gradient.detach(), loss.item())
