"""The counterexample in Nestaas (2022 notes) to (30) as a lower bound: W_{t+T/2} = −W_t makes dL/dθ = ∫ y dt
vanish, ‖y‖ constant.

The model is the linear antisymmetric ODE with a learnable bias, z' = S z + b on [0, T], θ = b, S = A − Aᵀ fixed,
L = ½‖z(T) − target‖². Then ∂f/∂b = I, so y(t) = a(t)ᵀ, and the adjoint a' = −aS gives

    y(t) = W_t y(T),   W_t = exp((t − T) S)  orthogonal,   ‖y(t)‖ = ‖y(T)‖  (the hypothesis of (30) holds).

Choose S = K diag(ω_j J) Kᵀ (K orthogonal, J the 2×2 quarter turn, n even) with ω_j = (2j + 1)·2π/T: then
exp(T S / 2) = −I, so W_{t+T/2} = −W_t, the two halves of ∫ y dt cancel, and

    dL/db = ∫_0^T y(t) dt = S⁻¹(I − exp(−T S)) y(T) = 0,   while   ∫_0^T ‖y(t)‖ dt = T ‖y(T)‖ > 0.

Equivalently z(T) = exp(TS) z(0) + S⁻¹(exp(TS) − I) b = z(0) does not depend on b at all. The control shifts every
ω_j by half a turn per period ((2j + 1.5)·2π/T): the same constant ‖y‖, a gradient that does not vanish.
Everything below is computed numerically: z by torchdiffeq (dopri5), a(t) and dL/db by autograd, ∫ by Simpson.

    python -m arnn.analysis gradient_cancellation [--hidden 6] [--horizon 10] [--steps 64]
"""

import argparse
import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from scipy.integrate import cumulative_simpson
from torch import Tensor

from arnn.analysis.sensitivity import ProbedSolve, Sensitivity
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv, write_json

FLIP_OFFSET = 1.0
"""ω_j = (2j + offset)·2π/T: offset 1 gives exp(TS/2) = −I; the control's 1.5 does not."""
CONTROL_OFFSET = 1.5


def rotation_generator(frequencies: Tensor, basis: Tensor) -> Tensor:
    """S = K diag(ω_j J) Kᵀ with J = [[0, −1], [1, 0]]: antisymmetric, eigenvalues ±iω_j; n = 2·len(ω)."""
    n = 2 * len(frequencies)
    blocks = torch.zeros(n, n, dtype=basis.dtype)
    index = torch.arange(0, n, 2)
    blocks[index + 1, index] = frequencies.to(basis.dtype)
    blocks[index, index + 1] = -frequencies.to(basis.dtype)
    return basis @ blocks @ basis.t()


def frequencies(pairs: int, horizon: float, offset: float) -> Tensor:
    """ω_j = (2j + offset)·2π/T, j = 0 … pairs − 1."""
    return (2 * torch.arange(pairs, dtype=torch.float64) + offset) * 2 * math.pi / horizon


def bias_sensitivity(
    generator: Tensor, z0: Tensor, target: Tensor, horizon: float, steps: int, rtol: float, atol: float
) -> Sensitivity:
    """y(t) and dL/db for z' = S z + b, b = 0, L = ½‖z(T) − target‖², on `steps` cells of [0, T]."""
    bias = torch.zeros_like(z0[0]).requires_grad_()
    grid = torch.linspace(0, horizon, steps + 1, dtype=z0.dtype)[None]
    solve = ProbedSolve(lambda k, t, z: z @ generator.t() + bias, grid, z0, rtol=rtol, atol=atol)
    loss = 0.5 * (solve.ends[-1] - target).square().sum()
    return solve.sensitivity(loss, [bias])


def flow_error(generator: Tensor, sensitivity: Sensitivity) -> float:
    """max_t ‖y(t) − exp((t − T) S) y(T)‖ / ‖y(T)‖: the computed y is the orthogonal flow W_t y(T)."""
    times, y = sensitivity.times[0], sensitivity.y[0]
    flows = torch.linalg.matrix_exp((times - times[-1])[:, None, None] * generator)
    return float(((y - flows @ y[-1]).norm(dim=-1)).max() / y[-1].norm())


def running_integrals(sensitivity: Sensitivity) -> tuple[Tensor, Tensor]:
    """‖∫_0^t y ds‖ and ∫_0^t ‖y‖ ds at each grid point (Simpson, cumulative)."""
    times, y = sensitivity.times[0].numpy(), sensitivity.y[0].numpy()
    vector = cumulative_simpson(y, x=times, axis=0, initial=0)
    norm = cumulative_simpson(sensitivity.norms[0].numpy(), x=times, initial=0)
    return torch.as_tensor(vector).norm(dim=-1), torch.as_tensor(norm)


def plot_cancellation(results: dict[str, tuple[Sensitivity, Tensor, Tensor]], horizon: float) -> Figure:
    """Left: a few components of y(t) and ±‖y(t)‖ for the flip generator; right: the running integrals."""
    figure = new_figure(1, 2, size=(11.0, 4.0))
    left, right = figure.axes
    flip, _, _ = results["flip"]
    times = flip.times[0]
    for i in range(min(3, flip.y.shape[-1])):
        left.plot(times, flip.y[0, :, i], linewidth=1.0, label=f"y_{i + 1}(t)")
    for sign in (1, -1):
        left.plot(times, sign * flip.norms[0], color="black", linewidth=0.8, label="±‖y(t)‖" if sign > 0 else None)
    left.axvline(horizon / 2, color="grey", linestyle=":", linewidth=0.8)
    left.set_xlabel("t")
    left.set_title("exp(TS/2) = −I: y(t + T/2) = −y(t), ‖y‖ constant", fontsize="medium")
    left.legend(fontsize="x-small")
    for (name, (sensitivity, vector, norm)), color in zip(results.items(), ("tab:blue", "tab:orange"), strict=False):
        label = "exp(TS/2) = −I" if name == "flip" else "control (ω shifted)"
        t = sensitivity.times[0]
        right.plot(t, vector, color=color, linewidth=1.2, label=f"‖∫₀ᵗ y ds‖, {label} (→ {vector[-1]:.2g})")
        right.plot(t, norm, color=color, linestyle="--", linewidth=1.0, label=f"∫₀ᵗ ‖y‖ ds (→ {norm[-1]:.3g})")
    right.set_xlabel("t")
    right.set_title("z' = Sz + b: dL/db = ∫₀ᵀ y dt", fontsize="medium")
    right.legend(fontsize="x-small")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m arnn.analysis gradient_cancellation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--hidden", type=int, default=6, help="state size n (even)")
    parser.add_argument("--horizon", type=float, default=10.0, help="T = t1 − t0")
    parser.add_argument("--steps", type=int, default=64, help="grid cells on [0, T] (even, for Simpson)")
    parser.add_argument("--seed", type=int, default=0, help="seed of K, z(0) and the target")
    parser.add_argument("--rtol", type=float, default=1e-9, help="dopri5 relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-11, help="dopri5 absolute tolerance")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    if args.hidden < 2 or args.hidden % 2 or args.steps < 2 or args.steps % 2:
        parser.error("--hidden and --steps must be even and >= 2 (an odd n leaves a fixed direction: exp(TS/2) ≠ −I)")
    if min(args.horizon, args.rtol, args.atol) <= 0:
        parser.error("--horizon, --rtol and --atol must be > 0")

    generator = torch.Generator().manual_seed(args.seed)
    n = args.hidden
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    z0, target = torch.randn(2, 1, n, generator=generator, dtype=torch.float64)
    results, summary = {}, {"hidden": n, "horizon": args.horizon, "steps": args.steps, "seed": args.seed}
    for name, offset in (("flip", FLIP_OFFSET), ("control", CONTROL_OFFSET)):
        omegas = frequencies(n // 2, args.horizon, offset)
        generator_matrix = rotation_generator(omegas, basis)
        sensitivity = bias_sensitivity(generator_matrix, z0, target, args.horizon, args.steps, args.rtol, args.atol)
        results[name] = (sensitivity, *running_integrals(sensitivity))
        half_turn = torch.linalg.matrix_exp(args.horizon / 2 * generator_matrix)
        summary[name] = {
            **sensitivity.summary(),
            "frequencies": omegas.tolist(),
            "half_period_flip_error": float(torch.linalg.matrix_norm(half_turn + torch.eye(n), ord=2)),
            "flow_error": flow_error(generator_matrix, sensitivity),
        }
    for name, values in summary.items():
        if isinstance(values, dict):
            print(
                f"{name}: ‖dL/db‖ = {values['grad_norm']:.3g}, ‖∫y dt‖ = {values['norm_of_integral']:.3g}, "
                f"∫‖y‖dt = {values['integral_of_norm']:.4g} = T‖y(T)‖ = {values['endpoint_bound']:.4g} "
                f"(‖y‖ spread {values['y_norm_relative_spread']:.2g}), ‖exp(TS/2) + I‖ = "
                f"{values['half_period_flip_error']:.2g}"
            )
    rows = [
        {
            "generator": name,
            "t": float(t),
            "y_norm": float(norm),
            "running_integral_norm": float(vector[i]),
            "running_norm_integral": float(total[i]),
        }
        for name, (sensitivity, vector, total) in results.items()
        for i, (t, norm) in enumerate(zip(sensitivity.times[0], sensitivity.norms[0], strict=True))
    ]
    folder = analysis_dir("gradient_cancellation", args.out)
    files = [
        write_csv(rows, folder / "gradient_cancellation.csv"),
        write_json(summary, folder / "gradient_cancellation.json"),
        save_figure(plot_cancellation(results, args.horizon), folder / "gradient_cancellation.png"),
    ]
    publish("gradient_cancellation", folder, files, args.wandb, summary)
