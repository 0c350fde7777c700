"""The antisymmetric neural ODE cell (Nestaas, 2022 notes): norm conservation, jumps of the input, gradients, the
adjoint-norm regulariser, config errors, training, and the ode_norm analysis."""

import csv
import json

import pytest
import torch
from torchdiffeq import odeint
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver
from torchdiffeq._impl.solvers import FixedGridODESolver

from arnn.analysis import ode_norm
from arnn.cells.antisymmetric import AntisymmetricCell
from arnn.cells.ode import (
    ADAPTIVE_SOLVERS,
    CHUNK_INTERVALS,
    FIXED_GRID_SOLVERS,
    AntisymmetricODECell,
    symmetric_jacobian_norm,
)
from arnn.errors import ConfigError
from arnn.runs.train import train

DOUBLE = torch.double


def _cell(**options) -> AntisymmetricODECell:
    torch.manual_seed(0)
    return AntisymmetricODECell(2, 5, **options).double()


def _loop(cell: AntisymmetricODECell, x: torch.Tensor) -> torch.Tensor:
    return _loop_from(cell, x, cell.default_state(x.shape[0], x))


def _loop_from(cell: AntisymmetricODECell, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    states = []
    for x_t in x.unbind(1):
        state = cell.step(x_t, state)
        states.append(state)
    return torch.stack(states, 1)


def test_linear_ode_keeps_the_norm_over_100_time_units_and_its_flow_is_exp_ts():
    cell = _cell(activation="identity", solver="dopri5", dt=1.0, rtol=1e-8, atol=1e-10)
    x0 = torch.randn(3, 5, dtype=DOUBLE)
    with torch.no_grad():
        states = cell.solve(x0.new_zeros(100, 3, 2), x0)  # no input, b = 0 (its initial value): x' = (W − Wᵀ) x
    norms = states.norm(dim=-1)
    assert (norms / norms[0] - 1).abs().max() < 1e-5
    exponential = torch.linalg.matrix_exp(100 * cell.antisymmetric_matrix().detach())
    torch.testing.assert_close(states[-1], x0 @ exponential.t(), rtol=0, atol=1e-6)


def test_euler_with_gamma_zero_multiplies_the_norm_by_the_predicted_factor_each_step():
    eps = 0.1
    cell = _cell(activation="identity", solver="euler", dt=eps, gamma=0.0)
    x0 = torch.randn(3, 5, dtype=DOUBLE)
    with torch.no_grad():
        states = cell.solve(x0.new_zeros(200, 3, 2), x0)
    measured, predicted = ode_norm.euler_growth(cell.antisymmetric_matrix().detach(), states, eps)
    assert (measured > 1).all()  # ‖(I + εM)x‖² = ‖x‖² + ε²‖Mx‖²
    torch.testing.assert_close(measured, predicted, rtol=1e-12, atol=0)
    assert states[-1].norm(dim=-1).min() > 1.01 * states[0].norm(dim=-1).max()


@pytest.mark.parametrize(
    ("solver", "options", "tolerance"),
    [
        ("euler", {}, 1e-14),
        ("rk4", {}, 1e-14),
        ("rk4", {"substeps": 3}, 1e-14),
        ("midpoint", {}, 1e-14),
        # Adaptive: both land on every grid point; the step sizes chosen inside the intervals differ.
        ("dopri5", {"rtol": 1e-10, "atol": 1e-12}, 1e-9),
        ("dopri8", {"rtol": 1e-10, "atol": 1e-12}, 1e-9),
    ],
)
def test_one_odeint_call_equals_a_loop_of_one_interval_solves(solver, options, tolerance):
    cell = _cell(solver=solver, dt=0.3, gamma=0.1, **options)
    x = torch.randn(3, 7, 2, dtype=DOUBLE)
    outputs, final = cell(x)
    loop = _loop(cell, x)
    torch.testing.assert_close(outputs, loop, rtol=0, atol=tolerance)
    torch.testing.assert_close(final, loop[:, -1], rtol=0, atol=tolerance)


@pytest.mark.e2e
@pytest.mark.parametrize(("solver", "options"), [("rk4", {}), ("euler", {"substeps": 2}), ("midpoint", {})])
def test_values_and_gradients_of_a_long_solve_equal_those_of_a_loop_of_one_interval_solves(solver, options):
    # Each interval solve of the loop holds one input row, so its gradients cannot mix up the rows of the inputs;
    # 2.5 × CHUNK_INTERVALS steps cross the boundaries of the solve's chunks.
    x = torch.randn(3, 5 * CHUNK_INTERVALS // 2, 2, dtype=DOUBLE, requires_grad=True)
    h0 = torch.randn(3, 5, dtype=DOUBLE, requires_grad=True)
    cell = _cell(solver=solver, dt=0.3, gamma=0.1, **options)
    gradients = []
    for run in (lambda: cell(x, h0)[0], lambda: _loop_from(cell, x, h0)):
        outputs = run()
        loss = outputs.square().sum() + outputs[:, 7].sum()
        gradients.append([outputs, *torch.autograd.grad(loss, [x, h0, *cell.parameters()])])
    for single, loop in zip(*gradients, strict=True):
        assert single.abs().max() > 0
        torch.testing.assert_close(single, loop, rtol=1e-12, atol=1e-12)


def test_rk4_that_ignores_the_jumps_of_the_input_differs_from_the_loop():
    cell = _cell(solver="rk4", dt=0.5)
    x = torch.randn(3, 7, 2, dtype=DOUBLE)
    times = torch.arange(8, dtype=DOUBLE) * 0.5
    field = cell.vector_field(cell.input_proj(x.transpose(0, 1)), times)
    unperturbed = odeint(field, cell.default_state(3, x), times, method="rk4")[1:].transpose(0, 1)
    assert (unperturbed - _loop(cell, x)).abs().max() > 1e-2  # the last stage of each step sees the next input


def test_solver_lists_are_torchdiffeqs_one_step_methods():
    multistep = {"explicit_adams", "implicit_adams", "fixed_adams"}
    fixed = {name for name, kind in SOLVERS.items() if issubclass(kind, FixedGridODESolver)}
    adaptive = {name for name, kind in SOLVERS.items() if issubclass(kind, RKAdaptiveStepsizeODESolver)}
    assert fixed - multistep == set(FIXED_GRID_SOLVERS) and adaptive == set(ADAPTIVE_SOLVERS)


def test_euler_with_dt_eps_is_the_arnn():
    torch.manual_seed(0)
    arnn = AntisymmetricCell(2, 5, eps=0.1, gamma=0.01).double()
    ode = AntisymmetricODECell(2, 5, gamma=0.01, dt=0.1, solver="euler").double()
    ode.load_state_dict(arnn.state_dict())
    x = torch.randn(3, 9, 2, dtype=DOUBLE)
    torch.testing.assert_close(ode(x)[0], arnn(x)[0], rtol=0, atol=1e-14)


def test_adjoint_and_backpropagated_gradients_agree_in_float64():
    # dopri5 at rtol 1e-10: backpropagation differentiates the discrete solve, the adjoint solves the continuous
    # adjoint ODE; both are within ~1e-10 (relative) of the exact gradient, so 1e-7 leaves a 1000× margin.
    x = torch.randn(3, 6, 2, dtype=DOUBLE, requires_grad=True)
    h0 = torch.randn(3, 5, dtype=DOUBLE, requires_grad=True)
    gradients = []
    for adjoint in (False, True):
        cell = _cell(solver="dopri5", dt=0.5, gamma=0.1, rtol=1e-10, atol=1e-12, adjoint=adjoint)
        outputs, _ = cell(x, h0)
        loss = outputs.square().sum() + outputs[:, 2].sum()
        gradients.append(torch.autograd.grad(loss, [x, h0, *cell.parameters()]))
    for backprop, adjoint in zip(*gradients, strict=True):
        assert backprop.abs().max() > 0
        torch.testing.assert_close(adjoint, backprop, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("solver", "rk45"),
        ("solver", "explicit_adams"),
        ("solver", "scipy_solver"),
        ("dt", 0.0),
        ("dt", -1.0),
        ("gamma", -0.1),
        ("rtol", 0.0),
        ("atol", -1e-4),
        ("activation", "relu"),
        ("substeps", 0),
        ("adjoint_weight", -1.0),
    ],
)
def test_bad_config_raises_a_one_line_config_error_naming_the_option(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}") as error:
        AntisymmetricODECell(2, 5, **{option: value})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_closed_form_of_the_jacobians_symmetric_part_matches_the_explicit_matrix(gamma):
    cell = _cell(gamma=gamma)
    x, drive = torch.randn(4, 5, dtype=DOUBLE), torch.randn(4, 5, dtype=DOUBLE)
    field = cell.vector_field(drive[None], torch.tensor([0.0, 1.0], dtype=DOUBLE))
    explicit = []
    for row in range(4):
        jacobian = torch.autograd.functional.jacobian(lambda state, r=row: field(torch.tensor(0.5), state)[r], x)[
            :, row
        ]
        explicit.append(torch.linalg.matrix_norm(jacobian + jacobian.t()).square())
    torch.testing.assert_close(cell.jacobian_asymmetry(x, drive), torch.stack(explicit), rtol=1e-12, atol=1e-12)
    slope = torch.rand(4, 5, dtype=DOUBLE)
    s = cell.antisymmetric_matrix().detach()
    j = slope[:, :, None] * (s - gamma * torch.eye(5, dtype=DOUBLE))
    expected = torch.linalg.matrix_norm(j + j.transpose(1, 2)).square()
    torch.testing.assert_close(symmetric_jacobian_norm(slope, s, gamma), expected, rtol=1e-12, atol=1e-12)


def test_penalty_is_the_weighted_mean_over_batch_and_steps_at_the_states_entering_each_interval():
    assert _cell().penalty() is None
    cell = _cell(gamma=0.2, adjoint_weight=0.5)
    x = torch.randn(3, 4, 2, dtype=DOUBLE)
    outputs, _ = cell(x)
    entering = torch.cat([cell.default_state(3, x)[:, None], outputs[:, :-1]], 1)
    per_step = cell.jacobian_asymmetry(entering, cell.input_proj(x))
    torch.testing.assert_close(cell.penalty(), 0.5 * per_step.mean())
    cell.penalty().backward()
    assert cell.w_upper.grad.abs().max() > 0


@pytest.mark.e2e
def test_ode_arnn_trains_on_digits_and_logs_the_adjoint_norm_penalty(make_cfg, tmp_path):
    metrics = train(make_cfg("model=ode_arnn", "model.hidden_size=8", "model.adjoint_weight=0.01"))
    assert 0 <= metrics["test/acc"] <= 1
    assert metrics["train/penalty_epoch"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert "train/penalty_step" in saved and "test/acc" in saved


@pytest.mark.e2e
def test_ode_arnn_trains_with_adjoint_gradients(make_cfg):
    metrics = train(make_cfg("model=ode_arnn", "model.hidden_size=8", "model.adjoint=true"))
    assert 0 <= metrics["test/acc"] <= 1 and torch.isfinite(torch.tensor(metrics["train/loss_epoch"]))


def test_ode_norm_cli_writes_its_figure_table_and_drifts(tmp_path, capsys):
    options = ["--hidden", "6", "--horizon", "10", "--euler-eps", "0.1", "--rk4-eps", "0.5"]
    ode_norm.main([*options, "--out", str(tmp_path)])
    assert str(tmp_path / "ode_norm.png") in capsys.readouterr().out
    assert (tmp_path / "ode_norm.png").stat().st_size > 0
    summary = json.loads((tmp_path / "ode_norm.json").read_text())
    drift = summary["max_abs_relative_drift"]
    assert drift["dopri5"] < 1e-5 < drift["euler_eps0.1"]
    assert summary["euler_min_step_norm_ratio_squared"] > 1 and summary["max_orthogonality_error"] < 1e-6
    with (tmp_path / "ode_norm.csv").open() as handle:
        solvers = {row["solver"] for row in csv.DictReader(handle)}
    assert solvers == {"dopri5", "rk4", "euler"}


def test_ode_norm_cli_rejects_a_non_positive_step(tmp_path):
    with pytest.raises(SystemExit):
        ode_norm.main(["--euler-eps", "0", "--out", str(tmp_path)])
