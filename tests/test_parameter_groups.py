"""A cell's named parameter groups train at their own learning rate (`task.lr_scales`), with every optimizer and
scheduler, and the scaled rates survive a checkpoint."""

from functools import partial

import pytest
import torch
from omegaconf import open_dict

from arnn.cells.orthogonal import ExpRNNCell, ScoRNNCell
from arnn.errors import ConfigError
from arnn.lit import SequenceClassifier
from arnn.runs.build import build_module
from tests.helpers.runs import compose_run_cfg

RMSPROP = partial(torch.optim.RMSprop, lr=1e-3)


def _classifier(cell=ExpRNNCell, optimizer=RMSPROP, **kwargs) -> SequenceClassifier:
    torch.manual_seed(0)
    return SequenceClassifier(cell(1, 8), num_classes=3, optimizer=optimizer, **kwargs)


@pytest.mark.parametrize("cell", [ExpRNNCell, ScoRNNCell])
@pytest.mark.parametrize(
    "optimizer",
    [partial(torch.optim.RMSprop, lr=1e-3), partial(torch.optim.Adam, lr=1e-3), partial(torch.optim.Adagrad, lr=1e-3)],
    ids=["rmsprop", "adam", "adagrad"],
)
def test_the_orthogonal_group_gets_the_scaled_learning_rate_and_the_rest_the_optimizers(cell, optimizer):
    module = _classifier(cell, optimizer, lr_scales={"orthogonal": 0.1})

    rest, orthogonal = module.configure_optimizers().param_groups

    assert orthogonal["lr"] == pytest.approx(1e-4) and rest["lr"] == pytest.approx(1e-3)
    assert orthogonal["params"] == module.net.parameter_groups()["orthogonal"]
    counted = {id(p) for group in (rest, orthogonal) for p in group["params"]}
    assert counted == {id(p) for p in module.parameters()} and len(rest["params"]) + 1 == len(counted)


def test_a_scheduler_keeps_the_ratio_of_the_groups():
    module = _classifier(
        lr_scales={"orthogonal": 0.1}, scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    )
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    optimizer.step()
    scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([5e-4, 5e-5])


def test_the_scaled_rates_are_restored_from_a_checkpoint():
    optimizer = _classifier(lr_scales={"orthogonal": 0.1}).configure_optimizers()
    restored = _classifier(lr_scales={"orthogonal": 0.1}).configure_optimizers()
    for group in optimizer.param_groups:
        group["lr"] *= 0.3  # as a scheduler would have left them
    restored.load_state_dict(optimizer.state_dict())
    assert [group["lr"] for group in restored.param_groups] == pytest.approx([3e-4, 3e-5])


@pytest.mark.parametrize(
    ("scales", "message"),
    [
        ({"recurrent": 0.1}, "task.lr_scales names the group 'recurrent', which this model lacks (its groups: orth"),
        ({"orthogonal": 0.0}, "task.lr_scales.orthogonal must be a positive number, got 0.0"),
    ],
)
def test_a_group_the_model_lacks_or_a_non_positive_scale_is_a_config_error(scales, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _classifier(lr_scales=scales)


def test_lr_scales_from_the_command_line_reach_the_optimizer(tmp_path):
    cfg = compose_run_cfg(tmp_path, ["model=exprnn", "optimizer=rmsprop", "+task.lr_scales.orthogonal=0.1"])
    with open_dict(cfg):
        cfg.model.input_size, cfg.task.num_classes = 1, 10
    rest, orthogonal = build_module(cfg).configure_optimizers().param_groups
    assert orthogonal["lr"] == pytest.approx(0.1 * cfg.optimizer.lr) and rest["lr"] == pytest.approx(cfg.optimizer.lr)
