"""The A-RNN cells: equations, structure of M, parameter counts, and the fast scan against autograd."""

import math

import pytest
import torch

from arnn.cells import AntisymmetricCell, GatedAblationCell, GatedAntisymmetricCell, TorchRecurrentEncoder
from arnn.errors import ConfigError
from arnn.lit import SequenceClassifier

CELLS = [AntisymmetricCell, GatedAntisymmetricCell]
SCANNED = [*CELLS, GatedAblationCell]


def _set_upper(cell, upper):
    with torch.no_grad():
        cell.w_upper.copy_(torch.tensor(upper, dtype=cell.w_upper.dtype))


def test_arnn_step_matches_equation_computed_by_hand():
    cell = AntisymmetricCell(input_size=1, hidden_size=2, eps=0.5, gamma=0.1).double()
    _set_upper(cell, [0.3])  # W − Wᵀ = [[0, 0.3], [−0.3, 0]]
    with torch.no_grad():
        cell.input_proj.weight.copy_(torch.tensor([[1.0], [-2.0]]))
        cell.input_proj.bias.copy_(torch.tensor([0.05, 0.0], dtype=torch.double))
    h = torch.tensor([[1.0, 2.0]], dtype=torch.double)
    x = torch.tensor([[0.5]], dtype=torch.double)
    # M h = [−0.1·1 + 0.3·2, −0.3·1 − 0.1·2] = [0.5, −0.5]; V x + b = [0.55, −1.0]
    expected = torch.tensor([[1.0 + 0.5 * math.tanh(1.05), 2.0 + 0.5 * math.tanh(-1.5)]], dtype=torch.double)
    torch.testing.assert_close(cell.step(x, h), expected, rtol=0, atol=1e-12)


def test_gated_step_matches_equation_computed_by_hand():
    cell = GatedAntisymmetricCell(input_size=1, hidden_size=2, eps=0.5, gamma=0.1).double()
    _set_upper(cell, [0.3])
    with torch.no_grad():
        cell.input_proj.weight.copy_(torch.tensor([[1.0], [0.0], [-2.0], [1.0]]))  # rows: V_z then V_h
        cell.input_proj.bias.zero_()
    h = torch.tensor([[1.0, 2.0]], dtype=torch.double)
    x = torch.tensor([[0.5]], dtype=torch.double)
    mh = torch.tensor([0.5, -0.5], dtype=torch.double)
    z = torch.sigmoid(mh + torch.tensor([0.5, 0.0], dtype=torch.double))
    a = torch.tanh(mh + torch.tensor([-1.0, 0.5], dtype=torch.double))
    torch.testing.assert_close(cell.step(x, h), h + 0.5 * z * a, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", CELLS)
def test_recurrent_matrix_plus_its_transpose_is_minus_two_gamma_identity(cls):
    cell = cls(input_size=3, hidden_size=17, gamma=0.07, sigma_w=4).double()
    m = cell.recurrent_matrix()
    torch.testing.assert_close(m + m.t(), -2 * 0.07 * torch.eye(17, dtype=torch.double), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", CELLS)
def test_antisymmetric_part_has_purely_imaginary_eigenvalues(cls):
    cell = cls(input_size=1, hidden_size=32, sigma_w=8).double()
    eigenvalues = torch.linalg.eigvals(cell.antisymmetric_matrix())
    assert eigenvalues.real.abs().max() < 1e-10
    assert eigenvalues.imag.abs().max() > 1.0


@pytest.mark.parametrize("cls", CELLS)
def test_w_is_stored_as_its_strict_upper_triangle(cls):
    cell = cls(input_size=1, hidden_size=128)
    assert cell.w_upper.numel() == 128 * 127 // 2
    assert torch.count_nonzero(torch.tril(cell.antisymmetric_matrix() + torch.eye(128))) == 128 * 127 // 2 + 128


def _count(net):
    model = SequenceClassifier(net, num_classes=10, optimizer=torch.optim.Adagrad)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_paper_on_mnist():
    # Chang et al. (ICLR 2019), Table 1: 128 units, 1 input, 10 classes → A-RNN 9 674 ("10k"), gated ≈ 10k, LSTM 68k.
    assert _count(AntisymmetricCell(1, 128)) == 8128 + 128 + 128 + 1290
    assert 9_500 <= _count(GatedAntisymmetricCell(1, 128)) <= 10_500
    assert 67_500 <= _count(TorchRecurrentEncoder(1, 128, kind="lstm")) <= 68_500


def test_parameter_counts_match_the_paper_on_cifar_pixels():
    # Chang et al. (ICLR 2019), Table 2, CIFAR pixel (3 inputs): A-RNN 256 → 36k, gated 256 → 37k, ablation 196 → 42k,
    # LSTM 128 → 69k.
    assert _count(AntisymmetricCell(3, 256)) == pytest.approx(36_000, rel=0.1)
    assert _count(GatedAntisymmetricCell(3, 256)) == pytest.approx(37_000, rel=0.1)
    assert _count(GatedAblationCell(3, 196)) == pytest.approx(42_000, rel=0.1)
    assert _count(TorchRecurrentEncoder(3, 128, kind="lstm")) == pytest.approx(69_000, rel=0.1)


def test_ablation_recurrent_matrix_is_unstructured():
    m = GatedAblationCell(1, 16, sigma_w=1).recurrent_matrix()
    assert (m + m.t()).abs().max() > 0.1 and m.numel() == 256


# The parallel backend stops its Newton iterations at max |Δh| ≤ 100 ulps (arnn.backends.parallel.TOL_ULPS); the
# weight gradients, evaluated at those states, sum T·B such errors.
@pytest.mark.parametrize(("backend", "tol"), [("eager", 1e-6), ("cpp", 1e-6), ("fused", 1e-6), ("parallel", 1e-4)])
@pytest.mark.parametrize("cls", SCANNED)
def test_backend_matches_unrolled_autograd_reference_in_float64(cls, backend, tol, monkeypatch, request):
    if backend == "cpp":
        request.getfixturevalue("cpp_backend")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the fused kernels run on CPU through Triton's interpreter
    torch.manual_seed(0)
    cell = cls(input_size=3, hidden_size=12, eps=0.3, sigma_w=2).double()
    x = torch.randn(5, 40, 3, dtype=torch.double)
    h0 = torch.randn(5, 12, dtype=torch.double, requires_grad=True)
    weights = torch.randn(5, 40, 12, dtype=torch.double)

    def values_and_grads(backend):
        cell.backend = backend
        y, h_last = cell(x, h0)
        loss = (y * weights).sum() + h_last.square().sum()
        return (y, h_last, *torch.autograd.grad(loss, [h0, *cell.parameters()]))

    for fast, reference in zip(values_and_grads(backend), values_and_grads("unrolled"), strict=True):
        torch.testing.assert_close(fast, reference, rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", SCANNED)
def test_auto_backend_on_cpu_keeps_an_fp32_state_under_bf16_autocast(cls):
    torch.manual_seed(0)
    cell = cls(input_size=2, hidden_size=8, eps=0.01)
    x = torch.randn(3, 30, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = cell(x)
    y.sum().backward()
    # A bf16 state would round away most steps ε·φ = 0.01·φ of a state of size ~1; the fp32 state keeps them.
    assert y.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u = cell.input_proj(x).float()  # the projection as autocast computes it, held exactly in fp32
    expected = torch.stack(_states_from_step(cell, u.unbind(1), torch.zeros(3, 8)), 1)
    torch.testing.assert_close(y, expected.detach(), rtol=1e-5, atol=1e-5)


def _states_from_step(cell, projections, h):
    states = []
    for u_t in projections:
        mh = h @ cell.recurrent_matrix().t()
        if cell.gates == 2:
            u_z, u_h = u_t.chunk(2, dim=-1)
            h = h + cell.eps * torch.sigmoid(mh + u_z) * torch.tanh(mh + u_h)
        else:
            h = h + cell.eps * torch.tanh(mh + u_t)
        states.append(h)
    return states


@pytest.mark.parametrize("backend", ["eager", "cpp"])
@pytest.mark.parametrize("cls", SCANNED)
def test_hand_written_gradient_passes_gradcheck(cls, backend, request):
    if backend == "cpp":
        request.getfixturevalue("cpp_backend")
    cell = cls(input_size=2, hidden_size=4, eps=0.5, backend=backend).double()
    x = torch.randn(3, 6, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inputs: cell(inputs)[0], (x,))


@pytest.mark.parametrize(
    ("option", "value"),
    [("eps", 0.0), ("eps", -0.1), ("gamma", -0.01), ("hidden_size", 0), ("sigma_w", -1.0), ("backend", "magic")],
)
@pytest.mark.parametrize("cls", CELLS)
def test_invalid_hyperparameters_name_the_config_key(cls, option, value):
    options = {"input_size": 1, "hidden_size": 8, option: value}
    with pytest.raises(ConfigError, match=f"model.{option}"):
        cls(**options)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_torch_encoders_step_agrees_with_forward(kind):
    torch.manual_seed(0)
    encoder = TorchRecurrentEncoder(input_size=2, hidden_size=6, kind=kind)
    x = torch.randn(3, 5, 2)
    y, _ = encoder(x)
    state = encoder.default_state(3, x)
    for t in range(5):
        state = encoder.step(x[:, t], state)
    h = state[0] if kind == "lstm" else state
    torch.testing.assert_close(h[-1], y[:, -1])


@pytest.mark.parametrize(
    "encoder",
    [AntisymmetricCell(2, 6), GatedAntisymmetricCell(2, 6), TorchRecurrentEncoder(2, 6, kind="gru")],
    ids=["arnn", "arnn_gated", "gru"],
)
def test_every_encoder_maps_batch_time_features_to_all_states(encoder):
    y, _ = encoder(torch.randn(4, 9, 2))
    assert y.shape == (4, 9, 6)


def test_unknown_torch_layer_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="model.kind"):
        TorchRecurrentEncoder(1, 8, kind="transformer")
