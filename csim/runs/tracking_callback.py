"""The Lightning side of csim.runs.tracking: finish the W&B run as failed when training raises."""

from __future__ import annotations

import pytorch_lightning as pl

from csim.runs.tracking import _wandb_loggers


class FinishLoggersOnError(pl.Callback):
    def on_exception(self, trainer, pl_module, exception):
        for lg in _wandb_loggers(trainer.loggers):
            lg.experiment.finish(exit_code=1)
