"""`python eval.py`: a saved checkpoint's metrics on its own data (rebuilt from the file) or on data named on the
command line, written beside the checkpoint; every mistake one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arnn.errors import UserError
from arnn.runs.evaluate import USAGE, evaluate
from arnn.runs.train import train
from tests.helpers.runs import ROOT


def _eval(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), *arguments], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


@pytest.fixture
def trained(make_cfg, tmp_path) -> tuple[Path, dict[str, float]]:
    """A 16-unit A-RNN trained for 2 epochs of 3 batches on digits, validated and tested on the whole splits: its best
    checkpoint and the metrics train() reported."""
    budget = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=null"]
    metrics = train(make_cfg("model.hidden_size=16", *budget, "trainer.limit_test_batches=null"))
    (best,) = (tmp_path / "checkpoints").glob("epoch_*.ckpt")
    return best, metrics


@pytest.mark.e2e
def test_eval_gives_the_test_accuracy_training_reported_for_its_best_checkpoint_and_writes_it_beside_it(trained):
    checkpoint, metrics = trained
    run = _eval(f"ckpt_path={checkpoint}")
    assert run.returncode == 0, run.stderr
    written = json.loads(checkpoint.with_name(f"{checkpoint.name}.test.json").read_text())
    assert written["metrics"]["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert written["split"] == "test" and written["data"]["_target_"] == "arnn.data.DigitsDataModule"
    assert f"test/acc {metrics['test/acc']:.4f}" in run.stdout


@pytest.mark.e2e
def test_eval_on_the_validation_split_and_on_changed_data_settings(trained):
    checkpoint, metrics = trained
    run = _eval(f"ckpt_path={checkpoint}", "split=val", "data.batch_size=7")
    assert run.returncode == 0, run.stderr
    written = json.loads(checkpoint.with_name(f"{checkpoint.name}.val.json").read_text())
    assert written["metrics"]["val/acc"] == pytest.approx(metrics["val/acc_best"], abs=1e-6)
    assert written["data"]["batch_size"] == 7


@pytest.mark.e2e
def test_eval_on_data_of_another_kind_is_one_line_naming_the_fix(trained):
    checkpoint, _ = trained
    run = _eval(f"ckpt_path={checkpoint}", "data=adding")
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "gives 2 inputs per step but the model" in run.stderr and "trained on 1" in run.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "no ckpt_path given: eval.py ckpt_path=<file>"),
        (["ckpt_path=/no/such.ckpt"], "cannot read checkpoint /no/such.ckpt: No such file or directory"),
        (["ckpt_path=x.ckpt", "split=train"], "split must be one of val, test, got 'train'"),
        (["ckpt_path=x.ckpt", "model.eps=1"], "eval.py takes ckpt_path, split and data settings, got model.eps=1"),
        (["ckpt_path=a=b="], "cannot parse 'ckpt_path=a=b='"),
    ],
)
def test_eval_mistakes_are_user_errors_naming_the_fix(arguments, message):
    with pytest.raises(UserError) as error:
        evaluate(arguments)
    assert str(error.value).startswith(message)


def test_eval_command_line_prints_a_mistake_as_one_line_and_exits_1():
    run = _eval("split=val")
    assert run.returncode == 1 and run.stderr == "error: no ckpt_path given: " + USAGE + "\n"
