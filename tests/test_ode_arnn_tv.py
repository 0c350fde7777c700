"""The time-varying antisymmetric neural ODE (ode_arnn_tv): ode_arnn at initialisation, the joint flow of A and b
against its closed form, gradients (backpropagated and adjoint), config errors, training."""

import math

import pytest
import torch

from arnn.cells.ode import CHUNK_INTERVALS, AntisymmetricODECell
from arnn.cells.ode_time_varying import TimeVaryingAntisymmetricODECell
from arnn.errors import ConfigError
from arnn.runs.train import train

DOUBLE = torch.double


def _cell(**options) -> TimeVaryingAntisymmetricODECell:
    torch.manual_seed(0)
    return TimeVaryingAntisymmetricODECell(2, 5, **options).double()


def _set_flows(cell: TimeVaryingAntisymmetricODECell, scale: float = 0.3) -> None:
    """Non-zero last layers of g and h (they start at zero)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for flow in (cell.g, cell.h):
            for parameter in flow[-1].parameters():
                parameter.copy_(scale * torch.randn(parameter.shape, generator=generator, dtype=DOUBLE))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_at_initialisation_a_and_b_stay_constant_and_the_cell_computes_ode_arnn(kind):
    torch.manual_seed(0)
    reference = AntisymmetricODECell(2, 5, gamma=0.1, dt=0.3).double()
    cell = TimeVaryingAntisymmetricODECell(2, 5, g=kind, h=kind, gamma=0.1, dt=0.3).double()
    missing = cell.load_state_dict(reference.state_dict(), strict=False).missing_keys
    assert all(key.startswith(("g.", "h.")) for key in missing)  # V, b(0) and A(0)'s triangle are ode_arnn's
    x = torch.randn(3, 2 * CHUNK_INTERVALS + 3, 2, dtype=DOUBLE)
    states, a, b = cell.trajectories(x.transpose(0, 1), cell.default_state(3, x))
    assert (a == a[0]).all() and (b == b[0]).all()
    torch.testing.assert_close(states[1:].transpose(0, 1), reference(x)[0], rtol=0, atol=1e-12)


def test_with_linear_g_and_h_the_parameter_flow_is_their_matrix_exponential():
    # Row-wise linear maps without bias: A' = s A Gᵀ, b' = s H b, so A(t) = A(0) exp(s t Gᵀ), b(t) = exp(s t H) b(0).
    cell = _cell(dt=0.5, flow_scale=0.5, solver="dopri5", rtol=1e-10, atol=1e-12)
    _set_flows(cell)
    with torch.no_grad():
        cell.g[0].bias.zero_()
        cell.h[0].bias.zero_()
    x = torch.randn(2, 8, 2, dtype=DOUBLE)
    with torch.no_grad():
        _, a, b = cell.trajectories(x.transpose(0, 1), cell.default_state(2, x))
        a0, b0 = cell.recurrent_operands()
        g, h = cell.g[0].weight, cell.h[0].weight
        for k in (1, 4, 8):
            st = 0.5 * 0.5 * k
            torch.testing.assert_close(a[k], a0 @ torch.linalg.matrix_exp(st * g.t()), rtol=0, atol=1e-8)
            torch.testing.assert_close(b[k], torch.linalg.matrix_exp(st * h) @ b0, rtol=0, atol=1e-8)
    assert (a[-1] - a[0]).abs().max() > 0.1  # the matrix does move


def test_a_moving_a_changes_the_states():
    cell = _cell(dt=0.3, flow_scale=1.0)
    x = torch.randn(3, 20, 2, dtype=DOUBLE)
    constant, _ = cell(x)
    _set_flows(cell)
    moving, _ = cell(x)
    assert (moving - constant).abs().max() > 1e-2


def test_adjoint_and_backpropagated_gradients_agree_and_reach_every_parameter():
    x = torch.randn(3, 6, 2, dtype=DOUBLE, requires_grad=True)
    h0 = torch.randn(3, 5, dtype=DOUBLE, requires_grad=True)
    gradients = []
    for adjoint in (False, True):
        options = {"g": "mlp", "h": "mlp", "flow_width": 3, "flow_scale": 1.0, "gamma": 0.1, "dt": 0.5}
        options["adjoint"] = adjoint
        cell = _cell(solver="dopri5", rtol=1e-10, atol=1e-12, **options)
        _set_flows(cell)
        outputs, _ = cell(x, h0)
        loss = outputs.square().sum() + outputs[:, 2].sum()
        gradients.append(torch.autograd.grad(loss, [x, h0, *cell.parameters()]))
    for backprop, adjoint in zip(*gradients, strict=True):
        assert backprop.abs().max() > 0  # A(0), b(0), V, and both layers of g and h
        torch.testing.assert_close(adjoint, backprop, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("g", "quadratic"),
        ("h", "none"),
        ("flow_width", 0),
        ("flow_width", 2.5),
        ("flow_scale", 0.0),
        ("dt", -0.1),
        ("solver", "rk45"),
        ("substeps", 0),
        ("gamma", -0.1),
        ("sigma_w", -1.0),
        ("activation", "relu"),
    ],
)
def test_bad_config_raises_a_one_line_config_error_naming_the_option(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}") as error:
        TimeVaryingAntisymmetricODECell(2, 5, **{option: value})
    assert "\n" not in str(error.value)


@pytest.mark.e2e
def test_ode_arnn_tv_with_mlp_flows_trains_on_sysid(make_cfg):
    overrides = ["model.hidden_size=4", "model.g=mlp", "model.h=mlp", "model.flow_width=3"]
    sysid = ["data.seq_len=50", "data.num_sequences=20", "data.val_size=4"]
    metrics = train(make_cfg("model=ode_arnn_tv", "data=sysid", *overrides, *sysid))
    assert math.isfinite(metrics["test/r2"]) and metrics["test/r2"] <= 1
