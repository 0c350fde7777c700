"""The `cpp` backend: the A-RNN scans as compiled CPU loops (cpu_scan.cpp), built on first use.

torch.utils.cpp_extension compiles cpu_scan.cpp once per environment and torch version (about 10 s on 2 cores; later
runs load the cached library from ~/.cache/torch_extensions/<BUILD_NAME>, or $TORCH_EXTENSIONS_DIR) and registers the
ops as torch.ops.arnn_cpu.*. The build's name carries a hash of the Python environment and the source's path: torch
rebuilds a cached extension whenever its flags or include paths differ, so two venvs or checkouts sharing one name
would rebuild over each other at every switch. The ops reuse the eager backend's autograd wrapper, so only the two
loops differ.
"""

import functools
import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

import torch
from torch import Tensor

from arnn.backends.antisymmetric_scan import ManualBackwardScan, Recurrence, common_dtype

SOURCE = Path(__file__).with_name("cpu_scan.cpp")


def build_name(prefix: str, source: Path = SOURCE) -> str:
    """The extension's name and build folder for the Python environment at `prefix`: one per environment and
    checkout."""
    return "arnn_cpu_scan_" + hashlib.sha1(f"{prefix}|{source}".encode()).hexdigest()[:10]


BUILD_NAME = build_name(sys.prefix)


@functools.cache
def build() -> None:
    """Compile (or load the cached) cpu_scan.cpp; raises what the compiler or loader raised."""
    if shutil.which("ninja") is None:  # torch builds with ninja; the pip package's binary is not on PATH in a venv
        import ninja

        os.environ["PATH"] = f"{ninja.BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}"
    # Importing cpp_extension logs a CUDA_HOME warning on CPU-only machines; this backend never uses CUDA.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.cpp_extension import load

    load(name=BUILD_NAME, sources=[str(SOURCE)], extra_cflags=["-O3"], is_python_module=False)


def _ops() -> object:
    build()
    return torch.ops.arnn_cpu


def _ungated_forward(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> tuple[Tensor, tuple[Tensor, ...]]:
    h_all, s = _ops().ungated_forward(u, h0, m, eps)
    return h_all, (h0, m, h_all, s)


def _gated_forward(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> tuple[Tensor, tuple[Tensor, ...]]:
    h_all, s = _ops().gated_forward(u, h0, m, eps)
    return h_all, (h0, m, h_all, s)


def _ungated_backward(saved: tuple[Tensor, ...], grad_y: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    return _ops().ungated_backward(grad_y, *saved, eps)


def _gated_backward(saved: tuple[Tensor, ...], grad_y: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    return _ops().gated_backward(grad_y, *saved, eps)


UNGATED = Recurrence(_ungated_forward, _ungated_backward)
GATED = Recurrence(_gated_forward, _gated_backward)


def compiled_antisymmetric(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of h_t = h_{t-1} + ε·tanh(M h_{t-1} + u_t), u time-major (T, B, n), on CPU."""
    return ManualBackwardScan.apply(*common_dtype(u, h0, m), eps, UNGATED)


def compiled_gated_antisymmetric(u: Tensor, h0: Tensor, m: Tensor, eps: float) -> Tensor:
    """All states (T, B, n) of the gated recurrence, u time-major (T, B, 2, n) = (u^z, u^h), on CPU."""
    return ManualBackwardScan.apply(*common_dtype(u, h0, m), eps, GATED)
