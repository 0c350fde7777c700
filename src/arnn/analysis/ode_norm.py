"""Nestaas (2022 notes): the linear antisymmetric ODE x' = S x, S = W − Wᵀ, keeps ‖x‖; its forward-Euler steps do not.

    d‖x‖²/dt = 2 xᵀ S x = 0, so x(t) = Q_t x(0) with Q_t = exp(tS) orthogonal (linear in x(0), as the notes say).
    Forward Euler (the A-RNN without tanh, γ = 0): ‖(I + εS) x‖² = ‖x‖² + ε² ‖S x‖², so ‖x‖ never shrinks and
    grows like exp(ε ω² t / 2) along an eigenvector of S with eigenvalue iω.
    RK4's amplification on iω is below 1 for 0 < |ωε| < 2√2: its norm slowly decays instead.

The flows are `AntisymmetricODECell` in its linear case (activation identity, γ = 0, no input, b = 0) with the
solver named; the adaptive solve also starts from e_1 … e_n, whose solutions are the columns of Q_t.

    python -m arnn.analysis ode_norm [--hidden 32] [--horizon 100] [--euler-eps 0.01 0.03 0.1] [--rk4-eps 0.1 0.5]
"""

import argparse
from collections.abc import Mapping
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from arnn.cells.ode import AntisymmetricODECell
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv, write_json


def linear_cell(hidden: int, solver: str, dt: float, rtol: float, atol: float, seed: int) -> AntisymmetricODECell:
    """x' = (W − Wᵀ) x + V u in float64, b = 0; W drawn from `seed` as the A-RNN draws it (one S for all solvers)."""
    torch.manual_seed(seed)
    cell = AntisymmetricODECell(1, hidden, activation="identity", gamma=0.0, dt=dt, solver=solver, rtol=rtol, atol=atol)
    nn.init.zeros_(cell.input_proj.bias)
    return cell.double()


def free_flow(cell: AntisymmetricODECell, x0: Tensor, horizon: float) -> tuple[Tensor, Tensor]:
    """Times t_k = k·dt up to `horizon` and the states x(t_k) (K + 1, B, n) from x0 (B, n) under zero input."""
    steps = max(1, round(horizon / cell.dt))
    with torch.no_grad():
        states = cell.solve(x0.new_zeros(steps, x0.shape[0], cell.input_size), x0)
    return torch.arange(steps + 1, dtype=x0.dtype) * cell.dt, states


def relative_norm_change(states: Tensor) -> Tensor:
    """‖x(t)‖ / ‖x(0)‖ − 1 for states (K + 1, ..., n)."""
    norms = states.norm(dim=-1)
    return norms / norms[0] - 1


def euler_growth(antisymmetric: Tensor, states: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per Euler step, the measured ‖x_{k+1}‖² / ‖x_k‖² and the predicted 1 + ε² ‖S x_k‖² / ‖x_k‖²."""
    squares = states.square().sum(-1)
    predicted = 1 + eps**2 * (states[:-1] @ antisymmetric.t()).square().sum(-1) / squares[:-1]
    return squares[1:] / squares[:-1], predicted


def flow_errors(antisymmetric: Tensor, times: Tensor, columns: Tensor, x0: Tensor, states: Tensor) -> dict[str, Tensor]:
    """Per time, with Q_t = [x(t) from e_1, …, from e_n] (columns (K + 1, n, n), row i the solution from e_i):
    ‖Q_tᵀ Q_t − I‖₂, ‖Q_t − exp(tS)‖₂, and ‖x(t) − Q_t x(0)‖ / ‖x(0)‖ for the solution `states` (K + 1, n) from x0."""
    q = columns.transpose(-1, -2)
    eye = torch.eye(q.shape[-1], dtype=q.dtype)
    exponential = torch.linalg.matrix_exp(times[:, None, None] * antisymmetric)
    return {
        "orthogonality": torch.linalg.matrix_norm(q.transpose(-1, -2) @ q - eye, ord=2),
        "matrix_exp": torch.linalg.matrix_norm(q - exponential, ord=2),
        "linearity": (states - q @ x0).norm(dim=-1) / x0.norm(),
    }


def plot_drifts(series: Mapping[str, tuple[Tensor, Tensor]], times: Tensor, errors: Mapping[str, Tensor]) -> Figure:
    """Left: ‖x(t)‖/‖x(0)‖ − 1 per solver (symlog); right: the adaptive solve against Q_t = exp(tS)."""
    figure = new_figure(1, 2, size=(11.0, 4.0))
    left, right = figure.axes
    for label, (t, change) in series.items():
        left.plot(t, change, linewidth=1.0, label=label)
    left.set_yscale("symlog", linthresh=1e-9)
    left.axhline(0, color="black", linewidth=0.5)
    left.set_xlabel("t")
    left.set_ylabel("‖x(t)‖ / ‖x(0)‖ − 1")
    left.set_title("x' = (W − Wᵀ) x: norm drift by solver", fontsize="medium")
    left.legend(fontsize="x-small")
    labels = {
        "orthogonality": "‖QₜᵀQₜ − I‖₂",
        "matrix_exp": "‖Qₜ − exp(tS)‖₂",
        "linearity": "‖x(t) − Qₜx(0)‖ / ‖x(0)‖",
    }
    for name, values in errors.items():
        right.semilogy(times[1:], values[1:].clamp_min(1e-17), linewidth=1.0, label=labels[name])
    right.set_xlabel("t")
    right.set_title("dopri5: x(t) = Qₜ x(0), Qₜ orthogonal", fontsize="medium")
    right.legend(fontsize="x-small")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.analysis ode_norm", description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=32, help="state size n")
    parser.add_argument("--horizon", type=float, default=100.0, help="integrate over [0, horizon]")
    parser.add_argument("--seed", type=int, default=0, help="seed of W and x(0)")
    parser.add_argument("--grid", type=float, default=0.5, help="output spacing of the adaptive solve")
    parser.add_argument("--rtol", type=float, default=1e-10, help="dopri5 relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-12, help="dopri5 absolute tolerance")
    parser.add_argument("--euler-eps", type=float, nargs="*", default=[0.01, 0.03, 0.1], help="forward-Euler steps ε")
    parser.add_argument("--rk4-eps", type=float, nargs="*", default=[0.1, 0.5], help="RK4 steps")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    steps = [args.grid, args.rtol, args.atol, *args.euler_eps, *args.rk4_eps]
    if args.hidden < 2 or args.horizon <= 0 or min(steps) <= 0:
        parser.error("need --hidden >= 2 and --horizon, --grid, --rtol, --atol and every step size > 0")

    adaptive = linear_cell(args.hidden, "dopri5", args.grid, args.rtol, args.atol, args.seed)
    antisymmetric = adaptive.antisymmetric_matrix().detach()
    x0 = torch.randn(1, args.hidden, dtype=torch.float64)
    times, states = free_flow(adaptive, torch.cat([x0, torch.eye(args.hidden, dtype=torch.float64)]), args.horizon)
    errors = flow_errors(antisymmetric, times, states[:, 1:], x0[0], states[:, 0])
    runs = {("dopri5", args.grid): (times, states[:, 0])}
    for solver, steps in (("rk4", args.rk4_eps), ("euler", args.euler_eps)):
        for eps in steps:
            cell = linear_cell(args.hidden, solver, eps, args.rtol, args.atol, args.seed)
            t, flow = free_flow(cell, x0, args.horizon)
            runs[solver, eps] = (t, flow[:, 0])

    changes = {key: (t, relative_norm_change(trajectory)) for key, (t, trajectory) in runs.items()}
    names = {(solver, eps): "dopri5" if solver == "dopri5" else f"{solver}_eps{eps:g}" for solver, eps in runs}
    euler = [euler_growth(antisymmetric, runs[key][1], key[1]) for key in runs if key[0] == "euler"]
    summary = {
        "max_abs_relative_drift": {names[key]: float(change.abs().max()) for key, (_, change) in changes.items()},
        "final_relative_drift": {names[key]: float(change[-1]) for key, (_, change) in changes.items()},
        "hidden": args.hidden,
        "horizon": args.horizon,
        "seed": args.seed,
        "dopri5_rtol": args.rtol,
        "dopri5_atol": args.atol,
        "spectral_radius_of_S": float(torch.linalg.eigvals(antisymmetric).abs().max()),
        "max_orthogonality_error": float(errors["orthogonality"].max()),
        "max_matrix_exp_error": float(errors["matrix_exp"].max()),
        "max_linearity_error": float(errors["linearity"].max()),
        "euler_min_step_norm_ratio_squared": min((float(m.min()) for m, _ in euler), default=None),
        "euler_max_relative_error_of_growth_formula": max(
            (float(((m - p) / p).abs().max()) for m, p in euler), default=None
        ),
    }
    rows = [
        {"solver": solver, "eps": eps, "t": float(t[k]), "relative_norm_change": float(change[k])}
        for (solver, eps), (t, change) in changes.items()
        for k in range(0, len(t), max(1, round(args.grid / eps)))
    ]
    labels = {key: f"dopri5 (rtol {args.rtol:g})" if key[0] == "dopri5" else f"{key[0]} ε={key[1]:g}" for key in runs}
    series = {labels[key]: value for key, value in changes.items()}
    print(
        f"max |‖x(t)‖/‖x(0)‖ − 1| on [0, {args.horizon:g}]: "
        + ", ".join(f"{key} {value:.3g}" for key, value in summary["max_abs_relative_drift"].items())
    )
    print(
        f"dopri5 vs Q_t = exp(tS): ‖QᵀQ − I‖ ≤ {summary['max_orthogonality_error']:.2g}, "
        f"‖Q − exp(tS)‖ ≤ {summary['max_matrix_exp_error']:.2g}, ‖x − Q x0‖/‖x0‖ ≤ {summary['max_linearity_error']:.2g}"
    )
    folder = analysis_dir("ode_norm", args.out)
    files = [
        write_csv(rows, folder / "ode_norm.csv"),
        write_json(summary, folder / "ode_norm.json"),
        save_figure(plot_drifts(series, times, errors), folder / "ode_norm.png"),
    ]
    publish("ode_norm", folder, files, args.wandb, summary)
