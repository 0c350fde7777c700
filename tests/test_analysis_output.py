"""Analyses log their figures to an offline W&B run when asked (`--wandb`)."""

from arnn.analysis import phase_portrait


def test_wandb_flag_logs_the_analysis_png_to_an_offline_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")

    phase_portrait.main(["--steps", "20", "--out", str(tmp_path), "--wandb"])

    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    logged = list((run / "files" / "media" / "images").glob("phase_portrait_*.png"))
    assert len(logged) == 1 and logged[0].stat().st_size > 0
