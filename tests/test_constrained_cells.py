"""Elman cells with constrained W: soft orthogonality, SVD projection, contractive parametrizations."""

import pytest
import torch

from arnn.backends.unrolled import unrolled
from arnn.cells.constrained import (
    ContractiveRNNCell,
    ProjectedOrthogonalRNNCell,
    SoftOrthogonalRNNCell,
    orthogonality_error,
)
from arnn.errors import ConfigError
from arnn.lit import SequenceClassifier
from tests.helpers.training import train_steps


@pytest.mark.e2e
def test_svd_projected_urnn_stays_orthogonal_after_50_steps():
    cell = ProjectedOrthogonalRNNCell(2, 16)
    train_steps(cell)
    assert orthogonality_error(cell.recurrent_matrix()) < 1e-4


@pytest.mark.e2e
def test_without_the_projection_the_same_training_leaves_the_orthogonal_group():
    cell = ProjectedOrthogonalRNNCell(2, 16)
    cell.after_optimizer_step = lambda: None
    train_steps(cell)
    assert orthogonality_error(cell.recurrent_matrix()) > 1e-2


@pytest.mark.e2e
@pytest.mark.parametrize("parametrization", ["spectral", "gram"])
def test_contractive_cell_keeps_its_spectral_norm_below_one_while_training(parametrization):
    cell = ContractiveRNNCell(2, 16, parametrization=parametrization, eps=0.5).double()
    for _ in range(3):
        train_steps(cell, steps=20, lr=0.2)
        assert torch.linalg.matrix_norm(cell.recurrent_matrix(), ord=2) < 1


def test_gram_contractive_matrix_is_the_teacher_form():
    cell = ContractiveRNNCell(1, 4, parametrization="gram", eps=0.01).double()
    a = cell.a.detach()
    expected = torch.eye(4, dtype=torch.double) - 0.01 * a.t() @ a / torch.linalg.matrix_norm(a) ** 2
    torch.testing.assert_close(cell.recurrent_matrix().detach(), expected)


def test_soft_orthogonality_penalty_is_weighted_squared_error_and_pulls_towards_orthogonal():
    cell = SoftOrthogonalRNNCell(2, 16, penalty_weight=0.5)
    with torch.no_grad():
        cell.weight.mul_(1.5)
    error = orthogonality_error(cell.weight)
    torch.testing.assert_close(cell.penalty(), 0.5 * error.square())
    optimizer = torch.optim.SGD(cell.parameters(), lr=0.01)
    for _ in range(50):
        optimizer.zero_grad()
        cell.penalty().backward()
        optimizer.step()
    assert orthogonality_error(cell.weight) < 0.5 * error
    assert SoftOrthogonalRNNCell(2, 16, penalty_weight=0).penalty() is None


@pytest.mark.parametrize(
    "cell",
    [SoftOrthogonalRNNCell(2, 5), ProjectedOrthogonalRNNCell(2, 5), ContractiveRNNCell(2, 5, nonlinearity="sigmoid")],
    ids=["soft_orth", "svd_urnn", "contractive"],
)
def test_forward_matches_the_step_equation_and_every_parameter_gets_a_gradient(cell):
    cell = cell.double()
    x = torch.randn(3, 7, 2, dtype=torch.double)
    y, h = cell(x)
    reference, _ = unrolled(cell.step, x, cell.default_state(3, x))
    torch.testing.assert_close(y, reference)
    x_t, h_prev = x[:, 0], torch.randn(3, 5, dtype=torch.double)
    pre = h_prev @ cell.recurrent_matrix().t() + x_t @ cell.input_proj.weight.t() + cell.input_proj.bias
    expected = cell.activation(pre)
    torch.testing.assert_close(cell.step(x_t, h_prev), expected)
    (y.square().sum() + (cell.penalty() or 0)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())


@pytest.mark.parametrize(
    "options",
    [
        {"parametrization": "cholesky"},
        {"bound": 1.0},
        {"eps": 0.0},
        {"eps": 2.0},
        {"nonlinearity": "gelu"},
    ],
)
def test_invalid_contractive_options_name_the_config_key(options):
    (key,) = options
    with pytest.raises(ConfigError, match=f"model.{key}"):
        ContractiveRNNCell(1, 4, **options)


def test_soft_orthogonal_rejects_a_negative_penalty_weight():
    with pytest.raises(ConfigError, match="model.penalty_weight"):
        SoftOrthogonalRNNCell(1, 4, penalty_weight=-1)


def test_soft_orthogonal_128_on_mnist_has_the_tables_18k_parameters():
    model = SequenceClassifier(SoftOrthogonalRNNCell(1, 128), num_classes=10, optimizer=torch.optim.Adam)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(18_000, rel=0.1)
