"""`python -m arnn.rows_report results/`: the paper's table next to ours, from a folder of single runs, one per row.

Each `<folder>/<row>/` is a train.py run directory (`make row ROW=<experiment>` writes `results/<experiment, / as
_>/`). A row's number is the test accuracy of its best-validation checkpoint (metrics.json); a row still running shows
its epoch and best validation accuracy so far (csv/metrics.csv). A run whose task_name is a full row's with `_quick`
appended fills the quick column of that row. Writes into `<folder>/report/` (or --out):
  rows.md     paper | ours (full) | ours (quick) | best epoch | epochs | fit time | s/epoch | threads | device |
              commit | date
  rows.csv    the same numbers
  curves.png  validation accuracy per epoch, one line per full row, the paper's number dashed in the row's colour
"""

import argparse
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from arnn.errors import UserError, exit_on_user_error
from arnn.output import new_figure, save_figure, write_csv

QUICK_SUFFIX = "_quick"


@dataclass(frozen=True)
class Row:
    """One run directory read back: its experiment, the paper's number, and what the run has done so far."""

    name: str
    folder: Path
    data: str
    paper: float | None
    curve: list[tuple[int, float]]
    record: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.record is not None

    @property
    def test_percent(self) -> float | None:
        if self.record is None:
            return None
        return 100 * self.record["metrics"].get(self.record["test_metric"], math.nan)

    @property
    def run(self) -> dict[str, Any]:
        return (self.record or {}).get("run") or {}


def validation_curve(metrics_csv: Path) -> list[tuple[int, float]]:
    """(epoch, val/acc) of each validated epoch in a run's CSV log, in order."""
    if not metrics_csv.is_file():
        return []
    with metrics_csv.open() as handle:
        return [(int(row["epoch"]), float(row["val/acc"])) for row in csv.DictReader(handle) if row.get("val/acc")]


def read_row(folder: Path) -> Row:
    config = OmegaConf.load(folder / ".hydra" / "config.yaml")
    data = str(OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra.runtime.choices.get("data"))
    numbers = OmegaConf.select(config, "paper.test_acc", default=None)
    paper = float(numbers[data]) if numbers is not None and data in numbers else None
    metrics = folder / "metrics.json"
    record = json.loads(metrics.read_text()) if metrics.is_file() else None
    return Row(str(config.task_name), folder, data, paper, validation_curve(folder / "csv" / "metrics.csv"), record)


def load_rows(folder: Path) -> list[Row]:
    """The run directories under `folder`, by name."""
    runs = sorted(path.parent.parent for path in Path(folder).glob("*/.hydra/config.yaml"))
    if not runs:
        raise UserError(f"{folder} holds no run directories (<row>/.hydra/config.yaml); pass a folder such as results/")
    return [read_row(run) for run in runs]


def _status(row: Row | None) -> str:
    if row is None:
        return ""
    if row.finished:
        return f"{row.test_percent:.2f}"
    if not row.curve:
        return "no epoch yet"
    epoch, _ = row.curve[-1]
    return f"running (epoch {epoch}, best val {100 * max(acc for _, acc in row.curve):.2f})"


def _best_epoch(row: Row) -> int | None:
    """The epoch of the best validation accuracy so far (the first, if tied), for runs whose metrics.json predates
    the `run` record."""
    return max(row.curve, key=lambda point: (point[1], -point[0]))[0] if row.curve else None


def table_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """One record per full row (a quick run without its full row gets its own), with its quick twin's number."""
    by_name = {row.name: row for row in rows}
    full = [row for row in rows if not (row.name.endswith(QUICK_SUFFIX) and row.name[: -len(QUICK_SUFFIX)] in by_name)]
    records = []
    for row in full:
        quick = by_name.get(row.name + QUICK_SUFFIX)
        run = row.run
        fit_time = run.get("fit_time_s")
        records.append(
            {
                "row": row.name,
                "data": row.data,
                "paper": row.paper,
                "ours_full": _status(row),
                "ours_quick": _status(quick),
                "best_epoch": run.get("best_epoch", _best_epoch(row)),
                "epochs": run.get("epochs", row.curve[-1][0] + 1 if row.curve else None),
                "fit_time_h": round(fit_time / 3600, 2) if fit_time else None,
                "s_per_epoch": round(run["s_per_epoch"]) if run.get("s_per_epoch") else None,
                "threads": run.get("threads"),
                "device": run.get("device"),
                "commit": run.get("commit"),
                "date": run.get("date"),
                "folder": str(row.folder),
            }
        )
    return records


def rows_markdown(records: list[dict[str, Any]]) -> str:
    columns = ["row", "data", "paper", "ours_full", "ours_quick", "best_epoch", "epochs", "fit_time_h", "s_per_epoch"]
    columns += ["threads", "device", "commit", "date"]
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = [
        "| " + " | ".join("" if record[c] is None else str(record[c]) for c in columns) + " |" for record in records
    ]
    return "\n".join(
        [
            "# Full-scale rows",
            "",
            "Test accuracy (%) of each run's best-validation checkpoint; `running` rows show their last epoch so far.",
            "",
            header,
            *body,
            "",
            "![validation accuracy per epoch](curves.png)",
            "",
        ]
    )


def plot_curves(rows: list[Row]) -> Figure:
    """Validation accuracy (%) per epoch of each full row, the paper's test accuracy dashed in the same colour."""
    figure = new_figure(1, 1, (7.0, 4.0))
    axes = figure.axes[0]
    colours = colormaps["tab10"]
    for index, row in enumerate(row for row in rows if row.curve and not row.name.endswith(QUICK_SUFFIX)):
        epochs, accuracies = zip(*row.curve, strict=True)
        axes.plot(epochs, [100 * acc for acc in accuracies], color=colours(index), label=row.name)
        if row.paper is not None:
            axes.axhline(row.paper, color=colours(index), linestyle="--", linewidth=1)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("dashed: the paper's test accuracy", fontsize=9)
    axes.legend(fontsize=8)
    return figure


def write_rows_report(folder: Path, out: Path | None = None) -> tuple[str, list[Path]]:
    rows = load_rows(folder)
    out = Path(out) if out is not None else Path(folder) / "report"
    out.mkdir(parents=True, exist_ok=True)
    records = table_rows(rows)
    text = rows_markdown(records)
    (out / "rows.md").write_text(text)
    paths = [out / "rows.md", write_csv(records, out / "rows.csv"), save_figure(plot_curves(rows), out / "curves.png")]
    return text, paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.rows_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of run directories, e.g. results/")
    parser.add_argument("--out", type=Path, help="where to write (default: <folder>/report)")
    args = parser.parse_args(argv)
    text, paths = write_rows_report(args.folder, args.out)
    print(text)
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    exit_on_user_error(main)
