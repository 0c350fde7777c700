"""Eigenvalue magnitudes |λ| of the end-to-end Jacobian J = ∂h_T/∂h_0 (the Jacobian figure of Chang et al., ICLR 2019).

J multiplies the gradient on its way from the last state back to the first, ∂L/∂h_0 = Jᵀ ∂L/∂h_T, so |λ| ≪ 1
means vanishing and |λ| ≫ 1 exploding gradients. An A-RNN with small γ keeps |λ| ≈ 1 with a small spread; an
LSTM's spectrum collapses towards 0.

    python -m arnn.analysis jacobian [--eps 0.01]             # lstm and arnn at γ ∈ {0.001, 0.01, 0.1, 1}, at init
    python -m arnn.analysis jacobian --checkpoint RUN/checkpoints/last.ckpt ...   # trained models
    python -m arnn.analysis jacobian --runs outputs/train/multiruns/DATE ...      # JacobianSpectrumCallback's CSVs

Training with `callbacks=[default,jacobian_spectrum]` records the spectrum every epoch (`JacobianSpectrumCallback`).
"""

import argparse
import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from torch import Tensor

from arnn.analysis.models import compose_config, fresh_model, input_batch, trained_model
from arnn.analysis.state import StateLayout, encoder_input
from arnn.cells.base import SequenceEncoder, State
from arnn.errors import UserError
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv
from arnn.runs.checkpoint import CONFIG_KEY, read_checkpoint

SPECTRUM_FILE = "jacobian_spectrum"
"""Stem of the CSV and PNG that JacobianSpectrumCallback writes into the run dir."""


def end_to_end_jacobian(net: SequenceEncoder, x: Tensor, state: State | None = None, row_steps: int = 2**18) -> Tensor:
    """J (B, d, d) with J[b, i, j] = ∂h_T[b, i] / ∂h_0[b, j] for each sequence b of x (B, T, m).

    h is the full state flattened to d real numbers (`StateLayout`: [h; c] for an LSTM, [Re h; Im h] for complex
    states); h_0 = `state`, zeros when None. Row i of J_b is the vector-Jacobian product e_iᵀ J_b. Sequences do
    not interact, so the batch is repeated k times and copy i gets e_i: one forward and one backward pass give k
    rows of all B Jacobians, with k·B·T ≤ `row_steps` per pass to bound the memory. (Batched grad outputs,
    `is_grads_batched`, cannot run the A-RNN eager/fused backends' hand-written backward under vmap; one backward
    pass per row costs d times the per-call overhead.)
    """
    batch = x.shape[0]
    state = net.default_state(batch, x) if state is None else state
    layout = StateLayout.of(state)
    h0 = layout.flatten(state).detach()
    size = layout.size
    copies = max(1, min(size, row_steps // (batch * max(1, x.shape[1]))))
    parts = []
    with torch.enable_grad():
        for first in range(0, size, copies):
            k = min(copies, size - first)
            start = h0.repeat(k, 1).requires_grad_()
            _, final = net(x.detach().repeat(k, 1, 1), layout.unflatten(start))
            h_final = StateLayout.of(final).flatten(final)
            selector = torch.zeros(k, batch, h_final.shape[1], dtype=h_final.dtype, device=h_final.device)
            selector[torch.arange(k), :, torch.arange(first, first + k)] = 1
            (grad,) = torch.autograd.grad(h_final, start, selector.flatten(0, 1))
            parts.append(grad.view(k, batch, size))
    return torch.cat(parts).transpose(0, 1)


def spectrum_stats(jacobian: Tensor) -> dict[str, float]:
    """Mean, std, min, median and max of |λ| over the eigenvalues λ of all B Jacobians (B, d, d), and
    `radius_mean`, the mean spectral radius max_i |λ_i| per sequence."""
    magnitudes = torch.linalg.eigvals(jacobian.double()).abs()
    return {
        "mean": magnitudes.mean().item(),
        "std": magnitudes.std().item(),
        "min": magnitudes.min().item(),
        "median": magnitudes.median().item(),
        "max": magnitudes.max().item(),
        "radius_mean": magnitudes.amax(dim=1).mean().item(),
    }


def model_label(config: Mapping[str, Any], name: str | None = None) -> str:
    """ "<model> γ=<gamma>" for a run's config; `name` is the model config's name (e.g. "arnn"), else the
    encoder's class (and kind, for torch's layers)."""
    model = config["model"]
    if name is None:
        name = str(model.get("kind") or model["_target_"].rsplit(".", 1)[-1])
    return f"{name} γ={float(model['gamma']):g}" if "gamma" in model else name


def plot_spectra(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Mean ± std of |λ| per model (rows with label, steps, mean, std)."""
    figure = new_figure(size=(1.2 + 0.8 * len(rows), 3.6))
    axes = figure.axes[0]
    positions = range(len(rows))
    below = [min(r["std"], r["mean"]) for r in rows]  # |λ| ≥ 0: the bar stops at zero
    axes.errorbar(positions, [r["mean"] for r in rows], yerr=[below, [r["std"] for r in rows]], fmt="o", capsize=4)
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xticks(list(positions), [r["label"] for r in rows], rotation=30, ha="right")
    axes.set_ylabel("|λ| of ∂h_T/∂h_0 (mean ± std)")
    steps = sorted({r["steps"] for r in rows})
    axes.set_title(f"End-to-end Jacobian eigenvalues, T = {', '.join(map(str, steps))}")
    return figure


def plot_training_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """Mean |λ| vs epoch with a ± std band, one curve per label (rows with epoch, mean, std)."""
    figure = new_figure(size=(7.0, 4.0))
    axes = figure.axes[0]
    for label, rows in curves.items():
        epochs = [float(r["epoch"]) for r in rows]
        mean = torch.tensor([float(r["mean"]) for r in rows])
        std = torch.tensor([float(r["std"]) for r in rows])
        (line,) = axes.plot(epochs, mean, marker=".", label=label or None)
        # |λ| ≥ 0: the band stops at zero where the std is larger than the mean
        axes.fill_between(epochs, (mean - std).clamp(min=0), mean + std, color=line.get_color(), alpha=0.2)
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("epoch")
    axes.set_ylabel("|λ| of ∂h_T/∂h_0 (mean ± std)")
    axes.set_title("End-to-end Jacobian eigenvalues during training")
    if any(curves):
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def _spectrum_row(label: str, module: pl.LightningModule, datamodule: pl.LightningDataModule, batch: int) -> dict:
    x, _ = input_batch(datamodule, batch)
    x = encoder_input(module, x)
    stats = spectrum_stats(end_to_end_jacobian(module.net, x))
    print(f"{label}: |λ| mean {stats['mean']:.4g}, std {stats['std']:.4g} over T = {x.shape[1]} steps")
    return {"label": label, "steps": x.shape[1], **stats}


def at_init(
    models: Sequence[str], gammas: Sequence[float], overrides: Sequence[str], batch: int, eps: float | None = None
) -> list[dict]:
    """Spectrum rows of freshly initialised models: one row per γ for models with a `gamma` option, all of them
    at Euler step `eps` when given (for models with an `eps` option)."""
    rows = []
    for model in models:
        options = compose_config([f"model={model}", *overrides]).model
        chosen = [f"model={model}", *([f"model.eps={eps}"] if eps is not None and "eps" in options else [])]
        for gamma in gammas if "gamma" in options else [None]:
            cfg = compose_config([*chosen, *([f"model.gamma={gamma}"] if gamma is not None else []), *overrides])
            rows.append(_spectrum_row(model_label(cfg, model), *fresh_model(cfg), batch))
    return rows


def checkpoint_label(checkpoint: Path) -> str:
    config = read_checkpoint(checkpoint)[CONFIG_KEY]
    tags = config.get("tags") or [None]
    return model_label(config, tags[0])


def run_curves(folders: Sequence[Path]) -> dict[str, list[dict]]:
    """The callback's CSV of each run, labelled "<model> γ=<gamma>" from the run's .hydra files; a folder
    without the CSV stands for the runs in its subfolders (a multirun)."""
    curves = {}
    for folder in folders:
        found = [folder / f"{SPECTRUM_FILE}.csv"] if (folder / f"{SPECTRUM_FILE}.csv").is_file() else []
        found = found or sorted(folder.glob(f"*/{SPECTRUM_FILE}.csv"))
        if not found:
            raise UserError(
                f"no {SPECTRUM_FILE}.csv in {folder} or its subfolders; "
                "train with 'callbacks=[default,jacobian_spectrum]' first"
            )
        for path in found:
            with path.open(newline="") as file:
                curves[_run_label(path.parent, curves)] = list(csv.DictReader(file))
    return curves


def _run_label(run: Path, taken: Mapping[str, Any]) -> str:
    hydra_dir = run / ".hydra"
    if (hydra_dir / "config.yaml").is_file():
        config = OmegaConf.load(hydra_dir / "config.yaml")
        name = None
        if (hydra_dir / "hydra.yaml").is_file():
            name = OmegaConf.select(OmegaConf.load(hydra_dir / "hydra.yaml"), "hydra.runtime.choices.model")
        label = model_label(config, name)
    elif checkpoints := sorted((run / "checkpoints").glob("*.ckpt")):
        label = checkpoint_label(checkpoints[-1])
    else:
        label = run.name
    return label if label not in taken else f"{label} ({run.name})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.analysis jacobian", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, nargs="+", help="trained models (.ckpt written by arnn)")
    source.add_argument("--runs", type=Path, nargs="+", help="run dirs (or multirun dirs) of callback CSVs")
    parser.add_argument("--models", nargs="+", default=["lstm", "arnn"], help="model configs at init")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0], help="γ values")
    parser.add_argument("--eps", type=float, help="Euler step ε of models that have one (default: config's)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="Hydra override")
    parser.add_argument("--batch", type=int, default=32, help="sequences of the validation split")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")

    if args.runs:
        folder = analysis_dir("jacobian", args.out)
        curves = run_curves(args.runs)
        rows = [{"label": label, **row} for label, runs in curves.items() for row in runs]
        figure = plot_training_curves(curves)
    else:
        if args.checkpoint:
            rows = [_spectrum_row(checkpoint_label(path), *trained_model(path), args.batch) for path in args.checkpoint]
        else:
            rows = at_init(args.models, args.gammas, args.override, args.batch, args.eps)
        figure = plot_spectra(rows)
        # Made only once the inputs loaded: a mistyped checkpoint path leaves no empty folder behind.
        folder = analysis_dir("jacobian", args.out, args.checkpoint[0] if args.checkpoint else None)
    files = [write_csv(rows, folder / "jacobian.csv"), save_figure(figure, folder / "jacobian.png")]
    publish("jacobian", folder, files, args.wandb)
