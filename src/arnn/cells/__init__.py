"""Recurrent cells: plain nn.Modules mapping (B, T, m) inputs to (B, T, n) states."""

from arnn.cells.antisymmetric import AntisymmetricCell, GatedAntisymmetricCell
from arnn.cells.base import SequenceEncoder
from arnn.cells.torch_rnn import TorchRecurrentEncoder

__all__ = ["AntisymmetricCell", "GatedAntisymmetricCell", "SequenceEncoder", "TorchRecurrentEncoder"]
