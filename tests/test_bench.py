"""The benchmark: a row per (model, backend) asked for, ratios to nn.RNN of the same run, plots, parallel rows."""

import contextlib
import csv
import io

import pytest
import torch
from matplotlib.image import imread

from arnn import bench

MODELS = "rnn,arnn,arnn_gated,exprnn"
STEPS, HIDDEN = 12, 8


def _rows(table: str) -> list[list[str]]:
    """The cells of a markdown table's body rows."""
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One tiny run of `python -m arnn.bench`: its folder and what it printed."""
    out = tmp_path_factory.mktemp("bench")
    args = ["--batch", "3", "--hidden", str(HIDDEN), "--steps", str(STEPS), "--repeats", "2", "--models", MODELS]
    args += ["--backends", "eager,cpp,unrolled", "--sweep-steps", "6", "--sweep-hidden", "16", "--parallel-steps", "12"]
    args += ["--clock", "cpu"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        bench.main([*args, "--out", str(out)])
    return out, printed.getvalue()


@pytest.mark.slow
def test_bench_writes_and_prints_a_row_per_model_and_backend_and_per_parallel_method(bench_run):
    out, printed = bench_run
    table = (out / "table.md").read_text()
    assert table in printed
    assert table.startswith("Hardware: ") and f"torch {torch.__version__}" in table.splitlines()[0]
    training, parallel = table.split("Inference, parallel backend")
    assert [row[:2] for row in _rows(training)] == [
        ["rnn", "-"],
        ["arnn", "eager"],
        ["arnn", "cpp"],
        ["arnn", "unrolled"],
        ["arnn_gated", "eager"],
        ["arnn_gated", "cpp"],
        ["arnn_gated", "unrolled"],
        ["exprnn", "-"],
    ]
    assert [row[:3] for row in _rows(parallel)] == [
        [model, method, str(STEPS)] for model in ("arnn", "arnn_gated") for method in ("deer", "quasi")
    ]
    for row in _rows(parallel):
        iterations, error, eager_error = int(row[4]), float(row[6]), float(row[7])
        assert 1 <= iterations <= STEPS and error < 1e-5 and eager_error < 1e-5


@pytest.mark.slow
def test_bench_ratios_are_to_the_nn_rnn_row_of_the_same_run(bench_run):
    out, _ = bench_run
    with (out / "results.csv").open() as file:
        rows = [row for row in csv.DictReader(file) if row["kind"] == "training"]
    main = [row for row in rows if (row["hidden"], row["steps"]) == (str(HIDDEN), str(STEPS))]
    rnn_seconds = next(float(row["seconds"]) for row in main if row["model"] == "rnn")
    for row in main:
        assert float(row["ratio_to_rnn"]) == pytest.approx(float(row["seconds"]) / rnn_seconds)
    table_ratios = {(row[0], row[1]): row[6] for row in _rows((out / "table.md").read_text().split("Inference")[0])}
    for row in main:
        assert table_ratios[row["model"], row["backend"]] == f"{float(row['ratio_to_rnn']):.2f}"
    assert table_ratios["rnn", "-"] == "1.00"
    # The sweeps add one T and one N to every series, with no ratio (the baseline ran at the main setting only).
    sweep = [row for row in rows if row not in main]
    assert len(sweep) == 2 * len(main) and all(row["ratio_to_rnn"] == "" for row in sweep)


@pytest.mark.slow
def test_bench_reports_the_recurrent_map_time_for_cells_that_have_one(bench_run):
    out, _ = bench_run
    rows = {(row[0], row[1]): row for row in _rows((out / "table.md").read_text().split("Inference")[0])}
    assert rows["rnn", "-"][8:] == ["-", "-"]
    for key in (("exprnn", "-"), ("arnn", "eager")):
        map_ms, share = (float(cell) for cell in rows[key][8:])
        assert map_ms > 0 and 0 < share


@pytest.mark.slow
def test_bench_plots_time_against_t_and_n(bench_run):
    out, _ = bench_run
    for name in ("time_vs_T.png", "time_vs_N.png"):
        image = imread(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "arnn,transformer"], "unknown model(s) transformer"),
        (["--backends", "eager,cudnn"], "unknown backend(s) cudnn"),
        (["--parallel-methods", "newton"], "unknown parallel method(s) newton"),
        (["--sweep-steps", "10,x"], "expected comma-separated integers"),
    ],
)
def test_bench_rejects_unknown_names_with_a_usage_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_refuses_to_time_gpu_work_on_the_cpu_clock(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--clock", "cpu", "--device", "cuda:0"])
    assert exit_info.value.code == 2
    assert "--clock cpu measures CPU time and cannot time work on cuda:0; use --clock wall" in capsys.readouterr().err


def test_bench_rejects_a_backend_that_cannot_run_on_the_device(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--backends", "graph", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "model.backend=graph captures CUDA graphs and needs a CUDA device" in capsys.readouterr().err


def test_deer_batch_fits_the_jacobians_in_the_memory_budget():
    setting = bench.Setting(batch=8, hidden=4, steps=10, inputs=1, repeats=1, device="cpu", threads=None)
    per_sequence = bench.JACOBIAN_COPIES * 10 * 4 * 4 * 4  # copies × T × n² × 4 bytes
    assert bench.deer_batch(setting, 3 * per_sequence) == 3
    assert bench.deer_batch(setting, 100 * per_sequence) == 8
    assert bench.deer_batch(setting, per_sequence - 1) == 0


@pytest.mark.parametrize("model", [m for m in bench.ENCODERS if m not in ("rnn", "rnn_relu", "lstm", "gru")])
def test_each_cells_recurrent_map_runs_once_per_forward_whatever_the_length(model):
    encoder = bench.ENCODERS[model](2, 4)
    name = next((name for name in bench.RECURRENT_MAPS if hasattr(encoder, name)), None)
    if name is None:  # coRNN applies its weights as stored
        assert model == "cornn"
        return
    calls = []
    original = getattr(encoder, name)

    def counted():
        calls.append(1)
        return original()

    setattr(encoder, name, counted)
    for steps in (1, 9):
        calls.clear()
        encoder(torch.randn(2, steps, 2))
        assert len(calls) == 1, f"T={steps}"
