"""Lightning callbacks: STS evaluation every k steps with best tracking."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from csim.evaluate import evaluate_sts, load_task


class STSEvaluation(pl.Callback):
    """Every `every_n_steps` optimizer steps and at the last step, score the dev tasks with the module's encoder and
    log `<task>_spearman`; the first task's score selects the best weights ("monitor"), which are written to
    `best_path` (encoder weights only, atomically) for the final test."""

    def __init__(self, tasks: list[str], every_n_steps: int, data_dir: str, max_pairs: int | None = None,
                 batch_size: int = 128, best_path: str | Path | None = None):
        self.tasks, self.every, self.batch_size = list(tasks), int(every_n_steps), batch_size
        self.data = {t: load_task(t, data_dir, max_pairs) for t in self.tasks}  # read once, before training
        self.monitor = f"{self.tasks[0]}_spearman"
        self.best, self.best_step, self.history = float("-inf"), -1, []
        self._last_eval_step = -1
        self.best_path = Path(best_path) if best_path else None

    def run(self, trainer, pl_module) -> dict[str, float]:
        step = trainer.global_step
        if step == self._last_eval_step:
            return {}
        self._last_eval_step = step
        t0 = time.perf_counter()
        metrics = self.score(pl_module)
        if metrics[self.monitor] > self.best:
            self.best, self.best_step = metrics[self.monitor], step
            if self.best_path is not None:
                tmp = self.best_path.with_name(self.best_path.name + ".tmp")
                torch.save(pl_module.encoder.state_dict(), tmp)
                os.replace(tmp, self.best_path)
        self.history.append({"step": step, **metrics, "eval_seconds": round(time.perf_counter() - t0, 3)})
        for k, v in metrics.items():
            pl_module.log(k, v, on_step=True, on_epoch=False, prog_bar=(k == self.monitor), batch_size=1)
        if trainer.is_global_zero:
            pretty = " ".join(f"{k}={v:.2f}" for k, v in metrics.items())
            print(f"[eval] step {step}: {pretty} (best {self.best:.2f} @ {self.best_step})", flush=True)
        return metrics

    def score(self, pl_module) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for name, ds in self.data.items():
            metrics.update(evaluate_sts(pl_module.encoder, ds, name, batch_size=self.batch_size))
        return metrics

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step > 0 and (step % self.every == 0 or (trainer.max_steps > 0 and step >= trainer.max_steps)):
            self.run(trainer, pl_module)

    def state_dict(self):
        return {"best": self.best, "best_step": self.best_step, "history": self.history,
                "last_eval_step": self._last_eval_step}

    def load_state_dict(self, state):
        self.best, self.best_step = state["best"], state["best_step"]
        self.history, self._last_eval_step = state["history"], state["last_eval_step"]
