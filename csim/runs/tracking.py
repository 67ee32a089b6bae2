"""What a run tells its loggers (conf/logger: CSV, Weights & Biases), so that runs can be compared in the W&B UI.

- labels: the W&B run name is the run directory's name (`simcse_unsup-<hash>`, distinct per seed, scale and sweep
  member); the group is the setting without its seed (`<name>-<hash of the identity without seed>`), so W&B's
  grouping shows mean and spread over seeds; tags: `exp:`, `scale:`, `seed:` and, for a table cell, `table:`.
- at start, every logger gets the resolved config (after the scale layer) as hyperparameters (W&B config; the CSV
  logger's hparams.yaml);
- at the end, the scores (best dev and its step, test) go to every logger; W&B also gets them as the run summary,
  the alignment/uniformity plot and, for a table cell, its row; then the W&B run is finished, so the next run of a
  sweep or of `csim tables` (same process) starts its own W&B run instead of logging into this one.

Online or offline is W&B's own `WANDB_MODE`; without it, a run is offline unless an API key is configured
(`WANDB_API_KEY` or `wandb login`), so it never blocks on the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict


def wandb_offline() -> bool:
    """${wandb_offline:}: True when neither WANDB_MODE nor an API key says otherwise (W&B then reads WANDB_MODE)."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        import netrc

        return netrc.netrc().authenticators("api.wandb.ai") is None  # where `wandb login` stores the key
    except (OSError, netrc.NetrcParseError):
        return True


def label(cfg: DictConfig) -> DictConfig:
    """Fill cfg.tracking's run name, group and tags (cfg.run_dir must be set; not part of the run identity)."""
    from csim.runs.identity import identity

    same = cfg.copy()  # the identity at a fixed seed: keys that follow ${seed} (data.seed) drop out too
    with open_dict(same):
        same.seed = 0
    seedless = identity(same)
    setting = hashlib.sha256(json.dumps(seedless, sort_keys=True, default=str).encode()).hexdigest()[:10]
    with open_dict(cfg):
        t = cfg.tracking
        t.run_name = Path(str(cfg.run_dir)).name
        t.group = t.get("group") or f"{cfg.name}-{setting}"
        t.tags = [f"exp:{cfg.name}", f"scale:{cfg.scale.name}", f"seed:{cfg.seed}",
                  *([f"table:{t.table}"] if t.get("table") else [])]
    return cfg


def hyperparameters(cfg: DictConfig) -> dict:
    """The resolved config a logger records (the experiment's per-scale tables are already applied: dropped)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("scales", None)
    return c


def summary(metrics: dict) -> dict:
    """The scalar results of a finished run (metrics.json without the evaluation history)."""
    return {k: v for k, v in metrics.items() if k != "history" and isinstance(v, (int, float, str, bool))}


def _wandb_loggers(loggers) -> list:
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def finish_stale_wandb_run() -> None:
    """A W&B run still open in this process (an earlier run that failed) would swallow the next run's logs."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.run.finish(exit_code=1)


def start(loggers, cfg: DictConfig) -> None:
    finish_stale_wandb_run()
    params = hyperparameters(cfg)
    for lg in loggers:
        lg.log_hyperparams(params)


def end(loggers, cfg: DictConfig, metrics: dict) -> None:
    """Send the results, the plot and (a table cell's) row; close every logger; finish the W&B run."""
    scores = {k: float(v) for k, v in summary(metrics).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed",)}
    step = int(metrics.get("steps", 0))
    for lg in loggers:
        _known_csv_columns(lg)
        lg.log_metrics({f"final/{k}": v for k, v in scores.items()}, step=step)
    plot = Path(str(cfg.run_dir)) / "alignment_uniformity.png"
    for lg in _wandb_loggers(loggers):
        lg.experiment.summary.update(summary(metrics))
        if plot.exists():
            lg.log_image("alignment_uniformity", images=[str(plot)], step=step)
        t = cfg.tracking
        if t.get("table"):
            score_keys = sorted(k for k in scores if k.endswith("spearman"))
            lg.log_table("table_row", columns=["table", "row", "seed", *score_keys],
                         data=[[str(t.table), str(t.row), int(cfg.seed), *(scores[k] for k in score_keys)]], step=step)
    for lg in loggers:
        lg.save()
        lg.finalize("success")
    for lg in _wandb_loggers(loggers):
        run = lg.experiment
        where = run.url or f"offline; upload with: wandb sync {Path(run.dir).parent}"
        print(f"[csim] W&B run {run.name} (group {run.group}): {where}", flush=True)
        run.finish(exit_code=0)


def _known_csv_columns(logger) -> None:
    """A CSV logger whose metrics.csv another process wrote (ddp_spawn trains in worker processes) learns its columns,
    so that adding the final scores rewrites the file with every column instead of failing on the unknown ones."""
    writer = getattr(logger, "experiment", None) if type(logger).__name__ == "CSVLogger" else None
    path = Path(getattr(writer, "metrics_file_path", "") or "")
    if writer is None or not path.is_file():
        return
    with open(path, newline="") as f:
        header = next(iter(f), "").strip()
    for key in (k for k in header.split(",") if k and k not in writer.metrics_keys):
        writer.metrics_keys.append(key)


def failure_callback():
    """A Lightning callback that finishes the W&B run as failed when training raises (the next run starts its own).
    It lives in its own module, at module level: ddp_spawn pickles the trainer's callbacks into its workers, and
    importing this module stays free of Lightning."""
    from csim.runs.tracking_callback import FinishLoggersOnError

    return FinishLoggersOnError()
