"""The observations of Nestaas (2022 notes) as tested facts: the linear antisymmetric flow (eqs. 7–17), the gradient
bound (30) on trained ODE-ARNNs, and the half-period flip that makes the parameter gradient vanish.

Tolerances: every flow is solved by dopri5 in float64 at rtol 1e-10 / atol 1e-12 (linearity) or 1e-9 / 1e-11
(sensitivities); the asserted errors leave 2–3 orders of magnitude above what those solves reach."""

import csv
import importlib
import json
import math
from pathlib import Path

import pytest
import torch

from arnn.analysis import gradient_bound, gradient_cancellation, ode_linearity
from arnn.analysis.gradient_bound import ode_sensitivity, train_briefly
from arnn.analysis.models import compose_config, fresh_model, input_batch
from arnn.errors import UserError
from arnn.runs.train import train

LINEARITY_TOL = (1e-10, 1e-12)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def moving_flow(g_kind: str, activation: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """x_a, x_b and x from 2a − 0.5b under x' = σ((A − Aᵀ)x), A' = g(A), n = 6 on [0, 5]; Q_t; ‖A(t) − A(t)ᵀ‖₂."""
    generator = torch.Generator().manual_seed(0)
    a0, a, b = (torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in ((6, 6), (6,), (6,)))
    g = ode_linearity.matrix_dynamics(g_kind, 6, 0.3, generator)
    times = torch.linspace(0, 5, 26, dtype=torch.float64)
    starts = {"a": a, "b": b, "ab": 2 * a - 0.5 * b}
    paths, flow = ode_linearity.solve(g, a0, torch.eye(6, dtype=torch.float64), times, "linear", *LINEARITY_TOL)
    runs = ode_linearity.superposition_runs(g, a0, starts, times, activation, LINEARITY_TOL)
    return runs, flow, torch.linalg.matrix_norm(paths - paths.transpose(-1, -2), ord=2)


@pytest.mark.parametrize("g_kind", ["linear", "mlp"])
def test_linear_flow_with_moving_matrix_keeps_norm_and_is_an_orthogonal_map_of_x0(g_kind: str) -> None:
    runs, flow, generator_norm = moving_flow(g_kind, "linear")
    errors = ode_linearity.linearity_errors(runs, flow, 2.0, -0.5)
    assert abs(generator_norm[-1] / generator_norm[0] - 1) > 0.1  # A(t) really moves
    assert errors["norm_drift"].max() < 1e-7  # ‖x(t)‖ = ‖x(0)‖
    assert errors["orthogonality"].max() < 1e-7  # Q_tᵀ Q_t = I for Q' = (A − Aᵀ)Q
    assert errors["flow"].max() < 1e-7  # x(t) = Q_t x(0)
    assert errors["superposition"].max() < 1e-7  # x from 2a − 0.5b = 2 x_a − 0.5 x_b


def test_tanh_of_the_same_flow_is_not_linear_in_x0() -> None:
    runs, flow, _ = moving_flow("linear", "tanh")
    assert ode_linearity.linearity_errors(runs, flow, 2.0, -0.5)["superposition"].max() > 0.1


def test_ode_linearity_cli_writes_figure_table_and_summary(tmp_path: Path, capsys) -> None:
    ode_linearity.main(["--hidden", "4", "--horizon", "2", "--grid", "0.5", "--g", "mlp", "--out", str(tmp_path)])
    assert str(tmp_path / "ode_linearity.png") in capsys.readouterr().out
    assert (tmp_path / "ode_linearity.png").stat().st_size > 0
    rows = read_csv(tmp_path / "ode_linearity.csv")
    assert [float(row["t"]) for row in rows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    summary = json.loads((tmp_path / "ode_linearity.json").read_text())
    assert summary["max_superposition_error"] < 1e-7 < summary["tanh_max_superposition_error"]


@pytest.fixture(scope="module")
def trained_ode_arnns() -> dict[str, dict]:
    """Both demo models (tanh; identity with γ = 0), 6 units, one epoch of 2 digits batches, and their
    sensitivities on 6 validation sequences (2 grid cells per sample interval)."""
    results = {}
    for label, overrides in gradient_bound.MODELS.items():
        module, datamodule = train_briefly([*overrides, "model.hidden_size=6"], epochs=1, batches=2)
        results[label] = ode_sensitivity(module, input_batch(datamodule, 6), 2, 1e-9, 1e-11)
    return results


@pytest.mark.e2e
def test_gradient_of_trained_tanh_ode_arnn_is_the_integral_of_y_and_obeys_the_triangle_bound(trained_ode_arnns):
    for block in ("all", "b"):
        s = trained_ode_arnns["ode_arnn tanh"][block].summary()
        assert s["quadrature_relative_error"] < 1e-4  # dL/dθ (autograd) = ∫ y dt (eq. 23)
        assert s["grad_norm"] <= s["integral_of_norm"]  # ‖dL/dθ‖ ≤ ∫ ‖y‖ dt, always
        # The hypothesis of (30) fails here: ‖y‖ varies, so ∫‖y‖ dt is not (t1 − t0)‖y(t1)‖.
        assert s["y_norm_relative_spread"] > 0.05
        assert abs(s["endpoint_bound"] / s["integral_of_norm"] - 1) > 0.01


@pytest.mark.e2e
def test_bias_gradient_of_trained_linear_ode_arnn_meets_the_hypothesis_so_30_holds_with_equality(trained_ode_arnns):
    bias = trained_ode_arnns["ode_arnn linear"]["b"]
    s = bias.summary()
    assert s["y_norm_relative_spread"] < 1e-6  # y_b(t) = exp((t − t1) S) y_b(t1): constant norm
    assert s["integral_of_norm"] == pytest.approx(s["endpoint_bound"], rel=1e-6)
    assert s["grad_norm"] <= s["integral_of_norm"] and s["quadrature_relative_error"] < 1e-4
    # With θ = all, the V and W parts of y follow u(t) and z(t): no constant norm even in the linear model.
    assert trained_ode_arnns["ode_arnn linear"]["all"].summary()["y_norm_relative_spread"] > 0.05


@pytest.mark.e2e
def test_gradient_bound_cli_reads_a_checkpoint_written_by_train(make_cfg, tmp_path: Path) -> None:
    train(make_cfg("model=ode_arnn", "model.hidden_size=4", "trainer.max_epochs=1"))
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    gradient_bound.main(["--checkpoint", str(checkpoint), "--batch", "3", "--substeps", "2"])
    folder = tmp_path / "analysis" / "gradient_bound"
    assert (folder / "gradient_bound.png").stat().st_size > 0
    assert {row["parameters"] for row in read_csv(folder / "gradient_bound.csv")} == {"all", "b"}
    summary = json.loads((folder / "gradient_bound.json").read_text())
    assert [label.split()[-1] for label in summary] == ["tanh"]  # the activation tells the two demo models apart
    assert all(s["grad_norm"] <= s["integral_of_norm"] for s in summary[next(iter(summary))].values())


@pytest.mark.parametrize("analysis", ["gradient_bound", "jacobian", "gradient_flow"])
def test_analysis_of_a_missing_checkpoint_fails_before_making_its_folder(tmp_path: Path, analysis: str) -> None:
    module = importlib.import_module(f"arnn.analysis.{analysis}")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        module.main(["--checkpoint", str(tmp_path / "checkpoints" / "last.ckpt")])
    assert list(tmp_path.iterdir()) == []


def test_gradient_bound_refuses_a_model_that_is_not_an_ode_arnn() -> None:
    module, datamodule = fresh_model(compose_config(["model=arnn", "model.hidden_size=4"]))
    with pytest.raises(UserError, match="model=ode_arnn"):
        ode_sensitivity(module, input_batch(datamodule, 2), 2, 1e-6, 1e-8)


def cancellation(offset: float) -> tuple[dict[str, float], float, float]:
    """Summary of z' = Sz + b on [0, 10] (n = 4, 32 cells) with ω_j = (2j + offset)·2π/10; ‖exp(5S) + I‖₂;
    max_t ‖y(t) − exp((t − T)S) y(T)‖ / ‖y(T)‖."""
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    z0, target = torch.randn(2, 1, 4, generator=generator, dtype=torch.float64)
    s_matrix = gradient_cancellation.rotation_generator(gradient_cancellation.frequencies(2, 10.0, offset), basis)
    sensitivity = gradient_cancellation.bias_sensitivity(s_matrix, z0, target, 10.0, 32, 1e-9, 1e-11)
    flip = torch.linalg.matrix_norm(torch.linalg.matrix_exp(5 * s_matrix) + torch.eye(4), ord=2)
    return sensitivity.summary(), float(flip), gradient_cancellation.flow_error(s_matrix, sensitivity)


def test_half_period_flip_makes_the_bias_gradient_vanish_while_y_keeps_its_norm() -> None:
    s, flip, flow = cancellation(gradient_cancellation.FLIP_OFFSET)
    assert flip < 1e-12 and flow < 1e-6  # exp(TS/2) = −I, and y(t) = W_t y(T), W_t = exp((t − T)S)
    assert s["y_norm_relative_spread"] < 1e-7  # ‖y(t)‖ constant ...
    assert s["integral_of_norm"] == pytest.approx(s["endpoint_bound"], rel=1e-7) and s["endpoint_bound"] > 1
    assert s["grad_norm"] < 1e-7 * s["integral_of_norm"]  # ... yet dL/db (autograd) = ∫ y dt ≈ 0
    assert s["norm_of_integral"] < 1e-7 * s["integral_of_norm"]  # and so is the Simpson sum of y


def test_without_the_flip_the_same_constant_norm_y_leaves_a_gradient() -> None:
    s, flip, _ = cancellation(gradient_cancellation.CONTROL_OFFSET)
    assert flip > 0.5 and s["y_norm_relative_spread"] < 1e-7
    assert s["grad_norm"] > 0.05 * s["integral_of_norm"]


def test_gradient_cancellation_cli_writes_figure_and_table_and_rejects_odd_n(tmp_path: Path) -> None:
    gradient_cancellation.main(["--hidden", "4", "--steps", "16", "--out", str(tmp_path)])
    rows = read_csv(tmp_path / "gradient_cancellation.csv")
    assert {row["generator"] for row in rows} == {"flip", "control"} and len(rows) == 2 * 17
    final = {row["generator"]: row for row in rows if math.isclose(float(row["t"]), 10.0)}
    assert float(final["flip"]["running_integral_norm"]) < 1e-2 * float(final["flip"]["running_norm_integral"])
    assert (tmp_path / "gradient_cancellation.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        gradient_cancellation.main(["--hidden", "5", "--out", str(tmp_path / "odd")])
