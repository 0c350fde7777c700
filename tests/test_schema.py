"""The composed config is type-checked against the targets' signatures and `RunSettings` before anything is built:
every shipped config passes, each wrong type is named by its key."""

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
import pytorch_lightning as pl
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from arnn.cli.schema import describe, parameters_of, validate
from arnn.data import DigitsDataModule
from arnn.errors import ConfigError
from arnn.runs.build import compose
from tests.helpers.runs import EXPERIMENTS, ROOT, compose_run_cfg

GROUPS = ("task", "data", "model", "optimizer", "scheduler", "callbacks", "logger", "trainer")
SHIPPED = [f"{group}={path.stem}" for group in GROUPS for path in sorted((ROOT / "conf" / group).glob("*.yaml"))] + [
    f"experiment={name}" for name in EXPERIMENTS
]


@pytest.fixture
def run_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """conf/train.yaml composed with only the given overrides (make_cfg's FAST ones would clash with some
    groups, e.g. callbacks=none has no rich_progress_bar to null), as the job receives it."""
    yield lambda *overrides: compose_run_cfg(tmp_path, list(overrides))
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("choice", SHIPPED)
def test_every_shipped_config_passes_validation(run_cfg, choice):
    validate(run_cfg(choice))


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.eps=1"],  # an int where a float is expected
        ["trainer.max_epochs=null"],
        ["trainer.devices=auto", "trainer.precision=16-mixed"],
        ["optimizer=sgd", "optimizer.nesterov=true"],
        ["scheduler=cosine", "trainer.max_epochs=3"],
        ["data=smnist", "data.val_size=100", "data.permutation_seed=3"],  # keys of a base class, via **kwargs
        ["logger=wandb", "+logger.wandb.job_type=train"],  # WandbLogger passes unknown keys on to wandb.init
        ["ckpt_path=/some/file.ckpt", "tags=[a,b]"],
    ],
)
def test_valid_values_pass(run_cfg, overrides):
    validate(run_cfg(*overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.hidden_size=abc"], "model.hidden_size must be int, got 'abc'"),
        (["model.hidden_size=true"], "model.hidden_size must be int, got True"),
        (["model.eps=fast"], "model.eps must be float, got 'fast'"),
        (["data.batch_size=1.5"], "data.batch_size must be int, got 1.5"),
        (["trainer.max_epochs=1.5"], "trainer.max_epochs must be int or null, got 1.5"),
        (["callbacks.early_stopping.patience=few"], "callbacks.early_stopping.patience must be int, got 'few'"),
        (["optimizer.lr=fast"], "optimizer.lr must be float or Tensor, got 'fast'"),
        (["++trainer.precision=bf17"], "trainer.precision must be one of 64, 32, 16, 'transformer-engine'"),
        (["seed=x"], "seed must be int, got 'x'"),
        (["ckpt_path=3"], "ckpt_path must be str or null, got 3"),
        (["++resume=maybe"], "resume must be bool, got 'maybe'"),
        (["tags=[1,2]"], "tags must be list[str], got [1, 2]"),
        (["monitor.mode=maximum"], "monitor.mode must be one of 'min', 'max', got 'maximum'"),
        (
            ["scheduler=cosine", "trainer.max_epochs=null"],
            "scheduler.T_max must be int, got None (from ${trainer.max_epochs})",
        ),
        (["+model.hiden_size=3"], "model.hiden_size is not a parameter of arnn.cells.AntisymmetricCell"),
        (["model._target_=arnn.cells.Nope"], "model._target_: 'arnn.cells.Nope' names nothing importable"),
    ],
)
def test_a_wrong_value_is_named_by_its_key(run_cfg, overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(run_cfg(*overrides))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_keyword_arguments_are_followed_to_the_base_class_that_takes_them():
    parameters, takes_any = parameters_of(DigitsDataModule)
    assert parameters["test_size"] is int and parameters["batch_size"] is int
    assert parameters["permutation_seed"] == int | None
    assert not takes_any


def test_a_function_with_keyword_arguments_takes_any_name():
    def build(size: int, **options: float) -> None: ...

    assert parameters_of(build) == ({"size": int}, True)


@pytest.mark.parametrize(
    ("hint", "text"),
    [
        (int, "int"),
        (int | None, "int or null"),
        (Literal["min", "max"], "one of 'min', 'max'"),
        (list[str], "list[str]"),
    ],
)
def test_type_hints_read_as_words(hint, text):
    assert describe(hint) == text


def test_the_trainer_flags_listed_in_the_default_config_hold_lightnings_own_defaults():
    listed = ("fast_dev_run", "limit_train_batches", "limit_val_batches", "limit_test_batches", "val_check_interval")
    listed += ("accumulate_grad_batches", "precision", "enable_progress_bar", "enable_model_summary")
    defaults = inspect.signature(pl.Trainer).parameters
    trainer = compose([]).trainer
    assert {key: trainer[key] for key in listed} == {key: defaults[key].default for key in listed}
