"""A checkpoint that cannot be read, or does not fit the configured model, ends in one error line before any
training starts, and leaves the run directory as it was."""

import pytest

from arnn.runs.train import train
from tests.helpers.runs import FAST, run_cli


@pytest.fixture
def lstm_checkpoint(make_cfg, tmp_path):
    """A real checkpoint of a 12-unit LSTM on digits."""
    train(make_cfg("model=lstm", "model.hidden_size=12"))
    return tmp_path / "checkpoints" / "last.ckpt"


def _fails_cleanly(tmp_path, *arguments: str) -> str:
    run_dir = tmp_path / "run"  # not tmp_path itself: the lstm_checkpoint fixture trains there
    earlier = run_dir / "checkpoints" / "last.ckpt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier run's checkpoint")

    result = run_cli(*arguments, *FAST, f"hydra.run.dir={run_dir}")

    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert earlier.read_bytes() == b"an earlier run's checkpoint"
    assert [path.name for path in earlier.parent.iterdir()] == ["last.ckpt"]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: "), result.stderr
    return last_line


@pytest.mark.e2e
def test_corrupt_checkpoint_is_one_error_line(tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x80\x04 this is not a checkpoint")
    line = _fails_cleanly(tmp_path, f"ckpt_path={corrupt}")
    assert f"cannot read checkpoint {corrupt}" in line and "pass a .ckpt file written by arnn" in line


@pytest.mark.e2e
def test_missing_checkpoint_is_one_error_line(tmp_path):
    line = _fails_cleanly(tmp_path, f"ckpt_path={tmp_path / 'nowhere.ckpt'}")
    assert f"cannot read checkpoint {tmp_path / 'nowhere.ckpt'}" in line


@pytest.mark.e2e
def test_checkpoint_of_another_model_is_one_error_line_naming_its_model(tmp_path, lstm_checkpoint):
    line = _fails_cleanly(tmp_path, "model=arnn", "model.hidden_size=12", f"ckpt_path={lstm_checkpoint}")
    assert f"checkpoint {lstm_checkpoint} does not fit this model (missing net." in line
    assert "written by _target_=arnn.cells.TorchRecurrentEncoder, hidden_size=12" in line


@pytest.mark.e2e
def test_checkpoint_of_another_hidden_size_names_the_shapes(tmp_path, lstm_checkpoint):
    line = _fails_cleanly(tmp_path, "model=lstm", "model.hidden_size=20", f"ckpt_path={lstm_checkpoint}")
    assert "net.rnn.weight_hh_l0 is (48, 12), the model's is (80, 20)" in line, line


@pytest.mark.e2e
def test_ckpt_path_and_resume_together_is_one_error_line(tmp_path, lstm_checkpoint):
    line = _fails_cleanly(tmp_path, "model=lstm", "model.hidden_size=12", f"ckpt_path={lstm_checkpoint}", "resume=true")
    assert "give either ckpt_path=<file> or resume=true, not both" in line
