"""The `cpp` backend (compiled CPU loops) against the eager scans, its buffer pool, and how `auto` picks it."""

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.cpp_extension import _get_build_directory

from arnn.backends import _cpp_probe, resolve_backend
from arnn.backends.antisymmetric_scan import antisymmetric_scan, gated_antisymmetric_scan
from arnn.backends.compiled_cpu import BUILD_NAME, build_name, compiled_antisymmetric, compiled_gated_antisymmetric
from arnn.cells import AntisymmetricCell
from arnn.errors import ConfigError

PAIRS = {
    "ungated": (compiled_antisymmetric, antisymmetric_scan),
    "gated": (compiled_gated_antisymmetric, gated_antisymmetric_scan),
}


def _inputs(kind, steps, batch, n, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    u_shape = (steps, batch, 2, n) if kind == "gated" else (steps, batch, n)
    tensors = (
        torch.randn(u_shape, generator=gen),
        torch.randn(batch, n, generator=gen),
        torch.randn(n, n, generator=gen) / n**0.5,  # the scale of the models' M
    )
    return [t.to(dtype).requires_grad_() for t in tensors]


def _values_and_grads(scan, inputs, eps=0.3):
    h_all = scan(*inputs, eps)
    weights = torch.linspace(-1, 1, h_all.numel(), dtype=h_all.dtype).view_as(h_all)
    return (h_all, *torch.autograd.grad((h_all * weights).sum(), inputs))


# float32: tanh p is 2σ(2p) − 1 here and torch.tanh in eager; they differ by a few ulps of 1 per step, so the
# tolerance is relative to the largest entry.
@pytest.mark.usefixtures("cpp_backend")
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize(("steps", "batch", "n"), [(1, 1, 1), (9, 5, 12), (40, 3, 33)])
@pytest.mark.parametrize("kind", PAIRS)
def test_compiled_values_and_gradients_match_eager(kind, steps, batch, n, dtype, tol):
    compiled, eager = PAIRS[kind]
    inputs = _inputs(kind, steps, batch, n, dtype)
    for fast, reference in zip(_values_and_grads(compiled, inputs), _values_and_grads(eager, inputs), strict=True):
        torch.testing.assert_close(fast, reference, rtol=tol, atol=tol * reference.abs().max().item())


@pytest.mark.usefixtures("cpp_backend")
@pytest.mark.parametrize("kind", PAIRS)
def test_compiled_gradient_passes_gradcheck(kind):
    inputs = _inputs(kind, 6, 3, 4)
    assert torch.autograd.gradcheck(lambda *args: PAIRS[kind][0](*args, 0.5), inputs)


@pytest.mark.usefixtures("cpp_backend")
@pytest.mark.parametrize("kind", PAIRS)
def test_pooled_buffers_are_reused_only_once_nothing_holds_them(kind):
    compiled, eager = PAIRS[kind]
    first, second = _inputs(kind, 7, 4, 6, seed=1), _inputs(kind, 7, 4, 6, seed=2)
    # Two graphs alive at once: the second call must not write into the first one's states or saved activations.
    h_first, h_second = compiled(*first, 0.3), compiled(*second, 0.3)
    loss = (h_first.square().sum() + h_second.sum()) * 1.0
    grads = torch.autograd.grad(loss, [*first, *second])
    expected_loss = eager(*first, 0.3).square().sum() + eager(*second, 0.3).sum()
    expected = torch.autograd.grad(expected_loss, [*first, *second])
    torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=1e-12)
    for grad, reference in zip(grads, expected, strict=True):
        torch.testing.assert_close(grad, reference, rtol=1e-12, atol=1e-12)
    kept = h_first.detach().clone()
    del h_first, h_second, loss, grads  # the buffers are free now; the next call of the same shape reuses them
    torch.testing.assert_close(compiled(*first, 0.3), kept, rtol=0, atol=0)


@pytest.mark.usefixtures("cpp_backend")
def test_auto_picks_cpp_on_cpu_after_its_probe_passes():
    assert _cpp_probe.__wrapped__() is None
    assert resolve_backend("auto", "cpu", 128) == "cpp"


def test_failed_build_warns_and_auto_falls_back_to_eager(monkeypatch):
    def no_compiler():
        raise RuntimeError("Error building extension 'arnn_cpu_scan'\ng++: not found")

    monkeypatch.setattr("arnn.backends.compiled_cpu.build", no_compiler)
    _cpp_probe.cache_clear()
    try:
        with pytest.warns(UserWarning, match="compiled CPU scan is unavailable .*arnn_cpu_scan'.*using eager"):
            assert resolve_backend("auto", "cpu", 16) == "eager"
        with pytest.raises(ConfigError, match=r"model.backend=cpp could not be built .*; use model.backend=eager"):
            AntisymmetricCell(input_size=1, hidden_size=4, backend="cpp")
    finally:
        _cpp_probe.cache_clear()


def test_cpp_on_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="model.backend=cpp runs compiled CPU loops, got device cuda"):
        resolve_backend("cpp", "cuda", 16)


@pytest.mark.usefixtures("cpp_backend")
@pytest.mark.parametrize("kind", PAIRS)
def test_row_blocks_split_over_threads_give_the_single_thread_result(kind):
    compiled, eager = PAIRS[kind]
    inputs = _inputs(kind, 3, 300, 256)  # 300 rows of 256 units: three blocks of 128 rows (grain 32768 / n)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        split = _values_and_grads(compiled, inputs)
    finally:
        torch.set_num_threads(threads)
    for fast, reference in zip(split, _values_and_grads(eager, inputs), strict=True):
        torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("cpp_backend")
def test_each_python_environment_builds_the_extension_in_its_own_folder():
    assert BUILD_NAME == build_name(sys.prefix) != build_name("/other/venv")
    assert build_name("/other/venv") == build_name("/other/venv")
    assert list(Path(_get_build_directory(BUILD_NAME, verbose=False)).glob(f"{BUILD_NAME}*.so"))
