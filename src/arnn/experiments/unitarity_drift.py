"""Seed 003's update-rule experiment: does a gradient step keep W orthogonal?

W₀ = exp(B₀) with B₀ = A − Aᵀ, A_ij ~ N(0, 1/n). The gradients come from a fixed random quadratic loss
L(W) = ½‖W − T‖_F², T_ij ~ N(0, 1/n), so G = ∂L/∂W = W − T, taken at each update's own current W. Two updates,
both descent steps for this G (float64 throughout):

- Lie algebra: B ← B − α(G Wᵀ − W Gᵀ), W = exp(B). The seed writes B ← B + α(G Wᵀ − W Gᵀ) with G the descent
  direction −∂L/∂W; here G is the gradient itself, hence the minus. B stays skew-symmetric, so WᵀW = I.
- naive: W ← W − α G, which leaves the orthogonal group after one step.

Both record ‖WᵀW − I‖_F and L(W) after every step.

    python -m arnn.experiments.unitarity_drift [--size 64] [--steps 100] [--lr 0.01] [--seed 0] [--out DIR]
"""

import argparse
import csv
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from arnn.cells.constrained import orthogonality_error

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


def write_csv(history: dict[str, list[float]], path: Path) -> None:
    """One row per step: step, then each recorded series."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["step", *history])
        for step, values in enumerate(zip(*history.values(), strict=True), start=1):
            writer.writerow([step, *(f"{value:.6e}" for value in values)])


def plot(history: dict[str, list[float]], path: Path, lr: float) -> None:
    """‖WᵀW − I‖_F against the step for both updates, log-scale y."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = range(1, len(history["lie"]) + 1)
    axes.plot(steps, history["naive"], label=f"naive: W ← W − {lr}·G")
    axes.plot(steps, history["lie"], label=f"Lie algebra: B ← B − {lr}·(GWᵀ − WGᵀ), W = exp(B)")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel(r"$\|W^\top W - I\|_F$")
    axes.set_title("Distance from the orthogonal group")
    axes.legend()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    """Run the experiment, print a short table, write unitarity_drift.csv and unitarity_drift.png to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="n of the n×n matrix W")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01, help="step size α")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/unitarity_drift"))
    args = parser.parse_args(argv)
    if args.size < 1 or args.steps < 1 or not args.lr > 0:
        parser.error("--size and --steps must be >= 1 and --lr > 0")

    history = run(args.size, args.steps, args.lr, args.seed)
    print(f"{'step':>5}  {'lie':>10}  {'naive':>10}   ‖WᵀW − I‖_F, n={args.size}, α={args.lr}")
    for step in sorted({*(s for s in TABLE_STEPS if s <= args.steps), args.steps}):
        print(f"{step:>5}  {history['lie'][step - 1]:10.3e}  {history['naive'][step - 1]:10.3e}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(history, args.out / "unitarity_drift.csv")
    plot(history, args.out / "unitarity_drift.png", args.lr)
    print(f"wrote {args.out / 'unitarity_drift.csv'} and {args.out / 'unitarity_drift.png'}")


if __name__ == "__main__":
    main()
