"""uRNN and KRU: W is (near) unitary and stays so, the structured products match dense algebra, modReLU, counts."""

import math
from functools import partial

import pytest
import torch

from arnn.cells.complex_state import mod_relu
from arnn.cells.full_capacity import FullCapacityUnitaryCell
from arnn.cells.kronecker import KroneckerRecurrentCell, kronecker_matvec
from arnn.cells.unitary import UnitaryRNNCell
from arnn.errors import ConfigError
from tests.helpers.training import train_steps

CELLS = [partial(UnitaryRNNCell, permutation_seed=3), KroneckerRecurrentCell]
IDS = ["urnn", "kru"]


def _unitarity_error(w):
    return torch.linalg.matrix_norm(w.conj().t() @ w - torch.eye(w.shape[0], dtype=w.dtype)).item()


@pytest.mark.e2e
def test_urnn_recurrent_matrix_is_unitary_at_init_and_after_50_adam_steps():
    torch.manual_seed(0)
    cell = UnitaryRNNCell(2, 32)
    before = cell.recurrent_matrix().detach().clone()
    assert _unitarity_error(before) < 1e-4
    train_steps(cell, steps=50, lr=1e-2)
    after = cell.recurrent_matrix().detach()
    assert _unitarity_error(after) < 1e-4
    assert (after - before).abs().max() > 1e-2  # W did move


def test_urnn_recurrent_matrix_is_the_product_of_its_dense_factors():
    torch.manual_seed(0)
    n = 8
    cell = UnitaryRNNCell(1, n, permutation_seed=5).double()
    with torch.no_grad():
        d1, d2, d3 = (torch.diag(torch.exp(1j * theta)) for theta in cell.phases)
        v1, v2 = torch.complex(cell.reflection_real, cell.reflection_imag)
        eye = torch.eye(n, dtype=torch.cdouble)
        r1, r2 = (eye - 2 * torch.outer(v, v.conj()) / v.abs().square().sum() for v in (v1, v2))
        dft = torch.fft.fft(eye, norm="ortho", dim=0)  # column j is F e_j
        permute = eye[cell.permutation]  # (Π h)_i = h_{π(i)}
        expected = d3 @ r2 @ dft.conj().t() @ d2 @ permute @ r1 @ dft @ d1
        torch.testing.assert_close(cell.recurrent_matrix(), expected, rtol=0, atol=1e-12)


def test_urnn_permutation_is_fixed_by_its_seed():
    assert torch.equal(UnitaryRNNCell(1, 16, 7).permutation, UnitaryRNNCell(1, 16, 7).permutation)
    assert not torch.equal(UnitaryRNNCell(1, 16, 7).permutation, UnitaryRNNCell(1, 16, 8).permutation)
    assert all(not p.requires_grad for p in UnitaryRNNCell(1, 16).buffers())


def test_kru_factor_unitarity_error_goes_down_when_training_on_the_penalty_alone():
    torch.manual_seed(0)
    cell = KroneckerRecurrentCell(1, 16, penalty_weight=1.0)
    with torch.no_grad():
        cell.factors_real.add_(0.3 * torch.randn_like(cell.factors_real))
    before = cell.unitarity_error().item()
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    for _ in range(50):
        optimizer.zero_grad()
        cell.penalty().backward()
        optimizer.step()
    assert cell.unitarity_error().item() < 0.5 * before
    assert cell.penalty().item() == pytest.approx(cell.unitarity_error().item())


def test_kru_penalty_is_none_when_its_weight_is_zero():
    assert KroneckerRecurrentCell(1, 8, penalty_weight=0.0).penalty() is None


@pytest.mark.parametrize(("hidden_size", "factor_size"), [(64, 2), (243, 3)])
def test_kronecker_matvec_equals_dense_kron_of_the_factors(hidden_size, factor_size):
    torch.manual_seed(0)
    cell = KroneckerRecurrentCell(1, hidden_size, factor_size=factor_size).double()
    with torch.no_grad():  # general complex factors, not only unitary ones
        cell.factors_real.normal_()
        cell.factors_imag.normal_()
    h = torch.randn(5, hidden_size, dtype=torch.cdouble)
    w = cell.recurrent_matrix()
    assert w.shape == (hidden_size, hidden_size)
    one_by_one = tuple(factor.t() for factor in reversed(cell.factors().unbind(0)))
    blocks = cell.recurrent_operands()  # what the recurrence uses: factors multiplied out into blocks
    assert len(blocks) == 2 and max(block.shape[0] for block in blocks) <= 32
    for factors_t in (one_by_one, blocks):
        torch.testing.assert_close(kronecker_matvec(h, factors_t), h @ w.t(), rtol=0, atol=1e-10)


def test_kru_recurrent_matrix_is_unitary_at_init():
    assert _unitarity_error(KroneckerRecurrentCell(1, 64).recurrent_matrix().detach()) < 1e-4


@pytest.mark.parametrize("cls", CELLS, ids=IDS)
def test_step_run_t_times_agrees_with_forward(cls):
    torch.manual_seed(0)
    cell = cls(3, 16).double()
    x = torch.randn(4, 9, 3, dtype=torch.double)
    h0 = torch.randn(4, 16, dtype=torch.cdouble)
    y, h_last = cell(x, h0)
    h = h0
    for x_t in x.unbind(1):
        h = cell.step(x_t, h)
    torch.testing.assert_close(h, h_last, rtol=0, atol=1e-12)
    torch.testing.assert_close(y[:, -1], torch.cat([h.real, h.imag], -1), rtol=0, atol=1e-12)
    assert y.shape == (4, 9, 32) and cell.output_size == 32 and y.dtype == torch.double


def test_mod_relu_matches_its_definition_on_hand_picked_numbers():
    z = torch.tensor([3 + 4j, 0.6 + 0.8j, -1 + 0j, 0j, 1j], dtype=torch.cdouble)
    b = torch.tensor([-1.0, -2.0, 0.5, 0.3, 0.0], dtype=torch.double)
    # (|z| + b) z/|z|: 4/5·(3+4i); |z| + b = −1 < 0 → 0; 1.5·(−1); z = 0 → 0; |z| + b = 1 → z
    expected = torch.tensor([2.4 + 3.2j, 0j, -1.5 + 0j, 0j, 1j], dtype=torch.cdouble)
    torch.testing.assert_close(mod_relu(z, b), expected, rtol=0, atol=1e-12)


def test_mod_relu_has_value_and_gradient_zero_at_zero():
    z = torch.zeros(3, dtype=torch.cdouble, requires_grad=True)
    value = mod_relu(z, torch.tensor([0.5, 0.0, -0.5], dtype=torch.double))
    (value.real + value.imag).sum().backward()
    assert torch.equal(value, torch.zeros(3, dtype=torch.cdouble))
    assert torch.equal(z.grad, torch.zeros(3, dtype=torch.cdouble))


@pytest.mark.parametrize("modulus", [1e-7, 1e-3])
def test_mod_relu_is_exact_near_zero_in_value_and_gradient(modulus):
    b = torch.tensor([0.05], dtype=torch.double)
    # real z = ±r: sign(z)(r + b), slope 1 on both sides
    real = torch.tensor([modulus, -modulus], dtype=torch.double, requires_grad=True)
    value = mod_relu(real, b)
    value.sum().backward()
    torch.testing.assert_close(value, torch.tensor([modulus + 0.05, -(modulus + 0.05)], dtype=torch.double))
    torch.testing.assert_close(real.grad, torch.ones(2, dtype=torch.double))
    # complex z = r on the real axis: value (r + b); ∂Re/∂x = 1, ∂Im/∂y = (r + b)/r (the phase turns with y)
    for part, expected in ((torch.real, 1 + 0j), (torch.imag, 1j * (modulus + 0.05) / modulus)):
        z = torch.tensor([modulus + 0j], dtype=torch.cdouble, requires_grad=True)
        value = mod_relu(z, b)
        part(value).sum().backward()
        torch.testing.assert_close(value, torch.tensor([modulus + 0.05 + 0j], dtype=torch.cdouble))
        torch.testing.assert_close(z.grad, torch.tensor([expected], dtype=torch.cdouble))


@pytest.mark.parametrize(
    "cell",
    [lambda: KroneckerRecurrentCell(1, 512), lambda: FullCapacityUnitaryCell(1, 116)],
    ids=["kru_512", "fcurnn_116"],
)
def test_complex_cells_have_finite_gradients_over_a_run_of_zero_pixels(cell):
    torch.manual_seed(0)
    encoder = cell()
    with torch.no_grad():
        encoder.mod_bias.fill_(0.05)  # positive, as training makes it: a clamped modulus turned this into 0.05/ε
    x = torch.rand(4, 150, 1)
    x[:, :100] = 0  # the black border of an MNIST image read pixel by pixel
    y, _ = encoder(x)
    (y[:, -1] * torch.randn_like(y[:, -1])).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert (
            parameter.grad is None
            or torch.isfinite(
                torch.view_as_real(parameter.grad) if parameter.grad.is_complex() else parameter.grad
            ).all()
        ), name


@pytest.mark.parametrize("cls", CELLS, ids=IDS)
def test_every_parameter_receives_a_nonzero_gradient(cls):
    torch.manual_seed(0)
    cell = cls(2, 8).double()
    y, _ = cell(torch.randn(3, 6, 2, dtype=torch.double))
    (y * torch.randn_like(y)).sum().backward()
    for name, parameter in cell.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_kru_with_512_units_on_mnist_has_the_tables_11k_parameters():
    cell = KroneckerRecurrentCell(1, 512)
    # 9 factors of 2×2 complex (72) + complex V 512×1 (1024) + modReLU bias (512); readout 1024·10 + 10
    assert sum(p.numel() for p in cell.parameters()) == 72 + 1024 + 512
    assert sum(p.numel() for p in cell.parameters()) + 1024 * 10 + 10 == pytest.approx(11_000, rel=0.1)


def test_urnn_has_seven_n_recurrent_parameters():
    cell = UnitaryRNNCell(1, 128)
    # θ₁, θ₂, θ₃ (3n) + complex v₁, v₂ (4n) + complex V (2n·m) + modReLU bias (n)
    assert sum(p.numel() for p in cell.parameters()) == 7 * 128 + 2 * 128 + 128


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"input_size": 0}, "input_size"),
        ({"permutation_seed": -1}, "permutation_seed"),
    ],
)
def test_invalid_urnn_options_name_the_config_key(options, key):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        UnitaryRNNCell(**{"input_size": 1, "hidden_size": 8, **options})


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": 48}, "hidden_size"),
        ({"hidden_size": 1}, "hidden_size"),
        ({"hidden_size": 16, "factor_size": 3}, "hidden_size"),
        ({"factor_size": 1}, "factor_size"),
        ({"penalty_weight": -1e-3}, "penalty_weight"),
        ({"penalty_weight": math.nan}, "penalty_weight"),
    ],
)
def test_invalid_kru_options_name_the_config_key(options, key):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        KroneckerRecurrentCell(**{"input_size": 1, "hidden_size": 8, **options})


def test_urnn_starts_as_its_authors_code_with_glorot_inputs_a_small_modrelu_bias_and_a_trained_h0():
    torch.manual_seed(0)
    cell = UnitaryRNNCell(1, 128, input_init="glorot", trainable_h0=True, mod_bias_bound=0.01)
    bound = math.sqrt(6 / (1 + 256))
    assert cell.input_proj.weight.abs().max() <= bound and cell.input_proj.weight.std() > bound / 2
    assert 0 < cell.mod_bias.abs().max() <= 0.01
    assert cell.h0.abs().max() <= math.sqrt(3 / 256) and cell.h0.shape == (2, 128)
    x = torch.randn(3, 5, 1)
    h = cell.default_state(3, x)
    torch.testing.assert_close(h[2], torch.complex(cell.h0[0], cell.h0[1]))
    y, _ = cell(x)
    y.sum().backward()
    assert cell.h0.grad is not None and cell.h0.grad.abs().sum() > 0


def test_complex_cells_start_from_zero_without_a_trained_h0():
    cell = UnitaryRNNCell(1, 8)
    assert cell.h0 is None and torch.equal(
        cell.default_state(2, torch.zeros(2, 1)), torch.zeros(2, 8, dtype=torch.cfloat)
    )
    assert torch.equal(cell.mod_bias, torch.zeros(8))
    with pytest.raises(ConfigError, match="model.input_init must be one of normal, glorot"):
        UnitaryRNNCell(1, 8, input_init="xavier")
