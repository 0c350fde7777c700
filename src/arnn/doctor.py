"""Check and time this machine's path for the A-RNN in one command, within a time budget:

    python -m arnn.doctor [--budget-s 480] [--data-dir DIR] [--out DIR]      (make doctor)

On the first CUDA device: (1) the environment (Python, torch, CUDA, GPU, Triton, the cpp backend's compiler); (2) what
`model.backend=auto` runs for the paper's A-RNN (B = N = 128, T = 784) in fp32 and bf16, and why; (3) the bench:
forward and forward+backward of the A-RNN and the gated A-RNN on the eager, graph and fused backends and of cuDNN's
nn.RNN, LSTM and GRU, fp32 and bf16, with the ratios to cuDNN nn.RNN and to eager; (4) one training epoch of
experiment=paper/pmnist/arnn, fused against eager, on the MNIST under --data-dir or on random data of its shape; (5)
the CUDA tests (`pytest -m gpu`). On a machine without CUDA the same steps run at tiny sizes on the CPU backends
(eager, cpp, and the fused kernels through Triton's interpreter) with the backend tests in place of the CUDA ones.

The bench's cases are first timed at an eighth of T; those predicted to take longest are dropped until the rest fit
their share of the budget, and the tests stop when the budget is spent. report.md, one CSV per step and bench.png go
to outputs/doctor/<date>_<time>/ (or --out); the report is printed.
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from arnn.provenance import code_version

ROOT = Path(__file__).resolve().parents[2]
"""The checkout, when arnn runs from one: its tests/ are step 5."""


@dataclass(frozen=True)
class Sizes:
    """The sizes each step runs at: the paper's on a GPU, tiny ones on a CPU."""

    batch: int
    hidden: int
    steps: int
    epoch_batches: int
    backends: tuple[str, ...]
    dtypes: tuple[str, ...] = ("fp32", "bf16")


GPU = Sizes(batch=128, hidden=128, steps=784, epoch_batches=20, backends=("eager", "graph", "fused"))
CPU = Sizes(batch=8, hidden=16, steps=64, epoch_batches=2, backends=("eager", "cpp", "fused"))
BASELINES = ("rnn", "lstm", "gru")
"""torch's own recurrent layers (cuDNN on a GPU) through our TorchRecurrentEncoder."""
CALIBRATION = 8
"""Each bench case is first timed at T / CALIBRATION to predict its full cost."""


class Budget:
    """Seconds left of --budget-s."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.0)


def environment(device: str) -> dict[str, str]:
    """What runs here: Python, torch and its CUDA, the GPU, Triton, the C++ compiler of the cpp backend."""
    import torch

    facts = {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "commit": code_version(ROOT) or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch CUDA": str(torch.version.cuda),
        "cuDNN": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none",
        "device": device,
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        facts["GPU"] = (
            f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, sm_{properties.major}{properties.minor}"
        )
    try:
        import triton

        facts["Triton"] = triton.__version__ + (" (interpreter)" if os.environ.get("TRITON_INTERPRET") == "1" else "")
    except ImportError:
        facts["Triton"] = "not installed"
    compiler = os.environ.get("CXX", "c++")
    found = shutil.which(compiler)
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout if found else ""
    facts["C++ compiler"] = version.splitlines()[0] if version else f"{compiler} not found"
    return facts


def auto_decisions(device: str, sizes: Sizes) -> list[dict[str, str]]:
    """What `model.backend=auto` runs for the A-RNN at these sizes in each dtype, and why."""
    import torch

    from arnn.backends import auto_choice
    from arnn.bench import AUTOCAST

    rows = []
    for dtype in sizes.dtypes:
        shape = (sizes.steps, sizes.batch, False)
        choice = auto_choice(torch.device(device), sizes.hidden, AUTOCAST[dtype], shape)
        rows.append({"dtype": dtype, "units": sizes.hidden, "T": sizes.steps, "B": sizes.batch, **vars(choice)})
    return rows


def usable_backends(device: str, sizes: Sizes) -> tuple[list[str], list[str]]:
    """The A-RNN backends of `sizes` that run here, and why each other one does not."""
    from arnn.backends import resolve_backend
    from arnn.errors import ConfigError

    usable, unusable = [], []
    for backend in sizes.backends:
        try:
            resolve_backend(backend, device, sizes.hidden)
            usable.append(backend)
        except ConfigError as error:
            unusable.append(str(error))
    return usable, unusable


def bench_cases(backends: list[str], dtypes: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(model, backend, dtype) of every bench case."""
    from arnn.bench import NO_BACKEND

    models = [(model, backend) for model in ("arnn", "arnn_gated") for backend in backends]
    models += [(model, NO_BACKEND) for model in BASELINES]
    return [(model, backend, dtype) for dtype in dtypes for model, backend in models]


def run_bench(device: str, sizes: Sizes, backends: list[str], seconds: float) -> tuple[list[dict], list[str]]:
    """Time every case that fits in `seconds`: each is timed at T / CALIBRATION first, and the cases predicted to
    cost most are dropped until the rest fit. Returns the rows and the dropped cases."""
    from arnn.bench import Setting, measure

    setting = Setting(sizes.batch, sizes.hidden, sizes.steps, 1, 3, device, None)
    short = replace(setting, steps=max(sizes.steps // CALIBRATION, 1), repeats=1)
    start = time.monotonic()
    predicted = {}
    for model, backend, dtype in bench_cases(backends, sizes.dtypes):
        probe_start = time.monotonic()
        (result,) = measure(model, backend, replace(short, dtype=dtype), [])
        # building, compiling and the warm-up cost the same at any T; the timed passes scale with it
        overhead = time.monotonic() - probe_start - 2 * result.seconds
        predicted[model, backend, dtype] = overhead + (setting.repeats + 1) * result.seconds * CALIBRATION
    remaining = seconds - (time.monotonic() - start)
    kept = sorted(predicted, key=predicted.get)
    while kept and sum(predicted[case] for case in kept) > remaining:
        kept.pop()  # the largest case goes first
    dropped = [
        f"{model} ({backend}, {dtype}) for the budget"
        for model, backend, dtype in predicted
        if (model, backend, dtype) not in kept
    ]
    rows = []
    for model, backend, dtype in bench_cases(backends, sizes.dtypes):
        if (model, backend, dtype) in kept:
            (result,) = measure(model, backend, replace(setting, dtype=dtype), [])
            rows.append(
                {
                    "model": model,
                    "backend": backend,
                    "dtype": dtype,
                    "fwd_ms": result.forward_s * 1e3,
                    "fwd_bwd_ms": result.seconds * 1e3,
                }
            )
    for row in rows:
        same = [r for r in rows if r["dtype"] == row["dtype"]]
        cudnn = next((r["fwd_bwd_ms"] for r in same if r["model"] == "rnn"), None)
        eager = next((r["fwd_bwd_ms"] for r in same if r["model"] == row["model"] and r["backend"] == "eager"), None)
        row["x_rnn"] = row["fwd_bwd_ms"] / cudnn if cudnn else None
        row["eager_x"] = eager / row["fwd_bwd_ms"] if eager and row["backend"] not in ("eager", "-") else None
    return rows, dropped


def epoch_data(data_dir: Path | None, scratch: Path) -> tuple[Path, str]:
    """A folder holding MNIST/raw: the real one under data_dir, else random images of its shape in `scratch`."""
    from arnn.data.idx import MNIST_FILES, write_random_mnist

    if data_dir is not None and all((data_dir / "MNIST" / "raw" / name).is_file() for name in MNIST_FILES):
        return data_dir, f"MNIST from {data_dir}"
    return write_random_mnist(scratch), "random images of MNIST's shape (no MNIST under --data-dir)"


def run_epochs(device: str, sizes: Sizes, data_dir: Path, backends: list[str]) -> list[dict]:
    """One epoch of experiment=paper/pmnist/arnn per backend, timed from sizes.epoch_batches batches."""
    from arnn.epoch_time import time_epoch

    overrides = ["experiment=paper/pmnist/arnn", f"data.data_dir={data_dir}", "data.download=false", "logger=none"]
    overrides += ["callbacks.rich_progress_bar=null", "trainer.enable_progress_bar=false"]
    if device == "cpu":
        overrides.append(f"model.hidden_size={sizes.hidden}")
    rows = []
    for backend in backends:
        result = time_epoch([*overrides, f"model.backend={backend}"], sizes.epoch_batches, 1, 2, device)
        rows.append(
            {
                "backend": backend,
                "epoch_s": result.epoch_s,
                "floor_s": result.floor_s,
                "ratio": result.ratio,
                "train_batches": result.train_batches,
                **{f"{k}_s": v for k, v in result.phases.items()},
            }
        )
    return rows


def run_tests(device: str, seconds: float, log: Path) -> dict[str, object]:
    """The CUDA tests (`pytest -m gpu`), or on a CPU the backend tests, stopped after `seconds`."""
    tests = ROOT / "tests"
    if not tests.is_dir():
        return {"status": f"skipped: no tests/ beside {ROOT / 'src'} (run from a checkout)"}
    if device == "cuda":
        selection = [str(tests), "-m", "gpu"]
    else:
        selection = [str(tests / "test_fused_backend.py"), str(tests / "test_compiled_cpu_backend.py"), "-m", "not e2e"]
    command = [sys.executable, "-m", "pytest", *selection, "-v", "-p", "no:cacheprovider", "-o", "addopts="]
    with log.open("w") as output:
        try:
            code = subprocess.run(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, timeout=max(seconds, 1))
            # 0 all passed, 1 some failed, 5 none selected; anything else: pytest could not run them
            status = "finished" if code.returncode in (0, 1, 5) else f"pytest exited {code.returncode}: see tests.log"
        except subprocess.TimeoutExpired:
            status = f"stopped at the budget after {seconds:.0f} s"
    outcomes = re.findall(r"::(\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", log.read_text())
    counts = {
        kind: sum(outcome == kind for _, outcome in outcomes) for kind in ("PASSED", "FAILED", "SKIPPED", "ERROR")
    }
    failed = [name for name, outcome in outcomes if outcome in ("FAILED", "ERROR")]
    return {
        "status": status,
        "selection": " ".join(
            str(Path(part).relative_to(ROOT)) if part.startswith("/") else part for part in selection
        ),
        **counts,
        "failed": ", ".join(failed[:20]),
    }


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join([*lines, *("| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows)])


def plot_bench(rows: list[dict], path: Path) -> Path:
    """Forward+backward time of each bench case, one bar each, log scale."""
    from arnn.output import new_figure, save_figure

    figure = new_figure(size=(7.0, 0.3 * len(rows) + 1.5))
    axes = figure.axes[0]
    labels = [f"{r['model']} ({r['backend']}, {r['dtype']})" for r in rows]
    colours = ["tab:blue" if r["dtype"] == "fp32" else "tab:orange" for r in rows]
    axes.barh(labels, [r["fwd_bwd_ms"] for r in rows], color=colours)
    axes.set_xscale("log")
    axes.set_xlabel("forward+backward ms (blue fp32, orange bf16)")
    axes.invert_yaxis()
    return save_figure(figure, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m arnn.doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=480.0, help="total seconds (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder holding MNIST/raw for the epoch")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: outputs/doctor/<date>_<time>)")
    args = parser.parse_args(argv)
    budget = Budget(args.budget_s)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # the fused kernels through Triton's interpreter, before they are jitted
    sizes = GPU if device == "cuda" else CPU
    from arnn.output import analysis_dir, write_csv

    folder = analysis_dir("doctor", args.out or Path("outputs/doctor") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    facts = environment(device)
    _progress(f"environment: torch {facts['torch']} on {facts.get('GPU', 'CPU')}")
    write_csv([{"fact": k, "value": v} for k, v in facts.items()], folder / "environment.csv")
    decisions = auto_decisions(device, sizes)
    write_csv(decisions, folder / "auto.csv")
    _progress("auto: " + "; ".join(f"{d['dtype']} → {d['backend']}" for d in decisions))
    backends, unusable = usable_backends(device, sizes)
    bench_rows, dropped = run_bench(device, sizes, backends, 0.4 * budget.left())
    write_csv(bench_rows, folder / "bench.csv")
    if bench_rows:
        plot_bench(bench_rows, folder / "bench.png")
    _progress(f"bench: {len(bench_rows)} cases, {len(dropped)} dropped for the budget")
    epoch_backends = [b for b in (("fused", "eager") if device == "cuda" else ("cpp", "eager")) if b in backends]
    epochs, epoch_note = [], "skipped: under a quarter of the budget was left after the bench"
    if budget.left() > 0.25 * args.budget_s:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                data_dir, epoch_note = epoch_data(args.data_dir, Path(scratch))
                epochs = run_epochs(device, sizes, data_dir, epoch_backends)
                write_csv(epochs, folder / "epoch.csv")
            except Exception as error:  # reported; the tests still run
                epoch_note = "failed: " + f"{type(error).__name__}: {error}".splitlines()[0]
    _progress(f"epoch: {len(epochs)} backends timed" if epochs else f"epoch: {epoch_note}")
    tests = run_tests(device, budget.left(), folder / "tests.log")
    write_csv([tests], folder / "tests.csv")
    report = _report(
        facts, decisions, bench_rows, unusable + dropped, sizes, epochs, epoch_note, tests, args.budget_s, budget
    )
    (folder / "report.md").write_text(report)
    print(report)
    print(f"wrote {folder}/: " + ", ".join(sorted(path.name for path in folder.iterdir())))
    tests_ran = str(tests["status"]).startswith(("finished", "stopped", "skipped"))
    if epoch_note.startswith("failed") or tests.get("FAILED") or tests.get("ERROR") or not tests_ran:
        sys.exit("error: the doctor found a failure: see the report above")


def _report(
    facts: dict[str, str],
    decisions: list[dict],
    bench_rows: list[dict],
    dropped: list[str],
    sizes: Sizes,
    epochs: list[dict],
    epoch_note: str,
    tests: dict[str, object],
    budget_s: float,
    budget: Budget,
) -> str:
    """report.md: each step's table, what was dropped or stopped for the budget, and the time it all took."""
    where = facts.get("GPU", "CPU (tiny sizes: no CUDA device)")
    sections = [
        f"# arnn doctor: {where}, {facts['date']}, commit {facts['commit']}",
        "## Environment\n\n" + _table([{"": k, "value": v} for k, v in facts.items()], ["", "value"]),
        f"## What model.backend=auto runs (A-RNN, {sizes.hidden} units, T={sizes.steps}, B={sizes.batch})\n\n"
        + _table(decisions, ["dtype", "backend", "reason"]),
        f"## Bench: B={sizes.batch}, N={sizes.hidden}, T={sizes.steps}, median of 3 after a warm-up\n\n"
        + _table(bench_rows, ["model", "backend", "dtype", "fwd_ms", "fwd_bwd_ms", "x_rnn", "eager_x"])
        + "\n\nx_rnn: forward+backward time ÷ nn.RNN's (cuDNN on a GPU) in the same dtype; eager_x: eager's ÷ this "
        "backend's (how many times faster than the eager loop)."
        + (f"\n\nNot run: {'; '.join(dropped)}." if dropped else ""),
    ]
    if epochs:
        first, last = epochs[0], epochs[-1]
        comparison = (
            f"; {first['backend']} is {last['epoch_s'] / first['epoch_s']:.2f}× faster than {last['backend']}"
            if len(epochs) > 1
            else ""
        )
        sections.append(
            f"## One training epoch of experiment=paper/pmnist/arnn on {epoch_note}\n\n"
            + _table(
                epochs,
                [
                    "backend",
                    "train_batches",
                    "epoch_s",
                    "floor_s",
                    "ratio",
                    "data_s",
                    "forward_s",
                    "backward_s",
                    "optimizer_s",
                    "validation_s",
                ],
            )
            + f"\n\nScaled to the whole epoch from {sizes.epoch_batches} timed batches{comparison}."
        )
    else:
        sections.append(f"## One training epoch of experiment=paper/pmnist/arnn\n\n{epoch_note}.")
    sections.append(
        "## Tests\n\n"
        + _table(
            [tests],
            [k for k in ("status", "selection", "PASSED", "FAILED", "SKIPPED", "ERROR", "failed") if k in tests],
        )
    )
    sections.append(f"Ran {budget_s - budget.left():.0f} s of the {budget_s:.0f} s budget.")
    return "\n\n".join(sections) + "\n"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
