"""Where a run's wall time goes, by phase, recorded in metrics.json as `timing` (seconds):

  startup   process start to the run's start (interpreter, imports, composition); only for a process's first run
  build     encoder, module, data module and trainer constructed (models loaded, evaluation sets read)
  data      the data module's setup: reading, augmenting and tokenising the training data (datasets.map, cached)
  dev_eval  the dev evaluations during training (STSEvaluation)
  train     the rest of fit: optimizer steps, checkpoints, logging
  test      the test tasks on the selected weights
  export    the model folder written

A resumed run counts the phases of every process, as its wall_seconds (csim.runs.checkpoints.WallClock): each
checkpoint stores the phase seconds so far (`csim_phase_seconds`, the fit in progress included) and the dev evaluations
are summed over the restored history; the time between a process's last checkpoint and its kill is lost. The table
runner sums the phases per cell.
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
        self.before: dict[str, float] = {}  # the earlier processes' phases of a resumed run
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

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        now = {**self.seconds, "fit": self.seconds.get("fit", 0.0) + time.perf_counter() - self._t}
        checkpoint["csim_phase_seconds"] = {k: self.before.get(k, 0.0) + now.get(k, 0.0) for k in {*now, *self.before}}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.before = {k: float(v) for k, v in checkpoint.get("csim_phase_seconds", {}).items()}

    def finish(self, dev_eval_seconds: float) -> dict[str, float]:
        """dev_eval_seconds: over every process of the run (the evaluation callback's restored history)."""
        for k, v in self.before.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        fit = self.seconds.pop("fit", 0.0)
        self.seconds["dev_eval"] = dev_eval_seconds
        self.seconds["train"] = max(0.0, fit - dev_eval_seconds)
        return {k: round(self.seconds[k], 2) for k in PHASES if k in self.seconds}
