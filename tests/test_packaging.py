"""A non-editable install (`pip install .`) carries its configs: train.py and the analyses run from the wheel alone,
away from the checkout."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel and installed, without its dependencies (those of this venv serve), into an
    empty folder that then comes first on the import path."""
    folder = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", folder / "wheel", ROOT], check=True)
    (wheel,) = (folder / "wheel").glob("arnn-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", folder / "site", wheel], check=True)
    return folder


def _run(installed: Path, *arguments: str | Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(installed / "site"), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, *map(str, arguments)], cwd=installed, env=environment, capture_output=True, text=True
    )


@pytest.mark.e2e
def test_a_wheel_install_finds_its_configs_away_from_the_checkout(installed):
    where = _run(installed, "-c", "import arnn.runs.build as b; print(b.__file__); print(b.CONF_DIR)")
    module_file, conf_dir = where.stdout.split()
    assert Path(module_file).is_relative_to(installed / "site") and not Path(conf_dir).is_symlink()
    assert (Path(conf_dir) / "train.yaml").is_file() and (Path(conf_dir) / "experiment" / "paper" / "rows").is_dir()

    jacobian = _run(installed, "-m", "arnn.analysis", "jacobian", "--models", "arnn", "--gammas", "0.1", "--batch", "4")
    assert jacobian.returncode == 0, jacobian.stderr
    assert list((installed / "outputs" / "analysis" / "jacobian").glob("*/jacobian.png"))

    shutil.copy(ROOT / "train.py", installed / "train.py")
    run = installed / "run"
    trained = _run(installed, "train.py", "trainer=debug", "logger=csv", f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stderr
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
