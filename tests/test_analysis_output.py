"""Analyses log their figures to an offline W&B run when asked (`--wandb`)."""

import subprocess
import sys

import pytest

from arnn.analysis import phase_portrait


def test_wandb_flag_logs_the_analysis_png_to_an_offline_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")

    phase_portrait.main(["--steps", "20", "--out", str(tmp_path), "--wandb"])

    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    logged = list((run / "files" / "media" / "images").glob("phase_portrait_*.png"))
    assert len(logged) == 1 and logged[0].stat().st_size > 0


@pytest.mark.e2e
@pytest.mark.parametrize("content", [b"not a checkpoint", bytes(range(256)) * 4, b""])
def test_analysis_of_a_corrupt_checkpoint_is_one_error_line_naming_the_file(tmp_path, content):
    checkpoint = tmp_path / "broken.ckpt"
    checkpoint.write_bytes(content)

    result = subprocess.run(
        [sys.executable, "-m", "arnn.analysis", "jacobian", "--checkpoint", str(checkpoint), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    ]
    assert f"cannot read checkpoint {checkpoint}" in result.stderr and "pass a .ckpt file" in result.stderr
