"""Dynamics analyses: end-to-end Jacobian spectra, gradient flow over time, 2-D phase portraits."""

import csv
import math
from functools import partial
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from torch.autograd.functional import jacobian as autograd_jacobian

from arnn.analysis import gradient_flow, jacobian, phase_portrait
from arnn.analysis.gradient_flow import gradient_flow as flow_norms
from arnn.analysis.jacobian import SPECTRUM_FILE, end_to_end_jacobian, spectrum_stats
from arnn.analysis.models import compose_config, fresh_model
from arnn.analysis.phase_portrait import antisymmetric_matrix, antisymmetric_trajectory, hamiltonian
from arnn.analysis.state import StateLayout
from arnn.cells import AntisymmetricCell, GatedAntisymmetricCell, TorchRecurrentEncoder
from arnn.cells.oscillatory import CoupledOscillatorCell
from arnn.cells.unitary import UnitaryRNNCell
from arnn.lit import SequenceClassifier
from arnn.runs.checkpoint import CONFIG_KEY
from arnn.runs.train import train

CELLS = {
    "arnn_eager": partial(AntisymmetricCell, backend="eager"),
    "arnn_unrolled": partial(AntisymmetricCell, backend="unrolled"),
    "arnn_gated_eager": partial(GatedAntisymmetricCell, backend="eager"),
    "lstm_2_layers": partial(TorchRecurrentEncoder, kind="lstm", num_layers=2),
    "cornn_pair": CoupledOscillatorCell,
    "urnn_complex": UnitaryRNNCell,
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_arnn_jacobian_eigenvalues_stay_on_unit_circle_at_gamma_zero() -> None:
    torch.manual_seed(0)
    cell = AntisymmetricCell(3, 6, eps=1e-3, gamma=0.0)
    magnitudes = torch.linalg.eigvals(end_to_end_jacobian(cell, torch.randn(4, 10, 3))).abs()
    assert (magnitudes - 1).abs().max() < 1e-3


def test_tanh_rnn_jacobian_eigenvalues_vanish_with_small_weights() -> None:
    torch.manual_seed(0)
    cell = TorchRecurrentEncoder(3, 6, kind="rnn_tanh")
    with torch.no_grad():
        cell.rnn.weight_hh_l0.mul_(0.1)
    stats = spectrum_stats(end_to_end_jacobian(cell, torch.randn(4, 10, 3)))
    assert stats["max"] < 0.1


@pytest.mark.parametrize("name", CELLS)
def test_end_to_end_jacobian_matches_autograd_reference(name: str) -> None:
    torch.manual_seed(0)
    cell = CELLS[name](2, 3).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    layout = StateLayout.of(cell.default_state(3, x))
    start = torch.randn(3, layout.size, dtype=torch.float64)

    def final_state(b: int, h0: torch.Tensor) -> torch.Tensor:
        _, final = cell(x[b : b + 1], layout.unflatten(h0.unsqueeze(0)))
        return layout.flatten(final)[0]

    # A pass budget of 2 batch rows × 5 steps splits the d rows into several passes.
    result = end_to_end_jacobian(cell, x, layout.unflatten(start), row_steps=10)
    reference = torch.stack([autograd_jacobian(partial(final_state, b), start[b]) for b in range(3)])
    torch.testing.assert_close(result, reference)


def step_by_step_norms(model: SequenceClassifier, x: torch.Tensor, target: torch.Tensor) -> list[float]:
    """‖∂L/∂h_t‖ for t < T from net.step, retain_grad on every state part."""
    cell = model.net
    state = cell.default_state(x.shape[0], x)
    state = tuple(part.requires_grad_() for part in state) if isinstance(state, tuple) else state.requires_grad_()
    states = []
    for x_t in x.unbind(1):
        states.append(state)
        state = cell.step(x_t, state)
        for part in state if isinstance(state, tuple) else (state,):
            part.retain_grad()
    output = state[0][-1] if isinstance(state, tuple) else state
    torch.nn.functional.cross_entropy(model.readout(output), target).backward()
    parts = [s if isinstance(s, tuple) else (s,) for s in states]
    return [math.sqrt(sum(part.grad.square().sum().item() for part in state)) for state in parts]


@pytest.mark.parametrize("name", ["arnn_eager", "lstm"])
def test_gradient_flow_matches_step_by_step_retain_grad(name: str) -> None:
    torch.manual_seed(0)
    cell = AntisymmetricCell(2, 4, eps=0.5) if name == "arnn_eager" else TorchRecurrentEncoder(2, 4, kind="lstm")
    model = SequenceClassifier(cell, num_classes=3, optimizer=torch.optim.SGD).double()
    x, target = torch.randn(5, 7, 2, dtype=torch.float64), torch.randint(0, 3, (5,))
    steps, norms = flow_norms(model, (x, target))
    reference = step_by_step_norms(model, x, target)
    assert steps == list(range(7))
    torch.testing.assert_close(norms, torch.tensor(reference, dtype=torch.float64))
    strided_steps, strided = flow_norms(model, (x, target), stride=3)
    assert strided_steps == [0, 3, 6]
    torch.testing.assert_close(strided, norms[::3])


@pytest.mark.e2e
def test_jacobian_spectrum_callback_writes_csv_png_and_logs_during_training(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        "model=arnn",
        "model.hidden_size=8",
        "callbacks=[default,jacobian_spectrum]",
        "callbacks.jacobian_spectrum.batch_size=4",
        "trainer.max_epochs=2",
    )
    train(cfg)
    rows = read_csv(tmp_path / f"{SPECTRUM_FILE}.csv")
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]  # at init, then after each epoch
    assert (tmp_path / f"{SPECTRUM_FILE}.png").stat().st_size > 0
    logged = [row for row in read_csv(tmp_path / "csv" / "metrics.csv") if row["jacobian/eig_abs_mean"]]
    assert [float(row["jacobian/eig_abs_mean"]) for row in logged] == [float(row["mean"]) for row in rows]

    jacobian.main(["--runs", str(tmp_path), "--out", str(tmp_path / "overlay")])
    overlay = read_csv(tmp_path / "overlay" / "jacobian.csv")
    assert {row["label"] for row in overlay} == {"arnn γ=0.01"}
    assert (tmp_path / "overlay" / "jacobian.png").is_file()


def test_jacobian_and_gradient_flow_clis_read_a_checkpoint(tmp_path: Path) -> None:
    cfg = compose_config(["model=arnn", "model.hidden_size=4", "model.gamma=0.1"])
    module, _ = fresh_model(cfg)
    with open_dict(cfg):
        cfg.tags = ["arnn", "digits"]  # train.py's tags name the model config; Hydra fills them in a real run
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: OmegaConf.to_container(cfg, resolve=True)}, checkpoint)
    for analysis in (jacobian, gradient_flow):
        analysis.main(["--checkpoint", str(checkpoint), "--batch", "3"])
    for name in ("jacobian", "gradient_flow"):
        folder = tmp_path / "run" / "analysis" / name
        assert read_csv(folder / f"{name}.csv")[0]["label"] == "arnn γ=0.1"
        assert (folder / f"{name}.png").is_file()


def test_jacobian_cli_at_init_writes_one_row_per_model_and_gamma(tmp_path: Path) -> None:
    jacobian.main(
        ["--models", "lstm", "arnn", "--gammas", "0.01", "1", "--override", "model.hidden_size=4", "--batch", "3"]
        + ["--out", str(tmp_path)]
    )
    rows = read_csv(tmp_path / "jacobian.csv")
    assert [row["label"] for row in rows] == ["lstm", "arnn γ=0.01", "arnn γ=1"]
    assert all(float(row["std"]) >= 0 for row in rows)
    assert (tmp_path / "jacobian.png").stat().st_size > 0


def test_gradient_flow_cli_writes_a_curve_per_model(tmp_path: Path) -> None:
    gradient_flow.main(
        ["--models", "rnn", "arnn", "--override", "model.hidden_size=4", "--batch", "3"] + ["--out", str(tmp_path)]
    )
    rows = read_csv(tmp_path / "gradient_flow.csv")
    assert {row["label"] for row in rows} == {"rnn", "arnn γ=0.01"}
    assert len(rows) == 2 * 64  # digits: 64 steps
    assert (tmp_path / "gradient_flow.png").stat().st_size > 0


def test_antisymmetric_portrait_at_gamma_zero_keeps_hamiltonian_within_euler_bound() -> None:
    weight = torch.tensor([[0.5, 0.8], [0.0, 0.2]], dtype=torch.float64)
    a, eps = 0.8, 0.02
    trajectory = antisymmetric_trajectory(weight, torch.tensor([1.0, 0.5], dtype=torch.float64), 1000, eps, 0.0)
    energy = hamiltonian(trajectory, a)
    # H(h + εf) − H(h) = ε ∇H·f + (ε²/2) Σᵢ a sech²(a ξᵢ) fᵢ², with ∇H·f = 0 and 0 < sech² ≤ 1.
    step_bound = eps**2 * a / 2 * torch.tanh(trajectory[:-1] @ antisymmetric_matrix(weight, 0.0).T).square().sum(-1)
    increments = energy.diff()
    assert (increments >= 0).all()
    assert (increments <= step_bound + 1e-12).all()
    # ‖tanh(M h)‖² ≤ 2, so over the run H grows by at most steps·ε²·a, while the state goes round (h₁ changes sign).
    assert energy[-1] - energy[0] <= 1000 * eps**2 * a
    assert trajectory[:, 0].min() < 0 < trajectory[:, 0].max()


def test_vanilla_portrait_with_contractive_weight_shrinks_geometrically() -> None:
    weight = torch.tensor([[0.5, 0.8], [0.0, 0.2]], dtype=torch.float64)
    trajectory = phase_portrait.vanilla_trajectory(weight, torch.tensor([-1.5, -1.0], dtype=torch.float64), 30)
    # |tanh u| ≤ |u| elementwise, so ‖h_t‖ ≤ ‖W‖₂ ‖h_{t-1}‖ ≤ ‖W‖₂ᵗ ‖h_0‖.
    contraction = torch.linalg.matrix_norm(weight, 2)
    norms = trajectory.norm(dim=1)
    assert contraction < 1
    assert (norms[1:] <= contraction * norms[:-1] + 1e-12).all()
    assert norms[-1] < 0.01 * norms[0]


def test_phase_portrait_cli_writes_png_and_csv(tmp_path: Path) -> None:
    phase_portrait.main(["--steps", "20", "--start", "1", "0", "--out", str(tmp_path)])
    rows = read_csv(tmp_path / "phase_portrait.csv")
    assert len(rows) == 4 * 21  # four panels, one start, steps + 1 states
    assert (tmp_path / "phase_portrait.png").stat().st_size > 0


def test_jacobian_training_curve_band_and_model_bars_stay_at_or_above_zero() -> None:
    rows = [{"epoch": 0, "mean": 0.2, "std": 0.5}, {"epoch": 1, "mean": 0.3, "std": 0.1}]
    band = jacobian.plot_training_curves({"arnn": rows}).axes[0].collections[0]
    assert band.get_paths()[0].vertices[:, 1].min() >= 0
    bars = jacobian.plot_spectra([{"label": "arnn", "steps": 8, "mean": 0.2, "std": 0.5}]).axes[0]
    lowest = min(segment[:, 1].min() for collection in bars.collections for segment in collection.get_segments())
    assert lowest >= 0
