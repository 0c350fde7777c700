"""One step of each comparison cell against its paper's equation, on small weights written out here and the next
state computed by hand (plain floats), independent of the cell's code."""

import math

import pytest
import torch

from arnn.cells.constrained import SoftOrthogonalRNNCell
from arnn.cells.full_capacity import FullCapacityUnitaryCell
from arnn.cells.kronecker import KroneckerRecurrentCell
from arnn.cells.lipschitz import LipschitzRNNCell
from arnn.cells.orthogonal import ExpRNNCell, ScoRNNCell
from arnn.cells.oscillatory import CoupledOscillatorCell
from arnn.cells.unitary import UnitaryRNNCell

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


# The complex-state cells: h_n = modReLU(W h + V x), V x = (Re V + i Im V) x, modReLU(z) = z/|z|·relu(|z| + b)
V_RE, V_IM = [0.5, -0.3], [0.2, 0.4]
H0_C = [0.3 - 0.1j, -0.2 + 0.25j]
MOD_BIAS = [0.05, -0.2]


def _complex_mod_relu(z: complex, b: float) -> complex:
    return z / abs(z) * max(abs(z) + b, 0.0) if z else 0j


def _matvec(w: list[list[complex]], h: list[complex]) -> list[complex]:
    return [sum(w_ij * h_j for w_ij, h_j in zip(row, h, strict=True)) for row in w]


def _complex_step(cell, n: int = 2) -> torch.Tensor:
    """One step of a complex-state cell from H0_C (repeated to n units) with the V and modReLU bias above."""
    _set(cell.input_proj.weight, [[v] for v in (V_RE * (n // 2)) + (V_IM * (n // 2))])
    _set(cell.mod_bias, MOD_BIAS * (n // 2))
    h = torch.tensor([H0_C * (n // 2)], dtype=torch.cdouble)
    return cell.step(torch.tensor([[X]], dtype=torch.double), h)


def _expected_complex_step(w: list[list[complex]], n: int = 2) -> torch.Tensor:
    v = [complex(re, im) for re, im in zip(V_RE * (n // 2), V_IM * (n // 2), strict=True)]
    z = [wh + v_i * X for wh, v_i in zip(_matvec(w, H0_C * (n // 2)), v, strict=True)]
    h = [_complex_mod_relu(z_i, b) for z_i, b in zip(z, MOD_BIAS * (n // 2), strict=True)]
    return torch.tensor([h], dtype=torch.cdouble)


def test_urnn_step_is_arjovsky_et_als_product_of_unitary_factors():
    # W = D₃ R₂ F⁻¹ D₂ Π R₁ F D₁ (Arjovsky, Shah, Bengio 2016, eq. 6): D_k = diag(e^{iθ}), R_k = I − 2 v vᴴ/‖v‖²,
    # F the unitary DFT (F_jk = e^{−2πi jk/n}/√n), Π the permutation (Π h)_j = h_{π(j)}
    cell = UnitaryRNNCell(1, 2).double()
    theta = [[0.3, -1.1], [2.0, 0.7], [-0.4, 1.5]]
    v_re, v_im = [[0.6, -0.2], [0.1, 0.9]], [[0.3, 0.5], [-0.7, 0.2]]
    _set(cell.phases, theta)
    _set(cell.reflection_real, v_re)
    _set(cell.reflection_imag, v_im)
    cell.permutation.copy_(torch.tensor([1, 0]))

    def diag(k):
        return [[complex(math.cos(theta[k][j]), math.sin(theta[k][j])) * (i == j) for j in range(2)] for i in range(2)]

    def reflection(k):
        v = [complex(v_re[k][j], v_im[k][j]) for j in range(2)]
        norm2 = sum(abs(v_j) ** 2 for v_j in v)
        return [[(i == j) - 2 * v[i] * v[j].conjugate() / norm2 for j in range(2)] for i in range(2)]

    dft = [
        [
            complex(math.cos(2 * math.pi * j * k / 2), -math.sin(2 * math.pi * j * k / 2)) / math.sqrt(2)
            for k in range(2)
        ]
        for j in range(2)
    ]
    inverse_dft = [[dft[k][j].conjugate() for k in range(2)] for j in range(2)]
    swap = [[0, 1], [1, 0]]

    def product(*matrices):
        out = [[complex(i == j) for j in range(2)] for i in range(2)]
        for m in matrices:
            out = [[sum(out[i][k] * m[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
        return out

    w = product(diag(2), reflection(1), inverse_dft, diag(1), swap, reflection(0), dft, diag(0))
    torch.testing.assert_close(_complex_step(cell), _expected_complex_step(w), rtol=0, atol=1e-14)


def test_full_capacity_urnn_step_is_modrelu_of_a_full_unitary_matrix():
    # h_n = modReLU(W h + V x), W ∈ U(n) with all n² real degrees of freedom (Wisdom et al. 2016, eq. 3)
    cell = FullCapacityUnitaryCell(1, 2).double()
    w = [[0.6, 0.8j], [0.8j, 0.6]]
    _set(cell.w_real, [[z.real for z in row] for row in w])
    _set(cell.w_imag, [[z.imag for z in row] for row in w])
    torch.testing.assert_close(_complex_step(cell), _expected_complex_step(w), rtol=0, atol=1e-14)


def test_kru_step_is_modrelu_of_a_kronecker_product_of_factors():
    # h_n = modReLU((W₁ ⊗ W₂) h + V x), (A ⊗ B)[2i + k, 2j + l] = A[i][j]·B[k][l]   (Jose et al. 2018, eq. 5)
    cell = KroneckerRecurrentCell(1, 4, factor_size=2).double()
    w1, w2 = [[0.6, 0.8j], [0.8j, 0.6]], [[0.1 + 0.2j, 0.9], [-0.3, 0.5 - 0.4j]]  # W₂ not unitary: the step is W's
    _set(cell.factors_real, [[[z.real for z in row] for row in f] for f in (w1, w2)])
    _set(cell.factors_imag, [[[z.imag for z in row] for row in f] for f in (w1, w2)])
    kron = [[w1[r // 2][c // 2] * w2[r % 2][c % 2] for c in range(4)] for r in range(4)]
    torch.testing.assert_close(_complex_step(cell, n=4), _expected_complex_step(kron, n=4), rtol=0, atol=1e-14)


def test_soft_orthogonal_step_and_penalty_are_vorontsov_et_als():
    # h_n = tanh(W h + V x + b), loss + λ‖WᵀW − I‖²_F   (Vorontsov et al. 2017, section 2.2)
    cell = SoftOrthogonalRNNCell(1, 2, penalty_weight=0.1).double()
    w = [[0.9, -0.3], [0.2, 1.1]]
    _set(cell.weight, w)
    _set(cell.input_proj.weight, [[v] for v in V])
    _set(cell.input_proj.bias, B)
    expected = [math.tanh(w[i][0] * H0[0] + w[i][1] * H0[1] + V[i] * X + B[i]) for i in range(2)]
    got = cell.step(torch.tensor([[X]], dtype=torch.double), torch.tensor([H0], dtype=torch.double))
    torch.testing.assert_close(got, torch.tensor([expected], dtype=torch.double), rtol=0, atol=1e-14)
    gram = [[sum(w[k][i] * w[k][j] for k in range(2)) - (i == j) for j in range(2)] for i in range(2)]
    assert cell.penalty().item() == pytest.approx(0.1 * sum(g * g for row in gram for g in row), abs=1e-14)


def _eigen_angles(w: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvals(w.to(torch.cdouble)).angle().abs()


@pytest.mark.parametrize("cell_class", [UnitaryRNNCell, FullCapacityUnitaryCell])
def test_unitary_rows_start_as_the_authors_code_does(cell_class):
    # amarshah/complex_RNN and stwisdom/urnn: V Glorot-uniform over the (m, 2n) real matrix, modReLU bias
    # U(±0.01), a trained h_0 from U(±√(3/2n)); the FC uRNN's W the product of a random uRNN's factors
    torch.manual_seed(0)
    n, m = 128, 1
    kwargs = {"init": "urnn_product"} if cell_class is FullCapacityUnitaryCell else {}
    cell = cell_class(m, n, input_init="glorot", mod_bias_bound=0.01, trainable_h0=True, **kwargs)
    bound = math.sqrt(6 / (m + 2 * n))
    assert cell.input_proj.weight.abs().max().item() <= bound
    assert cell.input_proj.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)
    assert 0.008 < cell.mod_bias.abs().max().item() <= 0.01
    assert 0.9 * math.sqrt(3 / (2 * n)) < cell.h0.abs().max().item() <= math.sqrt(3 / (2 * n))
    w = cell.recurrent_matrix().detach().to(torch.cdouble)
    torch.testing.assert_close(w.conj().t() @ w, torch.eye(n, dtype=torch.cdouble), rtol=0, atol=1e-5)
    # the eigenvalues of either W spread around the whole circle (mean |angle| π/2 for uniform angles)
    assert _eigen_angles(w).mean().item() == pytest.approx(math.pi / 2, rel=0.2)


def test_kru_and_soft_orthogonal_start_unitary():
    torch.manual_seed(0)
    kru = KroneckerRecurrentCell(1, 64, factor_size=2)
    assert kru.unitarity_error().item() < 1e-10
    soft = SoftOrthogonalRNNCell(1, 128)
    torch.testing.assert_close(soft.weight.t() @ soft.weight, torch.eye(128), rtol=0, atol=1e-5)
    assert _eigen_angles(soft.weight.detach()).mean().item() == pytest.approx(math.pi / 2, rel=0.2)


def test_cornn_starts_as_the_authors_single_linear_layer_does():
    # tk-rusch/coRNN keeps [V W 𝒲] and b in one nn.Linear(m + 2n, n): every entry U(±1/√(m + 2n)), std bound/√3
    torch.manual_seed(0)
    cell = CoupledOscillatorCell(1, 256)
    bound = 1 / math.sqrt(1 + 2 * 256)
    weights = torch.cat([cell.input_proj.weight.flatten(), cell.input_proj.bias, cell.recurrent_weight.flatten()])
    assert weights.abs().max().item() <= bound
    assert weights.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
