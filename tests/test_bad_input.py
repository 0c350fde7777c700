"""Bad input ends in one readable `error:` line naming the fix, a non-zero exit, and nothing overwritten."""

import pytest

from arnn.choices import unknown_choice
from tests.conftest import FAST, ROOT, run_cli

CASES = {
    "unknown_model": (["model=nope"], "unknown model 'nope'; choose one of: ablation, arnn, arnn_gated"),
    "unknown_model_in_sweep": (["-m", "model=arnn,nope"], "unknown model 'nope'"),
    "unknown_data": (["data=cifar100"], "unknown data 'cifar100'; choose one of: adding, copy, digits"),
    "unknown_callback_in_list": (["callbacks=[default,nope]"], "unknown callbacks 'nope'"),
    "zero_eps": (["model.eps=0"], "model.eps must be > 0"),
    "negative_eps": (["model.eps=-0.5"], "model.eps must be > 0"),
    "negative_gamma": (["model.gamma=-0.1"], "model.gamma (diffusion) must be >= 0"),
    "zero_hidden_size": (["model=lstm", "model.hidden_size=0"], "model.hidden_size must be > 0"),
    "missing_mnist_offline": (
        ["data=smnist", "data.data_dir={tmp}/empty", "data.download=false"],
        "MNIST files not found in {tmp}/empty/MNIST/raw",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(("arguments", "message"), CASES.values(), ids=CASES.keys())
def test_bad_input_prints_one_error_line_and_overwrites_nothing(tmp_path, arguments, message):
    run_dir = tmp_path / "run"
    previous = run_dir / "checkpoints" / "last.ckpt"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"an earlier run's checkpoint")
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]

    result = run_cli(*arguments, *FAST, f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={run_dir}")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message.format(tmp=tmp_path) in last_line, result.stderr
    assert "Traceback" not in result.stderr
    assert previous.read_bytes() == b"an earlier run's checkpoint"
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]


def test_a_list_of_known_choices_passes_the_pre_check():
    assert unknown_choice(["callbacks=[default,jacobian_spectrum]", "model=arnn"], ROOT / "conf") is None
