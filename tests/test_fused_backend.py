"""The fused Triton kernels and the CUDA-graph backend against the eager scans, and how backends are chosen.

The kernel tests run everywhere through Triton's interpreter (TRITON_INTERPRET=1, read when the kernels are
jitted, which fused_triton does on first use in each mode). Only the checks that need real GPU hardware (TF32-free
fp32 on device, autocast dtypes, CUDA graphs, moving a model to the GPU) are CUDA-only.
"""

import logging

import pytest
import torch
from triton.runtime.errors import OutOfResources

from arnn.backends import AutoChoice, _fused_probe, auto_choice, race, resolve_backend, scans
from arnn.backends.antisymmetric_scan import antisymmetric_scan, gated_antisymmetric_scan
from arnn.backends.fused_triton import fused_antisymmetric, fused_gated_antisymmetric
from arnn.cells import AntisymmetricCell, GatedAblationCell, GatedAntisymmetricCell
from arnn.errors import ConfigError

PAIRS = {
    "ungated": (fused_antisymmetric, antisymmetric_scan),
    "gated": (fused_gated_antisymmetric, gated_antisymmetric_scan),
}
_NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU runs go through the interpreter)"
)


def needs_cuda(test):
    """The `gpu` tier, skipped with its reason where no CUDA device is."""
    return pytest.mark.gpu(_NEEDS_CUDA(test))


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _inputs(kind, steps, batch, n, dtype=torch.float64, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    u_shape = (steps, batch, 2, n) if kind == "gated" else (steps, batch, n)
    tensors = (
        torch.randn(u_shape, generator=gen),
        torch.randn(batch, n, generator=gen),
        torch.randn(n, n, generator=gen),
    )
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in tensors]


def _values_and_grads(scan, inputs, weights, eps=0.3):
    h_all = scan(*inputs, eps)
    loss = (h_all.to(weights.dtype) * weights).sum()
    return (h_all, *torch.autograd.grad(loss, inputs))


def _assert_same(scan, reference, inputs, weights, **tolerance):
    """Equal states and gradients for u, h0 and M."""
    got, expected = _values_and_grads(scan, inputs, weights), _values_and_grads(reference, inputs, weights)
    for value, reference_value in zip(got, expected, strict=True):
        torch.testing.assert_close(value, reference_value, **tolerance)


@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize(
    ("steps", "batch", "n"), [(7, 3, 16), (5, 19, 12)], ids=["pow2", "odd_hidden_batch_over_one_block"]
)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-5)], ids=["fp64", "fp32"])
def test_fused_values_and_gradients_match_eager(kind, steps, batch, n, dtype, tol):
    inputs = _inputs(kind, steps, batch, n, dtype)
    weights = torch.randn(steps, batch, n, dtype=dtype, generator=torch.Generator().manual_seed(1))
    _assert_same(*PAIRS[kind], inputs, weights, rtol=tol, atol=tol)


@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("kind", PAIRS)
def test_fused_gradient_passes_gradcheck(kind):
    inputs = _inputs(kind, steps=2, batch=2, n=3)
    assert torch.autograd.gradcheck(lambda *args: PAIRS[kind][0](*args, 0.5), inputs)


@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
def test_fused_low_precision_input_keeps_an_fp32_state_and_returns_its_dtype(kind, low):
    u, h0, m = _inputs(kind, steps=6, batch=5, n=12, dtype=torch.float32)
    weights = torch.randn(6, 5, 12, generator=torch.Generator().manual_seed(1))
    u_low = u.detach().to(low).requires_grad_()
    got = _values_and_grads(PAIRS[kind][0], [u_low, h0, m], weights)
    # The reference: fp32 eager on the same rounded inputs, so what differs is the kernel's low-precision work.
    expected = _values_and_grads(PAIRS[kind][1], [u_low.detach().float().requires_grad_(), h0, m], weights)
    assert [t.dtype for t in got] == [low, low, torch.float32, torch.float32]
    tol = 1e-2 if low == torch.float16 else 4e-2  # fp16 has 11 mantissa bits, bf16 8
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value.float(), reference, rtol=tol, atol=tol * reference.abs().max().item())


def test_fused_rejects_hidden_sizes_it_cannot_keep_on_chip():
    with pytest.raises(ValueError, match="256"):
        fused_antisymmetric(torch.zeros(2, 1, 257), torch.zeros(1, 257), torch.zeros(257, 257), 0.1)


def test_auto_picks_fused_on_cuda_only_when_the_kernel_passes_its_probe_at_the_models_size_and_dtype(monkeypatch):
    probed = []
    monkeypatch.setattr("arnn.backends._fused_probe", lambda *key: probed.append(key))
    assert resolve_backend("auto", "cuda", 128, torch.bfloat16) == "fused"
    assert probed == [(torch.device("cuda"), 128, torch.bfloat16)]
    assert resolve_backend("auto", "cuda", 300) == "eager"  # beyond what the kernel keeps on chip: not even probed
    monkeypatch.setattr("arnn.backends._fused_probe", lambda *key: "OutOfResources: out of resource: shared memory")
    assert resolve_backend("auto", "cuda", 128) == "eager"


def test_auto_runs_eager_at_a_shape_where_the_fused_kernel_loses_the_race_and_says_why(monkeypatch):
    monkeypatch.setattr("arnn.backends._fused_probe", lambda *key: None)
    monkeypatch.setattr("arnn.backends.race", lambda *key: (0.004, 0.001))
    choice = auto_choice(torch.device("cuda"), 128, torch.float32, (784, 128, False))
    assert choice == AutoChoice("eager", "fused 4.00 ms vs eager 1.00 ms forward+backward")
    monkeypatch.setattr("arnn.backends.race", lambda *key: (0.001, 0.004))
    assert resolve_backend("auto", "cuda", 128, torch.float32, (784, 128, False)) == "fused"


@pytest.mark.usefixtures("interpret")
def test_race_times_both_scans_once_per_shape_even_from_inference_mode_and_logs_the_winner(caplog):
    race.cache_clear()
    with caplog.at_level(logging.INFO, logger="arnn.backends"), torch.inference_mode():
        first = race(torch.device("cpu"), 8, torch.float32, 3, 5, True)
        again = race(torch.device("cpu"), 8, torch.float32, 3, 5, True)
    assert first is again and min(first) > 0
    (record,) = [r for r in caplog.records if r.getMessage().startswith("model.backend=auto")]
    assert "8 units" in record.getMessage() and "T=3, B=5 (gated)" in record.getMessage()


@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_probe_runs_the_real_kernels_against_eager(dtype):
    assert _fused_probe.__wrapped__(torch.device("cpu"), 12, dtype) is None


@pytest.mark.usefixtures("interpret")
def test_failed_probe_warns_and_gives_the_reason(monkeypatch):
    def broken(*args):
        raise RuntimeError("PTX not supported\nmore detail")

    monkeypatch.setattr("arnn.backends.fused_triton._FusedScan.apply", broken)
    with pytest.warns(UserWarning, match="failed its check on cpu for 12 units in torch.float32 .*using eager"):
        assert _fused_probe.__wrapped__(torch.device("cpu"), 12, torch.float32) == "RuntimeError: PTX not supported"


@pytest.mark.usefixtures("interpret")
def test_kernel_beyond_the_gpus_shared_memory_is_a_one_line_config_error(monkeypatch):
    class TooBig:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                raise OutOfResources(278528, 232448, "shared memory")

            return launch

    monkeypatch.setattr("arnn.backends.fused_triton._kernels", lambda interpret: (TooBig(), TooBig()))
    inputs = _inputs("ungated", 2, 1, 200, torch.float32)
    with pytest.raises(ConfigError, match=r"200×200 M in torch.float32 does not fit .*needs 278528, has 232448"):
        fused_antisymmetric(*inputs, 0.1)


@pytest.mark.parametrize(
    ("backend", "hidden", "message"),
    [
        ("fused", 8, r"model.backend=fused needs a CUDA device, got cpu .*TRITON_INTERPRET=1.*use model.backend=eager"),
        (
            "graph",
            8,
            r"model.backend=graph captures CUDA graphs and needs a CUDA device, got cpu; use model.backend=eager",
        ),
        ("scan", 8, r"model.backend must be one of auto, eager, cpp, unrolled, fused, graph, parallel, got 'scan'"),
    ],
)
@pytest.mark.parametrize("cls", [AntisymmetricCell, GatedAntisymmetricCell, GatedAblationCell])
def test_backend_that_cannot_run_is_a_one_line_config_error(cls, backend, hidden, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine: fail at construction
    with pytest.raises(ConfigError, match=message) as error:
        cls(input_size=1, hidden_size=hidden, backend=backend)
    assert "\n" not in str(error.value)
    if backend != "scan":
        with pytest.raises(ConfigError, match=message):
            resolve_backend(backend, "cpu", hidden)


@pytest.mark.usefixtures("interpret")
def test_forced_fused_beyond_256_units_is_a_config_error_even_where_triton_runs():
    with pytest.raises(ConfigError, match="model.hidden_size up to 256, got 300; use model.backend=eager"):
        AntisymmetricCell(input_size=1, hidden_size=300, backend="fused")


# --- CUDA only: real hardware behaviour the interpreter cannot show ---------------------------------------------


@needs_cuda
@pytest.mark.parametrize("kind", PAIRS)
def test_fused_matches_eager_on_cuda_in_fp32(kind, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    inputs = _inputs(kind, steps=50, batch=40, n=128, dtype=torch.float32, device="cuda")
    weights = torch.randn(50, 40, 128, device="cuda")
    _assert_same(*PAIRS[kind], inputs, weights, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cls", [AntisymmetricCell, GatedAntisymmetricCell])
def test_autocast_on_cuda_runs_the_kernel_with_low_precision_states_and_fp32_weight_gradients(cls, low):
    torch.manual_seed(0)
    cell = cls(input_size=3, hidden_size=64, eps=0.1, backend="fused").cuda()
    x = torch.randn(8, 30, 3, device="cuda")
    with torch.autocast("cuda", dtype=low):
        y, _ = cell(x)
    y.float().sum().backward()
    assert y.dtype == low
    assert all(p.grad.dtype == torch.float32 for p in cell.parameters())
    reference = cls(input_size=3, hidden_size=64, eps=0.1, backend="eager").cuda()
    reference.load_state_dict(cell.state_dict())
    torch.testing.assert_close(y.float(), reference(x)[0], rtol=5e-2, atol=5e-2)


@needs_cuda
def test_auto_model_moved_to_cuda_after_construction_runs_the_fused_kernel():
    torch.manual_seed(0)
    cell = AntisymmetricCell(input_size=2, hidden_size=32, backend="auto")
    assert resolve_backend("auto", "cuda", 32) == "fused"
    x = torch.randn(4, 20, 2)
    cell_gpu = cell.cuda()
    y, _ = cell_gpu(x.cuda())
    u = cell_gpu.input_proj(x.cuda().transpose(0, 1).contiguous())
    torch.testing.assert_close(
        y, fused_antisymmetric(u, torch.zeros(4, 32, device="cuda"), cell.recurrent_matrix(), cell.eps).transpose(0, 1)
    )


@needs_cuda
@pytest.mark.parametrize("kind", PAIRS)
def test_graph_replays_match_eager_and_recapture_on_a_new_shape(kind):
    graphed, eager = scans("graph")[kind == "gated"], PAIRS[kind][1]
    for seed, batch in [(0, 6), (1, 6), (2, 3)]:  # a replay with new values, then a new shape
        inputs = _inputs(kind, steps=20, batch=batch, n=16, dtype=torch.float32, device="cuda", seed=seed)
        weights = torch.randn(20, batch, 16, device="cuda")
        _assert_same(graphed, eager, inputs, weights)


@needs_cuda
def test_graph_backward_after_a_second_forward_of_the_same_shape_raises():
    graphed = scans("graph")[0]
    first = graphed(*_inputs("ungated", 5, 4, 16, torch.float32, "cuda"), 0.1)
    graphed(*_inputs("ungated", 5, 4, 16, torch.float32, "cuda", seed=1), 0.1)
    with pytest.raises(RuntimeError, match="run each backward before the next forward"):
        first.sum().backward()


@needs_cuda
def test_graph_capture_made_under_inference_mode_serves_later_no_grad_calls():
    graphed = scans("graph")[0]
    inputs = [t.detach() for t in _inputs("ungated", 5, 4, 16, torch.float32, "cuda")]
    with torch.inference_mode():
        first = graphed(*inputs, 0.1)
    with torch.no_grad():
        torch.testing.assert_close(graphed(*inputs, 0.1), first)


# Largest error of states and gradients, relative to the float64 reference's largest value, by u's dtype: fp32 with
# TF32 off; bf16 / fp16 inputs go through tensor-core dots on 16-bit copies of h (the state itself stays fp32). Under
# Triton's interpreter at T = 784, n = 32 these errors were 1e-6 (fp32), 8e-4 (fp16) and 1.5e-2 (bf16).
GPU_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@needs_cuda
@pytest.mark.parametrize("steps", [1, 7, 784])
@pytest.mark.parametrize("n", [32, 128, 256])
@pytest.mark.parametrize("dtype", list(GPU_TOLERANCE), ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize("backend", ["fused", "graph"])
def test_gpu_backends_match_the_float64_eager_scan_in_every_dtype_size_and_length(
    backend, kind, dtype, n, steps, monkeypatch
):
    """B = 37 fills no block of the kernel. u in `dtype` with h0 and M in fp32, as autocast gives them, M = W − Wᵀ − γI
    and ε = 0.01 as the model has them (a matrix with eigenvalues off the imaginary axis, or a large ε, amplifies any
    rounding over 784 steps); the reference is the eager scan in float64 on the same (already rounded) values."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    batch, gen = 37, torch.Generator().manual_seed(n + steps)
    u = torch.randn(steps, batch, *((2,) if kind == "gated" else ()), n, generator=gen).to(dtype)
    h0, w = torch.randn(batch, n, generator=gen) / 2, torch.randn(n, n, generator=gen) / n**0.5
    m = w - w.t() - 0.01 * torch.eye(n)
    weights = torch.randn(steps, batch, n, generator=gen, dtype=torch.float64).cuda()

    def states_and_gradients(scan, inputs):
        leaves = [t.cuda().requires_grad_() for t in inputs]
        h_all = scan(*leaves, 0.01)
        gradients = torch.autograd.grad((h_all.double() * weights).sum(), leaves)
        return [t.double() for t in (h_all, *gradients)]

    exact = states_and_gradients(PAIRS[kind][1], [t.double() for t in (u, h0, m)])
    got = states_and_gradients(scans(backend)[kind == "gated"], [u, h0, m])
    for name, value, reference in zip(("states", "du", "dh0", "dM"), got, exact, strict=True):
        error = (value - reference).abs().max().item() / max(reference.abs().max().item(), 1e-12)
        assert error <= GPU_TOLERANCE[dtype], f"{name}: relative error {error:.2e}"
