"""Forward+backward time of every cell against torch's nn.RNN(tanh) and nn.LSTM, in one run.

    python -m arnn.bench [--batch 128] [--hidden 128] [--steps 784] [--models arnn,rnn,...]

Each model is measured in a fresh process (so one model's allocations cannot colour another's memory
reading): one warm-up pass, then the median of `--repeats` timed passes of `loss = y_T.sum(); backward`.
Peak memory is the CUDA allocator's peak on GPU, and the rise of the process's peak resident set on CPU.
"""

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context

import torch

from arnn.cells import (
    AntisymmetricCell,
    GatedAblationCell,
    GatedAntisymmetricCell,
    SequenceEncoder,
    TorchRecurrentEncoder,
)
from arnn.cells.constrained import ContractiveRNNCell, ProjectedOrthogonalRNNCell, SoftOrthogonalRNNCell
from arnn.cells.full_capacity import FullCapacityUnitaryCell
from arnn.cells.kronecker import KroneckerRecurrentCell
from arnn.cells.lipschitz import LipschitzRNNCell
from arnn.cells.ode import AntisymmetricODECell
from arnn.cells.orthogonal import ExpRNNCell, ScoRNNCell
from arnn.cells.oscillatory import CoupledOscillatorCell
from arnn.cells.unitary import UnitaryRNNCell

ENCODERS: dict[str, Callable[[int, int], SequenceEncoder]] = {
    "arnn": AntisymmetricCell,
    "arnn_gated": GatedAntisymmetricCell,
    "ablation": GatedAblationCell,
    "rnn": partial(TorchRecurrentEncoder, kind="rnn_tanh"),
    "rnn_relu": partial(TorchRecurrentEncoder, kind="rnn_relu"),
    "lstm": partial(TorchRecurrentEncoder, kind="lstm"),
    "gru": partial(TorchRecurrentEncoder, kind="gru"),
    "urnn": UnitaryRNNCell,
    "fcurnn": FullCapacityUnitaryCell,
    "exprnn": ExpRNNCell,
    "scornn": ScoRNNCell,
    "soft_orth": SoftOrthogonalRNNCell,
    "kru": KroneckerRecurrentCell,
    "svd_urnn": ProjectedOrthogonalRNNCell,
    "contractive": ContractiveRNNCell,
    "cornn": CoupledOscillatorCell,
    "lipschitz_rnn": LipschitzRNNCell,
    "ode_arnn": AntisymmetricODECell,
}
BASELINE = "rnn"


@dataclass(frozen=True)
class Setting:
    batch: int
    hidden: int
    steps: int
    inputs: int
    repeats: int
    device: str
    threads: int | None


@dataclass(frozen=True)
class Measurement:
    model: str
    seconds: float
    peak_bytes: int


def _resident_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _peak_resident_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: str, setting: Setting) -> Measurement:
    """Time fwd+bwd of one encoder; runs in its own process."""
    if setting.threads:
        torch.set_num_threads(setting.threads)
    device = torch.device(setting.device)
    torch.manual_seed(0)
    encoder: SequenceEncoder = ENCODERS[model](setting.inputs, setting.hidden).to(device)
    x = torch.randn(setting.batch, setting.steps, setting.inputs, device=device)

    def pass_() -> None:
        y, _ = encoder(x)
        y[:, -1].sum().backward()

    baseline = _resident_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    pass_()
    _synchronize(device)
    times = []
    for _ in range(setting.repeats):
        encoder.zero_grad(set_to_none=True)
        start = time.perf_counter()
        pass_()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_resident_bytes()
    return Measurement(model, statistics.median(times), max(peak - baseline, 0))


def table(results: list[Measurement], setting: Setting) -> str:
    """A markdown table: ms/step, sequences/s, ratio to nn.RNN(tanh), peak memory."""
    base = next((r.seconds for r in results if r.model == BASELINE), None)
    lines = [
        "| model | fwd+bwd ms | ms/step | sequences/s | × nn.RNN(tanh) | peak MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.seconds / base:.2f}" if base else "n/a"
        lines.append(
            f"| {r.model} | {r.seconds * 1e3:.1f} | {r.seconds * 1e3 / setting.steps:.3f} | "
            f"{setting.batch / r.seconds:.1f} | {ratio} | {r.peak_bytes / 2**20:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=784)
    parser.add_argument("--inputs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(ENCODERS), help=f"comma-separated, from {', '.join(ENCODERS)}")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    if unknown := [m for m in models if m not in ENCODERS]:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(ENCODERS)}")
    setting = Setting(args.batch, args.hidden, args.steps, args.inputs, args.repeats, args.device, args.threads)

    results = []
    for model in models:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            results.append(pool.submit(measure, model, setting).result())
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    threads = args.threads or torch.get_num_threads()
    print(
        f"fwd+bwd, B={setting.batch}, N={setting.hidden}, T={setting.steps}, m={setting.inputs}, "
        f"median of {setting.repeats}, {device} ({threads} threads), torch {torch.__version__}\n"
    )
    print(table(results, setting))


if __name__ == "__main__":
    main()
