"""expRNN and scoRNN cells (W = exp(B) or Cayley(B), B skew) and the unitarity-drift experiment (Chu, 2024 slides)."""

import csv
import math

import pytest
import torch
from hydra.utils import instantiate

from arnn.analysis import unitarity_drift
from arnn.cells.constrained import orthogonality_error
from arnn.cells.orthogonal import ExpRNNCell, ScoRNNCell
from arnn.errors import ConfigError
from tests.helpers.training import train_steps

CELLS = [ExpRNNCell, ScoRNNCell]
NONLINEARITIES = ["modrelu", "tanh"]


def _skew(cell):
    """B = L − Lᵀ from the stored lower triangle L, as the parametrization builds it."""
    lower = cell.recurrent.parametrizations.weight.original.tril()
    return lower - lower.t()


def _naive_forward(cell, x):
    """h_t = φ(W h_{t-1} + V x_t + b), W recomputed from B at every step, written out from the equations."""
    eye = torch.eye(cell.hidden_size, dtype=x.dtype)
    h = torch.zeros(x.shape[0], cell.hidden_size, dtype=x.dtype)
    states = []
    for t in range(x.shape[1]):
        b = _skew(cell)
        cayley = torch.linalg.solve(eye - b / 2, eye + b / 2)
        w = torch.linalg.matrix_exp(b) if isinstance(cell, ExpRNNCell) else cayley
        z = h @ w.t() + x[:, t] @ cell.input_proj.weight.t()
        if cell.nonlinearity == "modrelu":
            h = torch.sign(z) * torch.relu(z.abs() + cell.activation.bias)
        else:
            h = torch.tanh(z + cell.input_proj.bias)
        states.append(h)
    return torch.stack(states, 1)


@pytest.mark.e2e
@pytest.mark.parametrize("cls", CELLS)
def test_w_stays_orthogonal_after_50_adam_steps_in_float32(cls):
    torch.manual_seed(0)
    cell = cls(2, 16)
    w_before = cell.recurrent_matrix().detach().clone()
    train_steps(cell, steps=50, lr=1e-2)
    w_after = cell.recurrent_matrix().detach()
    assert (w_after - w_before).abs().max() > 1e-2
    assert orthogonality_error(w_after) < 1e-4


@pytest.mark.parametrize("cls", CELLS)
def test_orthogonal_map_runs_once_per_forward_and_backward_whatever_the_length(cls):
    cell = cls(2, 8)
    calls = []
    cell.recurrent.parametrizations.weight[0].register_forward_hook(lambda *_: calls.append(1))
    for length in (1, 20):
        calls.clear()
        y, _ = cell(torch.randn(3, length, 2))
        y.sum().backward()
        assert len(calls) == 1, f"T={length}"


def test_without_the_cache_each_read_of_w_runs_the_map_again():
    cell = ExpRNNCell(2, 8)
    calls = []
    cell.recurrent.parametrizations.weight[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 2)
    h = cell.default_state(3, x)
    for _ in range(5):
        h = cell.step(x, h)
    assert len(calls) == 5


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("cls", CELLS)
def test_step_agrees_with_forward(cls, nonlinearity):
    torch.manual_seed(0)
    cell = cls(3, 10, nonlinearity=nonlinearity)
    x, h0 = torch.randn(4, 9, 3), torch.randn(4, 10)
    y, h_last = cell(x, h0)
    h = h0
    for t, x_t in enumerate(x.unbind(1)):
        h = cell.step(x_t, h)
        torch.testing.assert_close(h, y[:, t])
    torch.testing.assert_close(h_last, h)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("cls", CELLS)
def test_forward_equals_naive_per_step_reference_in_float64_values_and_gradients(cls, nonlinearity):
    torch.manual_seed(0)
    cell = cls(3, 12, nonlinearity=nonlinearity).double()
    x = torch.randn(5, 15, 3, dtype=torch.double)
    weights = torch.randn(5, 15, 12, dtype=torch.double)
    parameters = list(cell.parameters())

    y, _ = cell(x)
    reference = _naive_forward(cell, x)
    torch.testing.assert_close(y, reference, rtol=1e-6, atol=1e-6)
    grads = torch.autograd.grad((y * weights).sum(), parameters)
    reference_grads = torch.autograd.grad((reference * weights).sum(), parameters)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, reference_grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("cls", CELLS)
def test_every_parameter_gets_a_nonzero_gradient(cls, nonlinearity):
    torch.manual_seed(0)
    cell = cls(2, 6, nonlinearity=nonlinearity)
    y, h = cell(torch.randn(4, 7, 2))
    (y.square().sum() + h.sum()).backward()
    for name, parameter in cell.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cls", CELLS)
def test_henaff_initial_w_rotates_unit_pairs_by_angles_up_to_the_cells_bound(cls):
    torch.manual_seed(0)
    hidden_size = 65  # odd: the last unit is left alone
    cell = cls(1, hidden_size, init="henaff").double()
    w = cell.recurrent_matrix().detach()
    pair = torch.arange(hidden_size) // 2
    assert w[pair[:, None] != pair[None, :]].abs().max() == 0
    angles = torch.linalg.eigvals(w).angle().abs()
    assert angles.max() <= cls.max_angle + 1e-9
    assert angles.max() > cls.max_angle / 2
    assert orthogonality_error(w) < 1e-12


def test_free_parameters_count_b_as_its_strict_lower_triangle():
    # expRNN on MNIST: 170 units, 1 input → B 14 365, V 170, modReLU bias 170 (the peer's ≈ 16k with readout).
    assert ExpRNNCell(1, 170).free_parameters() == 170 * 169 // 2 + 170 + 170
    assert ScoRNNCell(3, 8, nonlinearity="tanh").free_parameters() == 8 * 7 // 2 + 3 * 8 + 8


@pytest.mark.parametrize(("option", "value"), [("nonlinearity", "relu"), ("hidden_size", 0), ("input_size", 0)])
@pytest.mark.parametrize("cls", CELLS)
def test_invalid_values_name_the_config_key(cls, option, value):
    options = {"input_size": 1, "hidden_size": 8, option: value}
    with pytest.raises(ConfigError, match=f"model.{option}"):
        cls(**options)


@pytest.mark.parametrize(("name", "cls"), [("exprnn", ExpRNNCell), ("scornn", ScoRNNCell)])
def test_model_config_builds_the_cell_with_170_units(make_cfg, name, cls):
    cfg = make_cfg(f"model={name}")
    cell = instantiate(cfg.model, input_size=1)
    assert type(cell) is cls and cell.hidden_size == 170 and cell.nonlinearity == "modrelu"


@pytest.mark.e2e
def test_naive_update_leaves_the_orthogonal_group_after_one_step_while_the_lie_update_stays_on_it():
    history = unitarity_drift.run(size=32, steps=30, lr=0.01, seed=0)
    assert len(history["lie"]) == len(history["naive"]) == 30
    assert history["naive"][0] > 1e-3
    assert max(history["lie"]) < 1e-5


@pytest.mark.e2e
def test_lie_update_is_a_descent_step_on_the_quadratic_loss():
    history = unitarity_drift.run(size=16, steps=30, lr=0.01, seed=1)
    losses = history["lie_loss"]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False))


def test_drift_command_prints_a_table_and_writes_csv_and_png(tmp_path, capsys):
    unitarity_drift.main(["--size", "8", "--steps", "5", "--lr", "0.05", "--out", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["step", "lie", "naive"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "5"]
    with (tmp_path / "unitarity_drift.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["step"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert float(rows[0]["naive"]) > 1e-3 > 1e-5 > float(rows[-1]["lie"])
    assert (tmp_path / "unitarity_drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("cls", "low", "high"), [(ExpRNNCell, 0.0, 1.0), (ScoRNNCell, 0.0, math.pi / 2)])
def test_cayley_initial_w_rotates_unit_pairs_as_the_authors_mnist_runs(cls, low, high):
    # expRNN: exp(A), rotations by tan(s/2); scoRNN: (I + A)⁻¹(I − A), rotations by s; s ~ U(0, π/2), 85 pairs
    torch.manual_seed(0)
    w = cls(1, 170).double().recurrent_matrix().detach()
    angles = torch.linalg.eigvals(w).angle().abs()
    assert low <= angles.min() and angles.max() <= high + 1e-9
    mean = 4 / math.pi * math.log(1 / math.cos(math.pi / 4)) if cls is ExpRNNCell else math.pi / 4
    assert angles.mean().item() == pytest.approx(mean, abs=0.08)
    assert orthogonality_error(w) < 1e-12


def test_scornn_scaling_matrix_gives_w_the_eigenvalue_minus_one_and_keeps_it_orthogonal():
    torch.manual_seed(0)
    cell = ScoRNNCell(1, 170, negative_fraction=0.1, input_bound=0.01).double()
    w = cell.recurrent_matrix().detach()
    assert orthogonality_error(w) < 1e-12 and torch.linalg.det(w).item() == pytest.approx(-1.0)
    assert torch.equal(cell.scaling[-17:], -torch.ones(17)) and torch.equal(cell.scaling[:-17], torch.ones(153))
    # scoRNN's input weights U(±0.01) and modReLU bias 0
    assert cell.input_proj.weight.abs().max() <= 0.01 and cell.input_proj.weight.std() > 0.004
    assert torch.equal(cell.activation.bias, torch.zeros(170, dtype=torch.double))
    assert torch.linalg.det(ScoRNNCell(1, 170).double().recurrent_matrix().detach()).item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"negative_fraction": 1.5}, "model.negative_fraction must be between 0 and 1"),
        ({"input_bound": 0.0}, "model.input_bound"),
    ],
)
def test_scornn_rejects_a_scaling_or_input_bound_out_of_range(arguments, message):
    with pytest.raises(ConfigError, match=message):
        ScoRNNCell(1, 8, **arguments)
