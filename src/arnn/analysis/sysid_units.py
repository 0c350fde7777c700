"""Emami et al. (NeurIPS 2019), Figs. 2 and 3: test R² vs hidden units of RNN, URNN and LSTM students of a contractive
ReLU teacher, from a `data=sysid` multirun (`python train.py -m experiment=paper/sysid/units`).

    python -m arnn.analysis sysid_units outputs/sysid_units/multiruns/<date>_<time> [--out DIR] [--wandb]

One panel per output SNR, one line per model: the mean ± std (sample) over realisations (and seeds) of the test
R² of each job's best-validation checkpoint. Writes r2_vs_units.png and r2_vs_units.csv.
"""

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from arnn.errors import UserError
from arnn.output import analysis_dir, log_to_wandb, new_figure, save_figure, write_csv
from arnn.report import Job, format_mean_std, load_jobs, mean_std

NAME = "sysid_units"
METRIC = "test/r2"
MODEL_LABELS = {"rnn_relu": "RNN (ReLU)", "svd_urnn": "URNN (ReLU, SVD projection)", "lstm": "LSTM"}


def r2_ceiling(snr_db: float | None) -> float:
    """The R² of the clean teacher output against its noisy targets, 1/(1 + 10^(−SNR/10)): no student scores
    higher in expectation, since the noise is independent of the inputs (1 for noiseless targets)."""
    return 1.0 if snr_db is None else 1.0 / (1.0 + 10 ** (-snr_db / 10))


def job_setting(job: Job) -> tuple[str, float | None, int]:
    """(model config name, data.snr_db, model.hidden_size) of one sysid job, from its composed config."""
    if job.choices.get("data") != "sysid" or METRIC not in job.metrics:
        raise UserError(
            f"job {job.number} in {job.folder.parent} is not a finished data=sysid job with {METRIC}; "
            "pass a multirun of `python train.py -m experiment=paper/sysid/units`"
        )
    snr = job.config.data.snr_db
    return job.choices["model"], None if snr is None else float(snr), int(job.config.model.hidden_size)


def _setting_order(model: str, snr: float | None, units: int) -> tuple[int, str, float, int]:
    """The paper's model order (RNN, URNN, LSTM, then others by name), then SNR, then units."""
    rank = list(MODEL_LABELS).index(model) if model in MODEL_LABELS else len(MODEL_LABELS)
    return rank, model, math.inf if snr is None else snr, units


def r2_vs_units(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Per (model, SNR, hidden units): n jobs and the mean and sample std of their test R², the realisations
    (and seeds) being the replicates. Rows sorted by model, SNR, units."""
    groups: dict[tuple[str, float | None, int], list[float]] = {}
    for job in jobs:
        groups.setdefault(job_setting(job), []).append(job.metrics[METRIC])
    rows = []
    for (model, snr, units), values in sorted(groups.items(), key=lambda item: _setting_order(*item[0])):
        mean, std, n = mean_std(values)
        rows.append({"model": model, "snr_db": snr, "hidden_size": units, "n": n, "r2_mean": mean, "r2_std": std})
    return rows


def plot_r2_vs_units(rows: Sequence[dict[str, Any]]) -> Figure:
    """One panel per SNR (highest first, as Emami et al.'s Figs. 2 and 3), test R² mean ± std vs hidden units."""
    snrs = sorted({row["snr_db"] for row in rows}, key=lambda snr: -math.inf if snr is None else snr, reverse=True)
    figure = new_figure(1, len(snrs), (4.5 * len(snrs), 3.8))
    for axes, snr in zip(figure.axes, snrs, strict=True):
        models = list(dict.fromkeys(row["model"] for row in rows if row["snr_db"] == snr))
        for model in models:
            line = [row for row in rows if row["snr_db"] == snr and row["model"] == model]
            units = [row["hidden_size"] for row in line]
            mean = [row["r2_mean"] for row in line]
            std = [0.0 if math.isnan(row["r2_std"]) else row["r2_std"] for row in line]
            axes.errorbar(units, mean, yerr=std, marker="o", capsize=3, label=MODEL_LABELS.get(model, model))
        axes.axhline(r2_ceiling(snr), color="grey", linestyle="--", linewidth=1, label="noise ceiling")
        n = sorted({row["n"] for row in rows if row["snr_db"] == snr})
        count = str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"
        axes.set_title(f"SNR = {snr:g} dB (n = {count} per point)" if snr is not None else f"noiseless (n = {count})")
        axes.set_xlabel("hidden units")
        axes.set_ylabel("test R² (mean ± std)")
        axes.set_xticks(sorted({row["hidden_size"] for row in rows}))
        axes.legend(fontsize=8)
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m arnn.analysis {NAME}", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the multirun folder, e.g. outputs/sysid_units/multiruns/<date>")
    parser.add_argument("--out", type=Path, help="output folder (default: <folder>/analysis/sysid_units)")
    parser.add_argument("--wandb", action="store_true", help="log the figure to W&B (offline unless configured)")
    args = parser.parse_args(argv)
    rows = r2_vs_units(load_jobs(args.folder))
    folder = analysis_dir(NAME, args.out or args.folder / "analysis" / NAME)
    png = save_figure(plot_r2_vs_units(rows), folder / "r2_vs_units.png")
    paths = [png, write_csv(rows, folder / "r2_vs_units.csv")]
    for row in rows:
        snr = "noiseless" if row["snr_db"] is None else f"SNR {row['snr_db']:g} dB"
        r2 = format_mean_std(row["r2_mean"], row["r2_std"])
        print(f"{row['model']:>10}  {snr}  {row['hidden_size']:>3} units  R² {r2}  (n={row['n']})")
    if args.wandb:
        log_to_wandb(NAME, folder, paths)
    for path in paths:
        print(f"wrote {path}")
