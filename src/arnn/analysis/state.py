"""Any cell's recurrent state as one real vector per sequence, and the encoder's view of a task module's input.

States come as a tensor (B, n), a complex tensor (B, n), a tuple of such tensors (coRNN's (y, z)), or torch's
recurrent layout (num_layers, B, n) — alone, or as LSTM's pair (h, c). `StateLayout` flattens any of them to
real rows (B, d), complex parts as [Re, Im], and rebuilds the state from such rows, differentiably.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from arnn.cells.base import State


def _leaves(state: State) -> list[Tensor]:
    if isinstance(state, Tensor):
        return [state]
    return [leaf for part in state for leaf in _leaves(part)]


def _structure(state: State) -> Any:
    """The nesting of tuples and lists, with None where a tensor sits."""
    if isinstance(state, Tensor):
        return None
    return type(state)(_structure(part) for part in state)


def _rebuild(structure: Any, leaves: Iterator[Tensor]) -> State:
    if structure is None:
        return next(leaves)
    return type(structure)(_rebuild(part, leaves) for part in structure)


def batch_dim(part: Tensor) -> int:
    """Where the batch sits in a state tensor: dim 1 in torch's (num_layers, B, n) layout (3-D), else dim 0."""
    return 1 if part.dim() == 3 else 0


@dataclass(frozen=True)
class _Part:
    shape: tuple[int, ...]  # without the batch dim
    batch_dim: int
    complex: bool

    @property
    def size(self) -> int:
        return (2 if self.complex else 1) * int(torch.Size(self.shape).numel())


@dataclass(frozen=True)
class StateLayout:
    """How a state's tensors map to the d columns of its flattened form; build one with `StateLayout.of(state)`."""

    structure: Any
    parts: tuple[_Part, ...]

    @classmethod
    def of(cls, state: State) -> "StateLayout":
        parts = []
        for leaf in _leaves(state):
            dim = batch_dim(leaf)
            shape = leaf.shape[:dim] + leaf.shape[dim + 1 :]
            parts.append(_Part(tuple(shape), dim, leaf.is_complex()))
        return cls(_structure(state), tuple(parts))

    @property
    def size(self) -> int:
        """d, the real dimension of one sequence's state."""
        return sum(part.size for part in self.parts)

    def flatten(self, state: State) -> Tensor:
        """The state as real rows (B, d): each part batch-first and flattened, complex parts as [Re, Im]."""
        columns = []
        for part, leaf in zip(self.parts, _leaves(state), strict=True):
            rows = leaf.movedim(part.batch_dim, 0)
            rows = rows.reshape(rows.shape[0], -1)
            columns.extend([rows.real, rows.imag] if part.complex else [rows])
        return torch.cat(columns, dim=1)

    def unflatten(self, rows: Tensor) -> State:
        """The state whose `flatten` is `rows` (B, d); differentiable in `rows`."""
        batch = rows.shape[0]
        leaves = []
        for part, chunk in zip(self.parts, rows.split([part.size for part in self.parts], dim=1), strict=True):
            if part.complex:
                real, imag = chunk.chunk(2, dim=1)
                chunk = torch.complex(real, imag)
            leaves.append(chunk.reshape(batch, *part.shape).movedim(0, part.batch_dim))
        return _rebuild(self.structure, iter(leaves))


def add_probe(state: State, probe: Tensor) -> State:
    """state + probe, the real rows `probe` (B, d) spread over every part of the state: with a zero probe that
    requires grad, ∂L/∂probe is ∂L/∂state flattened, wherever the state goes afterwards."""
    layout = StateLayout.of(state)
    return _rebuild(
        layout.structure,
        (leaf + delta for leaf, delta in zip(_leaves(state), _leaves(layout.unflatten(probe)), strict=True)),
    )


class _Recorder(nn.Module):
    """Stands in for a task module's encoder: records the inputs it is called with."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        self.inputs.append(x)
        return self.net(x, state)


@contextmanager
def replaced_encoder(module: nn.Module, encoder: nn.Module) -> Iterator[nn.Module]:
    """Within the block, `module.net` is `encoder`, so the task module's own forward and loss run through it."""
    net = module.net
    module.net = encoder
    try:
        yield encoder
    finally:
        module.net = net


def encoder_input(module: nn.Module, x: Tensor) -> Tensor:
    """What `module.net` receives when the task module reads x: (B, T, m) floats, e.g. one-hot tokens."""
    recorder = _Recorder(module.net)
    with torch.no_grad(), replaced_encoder(module, recorder):
        module(x)
    return recorder.inputs[0]
