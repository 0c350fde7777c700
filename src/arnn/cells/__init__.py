"""Recurrent cells: plain nn.Modules mapping (B, T, m) inputs to (B, T, n) states."""

from arnn.cells.antisymmetric import AntisymmetricCell, GatedAblationCell, GatedAntisymmetricCell
from arnn.cells.base import SequenceEncoder
from arnn.cells.torch_rnn import TorchRecurrentEncoder

__all__ = [
    "AntisymmetricCell",
    "GatedAblationCell",
    "GatedAntisymmetricCell",
    "SequenceEncoder",
    "TorchRecurrentEncoder",
]
