"""The benchmark runs every requested cell in one run and reports time, throughput, ratio and memory."""

import pytest

from arnn import bench


@pytest.mark.slow
def test_bench_prints_a_row_per_model_with_the_ratio_to_nn_rnn(capsys):
    models = "rnn,arnn,arnn_gated,lstm"
    bench.main(["--batch", "4", "--hidden", "8", "--steps", "20", "--repeats", "2", "--models", models])
    output = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in output.splitlines() if line.startswith("| ")}
    assert set(rows) == {"model", "rnn", "arnn", "arnn_gated", "lstm"}
    assert rows["rnn"][3].strip() == "1.00"
    for model in ("arnn", "arnn_gated", "lstm"):
        milliseconds, per_step, per_second, ratio, peak = (float(cell) for cell in rows[model])
        assert milliseconds > 0 and per_second > 0 and ratio > 0 and peak >= 0
        assert per_step == pytest.approx(milliseconds / 20, abs=0.003)  # ms is printed to 0.1


def test_bench_rejects_an_unknown_model():
    with pytest.raises(SystemExit):
        bench.main(["--models", "arnn,transformer"])
