"""The sweep report and the R²-vs-units figure (Emami et al., NeurIPS 2019), read back from real (short) Hydra
multiruns."""

import csv
import json
import logging
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from arnn import report
from arnn.analysis import sysid_units
from arnn.errors import UserError
from arnn.report import FailedJob, Job, load_jobs, write_report
from arnn.runs.build import compose
from tests.helpers.runs import FAST, ROOT, run_cli

SHORT = ["model.hidden_size=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _metrics(job_dir: Path) -> dict[str, float]:
    return json.loads((job_dir / "metrics.json").read_text())["metrics"]


def _overrides(job_dir: Path) -> dict[str, str]:
    return report.parse_overrides(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))


def _multirun(folder: Path, *overrides: str) -> Path:
    result = run_cli("-m", *overrides, *FAST, f"hydra.sweep.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def gamma_eps_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2 × 2 sweep of model.gamma × model.eps with 2 seeds each: 8 jobs of a few batches on digits."""
    folder = tmp_path_factory.mktemp("sweep") / "multirun"
    return _multirun(folder, "model.gamma=0.01,0.1", "model.eps=0.1,1", "seed=1,2", *SHORT)


@pytest.mark.e2e
def test_report_gives_mean_and_std_over_seeds_of_each_jobs_metrics(gamma_eps_sweep, tmp_path, capsys):
    report.main([str(gamma_eps_sweep), "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    summary = _read_csv(tmp_path / "summary.csv")
    assert [(row["model.gamma"], row["model.eps"]) for row in summary] == [
        ("0.01", "0.1"),
        ("0.01", "1"),
        ("0.1", "0.1"),
        ("0.1", "1"),
    ]
    job_dirs = [path for path in gamma_eps_sweep.iterdir() if path.name.isdigit()]
    for row in summary:
        setting = {"model.gamma": row["model.gamma"], "model.eps": row["model.eps"]}
        members = [path for path in job_dirs if setting.items() <= _overrides(path).items()]
        assert sorted(_overrides(path)["seed"] for path in members) == ["1", "2"]
        tests = [_metrics(path)["test/acc"] for path in members]
        vals = [_metrics(path)["val/acc_best"] for path in members]
        assert row["n"] == "2" and row["test_metric"] == "test/acc" and row["val_metric"] == "val/acc_best"
        assert float(row["test_mean"]) == pytest.approx(statistics.mean(tests))
        assert float(row["test_std"]) == pytest.approx(statistics.stdev(tests))
        assert float(row["best_val_mean"]) == pytest.approx(statistics.mean(vals))
        cells = f"| {row['model.gamma']} | {row['model.eps']} | 2 | "
        line = f"{cells}{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f} | "
        assert f"{line}{statistics.mean(tests):.4f} ± {statistics.stdev(tests):.4f} |" in printed
    assert (tmp_path / "report.md").read_text() in printed
    jobs = _read_csv(tmp_path / "jobs.csv")
    assert len(jobs) == 8 and {"model.gamma", "model.eps", "seed"} <= set(jobs[0])
    for row in jobs:
        assert float(row["test"]) == pytest.approx(_metrics(gamma_eps_sweep / row["job"])["test/acc"])
    assert (tmp_path / "best_val.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.e2e
def test_report_skips_an_unfinished_job_with_a_warning(gamma_eps_sweep, tmp_path, caplog):
    folder = shutil.copytree(gamma_eps_sweep, tmp_path / "multirun", ignore=shutil.ignore_patterns("*.ckpt"))
    (folder / "3" / "metrics.json").unlink()
    with caplog.at_level(logging.WARNING, logger="arnn.report"):
        jobs = load_jobs(folder)
    assert [job.number for job in jobs] == [0, 1, 2, 4, 5, 6, 7]
    assert "skipping job 3: no metrics.json" in caplog.text
    _, paths = write_report(folder, tmp_path / "report", rows="model.eps", cols="model.gamma")
    unfinished = _overrides(folder / "3")
    summary = _read_csv(tmp_path / "report" / "summary.csv")
    counts = {(row["model.gamma"], row["model.eps"]): row["n"] for row in summary}
    assert counts.pop((unfinished["model.gamma"], unfinished["model.eps"])) == "1"
    assert set(counts.values()) == {"2"} and tmp_path / "report" / "best_val.png" in paths


def test_heatmap_marks_a_setting_whose_jobs_all_failed_and_counts_failures_beside_a_mean(tmp_path):
    summary = [
        {"model.gamma": "0.01", "model.eps": "0.1", "best_val_mean": 0.8, "val_metric": "val/acc_best"},
        {"model.gamma": "0.1", "model.eps": "0.1", "best_val_mean": 0.7, "val_metric": "val/acc_best"},
    ]
    failed = [
        FailedJob(2, tmp_path, {"model.gamma": "0.01", "model.eps": "10"}, "training diverged"),
        FailedJob(3, tmp_path, {"model.gamma": "0.1", "model.eps": "0.1", "seed": "2"}, "training diverged"),
    ]
    figure = report.plot_heatmap(summary, "model.eps", "model.gamma", [], failed)
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert texts == {"0.800", "0.700\n(1 failed)", "failed"}


@pytest.mark.e2e
def test_report_rejects_heatmap_rows_that_are_not_a_swept_key(gamma_eps_sweep, tmp_path):
    with pytest.raises(UserError, match="--rows seed is not a varying override of this sweep; choose from: model"):
        write_report(gamma_eps_sweep, tmp_path, rows="seed")


@pytest.mark.e2e
def test_report_compares_our_test_accuracy_with_the_paper_row_for_the_dataset(tiny_mnist, tmp_path):
    folder = _multirun(
        tmp_path / "multirun",
        "experiment=paper/pmnist/arnn",
        "seed=1,2",
        f"data.data_dir={tiny_mnist}",
        "data.download=false",
        "data.val_size=30",
        "data.batch_size=16",
        *SHORT,
        "trainer.limit_test_batches=1",
    )
    text, _ = write_report(folder, tmp_path / "report")
    (row,) = _read_csv(tmp_path / "report" / "paper.csv")
    accuracies = [100 * _metrics(folder / job)["test/acc"] for job in ("0", "1")]
    assert row["data"] == "pmnist" and row["metric"] == "test/acc (%)" and float(row["paper"]) == 95.8
    assert float(row["ours_mean"]) == pytest.approx(statistics.mean(accuracies)) and row["n"] == "2"
    ours = f"{statistics.mean(accuracies):.2f} ± {statistics.stdev(accuracies):.2f}"
    assert f"| pmnist | test/acc (%) | 95.8 | {ours} | 2 |" in text


@pytest.mark.e2e
def test_report_rejects_a_folder_that_is_not_a_multirun(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "arnn.report", str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a Hydra multirun folder (no multirun.yaml); "
        "pass one such as outputs/train/multiruns/<date>_<time>"
    ]


def test_report_rejects_a_multirun_without_finished_jobs(tmp_path):
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(UserError, match="no finished jobs"):
        load_jobs(tmp_path)


def test_sysid_units_experiments_sweep_three_models_seven_sizes_two_snrs_and_the_realisations():
    sweeps = {}
    for experiment in ("paper/sysid/units", "paper/sysid/quick/units"):
        cfg = compose([f"experiment={experiment}"], hydra_config=True)
        sweeps[experiment] = cfg.hydra.sweeper.params
        assert cfg.data.batch_size == 10 and cfg.optimizer.lr == 0.01 and cfg.monitor.metric == "val/r2"
    assert dict(sweeps["paper/sysid/units"]) == {
        "model": "rnn_relu,svd_urnn,lstm",
        "model.hidden_size": "range(2,16,2)",
        "data.snr_db": "15,20",
        "data.realisation": "range(30)",
    }
    assert sweeps["paper/sysid/quick/units"]["data.realisation"] == "range(2)"


def _sysid_job(number: int, model: str, units: int, snr: float, r2: float) -> Job:
    config = OmegaConf.create({"monitor": {"metric": "val/r2"}, "model": {"hidden_size": units}})
    config.data = {"snr_db": snr}
    return Job(number, Path(str(number)), {}, config, {"data": "sysid", "model": model}, {"test/r2": r2}, "test/r2")


def test_r2_vs_units_averages_the_realisations_of_each_model_snr_and_size():
    jobs = [
        _sysid_job(0, "lstm", 4, 20.0, 0.5),
        _sysid_job(1, "lstm", 4, 20.0, 0.7),
        _sysid_job(2, "lstm", 2, 20.0, 0.1),
        _sysid_job(3, "svd_urnn", 2, 15.0, 0.9),
        _sysid_job(4, "rnn_relu", 2, 20.0, 0.3),
    ]
    rows = sysid_units.r2_vs_units(jobs)
    assert [(row["model"], row["snr_db"], row["hidden_size"], row["n"]) for row in rows] == [
        ("rnn_relu", 20.0, 2, 1),
        ("svd_urnn", 15.0, 2, 1),
        ("lstm", 20.0, 2, 1),
        ("lstm", 20.0, 4, 2),
    ]
    assert rows[-1]["r2_mean"] == pytest.approx(0.6)
    assert rows[-1]["r2_std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert sysid_units.r2_ceiling(20.0) == pytest.approx(1 / 1.01)


@pytest.mark.e2e
def test_sysid_units_writes_test_r2_per_model_and_hidden_size_of_a_real_sweep(tmp_path):
    folder = _multirun(
        tmp_path / "multirun",
        "experiment=paper/sysid/units",
        "model=rnn_relu,lstm",
        "model.hidden_size=2,4",
        "data.snr_db=20",
        "data.realisation=0",
        "data.num_sequences=20",
        "data.seq_len=50",
        "data.val_size=4",
        "trainer.max_epochs=1",
    )
    assert sorted(path.name for path in folder.iterdir() if path.name.isdigit()) == ["0", "1", "2", "3"]
    sysid_units.main([str(folder), "--out", str(tmp_path / "plot")])
    rows = _read_csv(tmp_path / "plot" / "r2_vs_units.csv")
    expected = {}
    for job in range(4):
        overrides = _overrides(folder / str(job))
        expected[(overrides["model"], overrides["model.hidden_size"])] = _metrics(folder / str(job))["test/r2"]
    assert [(row["model"], row["hidden_size"]) for row in rows] == [
        ("rnn_relu", "2"),
        ("rnn_relu", "4"),
        ("lstm", "2"),
        ("lstm", "4"),
    ]
    for row in rows:
        assert row["snr_db"] == "20.0" and row["n"] == "1"
        assert float(row["r2_mean"]) == pytest.approx(expected[(row["model"], row["hidden_size"])])
    assert (tmp_path / "plot" / "r2_vs_units.png").read_bytes().startswith(PNG_MAGIC)
