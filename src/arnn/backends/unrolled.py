"""The reference execution: one `step` call per time step, differentiated by autograd."""

from collections.abc import Callable

import torch
from torch import Tensor


def unrolled(step: Callable[[Tensor, Tensor], Tensor], x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """h_t = step(x_t, h_{t-1}) for t = 1..T; returns all states (B, T, n) and h_T.

    `unbind` gives each x_t without the O(T²) backward of indexing `x[:, t]`; still one autograd node per
    operation and step, so this is the slow, obviously correct path the fast scans are tested against.
    """
    states = []
    for x_t in x.unbind(1):
        h = step(x_t, h)
        states.append(h)
    return torch.stack(states, 1), h
