"""Emami et al. (NeurIPS 2019), Thm 3, as a numerical demo: URNN students fit a contractive sigmoid RNN teacher
and a contractive ReLU teacher; for the ReLU teacher Theorem 1's 2n-state URNN is exact.

Theorem 3 says some contractive sigmoid RNN has no URNN of any size with *exactly* its input-output map. It does
not say the fit error stays away from zero: the same dilation as Theorem 1, U = [[W, D_*], [D, −Wᵀ]] with bottom
bias −β, keeps the extra sigmoid states near σ(−β) instead of at 0, so its output error shrinks like e^{−β}
(NMSE like e^{−2β}) and is 0 only in the limit: the infimum of the residual over 2n-state URNNs is 0, it is just
not attained. The demo shows both: the residual of gradient fits per student size m (numerical optimisation,
so it also measures how well Adam + L-BFGS do), and that dilation's residual and extra states against β next
to the exact ReLU construction.

`python -m arnn.analysis sigmoid_gap` writes sigmoid_gap.csv, sigmoid_gap.json and sigmoid_gap.png.
"""

import argparse
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from arnn.analysis.urnn_equivalence import RNN, dilated, positive_int, random_rnn, state_bound, unitary_equivalent
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv, write_json

TEACHERS = ("sigmoid", "relu")
BETA_SHOWN = 50
"""The β axis reaches at least this far: σ(−β) drops below float64's resolution of an O(1) pre-activation
(ε ≈ 2e-16 ≈ e^{−36}) well before, so the sigmoid dilation's output error is rounded to 0 there."""
COLUMNS = ("teacher", "model", "states", "restart", "beta", "train_nmse", "test_nmse", "selected", "max_extra_state")


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the count: with states of at most a few dozen units, more
    threads only add synchronisation (measured 10–50× slower Adam steps with 2 threads on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def normalized_mse(prediction: Tensor, target: Tensor) -> Tensor:
    """NMSE = mean over output channels of Σ_{b,k} (ŷ − y)² / Σ_{b,k} (y − ȳ)²: 0 is exact, 1 is predicting ȳ."""
    error = (prediction - target).square().mean(dim=(0, 1))
    return (error / target.var(dim=(0, 1), correction=0)).mean()


class URNNStudent(nn.Module):
    """h_k = φ(W h_{k−1} + F x_k + b), y_k = C h_k with W orthogonal (`parametrizations.orthogonal`, which starts
    from the Q factor of a Gaussian matrix, and keeps that matrix' determinant sign); F, b, C and h_{−1} are free.
    float64 like the teachers."""

    def __init__(self, states: int, inputs: int, outputs: int, activation: str, generator: torch.Generator) -> None:
        super().__init__()
        draw = dict(generator=generator, dtype=torch.float64)
        recurrent = nn.Linear(states, states, bias=False, dtype=torch.float64)
        with torch.no_grad():
            recurrent.weight.copy_(torch.randn(states, states, **draw))
        self.recurrent = parametrizations.orthogonal(recurrent)
        self.f = nn.Parameter(torch.randn(states, inputs, **draw) / math.sqrt(inputs))
        self.b = nn.Parameter(torch.zeros(states, dtype=torch.float64))
        self.c = nn.Parameter(torch.randn(outputs, states, **draw) / math.sqrt(states))
        self.h0 = nn.Parameter(torch.zeros(states, dtype=torch.float64))
        self.activation = activation

    def system(self) -> RNN:
        return RNN(self.recurrent.weight, self.f, self.b, self.c, self.h0, self.activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.system().run(x)


def fit(student: URNNStudent, x: Tensor, y: Tensor, adam_steps: int, lbfgs_steps: int, lr: float) -> None:
    """Full-batch Adam on the NMSE, then L-BFGS (strong Wolfe line search) to polish the minimum Adam found."""
    adam = torch.optim.Adam(student.parameters(), lr=lr)
    for _ in range(adam_steps):
        adam.zero_grad()
        normalized_mse(student(x), y).backward()
        adam.step()
    if lbfgs_steps:
        lbfgs = torch.optim.LBFGS(
            student.parameters(),
            max_iter=lbfgs_steps,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-14,
            tolerance_change=1e-16,
        )

        def closure() -> Tensor:
            lbfgs.zero_grad()
            loss = normalized_mse(student(x), y)
            loss.backward()
            return loss

        lbfgs.step(closure)


def result(**values: object) -> dict[str, object]:
    """One CSV row: every column of `COLUMNS`, "" where a value does not apply."""
    return {column: values.get(column, "") for column in COLUMNS}


def student_fits(
    teacher: RNN, data: dict[str, tuple[Tensor, Tensor]], args: argparse.Namespace
) -> list[dict[str, object]]:
    """One row per (student size, restart): train and held-out NMSE after `fit`; `selected` marks, per size, the
    restart with the lowest training NMSE (the held-out data does not choose)."""
    x_train, y_train = data["train"]
    rows: list[dict[str, object]] = []
    for states in args.states:
        group = []
        for restart in range(args.restarts):
            generator = torch.Generator().manual_seed(args.seed + 1000 * states + restart)
            student = URNNStudent(states, x_train.shape[-1], y_train.shape[-1], teacher.activation, generator)
            fit(student, x_train, y_train, args.adam_steps, args.lbfgs_steps, args.lr)
            with torch.no_grad():
                train, test = (normalized_mse(student(x), y).item() for x, y in (data["train"], data["test"]))
            group.append(
                result(
                    teacher=teacher.activation,
                    model="fit",
                    states=states,
                    restart=restart,
                    train_nmse=train,
                    test_nmse=test,
                )
            )
        best = min(group, key=lambda row: row["train_nmse"])
        for row in group:
            row["selected"] = row is best
        rows += group
    return rows


def dilation_residuals(teacher: RNN, x: Tensor, y: Tensor, betas: list[float]) -> list[dict[str, object]]:
    """Per β, the held-out NMSE of `dilated(teacher, β)` (2n states, no fitting) and the largest of its extra
    states: exactly 0 for ReLU once β is large enough, σ(·) > 0 for a sigmoid at every β."""
    rows = []
    with torch.no_grad():
        for beta in betas:
            urnn = dilated(teacher, beta)
            extra = urnn.states(x)[..., teacher.state_size :].abs().max().item()
            nmse = normalized_mse(urnn.run(x), y).item()
            rows.append(
                result(
                    teacher=teacher.activation,
                    model="dilation",
                    states=urnn.state_size,
                    beta=beta,
                    test_nmse=nmse,
                    max_extra_state=extra,
                )
            )
    return rows


def zero_level(values: list[object]) -> float:
    """Where a log-scale plot of `values` draws an exact 0: a decade and a half below the smallest positive one."""
    positive = [float(value) for value in values if float(value) > 0]
    return 10 ** math.floor(math.log10(min(positive, default=1.0)) - 1.5)


def plot(rows: list[dict[str, object]], theorem_beta: float, teacher_states: int) -> Figure:
    """Left: held-out NMSE of the fits per student size; right: the 2n-state dilation against β."""
    figure = new_figure(1, 2, size=(11.0, 4.2))
    left, right = figure.axes
    colors = {"sigmoid": "tab:red", "relu": "tab:blue"}

    fitted = [row["test_nmse"] for row in rows if row["model"] != "dilation"]
    dilations = [row[key] for row in rows if row["model"] == "dilation" for key in ("test_nmse", "max_extra_state")]
    floors = {left: zero_level(fitted), right: zero_level(dilations)}

    def drawn(values: list[object], axes: Axes) -> list[float]:
        return [float(value) or floors[axes] for value in values]

    for teacher in TEACHERS:
        fits = [row for row in rows if row["teacher"] == teacher and row["model"] == "fit"]
        chosen = [row for row in fits if row["selected"]]
        left.scatter(
            [row["states"] for row in fits],
            drawn([row["test_nmse"] for row in fits], left),
            color=colors[teacher],
            alpha=0.3,
            s=14,
        )
        left.plot(
            [row["states"] for row in chosen],
            drawn([row["test_nmse"] for row in chosen], left),
            color=colors[teacher],
            marker="o",
            label=f"URNN fits, {teacher} teacher",
        )
        dilation = [row for row in rows if row["teacher"] == teacher and row["model"] == "dilation"]
        betas = [row["beta"] for row in dilation]
        right.plot(
            betas,
            drawn([row["test_nmse"] for row in dilation], right),
            color=colors[teacher],
            marker=".",
            label=f"NMSE, {teacher} teacher",
        )
        right.plot(
            betas,
            drawn([row["max_extra_state"] for row in dilation], right),
            color=colors[teacher],
            linestyle="--",
            label=f"max extra state, {teacher}",
        )
    exact = next(row for row in rows if row["model"] == "construction")
    left.scatter(
        [exact["states"]],
        drawn([exact["test_nmse"]], left),
        marker="*",
        s=160,
        color="black",
        zorder=3,
        label="Theorem 1 construction (ReLU)",
    )
    sizes = sorted({row["states"] for row in rows if row["model"] == "fit"})
    left.set_xscale("log", base=2)
    left.set_xticks(sizes, [str(size) for size in sizes])
    left.set(yscale="log", xlabel="URNN student states m", ylabel="held-out NMSE")
    left.set_title(
        f"Fits to teachers with n = {teacher_states} states (an exact 0 is drawn at {floors[left]:.0e})", fontsize=9
    )
    left.legend(loc="best", fontsize=8)
    right.axvline(theorem_beta, color="gray", linestyle=":", label="β of Theorem 1 (ReLU)")
    right.set(yscale="log", xlabel="β (bottom bias −β of the extra states)", ylabel="held-out NMSE / state")
    right.set_title(
        f"The {2 * teacher_states}-state dilation, no fitting (an exact 0 is drawn at {floors[right]:.0e})", fontsize=9
    )
    right.legend(loc="best", fontsize=7)
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m arnn.analysis sigmoid_gap",
        description="Theorem 3 demo: URNN fits of a contractive sigmoid RNN versus a ReLU RNN.",
    )
    parser.add_argument("--teacher-states", type=positive_int, default=2, help="teacher states n")
    parser.add_argument("--states", type=positive_int, nargs="+", default=[1, 2, 4, 8, 16], help="student sizes m")
    parser.add_argument("--inputs", type=positive_int, default=1, help="input size")
    parser.add_argument("--outputs", type=positive_int, default=1, help="output size")
    parser.add_argument("--norm", type=float, default=0.9, help="‖W‖₂ of the teachers, in (0, 1)")
    parser.add_argument("--steps", type=positive_int, default=40, help="sequence length T")
    parser.add_argument("--train", type=positive_int, default=64, help="training sequences")
    parser.add_argument("--test", type=positive_int, default=64, help="held-out sequences")
    parser.add_argument("--restarts", type=positive_int, default=3, help="fits per student size")
    parser.add_argument("--adam-steps", type=positive_int, default=400)
    parser.add_argument("--lbfgs-steps", type=int, default=500, help="L-BFGS iterations after Adam (0: none)")
    parser.add_argument("--lr", type=float, default=0.03, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the PNG and summary to W&B")
    args = parser.parse_args(argv)
    if not 0 < args.norm < 1:
        parser.error(f"--norm must be in (0, 1) for a contractive teacher, got {args.norm}")
    if args.lbfgs_steps < 0 or not args.lr > 0:
        parser.error("--lbfgs-steps must be ≥ 0 and --lr > 0")

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    draw = dict(generator=generator, dtype=torch.float64)
    x = {
        split: torch.randn(size, args.steps, args.inputs, **draw)
        for split, size in [("train", args.train), ("test", args.test)]
    }
    input_bound = max(torch.linalg.vector_norm(inputs, dim=-1).max().item() for inputs in x.values())
    teachers = {
        name: random_rnn(generator, args.teacher_states, args.inputs, args.outputs, args.norm, name)
        for name in TEACHERS
    }
    relu = teachers["relu"]
    theorem_beta = state_bound(relu, input_bound)
    betas = [float(beta) for beta in range(0, math.ceil(max(BETA_SHOWN, 1.1 * theorem_beta)) + 1, 2)]

    rows: list[dict[str, object]] = []
    for name, teacher in teachers.items():
        data = {split: (inputs, teacher.run(inputs)) for split, inputs in x.items()}
        with one_thread():
            fits = student_fits(teacher, data, args)
        rows += fits + dilation_residuals(teacher, *data["test"], betas)
        for row in fits:
            if row["selected"]:
                print(f"{name} teacher, m = {row['states']:3d}: held-out NMSE {row['test_nmse']:.3e}")
    with torch.no_grad():
        exact = normalized_mse(unitary_equivalent(relu, input_bound).run(x["test"]), relu.run(x["test"])).item()
    states = 2 * args.teacher_states
    rows.append(result(teacher="relu", model="construction", states=states, beta=theorem_beta, test_nmse=exact))
    print(f"relu teacher, Theorem 1 construction (m = {states}): held-out NMSE {exact:.3e}")

    best = {
        name: {row["states"]: row["test_nmse"] for row in rows if row["teacher"] == name and row["selected"] is True}
        for name in TEACHERS
    }
    summary = {
        "best_test_nmse": best,
        "teacher_states": args.teacher_states,
        "construction_test_nmse": exact,
        "theorem_beta": theorem_beta,
        "input_bound": input_bound,
        "seconds": time.perf_counter() - start,
    }
    folder = analysis_dir("sigmoid_gap", args.out)
    config = {key: value for key, value in vars(args).items() if key not in ("out", "wandb")}
    files = [
        write_csv(rows, folder / "sigmoid_gap.csv"),
        write_json({"config": config} | summary, folder / "sigmoid_gap.json"),
        save_figure(plot(rows, theorem_beta, args.teacher_states), folder / "sigmoid_gap.png"),
    ]
    publish("sigmoid_gap", folder, files, args.wandb, {"construction_test_nmse": exact})
