"""`python -m arnn.report <multirun dir>`: what a Hydra sweep found, from its jobs' metrics.json.

Reads every finished job of `outputs/<task_name>/multiruns/<date>_<time>/`, finds the command-line overrides that
vary across jobs, treats replicate keys (`seed` by default) as repeats of one setting, and writes into
`<multirun dir>/report/` (or --out):
  best_val.png   the best validation metric (mean over replicates) as a heatmap over two swept keys
                 (one varying key: a line with ± std bars)
  report.md      per setting: n, best validation metric and the best-validation checkpoint's test metric as
                 mean ± std over replicates; ours vs the paper where a job's config has a `paper:` block
  summary.csv    the per-setting table;  jobs.csv  one row per job;  paper.csv  ours vs the paper (if any)
"""

import argparse
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from arnn.errors import UserError, exit_on_user_error
from arnn.output import new_figure, save_figure, write_csv

log = logging.getLogger(__name__)

MULTIRUN_FILE = "multirun.yaml"
METRICS_FILE = "metrics.json"
REPLICATE_KEYS = ("seed",)
PERCENT_METRICS = ("acc",)
"""Metrics the papers quote in percent (`paper: {test_acc: {pmnist: 95.8}}`) and we log as fractions."""


@dataclass(frozen=True)
class Job:
    """One finished job of a multirun: its command-line overrides, composed config and final metrics."""

    number: int
    folder: Path
    overrides: dict[str, str]
    config: DictConfig
    choices: dict[str, str]
    metrics: dict[str, float]
    test_metric: str

    @property
    def val_metric(self) -> str:
        """The best value of the task's monitored metric, e.g. val/acc_best."""
        return f"{self.config.monitor.metric}_best"

    @property
    def best_val(self) -> float:
        return self.metrics.get(self.val_metric, math.nan)

    @property
    def test(self) -> float:
        """The test metric of the best-validation checkpoint."""
        return self.metrics.get(self.test_metric, math.nan)


@dataclass(frozen=True)
class FailedJob:
    """A job of a multirun without metrics.json, with the `error:` line its log ends with (or why there is none)."""

    number: int
    folder: Path
    overrides: dict[str, str]
    error: str


def job_error(folder: Path) -> str:
    """The last `error: ...` line of a job's log (train.py writes it there), else that the job has not finished."""
    errors = [
        line.split("error: ", 1)[1].strip()
        for log_file in sorted(folder.glob("*.log"))
        for line in log_file.read_text(errors="replace").splitlines()
        if "error: " in line
    ]
    return errors[-1] if errors else "unfinished (no error in its log: still running, or killed)"


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """`["model.eps=0.1", "+paper.x=1"]` → `{"model.eps": "0.1", "paper.x": "1"}` (append prefixes dropped)."""
    overrides = {}
    for item in items:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+")] = value
    return overrides


def load_jobs(folder: Path) -> list[Job]:
    """The finished jobs of a Hydra multirun folder, by job number; unfinished ones (no metrics.json) are
    skipped with a warning."""
    folder = Path(folder)
    if not (folder / MULTIRUN_FILE).is_file():
        raise UserError(
            f"{folder} is not a Hydra multirun folder (no {MULTIRUN_FILE}); "
            "pass one such as outputs/train/multiruns/<date>_<time>"
        )
    job_dirs = sorted(
        (path for path in folder.iterdir() if path.name.isdigit() and (path / ".hydra" / "config.yaml").is_file()),
        key=lambda path: int(path.name),
    )
    jobs = []
    for path in job_dirs:
        if not (path / METRICS_FILE).is_file():
            log.warning("warning: skipping job %s: no %s: %s", path.name, METRICS_FILE, job_error(path))
            continue
        record = json.loads((path / METRICS_FILE).read_text())
        hydra = OmegaConf.load(path / ".hydra" / "hydra.yaml").hydra
        jobs.append(
            Job(
                number=int(path.name),
                folder=path,
                overrides=parse_overrides(OmegaConf.load(path / ".hydra" / "overrides.yaml")),
                config=OmegaConf.load(path / ".hydra" / "config.yaml"),
                choices={key: str(value) for key, value in hydra.runtime.choices.items()},
                metrics=record["metrics"],
                test_metric=record["test_metric"],
            )
        )
    if not jobs:
        first = next(iter(load_failed_jobs(folder)), None)
        why = f"; job {first.number}: {first.error}" if first else ""
        raise UserError(f"no finished jobs in {folder} (no <job>/{METRICS_FILE}){why}; wait for the sweep or fix it")
    return jobs


def load_failed_jobs(folder: Path) -> list[FailedJob]:
    """The jobs of a multirun folder that have no metrics.json, with their errors, by job number."""
    return [
        FailedJob(
            int(path.name), path, parse_overrides(OmegaConf.load(path / ".hydra" / "overrides.yaml")), job_error(path)
        )
        for path in sorted(Path(folder).iterdir(), key=lambda path: (len(path.name), path.name))
        if path.name.isdigit()
        and (path / ".hydra" / "overrides.yaml").is_file()
        and not (path / METRICS_FILE).is_file()
    ]


def varying_keys(jobs: Sequence[Job | FailedJob]) -> list[str]:
    """Override keys whose value differs between jobs (absent counts as a value), in command-line order."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def sort_value(value: str | None) -> tuple[int, float, str]:
    """Numbers in numeric order, then other strings; an absent value last."""
    if value is None:
        return (2, 0.0, "")
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def group_jobs(jobs: Sequence[Job], keys: Sequence[str]) -> dict[tuple[str | None, ...], list[Job]]:
    """Jobs grouped by their values of `keys` (the replicates of one setting), settings in sorted order."""
    groups: dict[tuple[str | None, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.overrides.get(key) for key in keys), []).append(job)
    return dict(sorted(groups.items(), key=lambda item: [sort_value(value) for value in item[0]]))


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean and sample standard deviation s = sqrt(Σ(v − mean)²/(n − 1)) of the finite values, and their count n
    (s is NaN for n < 2; a diverged job's NaN is left out, so n shows it)."""
    finite = np.array([value for value in values if math.isfinite(value)], dtype=float)
    n = len(finite)
    mean = float(finite.mean()) if n else math.nan
    std = float(finite.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def summarise(jobs: Sequence[Job], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per setting of `keys`: n, best validation and test metric as mean and std over its jobs."""
    rows = []
    for values, members in group_jobs(jobs, keys).items():
        val_mean, val_std, _ = mean_std(job.best_val for job in members)
        test_mean, test_std, n = mean_std(job.test for job in members)
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "n": n,
                "val_metric": members[0].val_metric,
                "best_val_mean": val_mean,
                "best_val_std": val_std,
                "test_metric": members[0].test_metric,
                "test_mean": test_mean,
                "test_std": test_std,
                "jobs": " ".join(str(job.number) for job in members),
            }
        )
    return rows


def paper_rows(jobs: Sequence[Job], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Ours vs the paper for each setting whose config has a `paper:` block with a `test_<metric>` number for its
    dataset (the data config choice); accuracy in percent, as papers quote it."""
    rows = []
    for values, members in group_jobs(jobs, keys).items():
        paper = members[0].config.get("paper")
        dataset = members[0].choices.get("data")
        if not isinstance(paper, DictConfig):
            continue
        for field, numbers in paper.items():
            if not str(field).startswith("test_") or not isinstance(numbers, DictConfig) or dataset not in numbers:
                continue
            name = str(field).removeprefix("test_")
            scale = 100.0 if name in PERCENT_METRICS else 1.0
            mean, std, n = mean_std(job.metrics.get(f"test/{name}", math.nan) * scale for job in members)
            rows.append(
                {
                    **dict(zip(keys, values, strict=True)),
                    "data": dataset,
                    "metric": f"test/{name}" + (" (%)" if scale == 100.0 else ""),
                    "paper": float(numbers[dataset]),
                    "ours_mean": mean,
                    "ours_std": std,
                    "n": n,
                }
            )
    return rows


def job_rows(jobs: Sequence[Job], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per job: its number, the given override values, data, metrics and folder."""
    return [
        {
            "job": job.number,
            **{key: job.overrides.get(key) for key in keys},
            "data": job.choices.get("data"),
            "val_metric": job.val_metric,
            "best_val": job.best_val,
            "test_metric": job.test_metric,
            "test": job.test,
            "folder": str(job.folder),
        }
        for job in jobs
    ]


def format_mean_std(mean: float, std: float, digits: int = 4) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(
    folder: Path,
    jobs: Sequence[Job],
    keys: Sequence[str],
    replicates: Sequence[str],
    summary: Sequence[dict[str, Any]],
    papers: Sequence[dict[str, Any]],
    figure: str,
    failed: Sequence[FailedJob] = (),
) -> str:
    """report.md: the sweep, its per-setting table (mean ± std over replicates), ours vs the paper, the jobs that
    failed with their errors, the figure."""
    val_metric, test_metric = summary[0]["val_metric"], summary[0]["test_metric"]
    mixed = any(row["val_metric"] != val_metric or row["test_metric"] != test_metric for row in summary)
    header = [*keys, "n", "best val" if mixed else val_metric, "test" if mixed else test_metric]
    body = [
        [
            *(row[key] for key in keys),
            row["n"],
            format_mean_std(row["best_val_mean"], row["best_val_std"]) + (f" ({row['val_metric']})" if mixed else ""),
            format_mean_std(row["test_mean"], row["test_std"]) + (f" ({row['test_metric']})" if mixed else ""),
        ]
        for row in summary
    ]
    replicated = [key for key in replicates if any(key in job.overrides for job in jobs)]
    lines = [
        f"# Sweep report: {folder}",
        "",
        f"{len(jobs)} finished jobs, {len(failed)} failed or unfinished; varying: {', '.join(keys) or 'nothing'}; "
        f"mean ± std (sample) over {', '.join(replicated) or 'the jobs of a setting'}, n per row. "
        "Test numbers are the best-validation checkpoint's.",
        "",
        "## Per setting",
        "",
        markdown_table(header, body),
        "",
        "## Ours vs the paper",
        "",
    ]
    if papers:
        paper_header = [*keys, "data", "metric", "paper", "ours", "n"]
        paper_body = [
            [
                *(row[key] for key in keys),
                row["data"],
                row["metric"],
                f"{row['paper']:g}",
                format_mean_std(row["ours_mean"], row["ours_std"], 2),
                row["n"],
            ]
            for row in papers
        ]
        lines.append(markdown_table(paper_header, paper_body))
    else:
        lines.append("No job's config has a `paper:` number for its dataset.")
    if failed:
        lines += ["", "## Failed or unfinished jobs", ""]
        lines.append(
            markdown_table(
                ["job", *keys, "error"],
                [
                    [job.number, *(job.overrides.get(key) for key in keys), job.error.replace("|", "\\|")]
                    for job in failed
                ],
            )
        )
    lines += ["", f"![best validation metric]({figure})", ""]
    return "\n".join(lines)


def plot_heatmap(
    summary: Sequence[dict[str, Any]],
    rows: str,
    cols: str,
    panels: Sequence[str],
    failed: Sequence[FailedJob] = (),
) -> Figure:
    """Mean best validation metric over (rows × cols), one panel per setting of the other varying keys; a cell with
    failed jobs says how many (red), and a cell with no finished job is marked failed."""
    settings = [*summary, *({key: job.overrides.get(key) for key in (rows, cols, *panels)} for job in failed)]
    row_values = sorted({row[rows] for row in settings}, key=sort_value)
    col_values = sorted({row[cols] for row in settings}, key=sort_value)
    panel_values = sorted({tuple(row[key] for key in panels) for row in settings}, key=lambda v: [*map(sort_value, v)])
    width = min(len(panel_values), 4)
    height = math.ceil(len(panel_values) / width)
    figure = new_figure(height, width, (width * (2.2 + 0.6 * len(col_values)), height * (1.2 + 0.45 * len(row_values))))
    metric = summary[0]["val_metric"]
    means = [row["best_val_mean"] for row in summary if math.isfinite(row["best_val_mean"])]
    norm = Normalize(min(means, default=0.0), max(means, default=1.0))  # one colour scale for all panels
    grid_axes = figure.axes  # a copy: the colorbars add axes of their own
    for axes, panel in zip(grid_axes, panel_values, strict=False):
        grid = np.full((len(row_values), len(col_values)), np.nan)
        for row in summary:
            if tuple(row[key] for key in panels) == panel:
                grid[row_values.index(row[rows]), col_values.index(row[cols])] = row["best_val_mean"]
        failures = np.zeros(grid.shape, dtype=int)
        for job in failed:
            if tuple(job.overrides.get(key) for key in panels) == panel:
                failures[row_values.index(job.overrides.get(rows)), col_values.index(job.overrides.get(cols))] += 1
        image = axes.imshow(grid, cmap="viridis", norm=norm, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            if math.isfinite(value):
                colour = "black" if image.norm(value) > 0.6 else "white"  # readable on viridis' light end
                note = f"\n({failures[i, j]} failed)" if failures[i, j] else ""
                axes.text(j, i, f"{value:.3f}{note}", ha="center", va="center", color=colour, fontsize=8)
            elif failures[i, j]:
                axes.text(j, i, "failed", ha="center", va="center", color="red", fontsize=8, fontweight="bold")
        axes.set_xticks(range(len(col_values)), [str(value) for value in col_values])
        axes.set_yticks(range(len(row_values)), [str(value) for value in row_values])
        axes.set_xlabel(cols)
        axes.set_ylabel(rows)
        title = ", ".join(f"{key}={value}" for key, value in zip(panels, panel, strict=True))
        axes.set_title(title or metric, fontsize=9)
        figure.colorbar(image, ax=axes, label=f"{metric} (mean)")
    for axes in grid_axes[len(panel_values) :]:
        axes.set_visible(False)
    return figure


def plot_line(summary: Sequence[dict[str, Any]], key: str | None) -> Figure:
    """Mean ± std of the best validation metric over the settings of one key (or of all jobs)."""
    figure = new_figure(1, 1, (max(4.0, 0.8 * len(summary) + 2), 3.5))
    axes = figure.axes[0]
    labels = [str(row[key]) if key else "all jobs" for row in summary]
    means = [row["best_val_mean"] for row in summary]
    stds = [0.0 if math.isnan(row["best_val_std"]) else row["best_val_std"] for row in summary]
    axes.errorbar(range(len(summary)), means, yerr=stds, marker="o", capsize=4)
    axes.set_xticks(range(len(summary)), labels)
    axes.set_xlabel(key or "")
    axes.set_ylabel(f"{summary[0]['val_metric']} (mean ± std)")
    return figure


def choose_axes(keys: Sequence[str], rows: str | None, cols: str | None) -> tuple[str | None, str | None]:
    """The heatmap's row and column keys: as given, else the first varying keys; None where there are too few."""
    for option, key in (("--rows", rows), ("--cols", cols)):
        if key is not None and key not in keys:
            raise UserError(f"{option} {key} is not a varying override of this sweep; choose from: {', '.join(keys)}")
    free = [key for key in keys if key not in (rows, cols)]
    rows = rows or (free.pop(0) if free else None)
    cols = cols or (free.pop(0) if free else None)
    if rows is not None and rows == cols:
        raise UserError(f"--rows and --cols are both {rows}; choose two different keys")
    return rows, cols


def write_report(
    folder: Path,
    out: Path | None = None,
    rows: str | None = None,
    cols: str | None = None,
    replicates: Sequence[str] = REPLICATE_KEYS,
) -> tuple[str, list[Path]]:
    """Read a multirun and write its report files; returns report.md's text and the written paths."""
    folder = Path(folder)
    jobs = load_jobs(folder)
    failed = load_failed_jobs(folder)
    varying = varying_keys([*jobs, *failed])
    keys = [key for key in varying if key not in replicates]
    rows, cols = choose_axes(keys, rows, cols)
    summary = summarise(jobs, keys)
    papers = paper_rows(jobs, keys)
    out = Path(out) if out is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    if rows is not None and cols is not None:
        figure = plot_heatmap(summary, rows, cols, [key for key in keys if key not in (rows, cols)], failed)
    else:
        figure = plot_line(summary, rows or cols)
    paths = [save_figure(figure, out / "best_val.png")]
    text = report_markdown(folder, jobs, keys, replicates, summary, papers, paths[0].name, failed)
    (out / "report.md").write_text(text)
    paths.append(out / "report.md")
    paths.append(write_csv(summary, out / "summary.csv"))
    paths.append(write_csv(job_rows(jobs, varying), out / "jobs.csv"))
    if papers:
        paths.append(write_csv(papers, out / "paper.csv"))
    return text, paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a multirun folder, e.g. outputs/train/multiruns/<date>_<time>")
    parser.add_argument("--out", type=Path, help="where to write (default: <folder>/report)")
    parser.add_argument("--rows", help="override key on the heatmap's rows (default: the first varying key)")
    parser.add_argument("--cols", help="override key on the heatmap's columns (default: the next varying key)")
    parser.add_argument(
        "--replicates",
        default=",".join(REPLICATE_KEYS),
        help="comma-separated override keys whose jobs repeat one setting (default: seed), e.g. seed,data.realisation",
    )
    args = parser.parse_args(argv)
    replicates = [key for key in args.replicates.split(",") if key]
    text, paths = write_report(args.folder, args.out, args.rows, args.cols, replicates)
    print(text)
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    exit_on_user_error(main)
