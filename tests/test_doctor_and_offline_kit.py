"""`python -m arnn.doctor` on this machine (the CPU path at tiny sizes), and the offline kit: a wheelhouse installed
with no index into an empty folder beside a Python that has nothing but torch, then the doctor run there."""

import csv
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import distribution
from pathlib import Path

import pytest
import torch

from arnn import doctor
from tests.helpers.runs import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import wheelhouse  # noqa: E402  (scripts/ is not a package)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.e2e
def test_doctor_writes_every_step_of_its_report_within_its_budget_on_a_cpu(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "arnn.doctor", "--budget-s", "150", "--out", str(tmp_path / "doctor")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "doctor"
    report = (folder / "report.md").read_text()
    for heading in (
        "## Environment",
        "## What model.backend=auto runs",
        "## Bench",
        "## One training epoch",
        "## Tests",
    ):
        assert heading in report
    assert report in result.stdout and f"| torch | {torch.__version__} |" in report
    bench = _rows(folder / "bench.csv")
    assert {row["backend"] for row in bench} >= {"eager", "cpp", "-"} and all(float(r["fwd_bwd_ms"]) > 0 for r in bench)
    assert {row["dtype"] for row in bench} == {"fp32", "bf16"} and (folder / "bench.png").stat().st_size > 0
    assert [row["backend"] for row in _rows(folder / "epoch.csv")] == ["cpp", "eager"]
    (tests,) = _rows(folder / "tests.csv")
    assert tests["status"] == "finished" and int(tests["PASSED"]) > 0 and tests["FAILED"] == "0"
    assert [row["backend"] for row in _rows(folder / "auto.csv")] == ["cpp", "cpp"]
    assert float(report.rsplit("Ran ", 1)[1].split()[0]) <= 150


def test_bench_drops_the_cases_predicted_to_cost_most_until_the_rest_fit(monkeypatch):
    costs = {"rnn": 0.01, "lstm": 0.02, "gru": 0.03, "arnn": 0.5, "arnn_gated": 1.0}

    def measure(model, backend, setting, sweep):
        return [_measurement(costs[model] * setting.steps / doctor.CPU.steps)]

    monkeypatch.setattr("arnn.bench.measure", measure)
    rows, dropped = doctor.run_bench("cpu", doctor.CPU, ["eager"], seconds=6.0)
    assert {row["model"] for row in rows} == {"rnn", "lstm", "gru", "arnn"}
    assert dropped == ["arnn_gated (eager, fp32) for the budget", "arnn_gated (eager, bf16) for the budget"]


def _measurement(seconds: float):
    from arnn.bench import Measurement

    return Measurement("m", "b", 1, 1, 1, seconds / 2, seconds)


def _python_with_only_torch(tmp_path: Path) -> Path:
    """A new venv that sees torch and what torch requires (links into this venv), and nothing else of ours: a
    node's Python with its own torch."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "node")], check=True)
    node = tmp_path / "node" / "bin" / "python"
    torch_only = tmp_path / "torch_only"
    torch_only.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in wheelhouse.closure(list(wheelhouse.NODE_BRINGS)):
        tops = {Path(str(file)).parts[0] for file in distribution(name).files or [] if not str(file).startswith("..")}
        for top in tops:
            if (site / top).exists() and not (torch_only / top).exists():
                (torch_only / top).symlink_to(site / top)
    purelib = subprocess.run(
        [str(node), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "node_torch.pth").write_text(f"{torch_only}\n")
    return node


@pytest.mark.e2e
def test_offline_kit_installs_the_wheelhouse_with_no_index_and_runs_the_doctor_on_the_nodes_torch(tmp_path):
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "wheelhouse.py"), "--dest", str(tmp_path / "wheelhouse")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list((tmp_path / "wheelhouse").glob("*.whl"))
    assert not [w.name for w in wheels if w.name.startswith(("torch-", "torchvision-", "triton-", "nvidia"))]
    node = _python_with_only_torch(tmp_path)
    assert subprocess.run([str(node), "-c", "import hydra"], capture_output=True).returncode != 0
    # no index, and any connection attempt would go to a closed port
    offline = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    offline.update(PYTHON=str(node), ARNN_SITE=str(tmp_path / "site"), WANDB_MODE="offline")
    run = subprocess.run(
        [
            str(ROOT / "scripts" / "offline_node.sh"),
            str(tmp_path / "wheelhouse"),
            "--budget-s",
            "120",
            "--out",
            str(tmp_path / "doctor"),
        ],
        capture_output=True,
        text=True,
        env=offline,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = (tmp_path / "doctor" / "report.md").read_text()
    assert f"| torch | {torch.__version__} |" in report and (tmp_path / "site" / "hydra").is_dir()
    assert "activate.sh" in {path.name for path in (tmp_path / "site").iterdir()}


def test_offline_kit_refuses_a_python_without_torch_with_one_line_naming_the_fix(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    run = subprocess.run(
        [str(ROOT / "scripts" / "offline_node.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(tmp_path / "bare" / "bin" / "python")},
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bare' / 'bin' / 'python'} cannot import torch; load the node's torch (e.g. module load "
        "pytorch) or set PYTHON"
    ]
