"""Emami et al. (NeurIPS 2019): Theorem 1's 2n-state URNN reproduces a contractive ReLU RNN exactly; the Theorem 3
demo's files."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from arnn.analysis import sigmoid_gap, urnn_equivalence
from arnn.analysis.sigmoid_gap import URNNStudent, fit, normalized_mse
from arnn.analysis.urnn_equivalence import (
    RNN,
    bounded_inputs,
    dilated,
    orthogonal_dilation,
    random_rnn,
    spectral_norm,
    state_bound,
    unitary_equivalent,
)
from arnn.cells.constrained import orthogonality_error
from arnn.errors import UserError


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("states", "inputs", "outputs", "norm", "bound"),
    [(1, 1, 1, 0.5, 1.0), (3, 2, 4, 0.9, 3.0), (8, 5, 1, 0.99, 0.5), (16, 3, 2, 0.999, 10.0)],
)
def test_unitary_equivalent_reproduces_outputs_of_contractive_relu_rnn(
    states: int, inputs: int, outputs: int, norm: float, bound: float
) -> None:
    generator = torch.Generator().manual_seed(states)
    rnn = random_rnn(generator, states, inputs, outputs, norm)
    urnn = unitary_equivalent(rnn, bound)
    x = bounded_inputs(generator, 16, 300, inputs, bound)  # half of the sequences sit at the bound at every step
    y, y_u = rnn.run(x), urnn.run(x)

    assert urnn.state_size == 2 * states
    assert orthogonality_error(urnn.w).item() < 1e-10
    assert (urnn.states(x)[..., states:] == 0).all()
    assert (y - y_u).abs().max().item() <= 1e-12 * (1 + y.abs().max().item())


@pytest.mark.e2e
def test_unitary_equivalent_holds_for_initial_state_at_the_bound_aimed_at_the_extra_states() -> None:
    generator = torch.Generator().manual_seed(0)
    rnn = random_rnn(generator, 4, 2, 3, 0.95)
    bound = 2.0
    # h0 far beyond the inputs' fixed-point radius and along the row of D = (I − WᵀW)^½ it excites most, so the
    # extra states' first pre-activation D h0 − β comes as close to 0 as the derivation allows.
    d = orthogonal_dilation(rnn.w)[4:, :4]
    row = d[d.norm(dim=1).argmax()]
    h0 = row / row.norm() * 10 * state_bound(rnn, bound)
    rnn = RNN(rnn.w, rnn.f, rnn.b, rnn.c, h0, "relu")
    x = bounded_inputs(generator, 8, 100, 2, bound)

    urnn = unitary_equivalent(rnn, bound)
    assert (urnn.states(x)[..., 4:] == 0).all()
    assert torch.allclose(urnn.run(x), rnn.run(x), rtol=0, atol=1e-12 * rnn.run(x).abs().max().item())

    leaky = dilated(rnn, 0.5 * (d @ h0).max().item())  # a β below the derived one lets the extra states turn on
    assert leaky.states(x)[:, 0, 4:].max() > 0


@pytest.mark.parametrize("norm", [0.3, 0.9, 0.999])
def test_state_bound_bounds_every_relu_state(norm: float) -> None:
    generator = torch.Generator().manual_seed(1)
    rnn = random_rnn(generator, 6, 3, 1, norm)
    x = bounded_inputs(generator, 32, 200, 3, 1.5)

    largest = torch.linalg.vector_norm(rnn.states(x), dim=-1).max().item()

    assert largest <= state_bound(rnn, 1.5)


def test_orthogonal_dilation_stays_orthogonal_when_a_singular_value_of_w_is_one() -> None:
    generator = torch.Generator().manual_seed(2)
    p, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator, dtype=torch.float64))
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator, dtype=torch.float64))
    sigma = torch.tensor([1.0, 1 - 1e-13, 1 - 1e-8, 0.7, 0.5, 0.2, 1e-9, 0.0], dtype=torch.float64)

    u = orthogonal_dilation(p @ torch.diag(sigma) @ q.t())

    assert orthogonality_error(u).item() < 1e-13


@pytest.mark.parametrize("norm", [1.0, 1.5])
def test_unitary_equivalent_rejects_non_contractive_w(norm: float) -> None:
    rnn = random_rnn(torch.Generator().manual_seed(3), 3, 1, 1, 0.5)
    w = rnn.w * (norm / spectral_norm(rnn.w))

    with pytest.raises(UserError, match="contractive"):
        unitary_equivalent(RNN(w, rnn.f, rnn.b, rnn.c, rnn.h0, "relu"), 1.0)


def test_unitary_equivalent_rejects_sigmoid_activation() -> None:
    rnn = random_rnn(torch.Generator().manual_seed(4), 3, 1, 1, 0.5, activation="sigmoid")

    with pytest.raises(UserError, match="ReLU"):
        unitary_equivalent(rnn, 1.0)


def test_rnn_rejects_mismatched_shapes_and_unknown_activation() -> None:
    w, f, b, c, h0 = torch.eye(2), torch.ones(2, 1), torch.zeros(2), torch.ones(1, 2), torch.zeros(2)

    with pytest.raises(UserError, match="b must have shape"):
        RNN(w, f, torch.zeros(3), c, h0)
    with pytest.raises(UserError, match="activation"):
        RNN(w, f, b, c, h0, "softplus")


@pytest.mark.e2e
def test_urnn_student_keeps_w_orthogonal_while_fitting() -> None:
    generator = torch.Generator().manual_seed(5)
    teacher = random_rnn(generator, 2, 1, 1, 0.9, activation="sigmoid")
    x = torch.randn(8, 10, 1, generator=generator, dtype=torch.float64)
    student = URNNStudent(4, 1, 1, "sigmoid", generator)
    before = normalized_mse(student(x), teacher.run(x)).item()

    fit(student, x, teacher.run(x), adam_steps=30, lbfgs_steps=10, lr=0.03)

    assert orthogonality_error(student.recurrent.weight.detach()).item() < 1e-10
    assert normalized_mse(student(x), teacher.run(x)).item() < before


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_urnn_equivalence_cli_writes_png_csv_and_json(tmp_path: Path) -> None:
    urnn_equivalence.main(["--sizes", "1", "3", "8", "--steps", "50", "--batch", "4", "--out", str(tmp_path)])

    rows = read_csv(tmp_path / "urnn_equivalence.csv")
    summary = json.loads((tmp_path / "urnn_equivalence.json").read_text())
    assert (tmp_path / "urnn_equivalence.png").stat().st_size > 0
    assert [int(row["states"]) for row in rows] == [1, 3, 8]
    assert all(int(row["urnn_states"]) == 2 * int(row["states"]) for row in rows)
    assert summary["max_abs_error"] < 1e-12
    assert summary["max_orthogonality_error"] < 1e-10


def test_urnn_equivalence_cli_rejects_non_contractive_norm(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        urnn_equivalence.main(["--norm", "1.0", "--out", str(tmp_path)])


def test_sigmoid_gap_cli_writes_files_and_keeps_sigmoid_extra_states_positive(tmp_path: Path) -> None:
    arguments = ["--states", "1", "4", "--restarts", "1", "--adam-steps", "20", "--lbfgs-steps", "5"]
    sigmoid_gap.main([*arguments, "--steps", "10", "--train", "8", "--test", "8", "--out", str(tmp_path)])

    rows = read_csv(tmp_path / "sigmoid_gap.csv")
    summary = json.loads((tmp_path / "sigmoid_gap.json").read_text())
    assert (tmp_path / "sigmoid_gap.png").stat().st_size > 0
    fits = [row for row in rows if row["model"] == "fit"]
    assert {(row["teacher"], int(row["states"])) for row in fits} == {
        (teacher, m) for teacher in ("sigmoid", "relu") for m in (1, 4)
    }
    assert all(float(row["test_nmse"]) > 0 for row in fits if row["teacher"] == "sigmoid")
    assert summary["construction_test_nmse"] < 1e-20
    # The 2n-state dilation: a sigmoid's extra states are σ(·) > 0 at every β (Theorem 3's gap); a ReLU's are
    # exactly 0 from Theorem 1's β on.
    dilation = [row for row in rows if row["model"] == "dilation"]
    assert all(float(row["max_extra_state"]) > 0 for row in dilation if row["teacher"] == "sigmoid")
    assert all(
        float(row["max_extra_state"]) == 0
        for row in dilation
        if row["teacher"] == "relu" and float(row["beta"]) >= summary["theorem_beta"]
    )
    assert math.isfinite(summary["seconds"])
