"""The simulation of Chang et al. (ICLR 2019), Fig. 1: 2-D recurrences without input or bias, iterated from three
initial states.

    vanilla:        h_t = tanh(W h_{t-1})
    antisymmetric:  h_t = h_{t-1} + ε tanh((W − Wᵀ − γI) h_{t-1})

With ‖W‖ < 1 the vanilla state collapses to 0 (‖h_t‖ ≤ ‖W‖ᵗ ‖h_0‖); with a large W it saturates. In 2-D,
W − Wᵀ = a·[[0, 1], [−1, 0]] with a = W₁₂ − W₂₁, and at γ = 0 the flow h' = tanh(a J h) is Hamiltonian:
H(h) = Σᵢ log cosh(a hᵢ) / a is constant along it, so its orbits close. Forward Euler raises H by at most
ε² |a| ‖tanh(M h)‖² / 2 ≤ ε² |a| per step (the first-order term ∇H·h' vanishes), so the iterates orbit for
many steps; γ > 0 damps them into a slow inward spiral.

    python -m arnn.analysis phase_portrait [--weight W11 W12 W21 W22] [--eps 0.02] [--gamma 0.1] [--steps 1000]
"""

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv

DEFAULT_WEIGHT = (0.5, 0.8, 0.0, 0.2)
"""W (row-major): ‖W‖₂ ≈ 0.96 < 1, so the vanilla RNN collapses; eigenvalues 0.5 and 0.2, so 3·W (1.5 > 1)
saturates at a fixed point; a = W₁₂ − W₂₁ = 0.8."""
DEFAULT_STARTS = ((1.0, 0.5), (-1.5, -1.0), (0.3, -2.0))


def vanilla_trajectory(weight: Tensor, start: Tensor, steps: int) -> Tensor:
    """States h_0 … h_steps (steps + 1, 2) of h_t = tanh(W h_{t-1})."""
    states = [start]
    for _ in range(steps):
        states.append(torch.tanh(weight @ states[-1]))
    return torch.stack(states)


def antisymmetric_matrix(weight: Tensor, gamma: float) -> Tensor:
    """M = W − Wᵀ − γI."""
    return weight - weight.T - gamma * torch.eye(len(weight), dtype=weight.dtype)


def antisymmetric_trajectory(weight: Tensor, start: Tensor, steps: int, eps: float, gamma: float) -> Tensor:
    """States h_0 … h_steps (steps + 1, 2) of h_t = h_{t-1} + ε tanh((W − Wᵀ − γI) h_{t-1})."""
    m = antisymmetric_matrix(weight, gamma)
    states = [start]
    for _ in range(steps):
        states.append(states[-1] + eps * torch.tanh(m @ states[-1]))
    return torch.stack(states)


def hamiltonian(states: Tensor, a: float) -> Tensor:
    """H(h) = Σᵢ log cosh(a hᵢ) / a for states (..., 2): constant along h' = tanh(a J h), J = [[0, 1], [−1, 0]]
    (∂H/∂h₂ = tanh(a h₂) = h₁', −∂H/∂h₁ = −tanh(a h₁) = h₂'). At a = 0 nothing moves; ‖h‖²/2 is returned."""
    if a == 0:
        return states.square().sum(-1) / 2
    return (torch.logaddexp(a * states, -a * states) - math.log(2)).sum(-1) / a


def portraits(
    weight: Tensor, starts: Tensor, steps: int, eps: float, gamma: float, gain: float
) -> dict[str, list[Tensor]]:
    """Panel title → one trajectory per start: vanilla with W and with gain·W, antisymmetric at γ = 0 and γ."""
    return {
        "vanilla  tanh(W h)": [vanilla_trajectory(weight, h0, steps) for h0 in starts],
        f"vanilla  tanh({gain:g}·W h)": [vanilla_trajectory(gain * weight, h0, steps) for h0 in starts],
        f"antisymmetric  ε={eps:g}, γ=0": [antisymmetric_trajectory(weight, h0, steps, eps, 0.0) for h0 in starts],
        f"antisymmetric  ε={eps:g}, γ={gamma:g}": [
            antisymmetric_trajectory(weight, h0, steps, eps, gamma) for h0 in starts
        ],
    }


def plot_portraits(panels: Mapping[str, Sequence[Tensor]]) -> Figure:
    figure = new_figure(1, len(panels), size=(3.2 * len(panels), 3.4))
    limit = 1.1 * max(float(t.abs().max()) for trajectories in panels.values() for t in trajectories)
    for axes, (title, trajectories) in zip(figure.axes, panels.items(), strict=True):
        for index, trajectory in enumerate(trajectories):
            (line,) = axes.plot(trajectory[:, 0], trajectory[:, 1], linewidth=0.9, label=f"start {index + 1}")
            axes.plot(*trajectory[0], "o", color=line.get_color(), markersize=5)
            axes.plot(*trajectory[-1], "x", color=line.get_color(), markersize=6)
        axes.set_title(title, fontsize="medium")
        axes.set_xlim(-limit, limit)
        axes.set_ylim(-limit, limit)
        axes.set_aspect("equal")
        axes.set_xlabel("h₁")
    figure.axes[0].set_ylabel("h₂")
    figure.axes[0].legend(fontsize="x-small", loc="lower left")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.analysis phase_portrait", description=__doc__.split("\n")[0])
    parser.add_argument("--weight", type=float, nargs=4, default=DEFAULT_WEIGHT, metavar=("W11", "W12", "W21", "W22"))
    parser.add_argument("--eps", type=float, default=0.02, help="Euler step ε")
    parser.add_argument("--gamma", type=float, default=0.1, help="diffusion γ of the last panel")
    parser.add_argument("--gain", type=float, default=3.0, help="vanilla panel with gain·W (saturates)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument(
        "--start", type=float, nargs=2, action="append", metavar=("H1", "H2"), help="initial state (repeatable)"
    )
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    if args.eps <= 0 or args.gamma < 0 or args.steps < 1:
        parser.error("need --eps > 0, --gamma >= 0 and --steps >= 1")

    weight = torch.tensor(args.weight, dtype=torch.float64).view(2, 2)
    starts = torch.tensor(args.start or DEFAULT_STARTS, dtype=torch.float64)
    panels = portraits(weight, starts, args.steps, args.eps, args.gamma, args.gain)
    a = float(weight[0, 1] - weight[1, 0])
    rows = [
        {"panel": title, "start": index + 1, "t": t, "h1": h[0].item(), "h2": h[1].item(), "norm": h.norm().item()}
        for title, trajectories in panels.items()
        for index, trajectory in enumerate(trajectories)
        for t, h in enumerate(trajectory)
    ]
    drift = max(float((hamiltonian(t, a) - hamiltonian(t[0], a)).abs().max()) for t in list(panels.values())[2])
    print(
        f"γ = 0: H drifts by at most {drift:.3g} over {args.steps} steps (bound ε²|a|·steps = "
        f"{args.eps**2 * abs(a) * args.steps:.3g})"
    )
    folder = analysis_dir("phase_portrait", args.out)
    files = [
        write_csv(rows, folder / "phase_portrait.csv"),
        save_figure(plot_portraits(panels), folder / "phase_portrait.png"),
    ]
    publish("phase_portrait", folder, files, args.wandb)
