"""One training run: instantiate the configured parts, fit with Lightning, test the best weights, write outputs.

The run directory is <output_root>/runs/<name>-<config hash>: the same resolved config (and seed) always maps to
the same directory, so re-running a command resumes it (from checkpoints/last.ckpt) or, once metrics.json exists,
returns the finished result without recomputing (what `csim tables` relies on).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from csim.evaluation.callback import STSEvaluation
from csim.runs.checkpoints import AtomicCheckpointIO, RNGState, TokenizerDigest, WallClock, resume_checkpoint, \
    tokenizer_digest
from csim.runs.identity import run_dir_for
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
    return cfg


def train(cfg: DictConfig) -> dict:
    """Run (or resume, or return the finished result of) the run `cfg` names, holding its directory's lock
    (csim.runs.lock) throughout: a second process on the same run directory is refused."""
    validate_fields(cfg)  # before the name becomes a path
    cfg = prepare(cfg)
    with RunLock(cfg.run_dir):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict:
    t0, commit = time.time(), git_commit()  # the code this run starts from
    run_dir = Path(cfg.run_dir)
    done = read_metrics(run_dir)
    if done is not None and cfg.resume:
        if cfg.get("export_dir") and not Path(cfg.export_dir).exists():
            copy_tree_atomic(run_dir / "model", Path(cfg.export_dir))
        print(f"[csim] {run_dir} already finished (metrics.json); not recomputing. Use resume=false to start over.")
        return done
    if not cfg.resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    torch.set_num_threads(int(cfg.threads))
    augment = build(cfg.augment) if cfg.get("augment") else None  # cheap; validates its own fields
    loss = build(cfg.loss) if cfg.get("loss") else None
    validate_config(cfg, loss)
    check_inputs(cfg)  # every evaluation and test file, before any model is built
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if cfg.get("init_from"):
        # a two-stage experiment (e.g. SBERT NLI -> STSb): run (or reuse) the first stage, start from its model
        with open_dict(cfg):
            cfg.encoder.model_name = str(Path(first_stage(cfg)["run_dir"]) / "model")
    encoder = build(cfg.encoder)
    module = build(cfg.module, encoder=encoder, loss=loss)
    # data=null: a system with no training step (avg_glove, avg_bert) reads no training data
    data = build(cfg.data, encoder=module.encoder, augment=augment) if cfg.get("data") else None
    evaluation = STSEvaluation(cfg.eval.tasks, cfg.eval.every_n_steps, cfg.paths.data_dir, cfg.eval.max_pairs,
                               cfg.eval.batch_size, best_path=run_dir / "best_encoder.pt")
    last = pl.callbacks.ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", save_top_k=0,
                                        save_last=True, enable_version_counter=False, every_n_train_steps=int(cfg.eval.every_n_steps))
    digest, wall = tokenizer_digest(module.encoder), WallClock(t0)
    trainer = pl.Trainer(**cfg.trainer, logger=build(cfg.logger),
                         callbacks=[evaluation, RNGState(), TokenizerDigest(digest), wall, last],
                         plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir), enable_model_summary=False)
    ckpt = resume_checkpoint(run_dir / "checkpoints" / "last.ckpt", digest)  # refuses foreign/damaged/other tokenizer
    if int(cfg.trainer.max_steps) != 0:  # max_steps=0: a system with no training step is evaluated as it is
        trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)  # tensors and plain values only
        if trainer.global_step == 0:  # the data modules refuse this before training; never record an empty run
            raise CsimError(f"The run {run_dir} ended after 0 training steps, so there is nothing to record; check "
                            f"the training data and batch_size={cfg.batch_size} (not one batch could be drawn).")
    else:
        evaluation.history.append({"step": 0, **evaluation.score(module)})
        evaluation.best, evaluation.best_step = evaluation.history[-1][evaluation.monitor], 0

    if cfg.eval.select_best and evaluation.best_path.exists():
        module.encoder.load_state_dict(torch.load(evaluation.best_path, weights_only=True))
    test = {}
    for name in cfg.eval.test_tasks:
        from csim.data.tasks import load_task
        from csim.evaluation.sts import evaluate_sts

        test.update(evaluate_sts(module.encoder, load_task(name, cfg.paths.data_dir, cfg.eval.max_pairs), name,
                                 batch_size=cfg.eval.batch_size))
    module.export(run_dir / "model")
    if cfg.get("export_dir"):
        copy_tree_atomic(run_dir / "model", Path(cfg.export_dir))
    metrics = {
        "name": cfg.name, "run_dir": str(run_dir), "scale": cfg.scale.name, "seed": int(cfg.seed),
        f"best_{evaluation.monitor}": evaluation.best, "best_step": evaluation.best_step,
        **test, "steps": int(trainer.global_step), "wall_seconds": round(wall.seconds(), 2),
        "git_commit": commit, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "history": evaluation.history,
    }
    write_json_atomic(run_dir / "metrics.json", metrics)
    shown = {k: v for k, v in metrics.items() if k.endswith("spearman") or k in ("best_step", "steps", "wall_seconds")}
    print(f"[csim] done: {json.dumps(shown)}\n[csim] run directory: {run_dir}", flush=True)
    return metrics


def first_stage(cfg: DictConfig) -> dict:
    """Run or reuse the run named by `init_from` (overrides), at the same scale, seed and paths."""
    from csim.config import compose_run

    same = [f"scale={cfg.scale.name}", f"seed={cfg.seed}", f"paths.data_dir={cfg.paths.data_dir}",
            f"paths.output_root={cfg.paths.output_root}", f"paths.cache_dir={cfg.paths.cache_dir}",
            f"paths.models_dir={cfg.paths.models_dir}", f"threads={cfg.threads}"]
    return train(compose_run([*cfg.init_from, *same]))
