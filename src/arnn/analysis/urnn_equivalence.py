"""Emami et al. (NeurIPS 2019), Thm 1: a contractive ReLU RNN with n states and bounded inputs has a unitary
(here real orthogonal) RNN with 2n states and the identical input-output map.

The system is h_k = φ(W h_{k−1} + F x_k + b), y_k = C h_k from a given h_{−1}. The URNN built here runs the
original's states in its first n units and keeps the last n at exactly zero:

    U = [[W, (I − WWᵀ)^½], [(I − WᵀW)^½, −Wᵀ]],  F_u = [F; 0],  b_u = [b; −β1],  C_u = [C, 0],  h_u = [h; 0].

`python -m arnn.analysis urnn_equivalence` builds random systems of several sizes, runs both on bounded inputs and
reports max |y − y_u| and ‖UᵀU − I‖_F per size (CSV, JSON, PNG).
"""

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from arnn.cells.constrained import orthogonality_error
from arnn.errors import UserError
from arnn.output import analysis_dir, new_figure, publish, save_figure, write_csv, write_json

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}

BETA_HEADROOM = 1e-6
"""Relative margin added to the state bound in β: in exact arithmetic β = bound suffices; the margin absorbs the
rounding in ‖W‖, ‖F‖, ‖b‖ and in (I − WᵀW)^½ h, which are all far below 1e-6 relative in float64."""

ZERO_DRAWN_AT = 1e-19
"""Where the log-scale plot draws values that are exactly zero."""
SHOWN_STEPS = 100


@dataclass(frozen=True, eq=False)
class RNN:
    """h_k = φ(W h_{k−1} + F x_k + b), y_k = C h_k, from h_{−1} = h0.

    W (n, n), F (n, m), b (n,), C (p, n), h0 (n,); φ one of `ACTIVATIONS`. The tensors may require grad (a
    student's parameters), so `run` is differentiable.
    """

    w: Tensor
    f: Tensor
    b: Tensor
    c: Tensor
    h0: Tensor
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise UserError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        n = self.w.shape[0]
        shapes = {"W": (self.w, (n, n)), "b": (self.b, (n,)), "h0": (self.h0, (n,))}
        shapes |= {"F": (self.f, (n, self.f.shape[-1])), "C": (self.c, (self.c.shape[0], n))}
        for name, (tensor, shape) in shapes.items():
            if tuple(tensor.shape) != shape:
                raise UserError(f"{name} must have shape {shape} for {n} states, got {tuple(tensor.shape)}")

    @property
    def state_size(self) -> int:
        return self.w.shape[0]

    def states(self, x: Tensor) -> Tensor:
        """All states h_0 … h_{T−1}, (B, T, n), for inputs x (B, T, m)."""
        phi = ACTIVATIONS[self.activation]
        drive = x.to(self.w.dtype) @ self.f.t() + self.b
        h = self.h0.expand(x.shape[0], -1)
        states = []
        for k in range(x.shape[1]):
            h = phi(h @ self.w.t() + drive[:, k])
            states.append(h)
        return torch.stack(states, dim=1)

    def run(self, x: Tensor) -> Tensor:
        """The outputs y_k = C h_k, (B, T, p), for inputs x (B, T, m)."""
        return self.states(x) @ self.c.t()


def spectral_norm(matrix: Tensor) -> float:
    """‖A‖₂, the largest singular value."""
    return torch.linalg.matrix_norm(matrix, ord=2).item()


def state_bound(rnn: RNN, input_bound: float) -> float:
    """M = max(‖h0‖, (‖F‖ u + ‖b‖)/(1 − ‖W‖)) bounds ‖h_k‖ for every k ≥ −1 when ‖x_k‖ ≤ u and ‖W‖ < 1 (ReLU).

    Proof: ReLU is 1-Lipschitz with ReLU(0) = 0, so |ReLU(z)_i| ≤ |z_i| and ‖h_k‖ ≤ ‖W h_{k−1} + F x_k + b‖
    ≤ ‖W‖ ‖h_{k−1}‖ + ‖F‖ u + ‖b‖. With R = (‖F‖ u + ‖b‖)/(1 − ‖W‖), if ‖h_{k−1}‖ ≤ M then ‖h_k‖ ≤ ‖W‖ M +
    (1 − ‖W‖) R ≤ M; ‖h_{−1}‖ = ‖h0‖ ≤ M starts the induction. (Any 1-Lipschitz φ with φ(0) = 0 obeys the same.)
    """
    rho = spectral_norm(rnn.w)
    drive = spectral_norm(rnn.f) * input_bound + torch.linalg.vector_norm(rnn.b).item()
    return max(torch.linalg.vector_norm(rnn.h0).item(), drive / (1 - rho))


def orthogonal_dilation(w: Tensor) -> Tensor:
    """U = [[W, D_*], [D, −Wᵀ]] with D = (I − WᵀW)^½, D_* = (I − WWᵀ)^½: orthogonal whenever ‖W‖ ≤ 1.

    UᵀU = [[WᵀW + D², WᵀD_* − DWᵀ], [D_*W − WD, D_*² + WWᵀ]] = I because D² = I − WᵀW, D_*² = I − WWᵀ and
    WD = D_*W (both equal P Σ S Qᵀ below). Both roots come from one SVD W = P Σ Qᵀ, S = (I − Σ²)^½:
    D = Q S Qᵀ, D_* = P S Pᵀ. Taking them from two separate eigendecompositions of I − WᵀW and I − WWᵀ would
    make WD = D_*W hold only to √ε where a singular value of W is near 1 (√ is not Lipschitz at 0).
    """
    p, sigma, qt = torch.linalg.svd(w)
    s = torch.sqrt(((1 - sigma) * (1 + sigma)).clamp_min(0))
    d = qt.t() @ torch.diag(s) @ qt
    d_star = p @ torch.diag(s) @ p.t()
    return torch.cat([torch.cat([w, d_star], dim=1), torch.cat([d, -w.t()], dim=1)], dim=0)


def unitary_equivalent(rnn: RNN, input_bound: float) -> RNN:
    """The 2n-state URNN of Theorem 1: the same outputs as the contractive ReLU `rnn` for every input sequence
    with ‖x_k‖₂ ≤ input_bound.

    Its state is [h_k; g_k] with g_k = 0 for all k: by induction, if g_{k−1} = 0 the top pre-activation is
    W h_{k−1} + F x_k + b, the original's, and the bottom one is D h_{k−1} − β1 with D = (I − WᵀW)^½, whose
    entries are ≤ ‖D‖ ‖h_{k−1}‖ − β ≤ `state_bound` − β ≤ 0 (‖D‖ ≤ 1), so ReLU keeps g_k = 0. β is the
    bound plus `BETA_HEADROOM`; it grows like 1/(1 − ‖W‖), which is why Theorem 1 needs ‖W‖ < 1 strictly.
    """
    if rnn.activation != "relu":
        raise UserError(f"Theorem 1's construction needs a ReLU RNN, got activation {rnn.activation!r}")
    if not (math.isfinite(input_bound) and input_bound >= 0):
        raise UserError(f"input_bound must be a finite number ≥ 0 (a bound on ‖x_k‖₂), got {input_bound}")
    rho = spectral_norm(rnn.w)
    if not rho < 1:
        raise UserError(f"Theorem 1 needs a contractive RNN (‖W‖₂ < 1), got ‖W‖₂ = {rho:.6g}; scale W down")
    return dilated(rnn, state_bound(rnn, input_bound) * (1 + BETA_HEADROOM))


def dilated(rnn: RNN, beta: float) -> RNN:
    """The 2n-state RNN with W_u = `orthogonal_dilation`(W), F_u = [F; 0], b_u = [b; −β1], C_u = [C, 0],
    h0_u = [h0; 0] and `rnn`'s activation: `unitary_equivalent` for a ReLU `rnn` and β above the state bound."""
    zeros = torch.zeros_like
    return RNN(
        w=orthogonal_dilation(rnn.w),
        f=torch.cat([rnn.f, zeros(rnn.f)]),
        b=torch.cat([rnn.b, torch.full_like(rnn.b, -beta)]),
        c=torch.cat([rnn.c, zeros(rnn.c)], dim=1),
        h0=torch.cat([rnn.h0, zeros(rnn.h0)]),
        activation=rnn.activation,
    )


def random_rnn(
    generator: torch.Generator, states: int, inputs: int, outputs: int, norm: float, activation: str = "relu"
) -> RNN:
    """A random system in float64: W Gaussian rescaled to ‖W‖₂ = norm, F, C ~ N(0, 1/fan-in), b ~ N(0, 1),
    h0 ~ |N(0, 1)| (a ReLU state is ≥ 0; for a sigmoid, σ of a Gaussian)."""
    draw = dict(generator=generator, dtype=torch.float64)
    w = torch.randn(states, states, **draw)
    w = w * (norm / spectral_norm(w))
    f = torch.randn(states, inputs, **draw) / math.sqrt(inputs)
    c = torch.randn(outputs, states, **draw) / math.sqrt(states)
    b = torch.randn(states, **draw)
    h0 = torch.randn(states, **draw)
    h0 = h0.abs() if activation == "relu" else ACTIVATIONS[activation](h0)
    return RNN(w, f, b, c, h0, activation)


def bounded_inputs(generator: torch.Generator, batch: int, steps: int, inputs: int, bound: float) -> Tensor:
    """Inputs (B, T, m) with ‖x_k‖₂ ≤ bound: Gaussian directions; the first half of the sequences has every
    step exactly at the bound (the largest drive), the rest uniform radii in [0, bound]."""
    x = torch.randn(batch, steps, inputs, generator=generator, dtype=torch.float64)
    radius = torch.rand(batch, steps, 1, generator=generator, dtype=torch.float64)
    radius[: (batch + 1) // 2] = 1
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True) * radius * bound


def compare(
    generator: torch.Generator,
    states: int,
    inputs: int,
    outputs: int,
    norm: float,
    bound: float,
    batch: int,
    steps: int,
) -> tuple[dict[str, float], RNN, RNN, Tensor]:
    """One random contractive ReLU RNN and its URNN on bounded inputs: the row of numbers, both systems and x."""
    rnn = random_rnn(generator, states, inputs, outputs, norm)
    urnn = unitary_equivalent(rnn, bound)
    x = bounded_inputs(generator, batch, steps, inputs, bound)
    y, y_u = rnn.run(x), urnn.run(x)
    row = {
        "states": states,
        "urnn_states": urnn.state_size,
        "norm_w": spectral_norm(rnn.w),
        "beta": -urnn.b[-1].item(),
        "max_abs_error": (y - y_u).abs().max().item(),
        "max_abs_output": y.abs().max().item(),
        "orthogonality_error": orthogonality_error(urnn.w).item(),
        "max_extra_state": urnn.states(x)[..., states:].abs().max().item(),
    }
    return row, rnn, urnn, x


def plot(rows: list[dict[str, float]], example: tuple[int, Tensor, Tensor]) -> Figure:
    """Left: one output channel of an RNN and its URNN for one input; right: the errors per size (log scale)."""
    figure = new_figure(1, 2, size=(11.0, 4.0))
    left, right = figure.axes
    states, y, y_u = example
    y, y_u = y[:SHOWN_STEPS], y_u[:SHOWN_STEPS]
    steps = torch.arange(y.shape[0])
    left.plot(steps, y, color="tab:blue", linewidth=2.5, alpha=0.6, label=f"contractive ReLU RNN, n = {states}")
    left.plot(steps, y_u, color="black", linestyle="--", linewidth=1, label=f"URNN, {2 * states} states")
    left.set(xlabel="step k", ylabel="output y_k (channel 0)", title="Identical outputs")
    left.legend(loc="best", fontsize=8)

    floor = ZERO_DRAWN_AT
    sizes = [row["states"] for row in rows]
    for key, label, marker in [
        ("max_abs_error", "max |y − y_URNN|", "o"),
        ("orthogonality_error", "‖UᵀU − I‖_F", "s"),
        ("max_extra_state", "max |extra states|", "^"),
    ]:
        values = [max(row[key], floor) for row in rows]
        right.plot(sizes, values, marker=marker, label=label)
    right.axhline(torch.finfo(torch.float64).eps, color="gray", linestyle=":", label="float64 ε")
    right.set(yscale="log", xlabel="RNN states n (URNN has 2n)", ylabel="value")
    right.set_xscale("log", base=2)
    right.set_xticks(sizes, [str(size) for size in sizes])
    right.set_ylim(bottom=floor / 10)
    right.set_title(f"Errors per size (an exact 0 is drawn at {floor:.0e})", fontsize=10)
    right.legend(loc="best", fontsize=8)
    return figure


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m arnn.analysis urnn_equivalence",
        description="Theorem 1: a contractive ReLU RNN and its 2n-state URNN give identical outputs.",
    )
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64], help="states n")
    parser.add_argument("--inputs", type=positive_int, default=3, help="input size m")
    parser.add_argument("--outputs", type=positive_int, default=2, help="output size p")
    parser.add_argument("--steps", type=positive_int, default=200, help="sequence length T")
    parser.add_argument("--batch", type=positive_int, default=32, help="input sequences per size")
    parser.add_argument("--norm", type=float, default=0.95, help="‖W‖₂ of the random RNNs, in (0, 1)")
    parser.add_argument("--input-bound", type=float, default=1.0, help="‖x_k‖₂ ≤ this bound")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--wandb", action="store_true", help="log the PNG and summary to W&B")
    args = parser.parse_args(argv)
    if not 0 < args.norm < 1:
        parser.error(f"--norm must be in (0, 1) for a contractive RNN, got {args.norm}")
    if not (math.isfinite(args.input_bound) and args.input_bound > 0):
        parser.error(f"--input-bound must be a positive number, got {args.input_bound}")

    generator = torch.Generator().manual_seed(args.seed)
    rows, example = [], None
    shown = sorted(args.sizes)[len(args.sizes) // 2]
    for states in args.sizes:
        row, rnn, urnn, x = compare(
            generator, states, args.inputs, args.outputs, args.norm, args.input_bound, args.batch, args.steps
        )
        rows.append(row)
        if states == shown and example is None:
            example = (states, rnn.run(x[:1])[0, :, 0], urnn.run(x[:1])[0, :, 0])
        print(
            f"n = {states:3d}: max |y − y_u| = {row['max_abs_error']:.2e}  ‖UᵀU − I‖_F = "
            f"{row['orthogonality_error']:.2e}  β = {row['beta']:.3g}"
        )

    folder = analysis_dir("urnn_equivalence", args.out)
    summary = {
        "max_abs_error": max(row["max_abs_error"] for row in rows),
        "max_orthogonality_error": max(row["orthogonality_error"] for row in rows),
    }
    files = [
        write_csv(rows, folder / "urnn_equivalence.csv"),
        write_json(
            {"config": {k: v for k, v in vars(args).items() if k not in ("out", "wandb")}, "rows": rows} | summary,
            folder / "urnn_equivalence.json",
        ),
        save_figure(plot(rows, example), folder / "urnn_equivalence.png"),
    ]
    publish("urnn_equivalence", folder, files, args.wandb, summary)
