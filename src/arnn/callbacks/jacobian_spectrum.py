"""The end-to-end Jacobian's eigenvalue magnitudes tracked during training (`callbacks=[default,jacobian_spectrum]`)."""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor

from arnn.analysis.jacobian import SPECTRUM_FILE, end_to_end_jacobian, plot_training_curves, spectrum_stats
from arnn.analysis.state import encoder_input
from arnn.errors import UserError
from arnn.output import save_figure, write_csv


class JacobianSpectrumCallback(pl.Callback):
    """Tracks the end-to-end Jacobian's |λ| on a fixed validation batch during training.

    At the start of training (before the first step) and after every `every_n_epochs` epochs: computes
    `spectrum_stats` on the first `batch_size` sequences of the first validation batch, logs
    `jacobian/eig_abs_mean` and `jacobian/eig_abs_std` (with `epoch`) to the trainer's loggers, and rewrites
    `<output_dir>/jacobian_spectrum.csv`. At the end of fit, draws mean ± std vs epoch into
    `<output_dir>/jacobian_spectrum.png`, logged as an image to a WandbLogger when one is attached.
    """

    def __init__(self, output_dir: str | Path, every_n_epochs: int = 1, batch_size: int = 16) -> None:
        if every_n_epochs < 1 or batch_size < 1:
            raise UserError(
                "callbacks.jacobian_spectrum: every_n_epochs and batch_size must be >= 1, "
                f"got {every_n_epochs} and {batch_size}"
            )
        self.output_dir = Path(output_dir)
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.rows: list[dict[str, float]] = []
        self.inputs: Tensor | None = None

    @property
    def csv_path(self) -> Path:
        return self.output_dir / f"{SPECTRUM_FILE}.csv"

    @property
    def png_path(self) -> Path:
        return self.output_dir / f"{SPECTRUM_FILE}.png"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        loader = trainer.datamodule.val_dataloader() if trainer.datamodule else trainer.val_dataloaders
        batch = tuple(part[: self.batch_size] for part in next(iter(loader)))
        # The hooks Lightning runs on every batch (device transfer, the datamodule's on-device transform).
        x, *_ = pl_module._apply_batch_transfer_handler(batch)
        self.inputs = encoder_input(pl_module, x)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.record(trainer, pl_module, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epochs_done = trainer.current_epoch + 1
        if trainer.is_global_zero and epochs_done % self.every_n_epochs == 0:
            self.record(trainer, pl_module, epochs_done)

    def record(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        stats = spectrum_stats(end_to_end_jacobian(pl_module.net, self.inputs))
        self.rows.append({"epoch": epoch, "step": trainer.global_step, **stats})
        write_csv(self.rows, self.csv_path)
        metrics = {"jacobian/eig_abs_mean": stats["mean"], "jacobian/eig_abs_std": stats["std"], "epoch": epoch}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.rows:
            return
        save_figure(plot_training_curves({"": self.rows}), self.png_path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="jacobian/spectrum", images=[str(self.png_path)])
