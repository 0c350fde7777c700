"""One metrics.csv per run, kept across restarts: a resumed run continues the file instead of opening version_N."""

import csv
import os
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _ContinuedWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing metrics.csv is continued, not deleted. The first rows this
    process logs start at the step the run restarted from; the kept rows at or after that step (logged by the
    killed process after its last checkpoint) are dropped then, so no step appears twice."""

    def __init__(self, log_dir: str) -> None:
        self._kept: list[dict[str, str]] = []
        self._restart_step: int | None = None
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            self._kept = list(reader)
            self.metrics_keys = sorted(reader.fieldnames or [])

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if self._restart_step is None:
            self._restart_step = step if step is not None else 0
            kept = [row for row in self._kept if int(row["step"]) < self._restart_step]
            if len(kept) != len(self._kept):
                self._write_rows(kept)
            self._kept = []
        super().log_metrics(metrics_dict, step)

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        temporary = f"{self.metrics_file_path}.tmp"
        with open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.metrics_file_path)


class RunCSVLogger(CSVLogger):
    """CSVLogger writing `<save_dir>/<folder>/metrics.csv` (and hparams.yaml): one file per run directory, continued
    when the run resumes (`resume=true`), without the duplicate steps of the epoch a kill cut short."""

    def __init__(self, save_dir: str, folder: str = "csv", prefix: str = "") -> None:
        super().__init__(save_dir, name="", version=folder, prefix=prefix)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(log_dir=self.log_dir)
        return self._experiment
