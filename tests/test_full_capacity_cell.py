"""Full-capacity uRNN: W stays unitary under the Cayley retraction, which descends, and the table's counts."""

import pytest
import torch

from arnn.backends.unrolled import unrolled
from arnn.cells.full_capacity import FullCapacityUnitaryCell
from arnn.errors import ConfigError
from arnn.lit import SequenceClassifier
from tests.helpers.training import train_steps


def _unitarity_error(cell):
    w = cell.recurrent_matrix().detach()
    return torch.linalg.matrix_norm(w.conj().t() @ w - torch.eye(w.shape[0], dtype=w.dtype))


@pytest.mark.e2e
def test_w_stays_unitary_after_50_optimizer_steps():
    cell = FullCapacityUnitaryCell(2, 16, manifold_lr=0.05)
    before = cell.recurrent_matrix().detach().clone()
    train_steps(cell)
    assert _unitarity_error(cell) < 1e-4
    assert (cell.recurrent_matrix().detach() - before).abs().max() > 1e-3  # W did move


def test_cayley_retraction_is_a_descent_step():
    torch.manual_seed(0)
    cell = FullCapacityUnitaryCell(1, 8, manifold_lr=1e-4).double()  # ‖G‖ ≈ 70 here: a small step
    x = torch.randn(4, 10, 1, dtype=torch.double)

    def loss():
        return cell(x)[0][:, -1].sum()

    before = loss()
    before.backward()
    cell.after_optimizer_step()
    assert loss() < before.detach()
    assert cell.w_real.grad is None and cell.w_imag.grad is None


def test_optimizer_leaves_w_to_the_retraction():
    cell = FullCapacityUnitaryCell(1, 4)
    model = SequenceClassifier(cell, num_classes=2, optimizer=torch.optim.SGD)
    optimized = {id(p) for group in model.configure_optimizers().param_groups for p in group["params"]}
    assert id(cell.w_real) not in optimized and id(cell.w_imag) not in optimized
    assert id(cell.mod_bias) in optimized


def test_forward_matches_the_step_equation_and_outputs_real_and_imaginary_parts():
    cell = FullCapacityUnitaryCell(2, 5).double()
    x = torch.randn(3, 7, 2, dtype=torch.double)
    y, h = cell(x)
    states, h_ref = unrolled(cell.step, x, cell.default_state(3, x))
    assert y.shape == (3, 7, 10) and cell.output_size == 10
    torch.testing.assert_close(y, torch.cat([states.real, states.imag], -1))
    torch.testing.assert_close(h, h_ref)
    (y.square().sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())


@pytest.mark.parametrize(("units", "params"), [(116, 16_000), (512, 270_000)])
def test_free_parameters_match_the_tables_fc_urnn_rows(units, params):
    cell = FullCapacityUnitaryCell(1, units)
    readout = cell.output_size * 10 + 10
    assert cell.free_parameters() + readout == pytest.approx(params, rel=0.1)


def test_non_positive_manifold_lr_names_the_key():
    with pytest.raises(ConfigError, match="model.manifold_lr"):
        FullCapacityUnitaryCell(1, 4, manifold_lr=0)
