"""Nestaas (2022 notes), eqs. (7)–(17): x' = (A(t) − A(t)ᵀ) x with A' = g(A) keeps ‖x‖ and is linear in x(0).

    d‖x‖²/dt = 2 xᵀ (A − Aᵀ) x = 0   for every A, so also for A(t) moving by any g          (9)–(10)
    x(t) = Q_t x(0),   Q_t' = (A(t) − A(t)ᵀ) Q_t,   Q_0 = I,   Q_t orthogonal                  (14)–(17)

since the equation is linear in x for the given path A(t) (which does not depend on x): superposition holds,
x(0) = αa + βb ⇒ x(t) = α x_a(t) + β x_b(t), and d(QᵀQ)/dt = Qᵀ(Sᵀ + S)Q = 0 keeps Q_t orthogonal. The same path
under x' = tanh((A − Aᵀ) x) (the notes' eq. 6 with b = 0) is the control: superposition fails there.

Every trajectory is its own torchdiffeq dopri5 solve of the coupled system (A, x) — x_a, x_b, x_{αa+βb} and the
matrix Q (eq. 14, all n columns in one solve) — so the checks compare independent solves and the errors are the
solver's (set by --rtol/--atol), not rounding of one shared step sequence. g is `linear`, A' = G A, or `mlp`,
A' = G₂ tanh(G₁ A + c) column by column (a one-hidden-layer net); G ~ scale·N(0, 1/n).

    python -m arnn.analysis ode_linearity [--hidden 8] [--horizon 10] [--g linear|mlp] [--alpha 2 --beta -0.5]
"""

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchdiffeq import odeint

from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv, write_json

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"linear": lambda z: z, "tanh": torch.tanh}


def matrix_dynamics(kind: str, n: int, scale: float, generator: torch.Generator) -> Callable[[Tensor], Tensor]:
    """g with A' = g(A) for (n, n) matrices: `linear` G₁ A, or `mlp` G₂ tanh(G₁ A + c) (c broadcast over columns)."""

    def draw(*shape: int) -> Tensor:
        return scale * torch.randn(*shape, generator=generator, dtype=torch.float64) / n**0.5

    first = draw(n, n)
    if kind == "linear":
        return lambda a: first @ a
    second, offset = draw(n, n), draw(n, 1)
    return lambda a: second @ torch.tanh(first @ a + offset)


def solve(
    g: Callable[[Tensor], Tensor], a0: Tensor, x0: Tensor, times: Tensor, activation: str, rtol: float, atol: float
) -> tuple[Tensor, Tensor]:
    """A(t) (K, n, n) and X(t) (K, n, k) from A' = g(A), X' = σ((A − Aᵀ) X) with the columns of x0 (n, k)."""
    sigma = ACTIVATIONS[activation]

    def field(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        a, x = state
        return g(a), sigma((a - a.t()) @ x)

    with torch.no_grad():
        return odeint(field, (a0, x0), times, method="dopri5", rtol=rtol, atol=atol)


def linearity_errors(runs: Mapping[str, Tensor], flow: Tensor, alpha: float, beta: float) -> dict[str, Tensor]:
    """Per time, from the solutions x_a, x_b, x_ab = x from αa + βb (each (K, n)) and Q_t (K, n, n):
    max over the three of |‖x(t)‖/‖x(0)‖ − 1|; ‖Q_tᵀQ_t − I‖₂; max over the three of ‖x(t) − Q_t x(0)‖/‖x(0)‖;
    and the superposition error ‖x_ab − αx_a − βx_b‖ / (|α|‖x_a‖ + |β|‖x_b‖)."""
    eye = torch.eye(flow.shape[-1], dtype=flow.dtype)
    norms = {name: x.norm(dim=-1) for name, x in runs.items()}
    scale = abs(alpha) * norms["a"] + abs(beta) * norms["b"]
    return {
        "norm_drift": torch.stack([(n / n[0] - 1).abs() for n in norms.values()]).amax(0),
        "orthogonality": torch.linalg.matrix_norm(flow.transpose(-1, -2) @ flow - eye, ord=2),
        "flow": torch.stack(
            [(x - (flow @ x[0, :, None])[..., 0]).norm(dim=-1) / x[0].norm() for x in runs.values()]
        ).amax(0),
        "superposition": (runs["ab"] - alpha * runs["a"] - beta * runs["b"]).norm(dim=-1) / scale,
    }


def superposition_runs(
    g: Callable[[Tensor], Tensor],
    a0: Tensor,
    starts: Mapping[str, Tensor],
    times: Tensor,
    activation: str,
    tol: tuple[float, float],
) -> dict[str, Tensor]:
    """x(t) (K, n) from each start (n,), one solve each."""
    return {name: solve(g, a0, x0[:, None], times, activation, *tol)[1][..., 0] for name, x0 in starts.items()}


def plot_linearity(times: Tensor, errors: Mapping[str, Tensor], control: Mapping[str, Tensor]) -> Figure:
    """Left: the linear flow's errors over t; right: superposition and norm, linear vs the tanh control."""
    figure = new_figure(1, 2, size=(11.0, 4.0))
    left, right = figure.axes
    labels = {
        "norm_drift": "|‖x(t)‖/‖x(0)‖ − 1|",
        "orthogonality": "‖QₜᵀQₜ − I‖₂ (Q' = (A − Aᵀ)Q)",
        "flow": "‖x(t) − Qₜx(0)‖ / ‖x(0)‖",
        "superposition": "superposition error",
    }
    for name, values in errors.items():
        left.semilogy(times[1:], values[1:].clamp_min(1e-17), linewidth=1.0, label=labels[name])
    left.set_xlabel("t")
    left.set_title("x' = (A(t) − A(t)ᵀ)x, A' = g(A): dopri5 errors", fontsize="medium")
    left.legend(fontsize="x-small")
    for name, values, style, color in (
        ("superposition, linear", errors["superposition"], "-", "tab:blue"),
        ("superposition, tanh", control["superposition"], "-", "tab:red"),
        ("|‖x‖/‖x(0)‖ − 1|, linear", errors["norm_drift"], "--", "tab:blue"),
        ("|‖x‖/‖x(0)‖ − 1|, tanh", control["norm_drift"], "--", "tab:red"),
    ):
        right.semilogy(times[1:], values[1:].clamp_min(1e-17), linestyle=style, color=color, linewidth=1.0, label=name)
    right.set_xlabel("t")
    right.set_title("linear in x(0) only without the activation", fontsize="medium")
    right.legend(fontsize="x-small")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.analysis ode_linearity", description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=8, help="state size n")
    parser.add_argument("--horizon", type=float, default=10.0, help="integrate over [0, horizon]")
    parser.add_argument("--grid", type=float, default=0.1, help="output spacing")
    parser.add_argument("--g", choices=["linear", "mlp"], default="linear", help="the matrix dynamics A' = g(A)")
    parser.add_argument("--g-scale", type=float, default=0.3, help="scale of g's weights")
    parser.add_argument("--alpha", type=float, default=2.0, help="x(0) = alpha a + beta b")
    parser.add_argument("--beta", type=float, default=-0.5, help="x(0) = alpha a + beta b")
    parser.add_argument("--seed", type=int, default=0, help="seed of A(0), g, a and b")
    parser.add_argument("--rtol", type=float, default=1e-10, help="dopri5 relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-12, help="dopri5 absolute tolerance")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    if args.hidden < 2 or min(args.horizon, args.grid, args.rtol, args.atol) <= 0 or args.g_scale < 0:
        parser.error("need --hidden >= 2, --horizon, --grid, --rtol, --atol > 0 and --g-scale >= 0")

    generator = torch.Generator().manual_seed(args.seed)
    n = args.hidden
    a0, start_a, start_b = (
        torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in ((n, n), (n,), (n,))
    )
    a0 = a0 / n**0.5  # A − Aᵀ with entries of variance 2/n, as the A-RNN draws it
    g = matrix_dynamics(args.g, n, args.g_scale, generator)
    times = torch.arange(0, args.horizon + args.grid / 2, args.grid, dtype=torch.float64)
    tol = (args.rtol, args.atol)
    starts = {"a": start_a, "b": start_b, "ab": args.alpha * start_a + args.beta * start_b}
    paths, flow = solve(g, a0, torch.eye(n, dtype=torch.float64), times, "linear", *tol)
    errors = linearity_errors(superposition_runs(g, a0, starts, times, "linear", tol), flow, args.alpha, args.beta)
    control = linearity_errors(superposition_runs(g, a0, starts, times, "tanh", tol), flow, args.alpha, args.beta)
    generator_norm = torch.linalg.matrix_norm(paths - paths.transpose(-1, -2), ord=2)
    summary = {
        **{f"max_{name}_error": float(values.max()) for name, values in errors.items()},
        "tanh_max_superposition_error": float(control["superposition"].max()),
        "tanh_max_norm_drift": float(control["norm_drift"].max()),
        "generator_norm_first_last": [float(generator_norm[0]), float(generator_norm[-1])],
        "hidden": n,
        "horizon": args.horizon,
        "g": args.g,
        "g_scale": args.g_scale,
        "alpha": args.alpha,
        "beta": args.beta,
        "seed": args.seed,
        "rtol": args.rtol,
        "atol": args.atol,
    }
    print(
        f"x' = (A − Aᵀ)x, A' = g(A) ({args.g}), ‖A − Aᵀ‖₂ {generator_norm[0]:.3g} → {generator_norm[-1]:.3g} on "
        f"[0, {args.horizon:g}]: |‖x‖/‖x(0)‖ − 1| ≤ {summary['max_norm_drift_error']:.2g}, ‖QᵀQ − I‖ ≤ "
        f"{summary['max_orthogonality_error']:.2g}, ‖x − Q x(0)‖/‖x(0)‖ ≤ {summary['max_flow_error']:.2g}, "
        f"superposition ≤ {summary['max_superposition_error']:.2g} "
        f"(tanh: {summary['tanh_max_superposition_error']:.2g})"
    )
    rows = [
        {
            "t": float(t),
            "generator_norm": float(generator_norm[k]),
            **{f"{name}_error": float(values[k]) for name, values in errors.items()},
            "tanh_superposition_error": float(control["superposition"][k]),
            "tanh_norm_drift": float(control["norm_drift"][k]),
        }
        for k, t in enumerate(times)
    ]
    folder = analysis_dir("ode_linearity", args.out)
    files = [
        write_csv(rows, folder / "ode_linearity.csv"),
        write_json(summary, folder / "ode_linearity.json"),
        save_figure(plot_linearity(times, errors, control), folder / "ode_linearity.png"),
    ]
    publish("ode_linearity", folder, files, args.wandb, summary)
