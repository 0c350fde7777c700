"""One step of each comparison cell against its paper's equation, on small weights written out here and the next
state computed by hand (plain floats), independent of the cell's code."""

import math

import pytest
import torch

from arnn.cells.lipschitz import LipschitzRNNCell
from arnn.cells.orthogonal import ExpRNNCell, ScoRNNCell
from arnn.cells.oscillatory import CoupledOscillatorCell

V = [0.5, -0.3]  # input weights of the 2 units (1 input)
B = [0.1, 0.2]  # biases
H0 = [0.1, -0.2]
X = 0.7


def _set(parameter: torch.nn.Parameter, values: list) -> None:
    with torch.no_grad():
        parameter.copy_(torch.tensor(values, dtype=parameter.dtype))


def test_cornn_step_is_rusch_and_mishras_imex_discretisation():
    # z_n = z + Δt(tanh(W y + 𝒲 z + V u + b) − γ y − ε z), y_n = y + Δt z_n   (Rusch & Mishra 2021, eq. 3)
    cell = CoupledOscillatorCell(1, 2, dt=0.1, gamma=2.0, epsilon=1.5).double()
    w, w_z = [[0.2, -0.1], [0.4, 0.1]], [[0.3, 0.0], [-0.2, 0.5]]
    _set(cell.input_proj.weight, [[v] for v in V])
    _set(cell.input_proj.bias, B)
    _set(cell.recurrent_weight, [w[i] + w_z[i] for i in range(2)])
    y, z = H0, [0.3, 0.05]

    force = [
        math.tanh(w[i][0] * y[0] + w[i][1] * y[1] + w_z[i][0] * z[0] + w_z[i][1] * z[1] + V[i] * X + B[i])
        for i in range(2)
    ]
    z1 = [z[i] + 0.1 * (force[i] - 2.0 * y[i] - 1.5 * z[i]) for i in range(2)]
    y1 = [y[i] + 0.1 * z1[i] for i in range(2)]

    got_y, got_z = cell.step(
        torch.tensor([[X]], dtype=torch.double),
        (torch.tensor([y], dtype=torch.double), torch.tensor([z], dtype=torch.double)),
    )
    torch.testing.assert_close(got_y, torch.tensor([y1], dtype=torch.double), rtol=0, atol=1e-14)
    torch.testing.assert_close(got_z, torch.tensor([z1], dtype=torch.double), rtol=0, atol=1e-14)


def test_lipschitz_rnn_step_is_erichson_et_al_forward_euler():
    # h_n = h + ε(A_β h + tanh(W_β h + U x + b)), A_β = (1−β)(M + Mᵀ) + β(M − Mᵀ) − γI   (Erichson et al. 2021, eq. 5)
    eps, beta, gamma_a, gamma_w = 0.1, 0.75, 0.01, 0.02
    cell = LipschitzRNNCell(1, 2, eps=eps, beta=beta, gamma_a=gamma_a, gamma_w=gamma_w).double()
    m_a, m_w = [[0.3, -0.2], [0.5, 0.1]], [[-0.4, 0.6], [0.2, 0.3]]
    _set(cell.m_a, m_a)
    _set(cell.m_w, m_w)
    _set(cell.input_proj.weight, [[v] for v in V])
    _set(cell.input_proj.bias, B)

    def blend(m, gamma):
        return [
            [(1 - beta) * (m[i][j] + m[j][i]) + beta * (m[i][j] - m[j][i]) - gamma * (i == j) for j in range(2)]
            for i in range(2)
        ]

    a, w = blend(m_a, gamma_a), blend(m_w, gamma_w)
    h1 = [
        H0[i]
        + eps * (a[i][0] * H0[0] + a[i][1] * H0[1] + math.tanh(w[i][0] * H0[0] + w[i][1] * H0[1] + V[i] * X + B[i]))
        for i in range(2)
    ]

    got = cell.step(torch.tensor([[X]], dtype=torch.double), torch.tensor([H0], dtype=torch.double))
    torch.testing.assert_close(got, torch.tensor([h1], dtype=torch.double), rtol=0, atol=1e-14)


def _orthogonal_step(cell, lower: float, bias: list[float]) -> torch.Tensor:
    _set(cell.recurrent.parametrizations.weight.original, [[0.0, 0.0], [lower, 0.0]])  # B = L − Lᵀ
    _set(cell.input_proj.weight, [[v] for v in V])
    _set(cell.activation.bias, bias)
    return cell.step(torch.tensor([[X]], dtype=torch.double), torch.tensor([H0], dtype=torch.double))


def _mod_relu(z: float, b: float) -> float:
    return math.copysign(max(abs(z) + b, 0.0), z) if z else 0.0


def test_exprnn_step_is_modrelu_of_the_exponential_of_a_skew_matrix():
    # h_n = modReLU(exp(B) h + V x), B = [[0, −l], [l, 0]] → exp(B) = rotation [[cos l, −sin l], [sin l, cos l]]
    cell = ExpRNNCell(1, 2).double()
    lower, bias = 0.4, [0.05, -0.6]
    rotation = [[math.cos(lower), -math.sin(lower)], [math.sin(lower), math.cos(lower)]]
    z = [rotation[i][0] * H0[0] + rotation[i][1] * H0[1] + V[i] * X for i in range(2)]
    expected = [_mod_relu(z[i], bias[i]) for i in range(2)]
    torch.testing.assert_close(_orthogonal_step(cell, lower, bias), torch.tensor([expected], dtype=torch.double))


def test_scornn_step_is_modrelu_of_the_cayley_transform_of_a_skew_matrix():
    # h_n = modReLU(W h + V x), W = (I − B/2)⁻¹(I + B/2); for B = [[0, −l], [l, 0]] a rotation by 2·atan(l/2)
    cell = ScoRNNCell(1, 2).double()
    lower, bias = 0.4, [0.05, -0.6]
    angle = 2 * math.atan(lower / 2)
    rotation = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    z = [rotation[i][0] * H0[0] + rotation[i][1] * H0[1] + V[i] * X for i in range(2)]
    expected = [_mod_relu(z[i], bias[i]) for i in range(2)]
    torch.testing.assert_close(_orthogonal_step(cell, lower, bias), torch.tensor([expected], dtype=torch.double))


def test_cornn_implicit_damping_is_the_papers_text():
    # z_n = z + Δt(tanh(W y + 𝒲 z + V u + b) − γ y − ε z_n), solved for z_n
    cell = CoupledOscillatorCell(1, 2, dt=0.1, gamma=2.0, epsilon=1.5, damping="implicit").double()
    w, w_z = [[0.2, -0.1], [0.4, 0.1]], [[0.3, 0.0], [-0.2, 0.5]]
    _set(cell.input_proj.weight, [[v] for v in V])
    _set(cell.input_proj.bias, B)
    _set(cell.recurrent_weight, [w[i] + w_z[i] for i in range(2)])
    y, z = H0, [0.3, 0.05]

    force = [
        math.tanh(w[i][0] * y[0] + w[i][1] * y[1] + w_z[i][0] * z[0] + w_z[i][1] * z[1] + V[i] * X + B[i])
        for i in range(2)
    ]
    z1 = [(z[i] + 0.1 * (force[i] - 2.0 * y[i])) / (1 + 0.1 * 1.5) for i in range(2)]
    y1 = [y[i] + 0.1 * z1[i] for i in range(2)]

    state = (torch.tensor([y], dtype=torch.double), torch.tensor([z], dtype=torch.double))
    got_y, got_z = cell.step(torch.tensor([[X]], dtype=torch.double), state)
    torch.testing.assert_close(got_y, torch.tensor([y1], dtype=torch.double), rtol=0, atol=1e-14)
    torch.testing.assert_close(got_z, torch.tensor([z1], dtype=torch.double), rtol=0, atol=1e-14)


def test_lipschitz_rnn_starts_as_the_authors_final_code_does():
    # init_std 0.1: A_β = (1−β)(M + Mᵀ) + β(M − Mᵀ) − γI with M ~ N(0, (0.1/n)²) starts nearly skew, its largest
    # real eigenvalue ≈ −γ + O(0.1/√n); with the earlier init_std 6 it was about +0.12 at n = 128
    torch.manual_seed(0)
    cell = LipschitzRNNCell(1, 128)
    a_beta, _ = cell.recurrent_matrices()
    assert torch.linalg.eigvals(a_beta.double()).real.max() < 0.01
    # the input layer keeps nn.Linear's default: U(±1/√m), std 1/√3 for one input
    assert cell.input_proj.weight.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.15)
    assert cell.input_proj.bias.abs().max().item() <= 1.0 and cell.input_proj.bias.std().item() > 0.3
