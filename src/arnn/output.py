"""Where an analysis writes its files (PNG, CSV, JSON), and how it logs them to W&B."""

import csv
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arnn.errors import UserError

DEFAULT_ROOT = Path("outputs/analysis")


def analysis_dir(name: str, out: Path | None = None, checkpoint: Path | None = None) -> Path:
    """The folder for one analysis' files, created: `out` when given; else `<run dir>/analysis/<name>` for a
    checkpoint inside `<run dir>/checkpoints/`; else `outputs/analysis/<name>/<date>_<time>`."""
    if out is not None:
        folder = Path(out)
    elif checkpoint is not None:
        run_dir = Path(checkpoint).resolve().parent
        run_dir = run_dir.parent if run_dir.name == "checkpoints" else run_dir
        folder = run_dir / "analysis" / name
    else:
        folder = DEFAULT_ROOT / name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {folder}: {error.strerror}; pass --out <writable dir>") from error
    return folder


def new_figure(rows: int = 1, columns: int = 1, size: tuple[float, float] = (6.0, 4.0)) -> Figure:
    """A matplotlib figure that needs no display (Agg canvas), with constrained layout."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    if rows * columns > 0:
        figure.subplots(rows, columns, squeeze=False)
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=120)
    return path


def write_csv(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """One row per mapping; the columns are the first row's keys."""
    rows = list(rows)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(content: Any, path: Path) -> Path:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return path


def log_to_wandb(name: str, folder: Path, files: Iterable[Path], summary: Mapping[str, Any] | None = None) -> None:
    """Log the PNGs among `files` as images (and `summary` as the run summary) to a W&B run of its own under
    `folder` — offline unless W&B is configured (`arnn.runs.wandb_mode`)."""
    import wandb

    from arnn.runs.wandb_mode import wandb_configured

    mode = "online" if wandb_configured() else "offline"
    run = wandb.init(project="arnn", job_type="analysis", name=name, group="analysis", dir=str(folder), mode=mode)
    try:
        images = {Path(file).stem: wandb.Image(str(file)) for file in files if Path(file).suffix == ".png"}
        run.log(images)
        if summary:
            run.summary.update(dict(summary))
    finally:
        run.finish()


def publish(name: str, folder: Path, files: list[Path], wandb: bool, summary: Mapping[str, Any] | None = None) -> None:
    """Print the paths an analysis wrote and, when `wandb` is set, log them (and `summary`) with `log_to_wandb`."""
    for path in files:
        print(path)
    if wandb:
        log_to_wandb(name, folder, files, summary)
