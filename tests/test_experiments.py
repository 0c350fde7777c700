"""The experiment tree: paper/<data>/<model> registered from the row files, the index, the listing, one data layout."""

import re
import subprocess
import sys

from omegaconf import OmegaConf

from arnn.runs.build import CONF_DIR, build, compose
from arnn.runs.experiments import catalogue
from tests.helpers.runs import EXPERIMENTS, ROOT


def test_a_row_column_is_the_row_with_its_columns_data_and_settings():
    smnist = compose(["experiment=paper/smnist/cornn"])
    pmnist = compose(["experiment=paper/pmnist/cornn"])
    assert smnist.data.permutation_seed is None and pmnist.data.permutation_seed is not None
    # the psMNIST column's own constants over the row's sMNIST ones; the rest is the row's
    assert (smnist.model.dt, smnist.optimizer.lr) == (0.042, 0.0021)
    assert (pmnist.model.dt, pmnist.model.gamma, pmnist.optimizer.lr) == (0.076, 0.4, 0.0054)
    assert smnist.model.hidden_size == pmnist.model.hidden_size == 256 and pmnist.trainer.max_epochs == 120
    assert (smnist.task_name, pmnist.task_name) == ("paper_smnist_cornn", "paper_pmnist_cornn")


def test_a_row_whose_data_is_fixed_makes_one_experiment_per_column_setting():
    lengths = {name: compose([f"experiment=paper/{name}/rnn"]).data.context_length for name in ("text100", "text400")}
    assert lengths == {"text100": 100, "text400": 400}
    assert compose(["experiment=paper/text200/quick/rnn"]).paper.test_acc.text == 80.45


def test_the_quick_budget_wins_over_a_rows_own_epochs():
    assert compose(["experiment=paper/pmnist/exprnn"]).trainer.max_epochs == 70
    assert compose(["experiment=paper/pmnist/quick/exprnn"]).trainer.max_epochs == 15


def test_rows_and_budgets_are_parts_not_experiments():
    assert not [name for name in EXPERIMENTS if name.startswith(("paper/rows/", "paper/budget/"))]
    assert len(EXPERIMENTS) == len(set(EXPERIMENTS)) == 77


def test_every_experiment_has_a_distinct_task_name_for_its_outputs():
    task_names = [experiment.task_name for experiment in catalogue(CONF_DIR)]
    assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in task_names)
    assert len(set(task_names)) == len(task_names)


def test_the_index_in_conf_experiment_names_every_experiment():
    index = (ROOT / "conf" / "experiment" / "README.md").read_text()
    for name in EXPERIMENTS:
        parts = name.split("/")
        if name in index:
            continue
        # a paper cell: its column's line lists the model
        column_line = next(line for line in index.splitlines() if line.startswith(f"| `paper/{parts[1]}/` |"))
        assert f"`{parts[-1]}`" in column_line, name


def test_list_experiments_prints_every_name_with_its_summary_and_exits_0():
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--list-experiments"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == sorted(EXPERIMENTS)
    assert "paper/pmnist/arnn " in result.stdout and "the paper's test accuracy 95.8%" in result.stdout
    assert lines[-1].startswith(f"({len(EXPERIMENTS)} experiments")


def test_every_data_config_has_the_data_package_and_sets_the_task_it_needs():
    tasks = {"adding": "regression", "sysid": "regression", "copy": "next_token", "text": "next_token"}
    for path in sorted((CONF_DIR / "data").glob("*.yaml")):
        assert "@package" not in path.read_text(), path.name
        cfg = compose([f"data={path.stem}"])
        assert "_target_" in cfg.data and set(cfg) >= {"task", "model", "data"}
        expected = tasks.get(path.stem, "classification")
        assert cfg.task._target_ == compose([f"task={expected}"]).task._target_, path.name


def _settings(overrides: list[str]) -> dict:
    """The composed config as plain values (interpolations unresolved), without what names the run (task name, tags)."""
    cfg = OmegaConf.to_container(compose(overrides))
    return {key: value for key, value in cfg.items() if key not in ("task_name", "tags")}


def _parameter_count(overrides: list[str]) -> int:
    _, module = build(compose(overrides))
    return sum(parameter.numel() for parameter in module.parameters())


def test_the_tuned_pmnist_arnn_is_the_papers_row_with_only_its_training_setting_changed():
    row, tuned = _settings(["experiment=paper/pmnist/arnn"]), _settings(["experiment=tuned/pmnist/arnn"])
    assert (tuned["model"].pop("eps"), tuned["model"].pop("sigma_w"), tuned["data"].pop("standardize")) == (
        0.02,
        2.0,
        True,
    )
    for part, key in (("model", "eps"), ("model", "sigma_w"), ("data", "standardize")):
        row[part].pop(key, None)
    assert tuned == row
    # the paper's size: 128 units, about 10k parameters (Chang et al., ICLR 2019, Table 1)
    assert _parameter_count(["experiment=tuned/pmnist/arnn"]) == _parameter_count(["experiment=paper/pmnist/arnn"])
    assert 9_500 <= _parameter_count(["experiment=tuned/pmnist/arnn"]) <= 10_500


def test_make_train_runs_the_tuned_digits_arnn_the_default_model_and_data_with_its_searched_setting():
    makefile = (ROOT / "Makefile").read_text()
    assert "train.py experiment=tuned/digits/arnn $(ARGS)" in makefile
    default, tuned = compose([]), compose(["experiment=tuned/digits/arnn"])
    assert (tuned.data, tuned.model.hidden_size, tuned.model.gamma) == (default.data, 128, default.model.gamma)
    assert (tuned.optimizer._target_, tuned.optimizer.lr, tuned.scheduler._target_) == (
        "torch.optim.Adam",
        0.01,
        "torch.optim.lr_scheduler.CosineAnnealingLR",
    )
    assert (tuned.model.eps, tuned.model.sigma_w, tuned.trainer.max_epochs) == (0.3, 2.0, 120)
    assert tuned.callbacks.early_stopping is None
