"""Per-epoch reseeding, so a resumed run draws what the uninterrupted run would have drawn."""

import numpy as np
import pytorch_lightning as pl


class ReseedEachEpoch(pl.Callback):
    """Reseeds every global RNG at the start of each training epoch from (seed, epoch), so what an epoch draws
    (fresh noise padding, dropout, worker seeds) does not depend on what ran before it: a resumed run repeats it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch_seed = int(np.random.SeedSequence([self.seed, trainer.current_epoch]).generate_state(1)[0])
        pl.seed_everything(epoch_seed, workers=True, verbose=False)
