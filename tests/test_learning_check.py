"""A run that learned nothing ends with exit 0 and its real numbers, plus a warning line in the log and in
metrics.json: its best validation metric never beat the untrained model's, or it tests below chance."""

import json
from types import SimpleNamespace

import pytest
import torch

from arnn.callbacks.learning_check import LearningCheck
from tests.helpers.runs import FAST, run_cli


def _trainer(**metrics: float) -> SimpleNamespace:
    return SimpleNamespace(callback_metrics={k.replace("_", "/", 1): torch.tensor(v) for k, v in metrics.items()})


def _validate(check: LearningCheck, value: float) -> None:
    trainer = _trainer(val_acc=value)
    trainer.sanity_checking = False
    check.on_validation_end(trainer, None)


def test_a_best_value_no_better_than_the_untrained_models_is_a_warning():
    check = LearningCheck("val/acc", "max")
    check.on_sanity_check_end(_trainer(val_acc=0.30), None)
    for value in (0.12, 0.30, 0.25):
        _validate(check, value)
    check.on_fit_end(None, None)
    assert check.warnings == [
        "val/acc never improved on the untrained model's 0.3 (best 0.3): the run learned nothing; check optimizer.lr "
        "and the model settings"
    ]


def test_an_improving_run_gives_no_warning_and_resumes_with_its_untrained_value():
    check = LearningCheck("val/loss", "min")
    check.on_sanity_check_end(_trainer(val_loss=2.3), None)
    trainer = _trainer(val_loss=1.9)
    trainer.sanity_checking = False
    check.on_validation_end(trainer, None)
    resumed = LearningCheck("val/loss", "min")
    resumed.load_state_dict(check.state_dict())
    resumed.on_sanity_check_end(_trainer(val_loss=1.9), None)  # the sanity check of the resumed, trained model
    resumed.on_fit_end(None, None)
    assert resumed.initial == pytest.approx(2.3) and resumed.warnings == []


def test_a_test_accuracy_below_chance_is_a_warning():
    check = LearningCheck("val/acc", "max")
    check.on_test_end(_trainer(test_acc=0.069), SimpleNamespace(chance=0.1))
    check.on_test_end(_trainer(test_acc=0.5), SimpleNamespace(chance=0.1))
    assert check.warnings == [
        "test/acc 0.069 is below chance (0.1): the model is worse than one that learned nothing; check optimizer.lr "
        "and the model settings"
    ]


@pytest.mark.e2e
def test_a_run_whose_weights_never_move_exits_0_with_the_warning_in_its_log_and_metrics(tmp_path):
    result = run_cli(*FAST, "optimizer.lr=1e-12", f"hydra.run.dir={tmp_path}")

    assert result.returncode == 0, result.stderr
    (warning,) = json.loads((tmp_path / "metrics.json").read_text())["warnings"]
    assert warning.startswith("val/acc never improved on the untrained model's")
    assert warning in (tmp_path / "train.log").read_text() and warning in result.stdout + result.stderr
