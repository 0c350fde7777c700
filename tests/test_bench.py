"""The benchmark: a row per (model, backend) asked for, ratios to nn.RNN of the same run, plots, parallel rows."""

import contextlib
import csv
import io
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread

from arnn import bench
from arnn.epoch_time import PHASES, time_epoch

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


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_bench_reports_the_recurrent_map_time_for_cells_that_have_one(bench_run):
    out, _ = bench_run
    rows = {(row[0], row[1]): row for row in _rows((out / "table.md").read_text().split("Inference")[0])}
    assert rows["rnn", "-"][8:] == ["-", "-"]
    for key in (("exprnn", "-"), ("arnn", "eager")):
        map_ms, share = (float(cell) for cell in rows[key][8:])
        assert map_ms > 0 and 0 < share


@pytest.mark.e2e
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
        (["--sweep-steps", "10,x"], "expected comma-separated positive integers"),
        (["--repeats", "0"], "argument --repeats: expected a positive integer"),
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


@pytest.mark.parametrize("model", bench.MODELS)
def test_each_cells_recurrent_map_runs_once_per_forward_whatever_the_length(model):
    setting = bench.Setting(batch=2, hidden=4, steps=1, inputs=2, repeats=1, device="cpu", threads=None)
    encoder = bench.build_encoder(model, "eager" if model in bench.BACKEND_MODELS else bench.NO_BACKEND, setting)
    if encoder.recurrent_map() is None:  # torch's layers and coRNN apply their weights as stored
        assert model in ("rnn", "rnn_relu", "lstm", "gru", "cornn")
        return
    calls = []
    original = encoder.recurrent_map

    def counted():
        calls.append(1)
        return original()

    encoder.recurrent_map = counted
    for steps in (1, 9):
        calls.clear()
        encoder(torch.randn(2, steps, 2))
        assert len(calls) == 1, f"T={steps}"


def test_bench_builds_every_model_config_at_the_requested_size():
    setting = bench.Setting(batch=2, hidden=8, steps=3, inputs=2, repeats=1, device="cpu", threads=None)
    conf = Path(__file__).resolve().parents[1] / "conf"
    assert set(bench.MODELS) == {path.stem for path in (conf / "model").glob("*.yaml")}
    for model in bench.MODELS:
        encoder = bench.build_encoder(model, bench.NO_BACKEND, setting)
        outputs, _ = encoder(torch.randn(2, 3, 2))
        assert (encoder.input_size, encoder.hidden_size, outputs.shape[:2]) == (2, 8, (2, 3)), model


TINY_EPOCH = ["model.hidden_size=8", "logger=csv", "callbacks.rich_progress_bar=null", "data.batch_size=32"]


@pytest.mark.e2e
def test_an_epochs_phases_add_up_to_it_and_the_floor_counts_every_batch():
    timing = time_epoch(TINY_EPOCH, batches=3, threads=1, repeats=1)

    assert timing.timed_batches == 3 and timing.batch_size == 32
    assert (timing.train_batches, timing.val_batches) == (40, 6)  # digits: 1 257 training, 180 validation images
    assert set(timing.phases) == set(PHASES) and all(seconds >= 0 for seconds in timing.phases.values())
    assert timing.epoch_s == pytest.approx(sum(timing.phases.values()))
    assert timing.phases["forward"] > 0 and timing.forward_backward_s > timing.forward_s > 0
    assert timing.floor_s == pytest.approx(40 * timing.forward_backward_s + 6 * timing.forward_s)
    assert timing.ratio == pytest.approx(timing.epoch_s / timing.floor_s)


@pytest.mark.e2e
def test_bench_epoch_writes_a_row_per_thread_count(tmp_path, capsys):
    bench.main(
        ["--epoch", "--epoch-config", " ".join(TINY_EPOCH), "--epoch-batches", "2", "--epoch-threads", "1,2"]
        + ["--out", str(tmp_path)]
    )

    with (tmp_path / "epoch.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["threads"] for row in rows] == ["1", "2"]
    assert all(float(row["ratio"]) == pytest.approx(float(row["epoch_s"]) / float(row["floor_s"])) for row in rows)
    assert (tmp_path / "epoch.md").read_text() in capsys.readouterr().out


def test_bench_help_describes_every_option_and_shows_each_default_that_is_set():
    parser = bench._parser()
    assert all(action.help for action in parser._actions)
    text = " ".join(parser.format_help().split())
    assert "T, sequence length (default: 784)" in text and "(default: None)" not in text
