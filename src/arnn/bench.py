"""Speed of every cell and A-RNN backend against torch's nn.RNN(tanh), measured in one run.

    python -m arnn.bench [--batch 128] [--hidden 128] [--steps 784] [--models arnn,rnn,...] [--backends eager,...]

Training: forward and forward+backward time (`loss = y_T.sum(); backward`, one warm-up pass, then the median of
`--repeats`) of each (model, backend) at B, N, T, its ratio to nn.RNN(tanh) of the same run, peak memory, and the
recurrent map (W = exp(B), Cayley(B), M = W − Wᵀ − γI, the uRNN factors, ...) timed on its own against the forward,
which computes it once. Then the same time at each `--sweep-steps` T and `--sweep-hidden` N for the plots.
Inference: the parallel backend's DEER and quasi-DEER forward at each `--parallel-steps` T against the eager forward
at the same size, with the Newton iterations it took.

Each (model, backend) and each parallel case runs in a fresh process, the main setting first, so one model's
allocations cannot colour another's memory reading: the CUDA allocator's peak on GPU, the rise of the process's
peak resident set on CPU. Files go to outputs/bench/<date>_<time>/ (or --out): table.md (also printed),
results.csv, time_vs_T.png, time_vs_N.png.
"""

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from matplotlib import colormaps
from omegaconf import open_dict

from arnn.backends import BACKENDS, resolve_backend, scans
from arnn.backends.parallel import METHODS, gated_step, newton, ungated_step
from arnn.cells import SequenceEncoder
from arnn.epoch_time import epoch_table, time_epoch
from arnn.errors import ConfigError
from arnn.output import analysis_dir, new_figure, save_figure, write_csv
from arnn.provenance import cpu_name
from arnn.runs.build import CONF_DIR, compose

EPOCH_CONFIG = ("experiment=paper/pmnist/arnn", "logger=csv", "callbacks.rich_progress_bar=null")
"""The epoch `--epoch` times by default: the full pMNIST row as its long run is started."""

MODELS = tuple(sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml")))
"""Every model the bench times: the configs of conf/model/, built as train.py builds them."""
# A forkserver child re-runs the main module as __mp_main__; under `python -m arnn.bench` that is this module,
# already imported by the server (which makes the re-run cheap), and runpy warns about it in every child.
warnings.filterwarnings("ignore", message="'arnn.bench' found in sys.modules", category=RuntimeWarning)

BACKEND_MODELS = ("arnn", "arnn_gated", "ablation")
"""The models with `model.backend`; the others have one implementation, shown as backend "-"."""
NO_BACKEND = "-"
TRAINING_BACKENDS = tuple(b for b in BACKENDS if b not in ("auto", "parallel"))
BASELINE = ("rnn", NO_BACKEND)
LINESTYLES = {"eager": (0, (5, 1, 1, 1)), "unrolled": "--", "fused": ":", "graph": "-."}
JACOBIAN_COPIES = 3
AUTOCAST = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""DEER's peak memory in (T, B, n, n) Jacobians: the Jacobians, the pair levels of the scan and their products
(measured: 98 MiB at T=256, B=2, n=128, where one copy is 32 MiB)."""


@dataclass(frozen=True)
class Setting:
    batch: int
    hidden: int
    steps: int
    inputs: int
    repeats: int
    device: str
    threads: int | None
    clock: str = "wall"
    dtype: str = "fp32"
    """fp32, or bf16 / fp16: the forward under torch.autocast in that dtype (weights and gradients stay fp32)."""

    def now(self) -> float:
        """Seconds on this setting's clock: wall time, or the CPU time of this process, which other processes on a
        shared machine barely disturb (with one thread and an idle machine the two agree)."""
        return time.process_time() if self.clock == "cpu" else time.perf_counter()


@dataclass(frozen=True)
class Measurement:
    """One training-speed point; memory and the map are measured at the main setting only."""

    model: str
    backend: str
    batch: int
    hidden: int
    steps: int
    forward_s: float
    seconds: float
    peak_bytes: int | None = None
    map_s: float | None = None


@dataclass(frozen=True)
class ParallelMeasurement:
    """One DEER / quasi-DEER inference run against the eager forward on the same inputs; both errors are the
    largest difference from the eager states computed in float64."""

    model: str
    method: str
    steps: int
    batch: int
    iterations: int
    change: float
    max_error: float
    eager_error: float
    seconds: float
    eager_seconds: float
    peak_bytes: int


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmRSS: resident now, VmHWM: its peak), in bytes."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PeakMemory:
    """The peak memory above what was in use at construction: the CUDA allocator's on GPU; on CPU the resident
    set's, whose recorded peak (VmHWM) is reset to the current size first (`5` to /proc/self/clear_refs)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.baseline = _status_bytes("VmRSS")

    def rise(self) -> int:
        cuda = self.device.type == "cuda"
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else _status_bytes("VmHWM")
        return max(peak - self.baseline, 0)


def build_encoder(model: str, backend: str, setting: Setting) -> SequenceEncoder:
    """conf/model/<model>.yaml at the setting's sizes (and `backend`, for the A-RNN models), on its device."""
    overrides = [f"model={model}", f"model.hidden_size={setting.hidden}"]
    cfg = compose(overrides + ([] if backend == NO_BACKEND else [f"model.backend={backend}"]))
    with open_dict(cfg):
        cfg.model.input_size = setting.inputs
    return instantiate(cfg.model).to(setting.device)


def _median_seconds(fn: Callable[[], Any], setting: Setting, calls: int = 20) -> float:
    """Median time of `calls` calls of fn after one warm-up call."""
    fn()
    times = []
    for _ in range(calls):
        start = setting.now()
        fn()
        _synchronize(torch.device(setting.device))
        times.append(setting.now() - start)
    return statistics.median(times)


def _time_training(encoder: SequenceEncoder, setting: Setting) -> tuple[float, float]:
    """Median forward and forward+backward seconds of `loss = y_T.sum(); backward` after one warm-up pass."""
    device = torch.device(setting.device)
    x = torch.randn(setting.batch, setting.steps, setting.inputs, device=device)
    forward, total = [], []
    for repeat in range(setting.repeats + 1):
        encoder.zero_grad(set_to_none=True)
        start = setting.now()
        with torch.autocast(device.type, dtype=AUTOCAST[setting.dtype], enabled=setting.dtype != "fp32"):
            y, _ = encoder(x)
        _synchronize(device)
        middle = setting.now()
        y[:, -1].float().sum().backward()
        _synchronize(device)
        if repeat:  # the first pass warms up allocator and kernels
            forward.append(middle - start)
            total.append(setting.now() - start)
    return statistics.median(forward), statistics.median(total)


def measure(model: str, backend: str, setting: Setting, sweep: list[Setting]) -> list[Measurement]:
    """The main setting (time, memory, map) and then each sweep setting (time) of one (model, backend); runs in
    its own process."""
    if setting.threads:
        torch.set_num_threads(setting.threads)
    torch.manual_seed(0)
    encoder = build_encoder(model, backend, setting)
    memory = _PeakMemory(torch.device(setting.device))
    forward_s, seconds = _time_training(encoder, setting)
    peak = memory.rise()
    map_s = _median_seconds(encoder.recurrent_map, setting) if encoder.recurrent_map() is not None else None
    results = [
        Measurement(model, backend, setting.batch, setting.hidden, setting.steps, forward_s, seconds, peak, map_s)
    ]
    for point in sweep:
        times = _time_training(build_encoder(model, backend, point), point)
        results.append(Measurement(model, backend, point.batch, point.hidden, point.steps, *times))
    return results


def deer_batch(setting: Setting, budget_bytes: float) -> int:
    """The largest batch ≤ B whose DEER Jacobians fit in the budget (0 when not even one sequence does)."""
    element = torch.empty((), dtype=torch.get_default_dtype()).element_size()
    per_sequence = JACOBIAN_COPIES * setting.steps * setting.hidden**2 * element
    return min(setting.batch, int(budget_bytes // per_sequence))


def measure_parallel(model: str, method: str, setting: Setting) -> ParallelMeasurement:
    """Forward time of the parallel backend (one solve, after a small warm-up) and of the eager backend (median of
    `repeats`) on the same inputs, under no_grad; runs in its own process."""
    if setting.threads:
        torch.set_num_threads(setting.threads)
    torch.manual_seed(0)
    device = torch.device(setting.device)
    cell = build_encoder(model, "eager", setting)
    step = gated_step if cell.gates == 2 else ungated_step
    eager = scans("eager")[cell.gates - 1]

    def inputs(steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.randn(setting.batch, steps, setting.inputs, device=device)
        return cell.project_inputs(x), cell.default_state(setting.batch, x), cell.recurrent_map()

    with torch.no_grad():
        newton(step, *inputs(4), cell.eps, method=method)
        u, h0, m = inputs(setting.steps)
        memory = _PeakMemory(device)
        start = setting.now()
        solution = newton(step, u, h0, m, cell.eps, method=method)
        _synchronize(device)
        seconds = setting.now() - start
        peak = memory.rise()
        eager_times = []
        for _ in range(setting.repeats + 1):
            start = setting.now()
            states = eager(u, h0, m, cell.eps)
            _synchronize(device)
            eager_times.append(setting.now() - start)
        exact = eager(u.double(), h0.double(), m.double(), cell.eps)
    return ParallelMeasurement(
        model,
        method,
        setting.steps,
        setting.batch,
        solution.iterations,
        solution.change,
        (solution.states - exact).abs().max().item(),
        (states - exact).abs().max().item(),
        seconds,
        statistics.median(eager_times[1:]),
        peak,
    )


def _progress(line: str) -> None:
    """A line on stderr as each measurement ends: a full run takes many minutes."""
    print(line, file=sys.stderr, flush=True)


def _in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a new process forked from a server that has imported this module but run nothing: no torch
    threads or CUDA context are inherited, and no process pays the seconds of importing torch again."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["arnn.bench"])
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def _ratio(seconds: float, base: float | None) -> str:
    return f"{seconds / base:.2f}" if base else "n/a"


def _mib(size: int | None) -> str:
    return "n/a" if size is None else f"{size / 2**20:.1f}"


def training_table(results: list[Measurement], setting: Setting) -> str:
    """Markdown: one row per (model, backend) at the main setting."""
    main = [r for r in results if (r.batch, r.hidden, r.steps) == (setting.batch, setting.hidden, setting.steps)]
    base = next((r.seconds for r in main if (r.model, r.backend) == BASELINE), None)
    lines = [
        "| model | backend | fwd ms | fwd+bwd ms | ms/step | sequences/s | × nn.RNN(tanh) | peak MiB | map ms "
        "| map % of fwd |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in main:
        map_ms, map_share = (
            ("-", "-") if r.map_s is None else (f"{r.map_s * 1e3:.3g}", f"{100 * r.map_s / r.forward_s:.2g}")
        )
        lines.append(
            f"| {r.model} | {r.backend} | {r.forward_s * 1e3:.1f} | {r.seconds * 1e3:.1f} | "
            f"{r.seconds * 1e3 / setting.steps:.3f} | {setting.batch / r.seconds:.1f} | {_ratio(r.seconds, base)} | "
            f"{_mib(r.peak_bytes)} | {map_ms} | {map_share} |"
        )
    return "\n".join(lines)


def parallel_table(results: list[ParallelMeasurement]) -> str:
    """Markdown: one row per (model, method, T); × eager fwd > 1 means the parallel forward is slower."""
    lines = [
        "| model | method | T | B | iterations | last change | error | eager error | fwd ms | eager fwd ms "
        "| × eager fwd | peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.method} | {r.steps} | {r.batch} | {r.iterations} | {r.change:.1e} | {r.max_error:.1e} "
            f"| {r.eager_error:.1e} | {r.seconds * 1e3:.1f} | {r.eager_seconds * 1e3:.1f} "
            f"| {r.seconds / r.eager_seconds:.1f} | {_mib(r.peak_bytes)} |"
        )
    return "\n".join(lines)


def plot(results: list[Measurement], setting: Setting, axis: str, path: Path) -> Path:
    """Forward+backward time against T (at N) or N (at T), one line per (model, backend), log-log."""
    fixed = "hidden" if axis == "steps" else "steps"
    figure = new_figure(size=(8.0, 5.0))
    ax = figure.axes[0]
    series: dict[tuple[str, str], list[Measurement]] = {}
    for r in results:
        if r.batch == setting.batch and getattr(r, fixed) == getattr(setting, fixed):
            series.setdefault((r.model, r.backend), []).append(r)
    colors = colormaps["tab20"]
    # a colour per line (model and backend), a line style per backend: an A-RNN's backends differ in both
    for index, ((model, backend), points) in enumerate(series.items()):
        points.sort(key=lambda r: getattr(r, axis))
        label = model if backend == NO_BACKEND else f"{model} ({backend})"
        style = {"color": colors(index % 20), "linestyle": LINESTYLES.get(backend, "-")}
        if (model, backend) == BASELINE:
            style = {"color": "black", "linewidth": 2.5}
        ax.plot([getattr(r, axis) for r in points], [r.seconds for r in points], marker="o", label=label, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted({getattr(r, axis) for points in series.values() for r in points})
    ax.set_xticks(ticks, [str(tick) for tick in ticks])
    ax.minorticks_off()
    ax.set_xlabel("sequence length T" if axis == "steps" else "hidden units N")
    ax.set_ylabel("forward + backward seconds")
    ax.set_title(f"B={setting.batch}, " + (f"N={setting.hidden}" if axis == "steps" else f"T={setting.steps}"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(figure, path)


def hardware(device: str, threads: int) -> str:
    """The CPU model, torch's CPU threads, the torch version and the device the models ran on."""
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    return f"Hardware: {cpu_name()}, {threads} torch threads, torch {torch.__version__}, device {name}"


def _csv_rows(training: list[Measurement], parallel: list[ParallelMeasurement], setting: Setting) -> list[dict]:
    """Training and parallel rows under one header (a column a kind lacks stays empty); the ratio at the main
    setting only."""
    main = (setting.batch, setting.hidden, setting.steps)
    at_main = [r for r in training if (r.batch, r.hidden, r.steps) == main]
    base = next((r.seconds for r in at_main if (r.model, r.backend) == BASELINE), None)
    rows = [
        {"kind": "training", **asdict(r), "ratio_to_rnn": r.seconds / base if base and r in at_main else None}
        for r in training
    ]
    rows += [{"kind": "parallel", **asdict(r)} for r in parallel]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{column: row.get(column) for column in columns} for row in rows]


def _comma_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        values = [int(item) for item in _comma_list(text)]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, unless it is None (the help then says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arnn.bench",
        description=__doc__.split("\n")[0],
        formatter_class=_DefaultsShown,
    )
    parser.add_argument("--batch", type=_positive_int, default=128, help="B, sequences per batch")
    parser.add_argument("--hidden", type=_positive_int, default=128, help="N, hidden units")
    parser.add_argument("--steps", type=_positive_int, default=784, help="T, sequence length")
    parser.add_argument("--inputs", type=_positive_int, default=1, help="m, inputs per step")
    parser.add_argument("--repeats", type=_positive_int, default=3, help="timed passes after the warm-up (median)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument(
        "--backends",
        default=None,
        help=f"A-RNN training backends, from {', '.join(TRAINING_BACKENDS)} (default: those that run on the device; "
        "fused only on CUDA)",
    )
    parser.add_argument("--sweep-steps", type=_int_list, default="98,196,392,784", help="T values for time_vs_T.png")
    parser.add_argument("--sweep-hidden", type=_int_list, default="32,64,128,256", help="N values for time_vs_N.png")
    parser.add_argument("--parallel-steps", type=_int_list, default="784,4096", help="T of the inference runs")
    parser.add_argument("--parallel-methods", default=",".join(METHODS), help=f"from {', '.join(METHODS)}")
    parser.add_argument(
        "--parallel-batch", type=_positive_int, default=4, help="B of the inference runs (a latency case)"
    )
    parser.add_argument(
        "--parallel-memory-gib",
        type=_positive_float,
        default=2.0,
        help="DEER's batch is cut so its Jacobians fit in this",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where the models run")
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or CPU time of the process (CPU only; steadier on a shared machine, = wall with --threads 1 "
        "on an idle one)",
    )
    parser.add_argument("--dtype", choices=tuple(AUTOCAST), default="fp32", help="the forward's autocast dtype")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: outputs/bench/<date>_<time>)")
    parser.add_argument(
        "--epoch",
        action="store_true",
        help="instead: time one training epoch of --epoch-config, phase by phase, against its kernel floor",
    )
    parser.add_argument(
        "--epoch-config",
        default=" ".join(EPOCH_CONFIG),
        help="train.py overrides of the timed epoch, space-separated",
    )
    parser.add_argument(
        "--epoch-batches", type=_positive_int, default=50, help="training (and validation) batches timed, then scaled"
    )
    parser.add_argument("--epoch-threads", type=_int_list, default="1,2", help="CPU thread counts to time it at")
    return parser


def _backends(parser: argparse.ArgumentParser, requested: str | None, device: str, hidden: int) -> list[str]:
    """The requested training backends, each checked to run on the device; by default all that do."""
    if requested is None:
        candidates = [b for b in TRAINING_BACKENDS if b != "fused" or device.startswith("cuda")]
    else:
        candidates = _comma_list(requested)
        if unknown := [b for b in candidates if b not in TRAINING_BACKENDS]:
            parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(TRAINING_BACKENDS)}")
    usable = []
    for backend in candidates:
        try:
            resolve_backend(backend, device, hidden)
        except ConfigError as error:
            if requested is not None:
                parser.error(str(error))
            continue
        usable.append(backend)
    return usable


def epoch_main(args: argparse.Namespace) -> None:
    """`--epoch`: one training epoch per thread count, each in a fresh process, as a table and CSV."""
    overrides = args.epoch_config.split()
    results = []
    for threads in args.epoch_threads:
        results.append(_in_fresh_process(time_epoch, overrides, args.epoch_batches, threads))
        _progress(f"{threads} thread(s): epoch {results[-1].epoch_s:.1f} s, ratio to the floor {results[-1].ratio:.2f}")
    folder = analysis_dir("bench", args.out or Path("outputs/bench") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    report = hardware("cpu", max(args.epoch_threads)) + "\n\n" + epoch_table(results) + "\n"
    (folder / "epoch.md").write_text(report)
    rows = [
        {"threads": r.threads, **r.phases, "epoch_s": r.epoch_s, "floor_s": r.floor_s, "ratio": r.ratio}
        for r in results
    ]
    write_csv(rows, folder / "epoch.csv")
    print(report)
    print(f"wrote {folder}/: epoch.md, epoch.csv")


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.epoch:
        epoch_main(args)
        return
    models = _comma_list(args.models)
    if unknown := [m for m in models if m not in MODELS]:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    methods = _comma_list(args.parallel_methods)
    if unknown := [m for m in methods if m not in METHODS]:
        parser.error(f"unknown parallel method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    backends = _backends(parser, args.backends, args.device, max([args.hidden, *args.sweep_hidden]))
    if args.clock == "cpu" and not args.device.startswith("cpu"):
        parser.error(f"--clock cpu measures CPU time and cannot time work on {args.device}; use --clock wall")
    setting = Setting(
        args.batch,
        args.hidden,
        args.steps,
        args.inputs,
        args.repeats,
        args.device,
        args.threads,
        args.clock,
        args.dtype,
    )
    sweep = [replace(setting, steps=t) for t in args.sweep_steps if t != setting.steps]
    sweep += [replace(setting, hidden=n) for n in args.sweep_hidden if n != setting.hidden]
    folder = analysis_dir("bench", args.out or Path("outputs/bench") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))

    training: list[Measurement] = []
    for model in models:
        for backend in backends if model in BACKEND_MODELS else [NO_BACKEND]:
            training += _in_fresh_process(measure, model, backend, setting, sweep)
            _progress(f"{model} ({backend}): fwd+bwd {training[-1 - len(sweep)].seconds * 1e3:.1f} ms")
    parallel: list[ParallelMeasurement] = []
    skipped = []
    budget = args.parallel_memory_gib * 2**30
    for model in (m for m in models if m in BACKEND_MODELS):
        for method in methods:
            for steps in args.parallel_steps:
                point = replace(setting, batch=args.parallel_batch, steps=steps)
                if method == "deer":
                    point = replace(point, batch=deer_batch(point, budget))
                if point.batch > 0:
                    parallel.append(_in_fresh_process(measure_parallel, model, method, point))
                    result = parallel[-1]
                    _progress(f"{model} {method} T={steps}: {result.iterations} iterations, {result.seconds:.2f} s")
                else:
                    skipped.append(f"{model} deer T={steps}")

    sections = [
        hardware(args.device, args.threads or torch.get_num_threads()),
        f"Training: B={setting.batch}, N={setting.hidden}, T={setting.steps}, m={setting.inputs}, {setting.dtype}, "
        f"{setting.clock} time, median of {setting.repeats} after one warm-up; map = the recurrent map alone, "
        "computed once per forward",
        training_table(training, setting),
    ]
    if parallel or skipped:
        sections += [
            "Inference, parallel backend: one solve against the eager forward (median of "
            f"{setting.repeats}) on the same inputs; × eager fwd > 1 means slower; error and eager error are the "
            "largest differences from the eager states in float64. DEER's batch is cut to fit its Jacobians in "
            f"{args.parallel_memory_gib:g} GiB"
            + (f"; skipped, one sequence does not fit: {', '.join(skipped)}" if skipped else ""),
            parallel_table(parallel),
        ]
    report = "\n\n".join(sections) + "\n"
    (folder / "table.md").write_text(report)
    write_csv(_csv_rows(training, parallel, setting), folder / "results.csv")
    plot(training, setting, "steps", folder / "time_vs_T.png")
    plot(training, setting, "hidden", folder / "time_vs_N.png")
    print(report)
    print(f"wrote {folder}/: table.md, results.csv, time_vs_T.png, time_vs_N.png")


if __name__ == "__main__":
    main()
