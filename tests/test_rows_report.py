"""The full-scale table read back from a folder of single runs: finished rows give their test number and how they
ran, a row still running gives its progress, a quick twin fills its row's quick column; `make row`'s script ends a
row with the report refreshed; the commit a row records is not made dirty by the row's own tracked files."""

import csv
import json
import os
import subprocess
import sys

import pytest

from arnn.errors import UserError
from arnn.provenance import code_version
from arnn.rows_report import write_rows_report
from tests.helpers.runs import FAST, ROOT, run_cli

TINY = [
    "trainer.max_epochs=2",
    "data.val_size=30",
    "data.batch_size=16",
    "model.hidden_size=8",
    "trainer.limit_test_batches=1",
]


@pytest.mark.e2e
def test_rows_report_puts_paper_full_and_quick_side_by_side_with_each_runs_facts(tiny_mnist, tmp_path):
    results = tmp_path / "results"
    for experiment, task_name in (
        ("paper/pmnist/arnn", "paper_pmnist_arnn"),
        ("paper/pmnist/quick/arnn", "paper_pmnist_arnn_quick"),
    ):
        run = run_cli(
            f"experiment={experiment}",
            *FAST,
            *TINY,
            f"data.data_dir={tiny_mnist}",
            "data.download=false",
            f"hydra.run.dir={results / task_name}",
        )
        assert run.returncode == 0, run.stderr
    quick = json.loads((results / "paper_pmnist_arnn_quick" / "metrics.json").read_text())
    full = json.loads((results / "paper_pmnist_arnn" / "metrics.json").read_text())

    text, paths = write_rows_report(results, tmp_path / "report")

    with (tmp_path / "report" / "rows.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["row"], row["data"], row["paper"]) == ("paper_pmnist_arnn", "pmnist", "95.8")
    assert row["ours_full"] == f"{100 * full['metrics']['test/acc']:.2f}"
    assert row["ours_quick"] == f"{100 * quick['metrics']['test/acc']:.2f}"
    assert row["epochs"] == "2" and row["threads"] == "1" and row["commit"] == (full["run"]["commit"] or "")
    assert float(row["s_per_epoch"]) == round(full["run"]["s_per_epoch"])
    assert "| paper_pmnist_arnn | pmnist | 95.8 |" in text
    assert (tmp_path / "report" / "curves.png") in paths

    (results / "paper_pmnist_arnn" / "metrics.json").unlink()  # as if it were still training
    text, _ = write_rows_report(results, tmp_path / "report")
    assert "| paper_pmnist_arnn | pmnist | 95.8 | running (epoch 1, best val " in text


def test_rows_report_rejects_a_folder_without_runs(tmp_path):
    with pytest.raises(UserError, match="holds no run directories"):
        write_rows_report(tmp_path)


@pytest.mark.e2e
def test_row_script_trains_the_row_and_leaves_it_finished_in_the_report(tiny_mnist, tmp_path):
    run_dir = tmp_path / "results" / "paper_pmnist_arnn"
    row = subprocess.run(
        ["bash", str(ROOT / "scripts" / "row.sh"), sys.executable, str(run_dir), "experiment=paper/pmnist/arnn"]
        + ["trainer=debug", *TINY, f"data.data_dir={tiny_mnist}", "data.download=false"],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
    )

    assert row.returncode == 0, row.stderr
    test_acc = json.loads((run_dir / "metrics.json").read_text())["metrics"]["test/acc"]
    report = (tmp_path / "results" / "report" / "rows.md").read_text()
    assert f"| paper_pmnist_arnn | pmnist | 95.8 | {100 * test_acc:.2f} |" in report


def test_a_row_writing_its_tracked_results_leaves_the_commit_clean_but_a_code_change_does_not(tmp_path):
    def git(*args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
        return subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    (tmp_path / "results" / "row").mkdir(parents=True)
    (tmp_path / "results" / "row" / "metrics.csv").write_text("epoch\n")
    (tmp_path / "cell.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    commit = git("rev-parse", "--short=7", "HEAD")

    (tmp_path / "results" / "row" / "metrics.csv").write_text("epoch\n0\n")
    assert code_version(tmp_path / "results") == commit
    (tmp_path / "cell.py").write_text("x = 2\n")
    assert code_version(tmp_path / "results") == f"{commit}-dirty"
