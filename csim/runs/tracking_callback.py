"""The Lightning side of csim.runs.tracking: finish the W&B run as failed when training raises."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger


class FinishLoggersOnError(pl.Callback):
    def on_exception(self, trainer, pl_module, exception):
        for lg in (lg for lg in trainer.loggers if isinstance(lg, WandbLogger)):
            lg.experiment.finish(exit_code=1)
