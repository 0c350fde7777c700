"""The ODE-based peers of the A-RNN, coRNN and LipschitzRNN: equations, structure, gradients, config errors."""

import math

import pytest
import torch

from arnn.cells.lipschitz import LipschitzRNNCell
from arnn.cells.oscillatory import CoupledOscillatorCell
from arnn.errors import ConfigError
from arnn.lit import SequenceClassifier

DOUBLE = torch.double


def _set(parameter, values):
    with torch.no_grad():
        parameter.copy_(torch.tensor(values, dtype=parameter.dtype))


def _lipschitz_2x2():
    cell = LipschitzRNNCell(input_size=1, hidden_size=2, eps=0.5, beta=0.75, gamma_a=0.1, gamma_w=0.2).double()
    _set(cell.m_a, [[1.0, 2.0], [0.0, 3.0]])
    _set(cell.m_w, [[0.0, 1.0], [-1.0, 0.5]])
    _set(cell.input_proj.weight, [[1.0], [-2.0]])
    _set(cell.input_proj.bias, [0.05, 0.0])
    return cell


def test_cornn_step_matches_equation_computed_by_hand():
    cell = CoupledOscillatorCell(input_size=1, hidden_size=2, dt=0.5, gamma=0.3, epsilon=0.2).double()
    _set(cell.recurrent_weight, [[0.1, 0.2, 0.3, 0.0], [0.0, -0.1, 0.0, 0.4]])  # [W 𝒲]
    _set(cell.input_proj.weight, [[1.0], [-2.0]])
    _set(cell.input_proj.bias, [0.05, 0.0])
    y = torch.tensor([[1.0, 2.0]], dtype=DOUBLE)
    z = torch.tensor([[0.5, -1.0]], dtype=DOUBLE)
    x = torch.tensor([[0.5]], dtype=DOUBLE)
    # W y = [0.5, −0.2], 𝒲 z = [0.15, −0.4], V x + b = [0.55, −1.0] → argument of tanh [1.2, −1.6]
    z_next = torch.tensor(
        [[0.5 + 0.5 * (math.tanh(1.2) - 0.3 * 1.0 - 0.2 * 0.5), -1.0 + 0.5 * (math.tanh(-1.6) - 0.3 * 2.0 + 0.2)]],
        dtype=DOUBLE,
    )
    y_next, z_got = cell.step(x, (y, z))
    torch.testing.assert_close(z_got, z_next, rtol=0, atol=1e-12)
    torch.testing.assert_close(y_next, y + 0.5 * z_next, rtol=0, atol=1e-12)


def test_lipschitz_matrices_match_their_definition_computed_by_hand():
    a, w = _lipschitz_2x2().recurrent_matrices()
    # A = ¼[[2, 2], [2, 6]] + ¾[[0, 2], [−2, 0]] − 0.1 I;  W = ¼[[0, 0], [0, 1]] + ¾[[0, 2], [−2, 0]] − 0.2 I
    torch.testing.assert_close(a, torch.tensor([[0.4, 2.0], [-1.0, 1.4]], dtype=DOUBLE), rtol=0, atol=1e-12)
    torch.testing.assert_close(w, torch.tensor([[-0.2, 1.5], [-1.5, 0.05]], dtype=DOUBLE), rtol=0, atol=1e-12)


def test_lipschitz_step_matches_equation_computed_by_hand():
    cell = _lipschitz_2x2()
    h = torch.tensor([[1.0, 2.0]], dtype=DOUBLE)
    x = torch.tensor([[0.5]], dtype=DOUBLE)
    # A h = [4.4, 1.8], W h = [2.8, −1.4], U x + b = [0.55, −1.0]
    expected = torch.tensor([[1.0 + 0.5 * (4.4 + math.tanh(3.35)), 2.0 + 0.5 * (1.8 + math.tanh(-2.4))]], dtype=DOUBLE)
    torch.testing.assert_close(cell.step(x, h), expected, rtol=0, atol=1e-12)


def test_cornn_step_agrees_with_forward_from_a_given_state():
    torch.manual_seed(0)
    cell = CoupledOscillatorCell(input_size=3, hidden_size=5, dt=0.1).double()
    x = torch.randn(4, 7, 3, dtype=DOUBLE)
    state = (torch.randn(4, 5, dtype=DOUBLE), torch.randn(4, 5, dtype=DOUBLE))
    outputs, (y_last, z_last) = cell(x, state)
    ys = []
    for x_t in x.unbind(1):
        state = cell.step(x_t, state)
        ys.append(state[0])
    torch.testing.assert_close(outputs, torch.stack(ys, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(y_last, state[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(z_last, state[1], rtol=0, atol=1e-12)
    assert outputs.shape == (4, 7, cell.output_size) == (4, 7, 5)


def test_lipschitz_step_agrees_with_forward_from_a_given_state():
    torch.manual_seed(0)
    cell = LipschitzRNNCell(input_size=3, hidden_size=5, eps=0.1, init_std=10).double()
    x = torch.randn(4, 7, 3, dtype=DOUBLE)
    h = torch.randn(4, 5, dtype=DOUBLE)
    outputs, h_last = cell(x, h)
    hs = []
    for x_t in x.unbind(1):
        h = cell.step(x_t, h)
        hs.append(h)
    torch.testing.assert_close(outputs, torch.stack(hs, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(h_last, h, rtol=0, atol=1e-12)
    assert outputs.shape == (4, 7, cell.output_size) == (4, 7, 5)


def test_forward_starts_from_zeros_when_no_state_is_given():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3)
    cornn = CoupledOscillatorCell(3, 4)
    torch.testing.assert_close(cornn(x)[0], cornn(x, cornn.default_state(2, x))[0])
    lipschitz = LipschitzRNNCell(3, 4)
    torch.testing.assert_close(lipschitz(x)[0], lipschitz(x, lipschitz.default_state(2, x))[0])


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.75, 1.0])
def test_lipschitz_symmetric_part_is_set_by_beta_and_gamma_alone(beta):
    cell = LipschitzRNNCell(input_size=1, hidden_size=9, beta=beta, gamma_a=0.07, gamma_w=0.02, init_std=20).double()
    eye = torch.eye(9, dtype=DOUBLE)
    a, w = cell.recurrent_matrices()
    for matrix, m, gamma in ((a, cell.m_a, 0.07), (w, cell.m_w, 0.02)):
        expected = 2 * (1 - beta) * (m + m.t()) - 2 * gamma * eye
        torch.testing.assert_close(matrix + matrix.t(), expected, rtol=0, atol=1e-12)


def test_lipschitz_beta_one_gives_antisymmetric_minus_gamma_identity():
    cell = LipschitzRNNCell(input_size=1, hidden_size=9, beta=1.0, gamma_a=0.07, gamma_w=0.02, init_std=20).double()
    eye = torch.eye(9, dtype=DOUBLE)
    a, w = cell.recurrent_matrices()
    torch.testing.assert_close(a, cell.m_a - cell.m_a.t() - 0.07 * eye, rtol=0, atol=1e-12)
    torch.testing.assert_close(w, cell.m_w - cell.m_w.t() - 0.02 * eye, rtol=0, atol=1e-12)
    assert torch.linalg.eigvals(a).real.sub(-0.07).abs().max() < 1e-10  # A + 0.07 I is skew: eigenvalues on iℝ


@pytest.mark.parametrize(
    "cell",
    [CoupledOscillatorCell(3, 6, dt=0.2), LipschitzRNNCell(3, 6, eps=0.2)],
    ids=["cornn", "lipschitz_rnn"],
)
def test_every_parameter_receives_a_nonzero_gradient(cell):
    torch.manual_seed(0)
    outputs, _ = cell(torch.randn(4, 10, 3))
    outputs.square().sum().backward()
    for name, parameter in cell.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name


def _count(net):
    model = SequenceClassifier(net, num_classes=10, optimizer=torch.optim.Adam)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_papers_on_sequential_mnist():
    # coRNN: n = 256 → 134k; LipschitzRNN: n = 128 → 34k (one input, 10 classes).
    assert _count(CoupledOscillatorCell(1, 256)) == (1 + 2 * 256) * 256 + 256 + 2570
    assert _count(LipschitzRNNCell(1, 128)) == 2 * 128 * 128 + 128 + 128 + 1290


@pytest.mark.parametrize(
    ("option", "value"),
    [("dt", 0.0), ("dt", -0.1), ("dt", math.nan), ("gamma", -0.1), ("epsilon", -1.0), ("hidden_size", 0)],
)
def test_invalid_cornn_hyperparameters_name_the_config_key(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}"):
        CoupledOscillatorCell(**{"input_size": 1, "hidden_size": 8, option: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("eps", 0.0),
        ("eps", -0.03),
        ("beta", -0.1),
        ("beta", 1.5),
        ("beta", math.nan),
        ("gamma_a", -0.001),
        ("gamma_w", -0.001),
        ("init_std", 0.0),
        ("hidden_size", 0),
    ],
)
def test_invalid_lipschitz_hyperparameters_name_the_config_key(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}"):
        LipschitzRNNCell(**{"input_size": 1, "hidden_size": 8, option: value})
