"""ODEtoODE (odetoode): W stays orthogonal under the exponential step and leaves the group under Euler's, the cell is
the paper's discretisation, one matrix exponential per step whatever the batch, gradients, config errors, training."""

import json
import math

import pytest
import torch

from arnn.cells.ode_to_ode import ODEToODECell
from arnn.errors import ConfigError
from tests.helpers.runs import FAST, run_cli

DOUBLE = torch.double
STEPS = 1000


def _cell(hidden: int = 6, **options) -> ODEToODECell:
    """A float64 cell whose flow is not trivial: K and P drawn (they start at zero)."""
    torch.manual_seed(0)
    cell = ODEToODECell(2, hidden, **options).double()
    with torch.no_grad():
        cell.rotation_upper.normal_()
        cell.pull.normal_(std=1 / math.sqrt(hidden))
    return cell


def _orthogonality_error(w: torch.Tensor) -> torch.Tensor:
    """‖WᵀW − I‖_F of each matrix in w (..., n, n)."""
    eye = torch.eye(w.shape[-1], dtype=w.dtype)
    return torch.linalg.matrix_norm(w.transpose(-1, -2) @ w - eye)


def test_exponential_steps_keep_w_orthogonal_for_1000_steps_in_float64():
    cell = _cell(dt=0.1)
    with torch.no_grad():
        flow = cell.weights(STEPS)
    assert flow.shape == (STEPS + 1, 6, 6)
    assert _orthogonality_error(flow).max() < 1e-5
    assert (flow[-1] - flow[0]).abs().max() > 0.5  # W travels far on the group


def test_euler_steps_of_the_same_flow_leave_the_orthogonal_group():
    cell = _cell(dt=0.1)
    with torch.no_grad():
        w, upper = cell.recurrent_operands()
        euler = [w]
        for _ in range(STEPS):
            w = w + cell.dt * w @ cell.generator(w, upper)
            euler.append(w)
    errors = _orthogonality_error(torch.stack(euler))
    assert errors[0] < 1e-12 and errors[1] > 1e-5 and errors[-1] > 1e-5


def test_generator_is_skew_symmetric_and_a_constant_rotation_is_followed_exactly():
    cell = _cell(dt=0.2)
    w = torch.linalg.qr(torch.randn(6, 6, dtype=DOUBLE)).Q
    generator = cell.generator(w, cell.recurrent_operands()[1])
    torch.testing.assert_close(generator, -generator.t(), rtol=0, atol=0)
    with torch.no_grad():
        cell.pull.zero_()  # W' = W (K − Kᵀ): W(t) = W(0) exp(t (K − Kᵀ)), which the exponential step is
        flow = cell.weights(10)
        w0, upper = cell.recurrent_operands()
    exact = w0 @ torch.linalg.matrix_exp(2.0 * (upper - upper.t()))
    torch.testing.assert_close(flow[10], exact, rtol=0, atol=1e-12)


def test_initial_w_is_orthogonal_and_its_eigenvalues_are_imaginary():
    torch.manual_seed(0)
    cell = ODEToODECell(1, 8).double()
    w0 = cell.initial.weight.detach()
    assert _orthogonality_error(w0) < 1e-12
    assert torch.linalg.eigvals(w0).real.abs().max() < 1e-6


def test_with_euler_for_x_the_cell_is_the_papers_discretisation():
    # x_{k+1} = x_k + dt σ(W_k x_k + V u_{k+1} + b),  W_{k+1} = W_k exp(dt b_θ(W_k)), written out step by step.
    cell = _cell(dt=0.3, solver="euler")
    x = torch.randn(3, 9, 2, dtype=DOUBLE)
    state = torch.randn(3, 6, dtype=DOUBLE)
    outputs, final = cell(x, state)
    w, upper = cell.recurrent_operands()
    expected = []
    for u in x.unbind(1):
        state = state + 0.3 * torch.tanh(state @ w.t() + cell.input_proj(u))
        pulled = w.t() @ cell.pull
        w = w @ torch.linalg.matrix_exp(0.3 * ((upper - upper.t()) + (pulled - pulled.t())))
        expected.append(state)
    torch.testing.assert_close(outputs, torch.stack(expected, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(final, expected[-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 7])
def test_one_matrix_exponential_per_step_whatever_the_batch(monkeypatch, batch):
    cell = _cell(dt=0.1)
    calls = []
    exponential = torch.linalg.matrix_exp

    def counted(matrix):
        calls.append(matrix.shape)
        return exponential(matrix)

    monkeypatch.setattr(torch.linalg, "matrix_exp", counted)
    cell(torch.randn(batch, 12, 2, dtype=DOUBLE))
    assert calls == [(6, 6)] * 11  # W_0 ... W_11, the last output's interval held W_11


def test_gradients_reach_every_parameter():
    cell = _cell(dt=0.3)
    outputs, _ = cell(torch.randn(3, 10, 2, dtype=DOUBLE))
    outputs.square().sum().backward()
    for name, parameter in cell.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name


@pytest.mark.parametrize(
    ("option", "value"),
    [("solver", "dopri5"), ("solver", "rk45"), ("dt", 0.0), ("substeps", 0), ("activation", "relu")],
)
def test_bad_config_raises_a_one_line_config_error_naming_the_option(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}") as error:
        ODEToODECell(2, 5, **{option: value})
    assert "\n" not in str(error.value)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("data", "metric"),
    [("pdigits", "test/acc"), ("sysid", "test/r2")],
)
def test_odetoode_trains_from_the_command_line(tmp_path, data, metric):
    sysid = ["data.seq_len=50", "data.num_sequences=20", "data.val_size=4"] if data == "sysid" else []
    result = run_cli(
        *FAST, "model=odetoode", "model.hidden_size=4", f"data={data}", *sysid, f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert math.isfinite(metrics[metric])
