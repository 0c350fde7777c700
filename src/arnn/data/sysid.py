"""The synthetic system identification of Emami et al. (NeurIPS 2019): learn the input-output map of a random
contractive ReLU RNN (the teacher) from Gaussian inputs and its noisy outputs."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from arnn.data.splits import SplitDataModule
from arnn.errors import ConfigError

MAX_NOISE_RATIO = 1e30
"""Noise std / signal std beyond which float32 targets overflow (its range ends at 3.4e38)."""

CALIBRATION_SHAPE = (100, 1000)
"""Sequences × steps of the inputs the biases are tuned on: a fixed draw, so a realisation's teacher does not
depend on how much data is generated from it (1000 steps is the paper's T, ten time constants 1/ε)."""
BISECTION_STEPS = 16


def relu_rnn_states(w: Tensor, f: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """h_t = relu(W h_{t-1} + F x_t + b) from h_{-1} = 0 for inputs x (B, T, m): all states (B, T, n)."""
    drive = x.to(w.dtype) @ f.t() + b
    h = drive.new_zeros(x.shape[0], w.shape[0])
    states = []
    for t in range(x.shape[1]):
        h = torch.relu(h @ w.t() + drive[:, t])
        states.append(h)
    return torch.stack(states, dim=1)


def on_fractions(states: Tensor) -> Tensor:
    """Per unit, the fraction of steps at which it is on (h > 0), over all sequences and steps of (B, T, n)."""
    return (states > 0).to(states.dtype).mean(dim=(0, 1))


@dataclass(frozen=True)
class TeacherRNN:
    """h_t = relu(W h_{t-1} + F x_t + b), y_t = C h_t, from h_{-1} = 0 (the students start from zero too).

    W (n, n), F (n, m), b (n,), C (d, n); float64 so the outputs are exact to float32 storage.
    """

    w: Tensor
    f: Tensor
    b: Tensor
    c: Tensor

    def states(self, x: Tensor) -> Tensor:
        """All states h_0 … h_{T-1}, (B, T, n), for inputs x (B, T, m)."""
        return relu_rnn_states(self.w, self.f, self.b, x)

    def outputs(self, x: Tensor) -> Tensor:
        """The clean outputs y_t = C h_t, (B, T, d)."""
        return self.states(x) @ self.c.t()

    def on_fraction(self, x: Tensor) -> Tensor:
        """Per unit, the fraction of all steps of x at which it is on (h > 0), (n,)."""
        return on_fractions(self.states(x))


def contractive_matrix(a: Tensor, eps: float) -> Tensor:
    """W = I − ε AᵀA/‖A‖_F²: symmetric with eigenvalues 1 − ε λ_i, λ_i ∈ (0, 1] the eigenvalues of AᵀA/‖A‖_F²,
    so ‖W‖ = 1 − ε λ_min < 1 for a full-rank A and 0 < ε ≤ 1; small ε makes the system slow (time constant
    ≥ 1/ε steps)."""
    gram = a.t() @ a
    return torch.eye(a.shape[1], dtype=a.dtype) - eps * gram / gram.trace()


def calibrate_biases(w: Tensor, f: Tensor, x: Tensor, on_fraction: float) -> Tensor:
    """Biases b such that each unit of h_t = relu(W h_{t-1} + F x_t + b) is on a fraction `on_fraction` of the
    steps of x (B, T, m), found by bisection on every b_i at once.

    A unit's on-fraction grows with its own bias: with W ≈ I the unit is a reflected random walk with drift
    b_i and step size ‖F_i‖ (for unit-variance inputs), off nearly always at b_i = −3‖F_i‖ and on nearly always
    at b_i = ‖F_i‖. Other units enter only through W's off-diagonal entries, which are O(ε), so bisecting all
    biases in parallel converges. (Setting b_i to a quantile of the pre-activations W h + F x and iterating does
    not: W ≈ I integrates the bias into h, so each update overshoots and units flip between always on and
    always off.)
    """
    scale = f.norm(dim=1)
    low, high = -3 * scale, scale
    for _ in range(BISECTION_STEPS):
        b = (low + high) / 2
        too_often = on_fractions(relu_rnn_states(w, f, b, x)) > on_fraction
        high = torch.where(too_often, b, high)
        low = torch.where(too_often, low, b)
    return (low + high) / 2


def make_teacher(
    generator: torch.Generator, input_size: int, output_size: int, units: int, eps: float, on_fraction: float
) -> TeacherRNN:
    """A random teacher: A, F, C i.i.d. N(0, 1), W = I − ε AᵀA/‖A‖_F², biases set by `calibrate_biases` on a
    fixed draw of N(0, 1) inputs (the paper draws b Gaussian and then adjusts it; the adjustment alone fixes it)."""
    draw = dict(generator=generator, dtype=torch.float64)
    w = contractive_matrix(torch.randn(units, units, **draw), eps)
    f = torch.randn(units, input_size, **draw)
    c = torch.randn(output_size, units, **draw)
    b = calibrate_biases(w, f, torch.randn(*CALIBRATION_SHAPE, input_size, **draw), on_fraction)
    return TeacherRNN(w, f, b, c)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


class SystemIdentificationDataModule(SplitDataModule):
    """The benchmark of Emami et al. (NeurIPS 2019): inputs x_t ~ N(0, I_m) i.i.d., targets y_t = C h_t + noise of a
    random teacher RNN (`TeacherRNN`, `teacher_units` ReLU units, ‖W‖ < 1, each unit on ≈ `on_fraction` of the time).

    The noise is Gaussian with variance Var(C h)/10^(snr_db/10) per output dimension (the variance over all
    generated steps); snr_db=None gives noiseless targets. The paper's "T = 1000, test ratio 0.3, batch 10" is
    read as `num_sequences` independent sequences of `seq_len` = 1000 steps, each started from h = 0, of which
    30% form the test split and `val_size` of the rest the validation split, in batches of 10 sequences.
    `realisation` seeds everything: the teacher, then the inputs, then the noise.
    """

    def __init__(
        self,
        realisation: int = 0,
        num_sequences: int = 100,
        seq_len: int = 1000,
        input_size: int = 1,
        output_size: int = 1,
        teacher_units: int = 4,
        eps: float = 0.01,
        on_fraction: float = 0.6,
        snr_db: float | None = 20.0,
        test_ratio: float = 0.3,
        val_size: int = 10,
        batch_size: int = 10,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        for name, value in (
            ("seq_len", seq_len),
            ("input_size", input_size),
            ("output_size", output_size),
            ("teacher_units", teacher_units),
            ("val_size", val_size),
            ("batch_size", batch_size),
        ):
            _require(value >= 1, f"data.{name} must be >= 1, got {value}")
        _require(0 < eps <= 1, f"data.eps must be in (0, 1] for ‖W‖ < 1, got {eps}; Emami et al. use 0.01")
        _require(0 < on_fraction < 1, f"data.on_fraction must be in (0, 1), got {on_fraction}; Emami et al. use 0.6")
        self.test_size = round(test_ratio * num_sequences)
        train_size = num_sequences - self.test_size - val_size
        _require(
            self.test_size >= 1 and train_size >= 1,
            f"data.num_sequences={num_sequences} with data.test_ratio={test_ratio} and data.val_size={val_size} "
            f"leaves {self.test_size} test and {train_size} training sequences; each needs at least 1",
        )
        self.realisation = realisation
        self.num_sequences = num_sequences
        self.seq_len = seq_len
        self.input_size = input_size
        self.output_size = output_size
        self.teacher_units = teacher_units
        self.eps = eps
        self.on_fraction = on_fraction
        if snr_db is not None and 10 ** (-snr_db / 20) > MAX_NOISE_RATIO:
            raise ConfigError(
                f"data.snr_db={snr_db:g} makes the noise 10^{-snr_db / 20:.0f} times the signal, beyond float32's "
                f"range; use data.snr_db >= {-20 * math.log10(MAX_NOISE_RATIO):.0f} (-20: noise 10x the signal)"
            )
        self.snr_db = snr_db
        self.val_size = val_size
        self._teacher: TeacherRNN | None = None

    @property
    def task_kwargs(self) -> dict[str, int]:
        """What the task module needs to know about this data."""
        return {"output_size": self.output_size}

    def teacher(self) -> TeacherRNN:
        """The realisation's teacher (generated with the data)."""
        self.setup()
        return self._teacher

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        generator = torch.Generator().manual_seed(self.realisation)
        teacher = make_teacher(
            generator, self.input_size, self.output_size, self.teacher_units, self.eps, self.on_fraction
        )
        x = torch.randn(self.num_sequences, self.seq_len, self.input_size, generator=generator, dtype=torch.float64)
        y = teacher.outputs(x)
        if self.snr_db is not None:
            noise_std = (y.var(dim=(0, 1)) / 10 ** (self.snr_db / 10)).sqrt()
            y = y + noise_std * torch.randn(y.shape, generator=generator, dtype=y.dtype)
        # Sequences are i.i.d., so consecutive blocks are random splits: test, then validation, then training.
        x, y = x.float(), y.float()
        test, val = slice(0, self.test_size), slice(self.test_size, self.test_size + self.val_size)
        blocks = {"test": test, "val": val, "train": slice(val.stop, None)}
        self.splits = {name: TensorDataset(x[block], y[block]) for name, block in blocks.items()}
        self._teacher = teacher
