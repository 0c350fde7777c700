"""scikit-learn's bundled 8×8 digits (no download) as 64-step pixel sequences: the offline default."""

import torch
from sklearn.datasets import load_digits

from arnn.data.pixel_sequences import PixelSequenceDataModule, Split, split_off


class DigitsDataModule(PixelSequenceDataModule):
    """1797 images of 8×8 pixels in 0..16; `test_size` images form the test split, drawn by `split_seed`."""

    seq_len = 64
    input_size = 1
    pixel_max = 16.0
    default_val_size = 180

    def __init__(self, test_size: int = 360, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_size = test_size

    def load(self) -> tuple[Split, Split]:
        images, labels = load_digits(return_X_y=True)
        x = torch.as_tensor(images, dtype=torch.uint8).unsqueeze(-1)
        y = torch.as_tensor(labels, dtype=torch.long)
        return split_off((x, y), self.test_size, self.split_seed + 1)
