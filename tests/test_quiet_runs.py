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
