"""Lightning callbacks: STS evaluation every k steps with best tracking, alignment/uniformity at every evaluation and
their trajectory plotted into the run directory at the end of training."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from csim.data.tasks import load_task
from csim.evaluation.sts import evaluate_sts, geometry_only, scoring_precision

PLOT_NAME = "alignment_uniformity.png"


class STSEvaluation(pl.Callback):
    """Every `every_n_steps` optimizer steps and at the last step, score the dev tasks with the module's encoder and
    log `<task>_spearman`; the first task's score selects the best weights ("monitor"), which are written to
    `best_path` (encoder weights only, atomically) for the final test.

    geometry_task: the STS set whose alignment and uniformity (csim.evaluation.geometry; SimCSE §5) are logged at every
    evaluation as `<task>_alignment` / `<task>_uniformity` (STS-B dev by default; None: off). They come from the same
    embeddings as its Spearman when it is also an evaluated task. At the end of training the trajectory is plotted to
    `plot_path` (default: <trainer.default_root_dir>/alignment_uniformity.png, the run directory).

    Under data parallelism only global rank 0 evaluates (the weights are the same on every rank) and writes; the
    others go on to the next step's gradient all-reduce and wait there. `state_path`: rank 0 also writes its state
    (best, history, last step) there after each evaluation, which `restore()` reads back in the launching process
    when training ran in spawned workers (ddp_spawn returns the weights, not the callbacks' state)."""

    def __init__(self, tasks: list[str], every_n_steps: int, data_dir: str, max_pairs: int | None = None,
                 batch_size: int = 128, best_path: str | Path | None = None, geometry_task: str | None = "stsb_dev",
                 plot_path: str | Path | None = None, text: str = "official", state_path: str | Path | None = None,
                 precision: str | None = None):
        self.tasks, self.every, self.batch_size = list(tasks), int(every_n_steps), batch_size
        self.precision = precision  # eval.precision: csim.evaluation.sts.scoring_precision
        # read once, before training; text: the released sentences or SentEval's tokenized copy (csim.data.tasks)
        self.data = {t: load_task(t, data_dir, max_pairs, text=text) for t in self.tasks}
        self.geometry_task = geometry_task
        if geometry_task and geometry_task not in self.data:
            self.geometry_data = load_task(geometry_task, data_dir, max_pairs, text=text)
        else:
            self.geometry_data = None
        self.plot_path = Path(plot_path) if plot_path else None
        self.monitor = f"{self.tasks[0]}_spearman"
        self.best, self.best_step, self.history = float("-inf"), -1, []
        self._last_eval_step = -1
        self.best_path = Path(best_path) if best_path else None
        self.eval_seconds = 0.0  # spent evaluating, over a resumed run's processes (metrics.json `timing`)
        self.state_path = Path(state_path) if state_path else None
        self.last_step = 0

    def run(self, trainer, pl_module, epoch_end: bool = False) -> dict[str, float]:
        step = trainer.global_step
        if step == self._last_eval_step or not trainer.is_global_zero:
            return {}
        self._last_eval_step = step
        t0 = time.perf_counter()
        metrics = self.score(pl_module)
        if metrics[self.monitor] > self.best:
            self.best, self.best_step = metrics[self.monitor], step
            if self.best_path is not None:
                tmp = self.best_path.with_name(f"{self.best_path.name}.tmp{os.getpid()}")
                torch.save(pl_module.encoder.state_dict(), tmp)
                os.replace(tmp, self.best_path)
        took = time.perf_counter() - t0
        self.eval_seconds += took
        self.history.append({"step": step, **metrics, "eval_seconds": round(took, 3)})
        self.last_step = step
        if self.state_path is not None:
            from csim.runs.files import write_json_atomic

            write_json_atomic(self.state_path, {**self.state_dict(), "last_step": step})
        for k, v in metrics.items():
            pl_module.log(k, v, on_step=not epoch_end, on_epoch=epoch_end, prog_bar=(k == self.monitor), batch_size=1,
                          rank_zero_only=True)
        pretty = " ".join(f"{k}={v:.2f}" for k, v in metrics.items())
        print(f"[eval] step {step}: {pretty} (best {self.best:.2f} @ {self.best_step})", flush=True)
        return metrics

    def restore(self) -> None:
        """Read the state rank 0 left at `state_path` when this process's own copy saw no evaluation (ddp_spawn)."""
        import json

        if self.history or self.state_path is None or not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text())
        self.load_state_dict(state)
        self.last_step = int(state.get("last_step", 0))

    def score(self, pl_module) -> dict[str, float]:
        encoder = pl_module.encoder
        geometry = bool(self.geometry_task) and hasattr(encoder, "encode")  # a bi-encoder: embeddings to measure
        metrics: dict[str, float] = {}
        with scoring_precision(self.precision, encoder):
            for name, ds in self.data.items():
                metrics.update(evaluate_sts(encoder, ds, name, batch_size=self.batch_size,
                                            geometry=geometry and name == self.geometry_task))
            if geometry and self.geometry_data is not None:
                metrics.update(geometry_only(encoder, self.geometry_data, self.geometry_task,
                                             batch_size=self.batch_size))
        return metrics

    def on_fit_end(self, trainer, pl_module):
        # on_fit_end, not on_train_end: a run killed after its last step resumes with nothing left to train, and
        # Lightning then skips on_train_end, which lost the plot
        if not (self.geometry_task and trainer.is_global_zero):
            return
        from csim.evaluation.geometry import plot_trajectory

        path = self.plot_path or Path(trainer.default_root_dir) / PLOT_NAME
        if plot_trajectory(self.history, path, prefix=self.geometry_task):
            print(f"[eval] alignment/uniformity trajectory: {path}", flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step > 0 and (step % self.every == 0 or (trainer.max_steps > 0 and step >= trainer.max_steps)):
            self.run(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        # epoch-bounded runs (trainer.max_epochs, e.g. SBERT's 1 NLI epoch) are evaluated at each epoch's end too,
        # as sentence-transformers' fit() does; a step already evaluated is not evaluated again. Step-bounded runs
        # keep their every-N-steps cadence across epoch boundaries.
        if trainer.global_step > 0 and trainer.max_steps < 0:
            self.run(trainer, pl_module, epoch_end=True)

    def state_dict(self):
        return {"best": self.best, "best_step": self.best_step, "history": self.history,
                "last_eval_step": self._last_eval_step}

    def load_state_dict(self, state):
        self.best, self.best_step = state["best"], state["best_step"]
        self.history, self._last_eval_step = state["history"], state["last_eval_step"]
        self.eval_seconds = sum(h.get("eval_seconds", 0.0) for h in self.history)  # a resumed run's earlier evaluations
