"""The gradient bound (30) of Nestaas (2022 notes), ‖dL/dθ‖ ≤ ∫ ‖y(t)‖ dt = (t1 − t0)‖y(t1)‖, on trained
ODE-ARNNs (`ode_arnn`).

y(t) = [a(t) ∂f_θ/∂θ]ᵀ with the adjoint a(t) = ∂L/∂z(t), and dL/dθ = ∫ y dt (eq. 23, `arnn.analysis.sensitivity`).
The two halves of (30) have different standing:

- ‖dL/dθ‖ ≤ ∫ ‖y(t)‖ dt is the triangle inequality for an integral: it holds for every model.
- ∫ ‖y(t)‖ dt = (t1 − t0)‖y(t1)‖ needs the notes' hypothesis that ‖y‖ is constant (y(t) = W_t y(t1), W_t
  orthogonal); without it (t1 − t0)‖y(t1)‖ is no bound at all (z' = θ u(t) with u = 0 near t1 and L = z(t1) has
  y(t1) = 0 and dL/dθ = ∫ u dt ≠ 0).

For the ODE-ARNN f = σ(M z + V u + b), M = W − Wᵀ − γI, read out at the last state (classifier), the adjoint obeys
a' = −a D M with D = diag σ'(M z + V u + b). With σ = tanh, D varies along the trajectory and ∂f/∂θ depends on z
and u: ‖y‖ is not constant, and (30) is only the triangle inequality. With σ = identity and γ = 0, a' = −a S,
S = W − Wᵀ, so a(t) = a(t1) exp((t1 − t) S) keeps its norm; for θ = b (∂f/∂b = I) y_b(t) = Σ_batch a(t)ᵀ =
exp((t − t1) S) y_b(t1) is such an orthogonal flow and (30) holds with equality. The V and W parts of the same
model, y_V = Σ a(t)ᵀ u(t)ᵀ and y_W (from a(t)ᵀ z(t)ᵀ), still vary.

The demo trains both (tanh, and identity with γ = 0) briefly on digits with Lightning — or takes a checkpoint
written by `train.py` — and solves each trained model's own vector field with dopri5 at a tight tolerance, so the
numbers are those of the ODE the model defines (not of the fixed-step solver it trained with).

    python -m arnn.analysis gradient_bound [--hidden 16] [--epochs 3] [--checkpoint RUN/checkpoints/last.ckpt]
"""

import argparse
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from arnn.analysis.jacobian import checkpoint_label
from arnn.analysis.models import compose_config, fresh_model, input_batch, trained_model
from arnn.analysis.sensitivity import ProbedSolve, Sensitivity, piece_grid
from arnn.analysis.state import replaced_encoder
from arnn.cells.ode import AntisymmetricODECell
from arnn.errors import UserError
from arnn.lit.base import Batch, TaskModule
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv, write_json
from arnn.runs.checkpoint import CONFIG_KEY, read_checkpoint

MODELS = {
    "ode_arnn tanh": ["model=ode_arnn"],
    "ode_arnn linear": ["model=ode_arnn", "model.activation=identity", "model.gamma=0"],
}
"""The models the demo trains: the general case, and the linear one whose bias gradient meets the hypothesis."""


class ProbedODEEncoder(nn.Module):
    """Stands in for an `AntisymmetricODECell`: the same outputs x(t_1), …, x(t_T), from a `ProbedSolve` of the
    cell's own vector field over the sample grid t_k = k·dt, each sample interval one piece of `substeps` cells."""

    def __init__(self, cell: AntisymmetricODECell, substeps: int, rtol: float, atol: float) -> None:
        super().__init__()
        self.cell = cell
        self.substeps = substeps
        self.rtol = rtol
        self.atol = atol
        self.solve: ProbedSolve | None = None

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        cell = self.cell
        inputs = x.transpose(0, 1)
        bounds = torch.arange(inputs.shape[0] + 1, dtype=x.dtype) * cell.dt

        def field(k: int, t: Tensor, z: Tensor) -> Tensor:
            # Built from the parameters on every call, so a vector-Jacobian product reaches W, V and b.
            return cell.vector_field(cell.input_proj(inputs[k : k + 1]), bounds[k : k + 2])(t, z)

        z0 = cell.default_state(x.shape[0], x) if state is None else state
        self.solve = ProbedSolve(field, piece_grid(bounds, self.substeps), z0, rtol=self.rtol, atol=self.atol)
        ends = torch.stack(self.solve.ends, dim=1)
        return ends, ends[:, -1]


def ode_sensitivity(
    module: TaskModule, batch: Batch, substeps: int, rtol: float, atol: float
) -> dict[str, Sensitivity]:
    """y(t) and dL/dθ of the module's task loss on `batch` (float64), for θ = all of the cell's parameters
    ("all": W's upper triangle, V, b) and θ = b alone ("b")."""
    cell = module.net
    if not isinstance(cell, AntisymmetricODECell):
        raise UserError(f"gradient_bound needs an ode_arnn model, got {type(cell).__name__}; train with model=ode_arnn")
    module = module.double()
    probed = ProbedODEEncoder(cell, substeps, rtol, atol)
    parameters = dict(cell.named_parameters())
    with torch.enable_grad(), replaced_encoder(module, probed):
        loss = module.task_loss(tuple(part.double() if part.is_floating_point() else part for part in batch))
        full = probed.solve.sensitivity(loss, list(parameters.values()))
    names = list(parameters)
    start = sum(parameters[name].numel() for name in names[: names.index("input_proj.bias")])
    return {"all": full, "b": full.restricted(slice(start, start + cell.hidden_size))}


def train_briefly(overrides: list[str], epochs: int, batches: int) -> tuple[TaskModule, pl.LightningDataModule]:
    """The configured task module after `epochs` epochs of at most `batches` training batches (Lightning, CPU)."""
    module, datamodule = fresh_model(compose_config(["data=digits", *overrides]))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module.train(), datamodule)
    return module.eval(), datamodule


def checkpoint_labels(paths: list[Path]) -> list[str]:
    """ "<model> γ=<gamma> <activation>" per checkpoint, numbered when two would read the same."""
    labels = [
        f"{checkpoint_label(path)} {read_checkpoint(path)[CONFIG_KEY]['model'].get('activation', '')}".strip()
        for path in paths
    ]
    if len(set(labels)) < len(labels):
        labels = [f"{label} [{i}]" for i, label in enumerate(labels, 1)]
    return labels


def plot_bound(results: Mapping[str, Mapping[str, Sensitivity]]) -> Figure:
    """One panel per model: ‖y(t)‖ for θ = all and θ = b, with ‖y(t1)‖ dashed and both sides of (30) in the legend."""
    figure = new_figure(1, len(results), size=(5.5 * len(results), 4.0))
    for axes, (label, blocks) in zip(figure.axes, results.items(), strict=True):
        for (block, sensitivity), color in zip(blocks.items(), ("tab:blue", "tab:orange"), strict=False):
            s = sensitivity.summary()
            legend = f"θ = {block}: ‖dL/dθ‖ {s['grad_norm']:.3g} ≤ ∫‖y‖ {s['integral_of_norm']:.3g}"
            axes.semilogy(sensitivity.times.reshape(-1), sensitivity.norms.reshape(-1), color=color, label=legend)
            axes.axhline(
                float(sensitivity.norms[-1, -1]),
                color=color,
                linestyle="--",
                linewidth=0.8,
                label=f"‖y(t₁)‖: (t₁−t₀)‖y(t₁)‖ = {s['endpoint_bound']:.3g}",
            )
        axes.set_xlabel("t")
        axes.set_ylabel("‖y(t)‖")
        axes.set_title(label, fontsize="medium")
        axes.legend(fontsize="x-small")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.analysis gradient_bound", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, nargs="+", help="trained ode_arnn models (.ckpt written by arnn)")
    parser.add_argument("--hidden", type=int, default=16, help="hidden size of the models the demo trains")
    parser.add_argument("--epochs", type=int, default=3, help="epochs the demo trains each model")
    parser.add_argument("--train-batches", type=int, default=20, help="training batches per epoch")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="Hydra override")
    parser.add_argument("--batch", type=int, default=32, help="sequences of the validation split in L")
    parser.add_argument("--substeps", type=int, default=4, help="grid cells per sample interval (even, Simpson)")
    parser.add_argument("--rtol", type=float, default=1e-9, help="dopri5 relative tolerance")
    parser.add_argument("--atol", type=float, default=1e-11, help="dopri5 absolute tolerance")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    if min(args.hidden, args.epochs, args.train_batches, args.batch) < 1 or args.substeps < 2 or args.substeps % 2:
        parser.error("--hidden, --epochs, --train-batches and --batch must be >= 1, --substeps even and >= 2")
    if min(args.rtol, args.atol) <= 0:
        parser.error("--rtol and --atol must be > 0")

    if args.checkpoint:
        sources = {
            label: trained_model(path)
            for label, path in zip(checkpoint_labels(args.checkpoint), args.checkpoint, strict=True)
        }
    else:
        size = [f"model.hidden_size={args.hidden}", *args.override]
        sources = {
            label: train_briefly([*overrides, *size], args.epochs, args.train_batches)
            for label, overrides in MODELS.items()
        }
    results = {
        label: ode_sensitivity(module, input_batch(datamodule, args.batch), args.substeps, args.rtol, args.atol)
        for label, (module, datamodule) in sources.items()
    }
    summary = {label: {block: s.summary() for block, s in blocks.items()} for label, blocks in results.items()}
    for label, blocks in summary.items():
        for block, s in blocks.items():
            print(
                f"{label}, θ = {block}: ‖dL/dθ‖ = {s['grad_norm']:.4g} ≤ ∫‖y‖dt = {s['integral_of_norm']:.4g}; "
                f"(t1 − t0)‖y(t1)‖ = {s['endpoint_bound']:.4g}; ‖y‖ ∈ [{s['y_norm_min']:.3g}, {s['y_norm_max']:.3g}]"
            )
    rows = [
        {"model": label, "parameters": block, "t": float(t), "y_norm": float(norm)}
        for label, blocks in results.items()
        for block, sensitivity in blocks.items()
        for t, norm in zip(sensitivity.times.reshape(-1), sensitivity.norms.reshape(-1), strict=True)
    ]
    # Made once the checkpoints have loaded: a mistyped path leaves no empty analysis folder behind.
    folder = analysis_dir("gradient_bound", args.out, args.checkpoint[0] if args.checkpoint else None)
    files = [
        write_csv(rows, folder / "gradient_bound.csv"),
        write_json(summary, folder / "gradient_bound.json"),
        save_figure(plot_bound(results), folder / "gradient_bound.png"),
    ]
    publish("gradient_bound", folder, files, args.wandb)
