"""A few optimizer steps on a cell outside Lightning."""

from functools import partial

import torch

from arnn.cells.base import SequenceEncoder
from arnn.lit import SequenceClassifier


def train_steps(cell: SequenceEncoder, steps: int = 50, lr: float = 0.05) -> None:
    """Adam steps on a readout loss outside Lightning, with the cell's penalty and after-step hook."""
    torch.manual_seed(1)
    dtype = next(cell.parameters()).dtype
    model = SequenceClassifier(cell, num_classes=3, optimizer=partial(torch.optim.Adam, lr=lr)).to(dtype)
    optimizer = model.configure_optimizers()
    x, target = torch.randn(8, 12, cell.input_size, dtype=dtype), torch.randint(0, 3, (8,))
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), target)
        penalty = cell.penalty()
        (loss if penalty is None else loss + penalty).backward()
        optimizer.step()
        cell.after_optimizer_step()
