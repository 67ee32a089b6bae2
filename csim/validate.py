"""Cheap checks of a composed config, run before any model or data is loaded. Each failure is one paragraph that
names the field and what would fix it."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from csim.errors import CsimError


def _check_mini_encoder(cfg: DictConfig) -> None:
    """A run that starts from the mini encoder (the cpu scale) before it is built: say how to build it."""
    mini = cfg.get("paths", {}).get("mini_encoder")
    for field in ("encoder", "augment"):
        node = cfg.get(field)
        name = node.get("model_name") if isinstance(node, DictConfig) else None
        if mini and name and Path(str(name)).resolve() == Path(str(mini)).resolve() \
                and not (Path(str(mini)) / "config.json").exists():
            raise CsimError(f"{field}.model_name={name}: the mini encoder this run starts from (paths.mini_encoder, "
                            f"what scale=cpu uses) is not built yet. Build it once with `make mini-encoder` (about an "
                            f"hour on 2 cores: csim train +exp=mlm_pretrain, then its report), or set CSIM_MODELS_DIR "
                            f"to a folder that holds a built mini-bert/.")


def validate_config(cfg: DictConfig, loss=None) -> None:
    _check_mini_encoder(cfg)
    steps = cfg.trainer.get("max_steps", -1)
    every = cfg.eval.every_n_steps
    if every is None or int(every) < 1:
        raise CsimError(f"eval.every_n_steps={every} must be a positive number of steps.")
    if steps is not None and steps > 0 and int(every) > int(steps):
        raise CsimError(f"eval.every_n_steps={every} is longer than the run (trainer.max_steps={steps}), so no "
                        f"checkpoint would ever be evaluated; set eval.every_n_steps to at most {steps}.")
    if loss is not None:
        if getattr(loss, "in_batch_negatives", False) and int(cfg.batch_size) < 2:
            raise CsimError(f"batch_size={cfg.batch_size}: the loss {type(loss).__name__} uses the other sentences of "
                            f"the batch as negatives, so the batch needs at least 2 examples; set batch_size>=2.")
        provides = set(cfg.data.get("provides", ["text"]))
        if getattr(loss, "needs_labels", False) and not ({"label", "score"} & provides):
            raise CsimError(f"The loss {type(loss).__name__} needs labels, but the data ({cfg.data.get('provides')}) "
                            f"has none; choose labelled data (e.g. data=nli or data=stsb_train) or another loss.")
        if getattr(loss, "needs_negatives", False) and "text_neg" not in provides:
            raise CsimError(f"The loss {type(loss).__name__} needs hard negatives, but the data "
                            f"({cfg.data.get('provides')}) has none; use data=nli (contradictions as hard negatives).")
