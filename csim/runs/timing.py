"""Where a run's wall time goes, by phase, recorded in metrics.json as `timing` (seconds):

  startup   process start to the run's start (interpreter, imports, composition); only for a process's first run
  build     encoder, module, data module and trainer constructed (models loaded, evaluation sets read)
  data      the data module's setup: reading, augmenting and tokenising the training data (datasets.map, cached)
  dev_eval  the dev evaluations during training (STSEvaluation)
  train     the rest of fit: optimizer steps, checkpoints, logging
  test      the test tasks on the selected weights
  export    the model folder written

A resumed run records the phases of the process that finished it. The table runner sums them per cell.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl

PHASES = ("startup", "build", "data", "dev_eval", "train", "test", "export")
_first_run_of_process = True


def process_age() -> float:
    """Seconds since this process started (psutil, which Lightning already depends on)."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


class PhaseClock(pl.Callback):
    """Marks phases: `mark(name)` charges the time since the previous mark to `name`. As a Lightning callback it marks
    "data" when the data module's setup has run (Lightning calls the data module's setup before the callbacks') and
    "fit" when training ends; `finish(dev_eval_seconds)` splits fit into dev_eval and train."""

    def __init__(self):
        global _first_run_of_process
        self.seconds = {"startup": round(process_age(), 2)} if _first_run_of_process else {}
        _first_run_of_process = False
        self._t = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._t
        self._t = now

    def setup(self, trainer, pl_module, stage):
        if stage == "fit":
            self.mark("data")

    def on_train_end(self, trainer, pl_module):
        self.mark("fit")

    def finish(self, dev_eval_seconds: float) -> dict[str, float]:
        fit = self.seconds.pop("fit", 0.0)
        self.seconds["dev_eval"] = dev_eval_seconds
        self.seconds["train"] = max(0.0, fit - dev_eval_seconds)
        return {k: round(self.seconds[k], 2) for k in PHASES if k in self.seconds}
