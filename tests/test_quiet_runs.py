"""A run prints what it is about: no third-party warning or advertisement reaches its stderr."""

import re

import pytest

from tests.helpers.runs import run_cli

NOISE = re.compile(r"warn|deprecat|💡|tip:", re.IGNORECASE)


@pytest.mark.e2e
@pytest.mark.parametrize("logger", ["wandb", "csv"])
def test_a_debug_run_writes_no_warning_we_did_not_write_to_stderr(tmp_path, logger):
    # W&B's own lines shown (run_cli silences them otherwise), as a user sees them
    run = run_cli(
        "trainer=debug", f"logger={logger}", f"hydra.run.dir={tmp_path / 'run'}", env={"WANDB_SILENT": "false"}
    )
    assert run.returncode == 0, run.stderr
    # our own log lines carry the module's name, e.g. [arnn.callbacks.learning_check][WARNING]
    noise = [line for line in run.stderr.splitlines() if NOISE.search(line) and "[arnn." not in line]
    assert noise == []


@pytest.mark.e2e
@pytest.mark.parametrize("enabled", [True, False])
def test_the_model_summary_lists_parameters_without_a_flops_column_and_obeys_its_switch(tmp_path, enabled):
    run = run_cli("trainer=debug", "logger=csv", f"trainer.enable_model_summary={enabled}", f"hydra.run.dir={tmp_path}")
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    assert ("Total params: 9.7 K" in output) is enabled  # 128-unit A-RNN on 8×8 digits: 8 128 + 256 + 1 290
    assert "FLOPs" not in output and "Flops" not in output
    assert "model summary callbacks" not in output
