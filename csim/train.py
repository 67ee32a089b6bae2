"""One training run: instantiate the configured parts, fit with Lightning, test the best weights, write outputs.

The run directory is <output_root>/runs/<name>-<config hash>: the same resolved config (and seed) always maps to
the same directory, so re-running a command resumes it (from checkpoints/last.ckpt) or, once metrics.json exists,
returns the finished result without recomputing (what `csim tables` relies on).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from csim.evaluation.callback import STSEvaluation
from csim.evaluation.sts import suite_average
from csim import verbosity
from csim.runs import tracking
from csim.runs.checkpoints import AtomicCheckpointIO, RNGState, TokenizerDigest, WallClock, resume_checkpoint, \
    tokenizer_digest
from csim.runs.timing import PhaseClock
from csim.runs.identity import run_dir_for
from csim.runs.model_card import write_model_card
from csim.errors import CsimError
from csim.runs.files import copy_tree_atomic, git_commit, read_metrics, write_json_atomic, write_text_atomic
from csim.runs.lock import RunLock
from csim.validate import check_inputs, validate_config, validate_fields


def build(node, **kwargs):
    """hydra.utils.instantiate, with a CsimError raised inside a constructor surfacing as itself (Hydra wraps it)."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, CsimError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def prepare(cfg: DictConfig) -> DictConfig:
    with open_dict(cfg):
        cfg.run_dir = str(run_dir_for(cfg))
    return tracking.label(cfg)


def trainer_precision(value, accelerator="auto"):
    """trainer.precision=mixed (the paper scale): bf16-mixed on a GPU that supports bf16, 16-mixed on other GPUs
    (SimCSE's scripts: --fp16); on a CPU what the cpu scale measures (csim/runs/hardware.py: bf16-mixed where this
    CPU's bf16 GEMM is clearly faster, an AMX Xeon; 32-true elsewhere), so `make mini-encoder` (paper scale, a CPU
    build) keeps the bf16 speed its one-hour budget was measured with. Any other value is Lightning's own."""
    if str(value) != "mixed":
        return value
    if str(accelerator) == "cpu" or not torch.cuda.is_available():
        from csim.runs.hardware import cpu_precision

        return cpu_precision("auto")
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def _rank() -> int:
    """This process's global rank as the launcher set it (RANK / LOCAL_RANK / SLURM_PROCID; 0 without one). Ranks
    1..N-1 started by Lightning's subprocess launcher or torchrun run this file from the top, like rank 0."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _barrier() -> None:
    """Wait for every rank where training left a process group (subprocess launcher, torchrun); else nothing."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def train(cfg: DictConfig) -> dict:
    """Train (or resume, or return the finished result of) the run `cfg` names, holding its directory's lock
    (csim.runs.lock) throughout: a second process on the same run directory is refused. Under data parallelism every
    rank trains; rank 0 alone holds the lock, evaluates, keeps the best weights, tests, exports and writes; the other
    ranks wait for it after training and return only {"run_dir": ...}."""
    validate_fields(cfg)  # before the name becomes a path
    if _rank() > 0 and not ({"TORCHELASTIC_RUN_ID", "SLURM_PROCID"} & set(os.environ)):
        from csim.runs.processes import die_with_parent

        die_with_parent()  # a rank started by Lightning's subprocess launcher: it must not outlive rank 0
    cfg = prepare(cfg)
    with RunLock(cfg.run_dir, enabled=_rank() == 0):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict:
    t0, commit, clock = time.time(), git_commit(), PhaseClock()  # the code this run starts from
    verbosity.configure()
    run_dir = Path(cfg.run_dir)
    done = read_metrics(run_dir)
    if done is not None and cfg.resume:
        if cfg.get("export_dir") and not Path(cfg.export_dir).exists():
            copy_tree_atomic(run_dir / "model", Path(cfg.export_dir))
        print(f"[csim] {run_dir} already finished (metrics.json); not recomputing. Use resume=false to start over.")
        return done
    if not cfg.resume and _rank() == 0:
        shutil.rmtree(run_dir, ignore_errors=True)
    torch.set_num_threads(int(cfg.threads))
    augment = build(cfg.augment) if cfg.get("augment") else None  # cheap; validates its own fields
    loss = build(cfg.loss) if cfg.get("loss") else None
    validate_config(cfg, loss)
    check_inputs(cfg)  # every evaluation and test file, before any model is built

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if cfg.get("init_from"):
        # a two-stage experiment (e.g. SBERT NLI -> STSb): run (or reuse) the first stage, start from its model
        with open_dict(cfg):
            cfg.encoder.model_name = str(Path(first_stage(cfg)["run_dir"]) / "model")
    encoder = build(cfg.encoder)
    module = build(cfg.module, encoder=encoder, loss=loss)
    # data=null: a system with no training step (avg_glove, avg_bert) reads no training data
    data = build(cfg.data, encoder=module.encoder, augment=augment) if cfg.get("data") else None
    # the run directory appears only once the config is valid and the model and data are loaded
    run_dir.mkdir(parents=True, exist_ok=True)
    if _rank() == 0:
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    evaluation = STSEvaluation(cfg.eval.tasks, cfg.eval.every_n_steps, cfg.paths.data_dir, cfg.eval.max_pairs,
                               cfg.eval.batch_size, best_path=run_dir / "best_encoder.pt", text=cfg.eval.text,
                               state_path=run_dir / "evaluation.json", precision=cfg.eval.get("precision"))
    last = pl.callbacks.ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", save_top_k=0,
                                        save_last=True, enable_version_counter=False, every_n_train_steps=int(cfg.eval.every_n_steps))
    loggers = [build(cfg.logger)] if cfg.get("logger") and _rank() == 0 else []
    tracking.start(loggers, cfg)
    options = {k: v for k, v in cfg.trainer.items() if v is not None}  # null: Lightning's default (strategy)
    options["precision"] = trainer_precision(options.get("precision", "32-true"), options.get("accelerator", "auto"))
    digest, wall = tokenizer_digest(module.encoder), WallClock(t0)
    trainer = pl.Trainer(**options, logger=loggers or False, plugins=[AtomicCheckpointIO()],
                         callbacks=[evaluation, RNGState(), TokenizerDigest(digest), wall, last, clock,
                                    tracking.failure_callback()],
                         default_root_dir=str(run_dir), enable_model_summary=False)
    clock.mark("build")
    # refuses a foreign (pickled code), damaged or other-tokenizer checkpoint with a clear error
    ckpt = resume_checkpoint(run_dir / "checkpoints" / "last.ckpt", digest) if cfg.resume else None
    if int(cfg.trainer.max_steps) != 0:  # max_steps=0: a system with no training step is evaluated as it is
        trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)  # tensors and plain values only
        if trainer.global_rank != 0 or _rank() != 0:
            _barrier()  # ranks 1..N-1 (subprocess launcher, torchrun) wait until rank 0 has finished the run
            return {"run_dir": str(run_dir)}  # (a first stage's model/ is then there for the second stage)
        evaluation.restore()  # ddp_spawn: training ran in worker processes; their rank 0 left its state on disk
        if max(int(trainer.global_step), evaluation.last_step) == 0:  # the data modules refuse this earlier
            raise CsimError(f"The run {run_dir} ended after 0 training steps, so there is nothing to record; check "
                            f"the training data and batch_size={cfg.batch_size} (not one batch could be drawn).")
    elif _rank() != 0:
        return {"run_dir": str(run_dir)}
    else:
        evaluation.history.append({"step": 0, **evaluation.score(module)})
        evaluation.best, evaluation.best_step = evaluation.history[-1][evaluation.monitor], 0
        clock.mark("fit")

    if cfg.eval.select_best and evaluation.best_path.exists():
        module.encoder.load_state_dict(torch.load(evaluation.best_path, weights_only=True))
    test = {}
    from csim.data.tasks import load_task
    from csim.evaluation.sts import evaluate_sts, scoring_precision

    for name in cfg.eval.test_tasks:
        with scoring_precision(cfg.eval.get("precision"), module.encoder):
            test.update(evaluate_sts(module.encoder, load_task(name, cfg.paths.data_dir, cfg.eval.max_pairs,
                                                               text=cfg.eval.text), name,
                                     batch_size=cfg.eval.batch_size))
    clock.mark("test")
    module.export(run_dir / "model")
    clock.mark("export")
    avg7 = suite_average(test)  # SimCSE Table 5's 7-task average (SentEval protocol), when all seven were tested
    metrics = {
        "name": cfg.name, "run_dir": str(run_dir), "scale": cfg.scale.name, "seed": int(cfg.seed),
        f"best_{evaluation.monitor}": evaluation.best, "best_step": evaluation.best_step,
        **test, **({"sts7_senteval_avg": avg7} if avg7 is not None else {}),
        "steps": max(int(trainer.global_step), evaluation.last_step), "wall_seconds": round(wall.seconds(), 2),
        "timing": clock.finish(evaluation.eval_seconds),
        "precision": str(trainer.precision), "devices": int(trainer.world_size), "git_commit": commit,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "history": evaluation.history,
    }
    write_model_card(run_dir / "model", cfg, metrics, commit)
    if cfg.get("export_dir"):
        copy_tree_atomic(run_dir / "model", Path(cfg.export_dir))
    write_json_atomic(run_dir / "metrics.json", metrics)
    tracking.end(loggers, cfg, metrics)  # after the result is safe: a logger's failure cannot lose it
    if int(cfg.trainer.max_steps) != 0:
        _barrier()  # the other ranks may go on (to a second stage, which reads this run's model/)
    shown = {k: v for k, v in metrics.items() if k.endswith("spearman") or k in ("best_step", "steps", "wall_seconds")}
    print(f"[csim] done: {json.dumps(shown)}\n[csim] run directory: {run_dir}", flush=True)
    return metrics


def first_stage(cfg: DictConfig) -> dict:
    """Run or reuse the run named by `init_from` (overrides), at the same scale, seed and paths."""
    from csim.config import compose_run, first_stage_overrides

    return train(compose_run(first_stage_overrides(cfg)))
