"""How a recurrence is executed: `model.backend` of the A-RNN cells.

Each backend except `unrolled` is a pair of functions with the scan signature `(u, h0, m, ε) -> h_all (T, B, n)`,
one for the ungated and one for the gated recurrence (u time-major, (T, B, n) resp. (T, B, 2, n) = (u^z, u^h);
states are rows, so M h is h Mᵀ):

- `eager`: a PyTorch loop with a hand-written backward (antisymmetric_scan); runs anywhere.
- `cpp`: the same loops compiled with torch.utils.cpp_extension (compiled_cpu, cpu_scan.cpp); CPU, needs a C++
  compiler (built once per machine, then cached).
- `fused`: persistent-RNN Triton kernels (fused_triton); CUDA, or CPU under TRITON_INTERPRET=1 (slow, for tests).
- `graph`: the eager loop captured as CUDA graphs, one per shape (cuda_graph); CUDA only.
- `parallel`: DEER / quasi-DEER Newton iterations over all steps with an associative scan (parallel).
- `unrolled`: autograd through the cell's own `step` (unrolled.py), the slow reference; the cell runs it itself.
- `auto`: `fused` on a CUDA device where a real call of the kernel, at the model's hidden size and dtype, matched
  `eager` and, at the batch's shape, ran forward+backward faster than `eager` (timed once per shape, logged);
  `cpp` on the CPU where it compiled and matched `eager`; else `eager`. `auto_choice` says which and why.

The modules load on first use, so neither Triton nor CUDA is touched unless a backend needs them.
"""

import functools
import importlib
import importlib.util
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from arnn.errors import ConfigError

Scan = Callable[[Tensor, Tensor, Tensor, float], Tensor]

BACKENDS = ("auto", "eager", "cpp", "unrolled", "fused", "graph", "parallel")
_SCANS = {
    "eager": ("arnn.backends.antisymmetric_scan", "antisymmetric_scan", "gated_antisymmetric_scan"),
    "cpp": ("arnn.backends.compiled_cpu", "compiled_antisymmetric", "compiled_gated_antisymmetric"),
    "fused": ("arnn.backends.fused_triton", "fused_antisymmetric", "fused_gated_antisymmetric"),
    "graph": ("arnn.backends.cuda_graph", "graphed_antisymmetric", "graphed_gated_antisymmetric"),
    "parallel": ("arnn.backends.parallel", "parallel_antisymmetric", "parallel_gated_antisymmetric"),
}
_OTHER_BACKEND = "use model.backend=eager (or auto)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoChoice:
    """What `model.backend=auto` runs for one case, and why."""

    backend: str
    reason: str


@functools.cache
def scans(name: str) -> tuple[Scan, Scan]:
    """The (ungated, gated) scan functions of a backend other than `auto` and `unrolled`."""
    module, ungated, gated = _SCANS[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, ungated), getattr(loaded, gated)


def check_backend(name: str) -> None:
    """A ConfigError unless `name` is one of BACKENDS."""
    if name not in BACKENDS:
        raise ConfigError(f"model.backend must be one of {', '.join(BACKENDS)}, got {name!r}")


def resolve_backend(
    name: str,
    device: torch.device | str,
    hidden_size: int | None = None,
    dtype: torch.dtype | None = None,
    shape: tuple[int, int, bool] | None = None,
) -> str:
    """The backend that runs `model.backend=name` on `device` for this hidden size and dtype of u (the defaults stand
    for 16 units in fp32) and `shape` (steps, batch, gated) of the call, if known: `auto` becomes what
    `auto_choice` says; a forced backend that cannot run there is a ConfigError naming the fix."""
    check_backend(name)
    device = torch.device(device)
    if name == "auto":
        return auto_choice(device, hidden_size or 16, dtype or torch.float32, shape).backend
    if name == "cpp" and device.type != "cpu":
        raise ConfigError(f"model.backend=cpp runs compiled CPU loops, got device {device}; use model.backend=auto")
    if name == "cpp" and (reason := _cpp_probe()):
        raise ConfigError(f"model.backend=cpp could not be built ({reason}); {_OTHER_BACKEND}")
    if name == "fused" and (reason := _fused_unavailable(device, hidden_size)):
        raise ConfigError(f"model.backend=fused {reason}; {_OTHER_BACKEND}")
    if name == "graph" and device.type != "cuda":
        raise ConfigError(
            f"model.backend=graph captures CUDA graphs and needs a CUDA device, got {device}; {_OTHER_BACKEND}"
        )
    return name


def auto_choice(
    device: torch.device, n: int, dtype: torch.dtype, shape: tuple[int, int, bool] | None = None
) -> AutoChoice:
    """The backend `auto` runs on `device` for n units, u in `dtype` and, if given, `shape` = (steps, batch, gated):
    on CUDA, `fused` when its kernel passed the probe and, at that shape, its forward+backward beat eager's."""
    if device.type == "cpu":
        reason = _cpp_probe()
        if reason is not None:
            return AutoChoice("eager", f"the compiled CPU scan is unavailable ({reason})")
        return AutoChoice("cpp", "the compiled CPU scan built and matched eager")
    if device.type != "cuda":
        return AutoChoice("eager", f"no faster backend runs on {device.type}")
    if reason := _fused_unavailable(device, n):
        return AutoChoice("eager", f"the fused kernel {reason}")
    if reason := _fused_probe(device, n, dtype):
        return AutoChoice("eager", f"the fused kernel failed its check ({reason})")
    if shape is None:
        return AutoChoice("fused", "the fused kernel matched eager (no shape given, so speed not compared)")
    fused_s, eager_s = race(device, n, dtype, *shape)
    winner = "fused" if fused_s <= eager_s else "eager"
    return AutoChoice(winner, f"fused {fused_s * 1e3:.2f} ms vs eager {eager_s * 1e3:.2f} ms forward+backward")


@functools.cache
def race(device: torch.device, n: int, dtype: torch.dtype, steps: int, batch: int, gated: bool) -> tuple[float, float]:
    """Median seconds of the fused and the eager scan's forward+backward at this shape (2 timed calls each after a
    warm-up), once per shape: the first call of a new shape pays for it. Logged, so a run's log says what auto ran."""
    seconds = []
    # outside any inference_mode / no_grad of the caller (a validation or test step may be the first of a shape)
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        state = torch.float64 if dtype == torch.float64 else torch.float32
        generator = torch.Generator().manual_seed(0)
        u = torch.randn(steps, batch, *((2,) if gated else ()), n, generator=generator).to(device, dtype)
        h0 = torch.zeros(batch, n, device=device, dtype=state)
        m = (torch.randn(n, n, generator=generator) / n**0.5).to(device, state)
        for backend in ("fused", "eager"):
            times = []
            for _ in range(3):
                leaves = [t.clone().requires_grad_() for t in (u, h0, m)]
                _synchronize(device)
                start = time.perf_counter()
                scans(backend)[gated](*leaves, 0.1).float().sum().backward()
                _synchronize(device)
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times[1:]))
    fused_s, eager_s = seconds
    log.info(
        "model.backend=auto on %s, %d units, u in %s, T=%d, B=%d%s: fused %.2f ms, eager %.2f ms forward+backward: %s",
        device,
        n,
        dtype,
        steps,
        batch,
        " (gated)" if gated else "",
        fused_s * 1e3,
        eager_s * 1e3,
        "fused" if fused_s <= eager_s else "eager",
    )
    return fused_s, eager_s


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def _cpp_probe() -> str | None:
    """Build the `cpp` backend and check both its scans against eager (`_probe`; float64, 4 units): None when they
    agree, else why not (auto then runs eager)."""
    return _probe("cpp", torch.device("cpu"), 4, torch.float64, 1e-10, "the compiled CPU scan is unavailable")


def _fused_unavailable(device: torch.device, hidden_size: int | None) -> str | None:
    """Why the fused kernel cannot run on `device` with this hidden size, or None."""
    if importlib.util.find_spec("triton") is None:
        return "needs Triton (pip install triton)"
    import triton

    from arnn.backends.fused_triton import MAX_HIDDEN

    if hidden_size is not None and hidden_size > MAX_HIDDEN:
        return f"keeps M on chip for model.hidden_size up to {MAX_HIDDEN}, got {hidden_size}"
    if device.type != "cuda" and not triton.knobs.runtime.interpret:
        return f"needs a CUDA device, got {device} (TRITON_INTERPRET=1 runs Triton's slow CPU interpreter)"
    return None


@functools.cache
def _fused_probe(device: torch.device, n: int, dtype: torch.dtype) -> str | None:
    """Check both fused scans against eager at this hidden size and dtype of u (`_probe`): None when they agree,
    else why not. A real call compiles and launches the very kernels the model will use, so what this GPU cannot run
    (e.g. M beyond its shared memory) shows here."""
    tol = 1e-6 if dtype == torch.float64 else 1e-3 if dtype == torch.float32 else 3e-2  # TF32 / 16-bit u and states
    failure = f"the fused Triton kernel failed its check on {device} for {n} units in {dtype}"
    return _probe("fused", device, n, dtype, tol, failure)


def _probe(backend: str, device: torch.device, n: int, dtype: torch.dtype, tol: float, failure: str) -> str | None:
    """Run `backend`'s scans against eager (`_compare`): None when they agree, else the first line of what went wrong
    (a failed build or launch, a mismatch), also warned once as `failure` so that `auto` says why it runs eager."""
    try:
        _compare(scans(backend), device, n, dtype, tol)
    except Exception as error:  # any failure means: do not pick this backend
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        warnings.warn(f"model.backend=auto: {failure} ({reason}); using eager", stacklevel=3)
        return reason
    return None


def _compare(candidate: tuple[Scan, Scan], device: torch.device, n: int, dtype: torch.dtype, tol: float) -> None:
    """Raise unless both scans of `candidate` give eager's states and gradients (relative `tol`) for 3 steps of a
    batch of 5 (one that fills no block) with u in `dtype`. The inputs are deterministic, so the global RNG is left
    alone."""
    steps, batch = 3, 5
    state = torch.float64 if dtype == torch.float64 else torch.float32  # h0 and M, as the model holds them
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        h0 = torch.linspace(-0.5, 0.5, batch * n, device=device, dtype=state).view(batch, n)
        m = torch.linspace(-1, 1, n * n, device=device, dtype=state).view(n, n) / n**0.5
        for gates, scan, reference in zip((1, 2), candidate, scans("eager"), strict=True):
            u = torch.linspace(-1, 1, steps * batch * gates * n, device=device).view(steps, batch, -1, n)
            inputs = (u.squeeze(2).to(dtype), h0, m)
            results = []
            for fn in (scan, reference):
                leaves = [t.clone().requires_grad_() for t in inputs]
                h_all = fn(*leaves, 0.1)
                results.append((h_all, *torch.autograd.grad(h_all.sum(), leaves)))
            for result, eager in zip(*results, strict=True):
                expected = eager.to(state)
                atol = tol * expected.abs().max().item()
                torch.testing.assert_close(result.to(state), expected, rtol=tol, atol=atol)
