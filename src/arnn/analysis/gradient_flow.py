"""How much gradient reaches each step: ‖∂L/∂h_t‖ over t, back-propagated through the recurrence.

    ∂L/∂h_t = (∂h_{t+1}/∂h_t)ᵀ ∂L/∂h_{t+1} (+ the readout of step t, for per-step losses)

A vanishing-gradient network shows norms that fall off exponentially as t moves away from the scored steps;
an A-RNN's stay flat.

    python -m arnn.analysis gradient_flow                     # rnn, lstm, arnn, arnn_gated at init on digits
    python -m arnn.analysis gradient_flow --checkpoint RUN/checkpoints/last.ckpt ...
"""

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from arnn.analysis.jacobian import checkpoint_label, model_label
from arnn.analysis.models import compose_config, fresh_model, input_batch, trained_model
from arnn.analysis.state import StateLayout, add_probe, replaced_encoder
from arnn.cells.base import SequenceEncoder, State
from arnn.lit.base import Batch, TaskModule
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv


class ProbedEncoder(nn.Module):
    """Runs `net` over x in segments of `stride` steps, adding a zero probe that requires grad to the state
    entering each segment: net(x[:, a:a+stride], h_a + p_a). The values are those of one `net(x, state)` call;
    ∂L/∂p_a is ∂L/∂h_a through every later step."""

    def __init__(self, net: SequenceEncoder, stride: int = 1) -> None:
        super().__init__()
        self.net = net
        self.stride = stride
        self.probes: list[tuple[int, Tensor]] = []

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        state = self.net.default_state(x.shape[0], x) if state is None else state
        zeros = StateLayout.of(state).flatten(state).detach()
        outputs = []
        for start in range(0, x.shape[1], self.stride):
            probe = torch.zeros_like(zeros).requires_grad_()
            self.probes.append((start, probe))
            y, state = self.net(x[:, start : start + self.stride], add_probe(state, probe))
            outputs.append(y)
        return torch.cat(outputs, dim=1), state


def gradient_flow(module: TaskModule, batch: Batch, stride: int = 1) -> tuple[list[int], Tensor]:
    """Steps t = 0, stride, 2·stride, … < T and ‖∂L/∂h_t‖ at each, L = module.task_loss(batch).

    h_t is the full state after t steps (h_0 the initial state), flattened as in `StateLayout`, for the whole
    batch: the norm is taken over (B, d). The gradient is the total one through all later steps, from one
    forward and one backward pass with the module's own forward and loss; for per-step losses it leaves out the
    readout of y_t itself (y_t comes out of the segment before the probe).
    """
    probed = ProbedEncoder(module.net, stride)
    with torch.enable_grad(), replaced_encoder(module, probed):
        loss = module.task_loss(batch)
        grads = torch.autograd.grad(loss, [probe for _, probe in probed.probes])
    return [start for start, _ in probed.probes], torch.stack([grad.norm() for grad in grads]).detach()


def plot_gradient_flow(curves: Mapping[str, tuple[Sequence[int], Tensor]]) -> Figure:
    """‖∂L/∂h_t‖ vs t on a log scale, one line per label."""
    figure = new_figure(size=(6.0, 4.0))
    axes = figure.axes[0]
    for label, (steps, norms) in curves.items():
        axes.semilogy(steps, norms.clamp_min(1e-300).numpy(), label=label)
    axes.set_xlabel("step t")
    axes.set_ylabel("‖∂L/∂h_t‖")
    axes.set_title("Gradient reaching each step")
    axes.legend(fontsize="small")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.analysis gradient_flow", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, nargs="+", help="trained models (.ckpt written by arnn)")
    parser.add_argument("--models", nargs="+", default=["rnn", "lstm", "arnn", "arnn_gated"], help="at init")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="Hydra override")
    parser.add_argument("--batch", type=int, default=32, help="sequences of the validation split")
    parser.add_argument("--stride", type=int, default=1, help="steps between probed states")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.stride < 1:
        parser.error("--batch and --stride must be >= 1")

    if args.checkpoint:
        sources = [(checkpoint_label(path), trained_model(path)) for path in args.checkpoint]
    else:
        configs = [(model, compose_config([f"model={model}", *args.override])) for model in args.models]
        sources = [(model_label(cfg, model), fresh_model(cfg)) for model, cfg in configs]
    # Made only once the models loaded: a mistyped checkpoint path leaves no empty folder behind.
    folder = analysis_dir("gradient_flow", args.out, args.checkpoint[0] if args.checkpoint else None)
    curves = {}
    for label, (module, datamodule) in sources:
        curves[label] = gradient_flow(module, input_batch(datamodule, args.batch), args.stride)
        steps, norms = curves[label]
        print(f"{label}: ‖∂L/∂h_t‖ {norms[-1]:.3g} at t={steps[-1]}, {norms[0]:.3g} at t=0")
    rows = [
        {"label": label, "t": t, "grad_norm": norm.item()}
        for label, (steps, norms) in curves.items()
        for t, norm in zip(steps, norms, strict=True)
    ]
    files = [
        write_csv(rows, folder / "gradient_flow.csv"),
        save_figure(plot_gradient_flow(curves), folder / "gradient_flow.png"),
    ]
    publish("gradient_flow", folder, files, args.wandb)
