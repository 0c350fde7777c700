"""The update-rule experiment of Chu (2024 slides; the exponential map of Lezcano-Casado & Martínez-Rubio,
ICML 2019): does a gradient step keep W orthogonal?

W₀ = exp(B₀) with B₀ = A − Aᵀ, A_ij ~ N(0, 1/n). The gradients come from a fixed random quadratic loss
L(W) = ½‖W − T‖_F², T_ij ~ N(0, 1/n), so G = ∂L/∂W = W − T, taken at each update's own current W. Two updates,
both descent steps for this G (float64 throughout):

- Lie algebra: B ← B − α(G Wᵀ − W Gᵀ), W = exp(B). The slides write B ← B + α(G Wᵀ − W Gᵀ) with G the descent
  direction −∂L/∂W; here G is the gradient itself, hence the minus. B stays skew-symmetric, so WᵀW = I.
- naive: W ← W − α G, which leaves the orthogonal group after one step.

Both record ‖WᵀW − I‖_F and L(W) after every step.

    python -m arnn.analysis unitarity_drift [--size 64] [--steps 100] [--lr 0.01] [--seed 0] [--out DIR]
"""

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from arnn.cells.constrained import orthogonality_error
from arnn.output import analysis_dir, new_figure, save_figure, write_csv

TABLE_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def run(size: int = 64, steps: int = 100, lr: float = 0.01, seed: int = 0) -> dict[str, list[float]]:
    """Apply both updates for `steps` steps; per step i (list index i − 1): ‖WᵀW − I‖_F and L(W) of each."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=generator, dtype=torch.float64) / size**0.5
    target = torch.randn(size, size, generator=generator, dtype=torch.float64) / size**0.5
    b = a - a.t()
    w_lie = w_naive = torch.linalg.matrix_exp(b)

    def loss(w: Tensor) -> float:
        return 0.5 * torch.linalg.matrix_norm(w - target).square().item()

    history: dict[str, list[float]] = {"lie": [], "naive": [], "lie_loss": [], "naive_loss": []}
    for _ in range(steps):
        g = w_lie - target
        b = b - lr * (g @ w_lie.t() - w_lie @ g.t())
        w_lie = torch.linalg.matrix_exp(b)
        w_naive = w_naive - lr * (w_naive - target)
        history["lie"].append(orthogonality_error(w_lie).item())
        history["naive"].append(orthogonality_error(w_naive).item())
        history["lie_loss"].append(loss(w_lie))
        history["naive_loss"].append(loss(w_naive))
    return history


def plot(history: dict[str, list[float]], lr: float) -> Figure:
    """‖WᵀW − I‖_F against the step for both updates, log-scale y."""
    figure = new_figure()
    axes = figure.axes[0]
    steps = range(1, len(history["lie"]) + 1)
    axes.plot(steps, history["naive"], label=f"naive: W ← W − {lr}·G")
    axes.plot(steps, history["lie"], label=f"Lie algebra: B ← B − {lr}·(GWᵀ − WGᵀ), W = exp(B)")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel(r"$\|W^\top W - I\|_F$")
    axes.set_title("Distance from the orthogonal group")
    axes.legend()
    return figure


def main(argv: list[str] | None = None) -> None:
    """Run the experiment, print a short table, write unitarity_drift.csv and unitarity_drift.png to --out."""
    parser = argparse.ArgumentParser(
        prog="python -m arnn.analysis unitarity_drift", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=int, default=64, help="n of the n×n matrix W")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01, help="step size α")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="output folder (default: outputs/analysis/unitarity_drift/<time>)")
    args = parser.parse_args(argv)
    if args.size < 1 or args.steps < 1 or not args.lr > 0:
        parser.error("--size and --steps must be >= 1 and --lr > 0")

    history = run(args.size, args.steps, args.lr, args.seed)
    print(f"{'step':>5}  {'lie':>10}  {'naive':>10}   ‖WᵀW − I‖_F, n={args.size}, α={args.lr}")
    for step in sorted({*(s for s in TABLE_STEPS if s <= args.steps), args.steps}):
        print(f"{step:>5}  {history['lie'][step - 1]:10.3e}  {history['naive'][step - 1]:10.3e}")
    folder = analysis_dir("unitarity_drift", args.out)
    rows = [
        {"step": step, **{name: f"{series[step - 1]:.6e}" for name, series in history.items()}}
        for step in range(1, args.steps + 1)
    ]
    files = [
        write_csv(rows, folder / "unitarity_drift.csv"),
        save_figure(plot(history, args.lr), folder / "unitarity_drift.png"),
    ]
    print("wrote " + " and ".join(map(str, files)))


if __name__ == "__main__":
    main()
