"""The system identification of Emami et al. (NeurIPS 2019): the teacher RNN, its data, the per-step regressor, and a
run through train."""

import math
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import R2Score

from arnn.cells.constrained import ProjectedOrthogonalRNNCell, SoftOrthogonalRNNCell, orthogonality_error
from arnn.cells.full_capacity import FullCapacityUnitaryCell
from arnn.data.sysid import SystemIdentificationDataModule
from arnn.errors import ConfigError
from arnn.lit.regressor import SequenceRegressor
from arnn.runs.train import train

SMALL = dict(num_sequences=20, seq_len=100, val_size=4)


def _all_data(datamodule: SystemIdentificationDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    datamodule.setup()
    splits = datamodule.splits.values()
    return torch.cat([s.tensors[0] for s in splits]), torch.cat([s.tensors[1] for s in splits])


def test_sequences_have_the_configured_shapes_and_split_sizes():
    datamodule = SystemIdentificationDataModule(input_size=2, output_size=3)
    datamodule.setup()
    assert {name: len(split) for name, split in datamodule.splits.items()} == {"train": 60, "val": 10, "test": 30}
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape == (10, 1000, 2) and y.shape == (10, 1000, 3) and x.dtype == y.dtype == torch.float32
    assert datamodule.input_size == 2 and datamodule.seq_len == 1000 and datamodule.task_kwargs == {"output_size": 3}
    teacher = datamodule.teacher()
    assert teacher.w.shape == (4, 4) and teacher.f.shape == (4, 2) and teacher.b.shape == (4,)
    assert teacher.c.shape == (3, 4)


def test_same_realisation_gives_identical_data_and_another_realisation_different_data():
    first, again, other = (_all_data(SystemIdentificationDataModule(realisation=r, **SMALL)) for r in (0, 0, 1))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[1], other[1])


def test_a_realisations_teacher_does_not_depend_on_the_amount_of_data():
    small = SystemIdentificationDataModule(realisation=3, **SMALL).teacher()
    large = SystemIdentificationDataModule(realisation=3, num_sequences=40, seq_len=200).teacher()
    for name in ("w", "f", "b", "c"):
        assert torch.equal(getattr(small, name), getattr(large, name))


@pytest.mark.parametrize("realisation", range(5))
def test_teacher_is_contractive(realisation):
    w = SystemIdentificationDataModule(realisation=realisation, **SMALL).teacher().w
    assert w.dtype == torch.float64
    assert torch.linalg.matrix_norm(w, ord=2) < 1


@pytest.mark.parametrize("realisation", [0, 1])
def test_each_teacher_unit_is_on_between_50_and_70_percent_of_the_time(realisation):
    datamodule = SystemIdentificationDataModule(realisation=realisation)
    x, _ = _all_data(datamodule)
    on = datamodule.teacher().on_fraction(x)
    assert ((0.5 < on) & (on < 0.7)).all(), on


@pytest.mark.parametrize("snr_db", [15.0, 20.0])
def test_output_noise_has_the_configured_snr(snr_db):
    datamodule = SystemIdentificationDataModule(snr_db=snr_db, output_size=2)
    x, y = _all_data(datamodule)
    clean = datamodule.teacher().outputs(x)
    snr = 10 * torch.log10(clean.var(dim=(0, 1)) / (y - clean).var(dim=(0, 1)))
    assert torch.allclose(snr, torch.full_like(snr, snr_db), atol=1.0), snr


def test_teacher_outputs_score_r2_of_one_on_noiseless_targets():
    datamodule = SystemIdentificationDataModule(snr_db=None, output_size=2, **SMALL)
    x, y = _all_data(datamodule)
    clean = datamodule.teacher().outputs(x).float()
    r2 = R2Score(multioutput="uniform_average")(clean.reshape(-1, 2), y.reshape(-1, 2))
    assert r2 == pytest.approx(1.0, abs=1e-6)


def test_a_split_with_no_sequences_left_is_a_config_error():
    with pytest.raises(ConfigError, match="data.num_sequences=10"):
        SystemIdentificationDataModule(num_sequences=10, val_size=7)


def _fit(module: SequenceRegressor, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Two epochs of Lightning on CPU, validating on the training data; returns the logged metrics."""
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader, loader)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@pytest.mark.e2e
@pytest.mark.parametrize("target_shape", [(8, 12, 2), (8, 2)], ids=["per_step", "last_step"])
def test_regressor_scores_every_step_of_3d_targets_and_the_last_step_of_2d_targets(target_shape):
    torch.manual_seed(0)
    cell = SoftOrthogonalRNNCell(3, 6, penalty_weight=0.1)
    module = SequenceRegressor(cell, output_size=2, optimizer=partial(torch.optim.Adam, lr=0.01))
    x, y = torch.randn(8, 12, 3), torch.randn(target_shape)
    with torch.no_grad():
        all_steps = module(x)
        prediction = module.predict_targets(x, y)
    assert all_steps.shape == (8, 12, 2)
    assert torch.equal(prediction, all_steps if len(target_shape) == 3 else all_steps[:, -1])
    metrics = _fit(module, x, y)
    assert {"train/loss_epoch", "train/penalty_epoch", "val/loss", "val/r2", "val/r2_best"} <= metrics.keys()
    assert metrics["val/r2_best"] >= metrics["val/r2"] and math.isfinite(metrics["val/r2"])


def test_regressor_rejects_targets_that_do_not_match_its_outputs():
    module = SequenceRegressor(SoftOrthogonalRNNCell(1, 4), output_size=2, optimizer=torch.optim.Adam)
    with pytest.raises(ValueError, match="targets of shape"):
        module.predict_targets(torch.randn(2, 5, 1), torch.randn(2, 5, 3))


@pytest.mark.e2e
def test_regressor_leaves_manifold_parameters_out_and_runs_the_cells_after_step_hook():
    unitary = FullCapacityUnitaryCell(1, 4)
    optimizer = SequenceRegressor(unitary, output_size=1, optimizer=torch.optim.SGD).configure_optimizers()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized and not optimized & {id(p) for p in unitary.manifold_parameters()}

    torch.manual_seed(0)
    projected = ProjectedOrthogonalRNNCell(1, 6)
    module = SequenceRegressor(projected, output_size=1, optimizer=partial(torch.optim.SGD, lr=0.5))
    _fit(module, torch.randn(8, 10, 1), torch.randn(8, 10, 1))
    assert orthogonality_error(projected.recurrent_matrix()) < 1e-4


@pytest.mark.e2e
def test_system_identification_trains_end_to_end_and_reports_test_r2(make_cfg):
    cfg = make_cfg(
        "data=sysid",
        "model=rnn",
        "model.hidden_size=4",
        "data.seq_len=50",
        "data.num_sequences=20",
        "data.val_size=4",
    )
    assert cfg.monitor.metric == "val/r2" and cfg.optimized_metric == "val/r2_best"
    metrics = train(cfg)
    assert {"test/loss", "test/r2", "val/r2_best"} <= metrics.keys()
    assert math.isfinite(metrics["test/r2"]) and metrics["test/r2"] <= 1
