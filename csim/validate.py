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


# (dotted key, "int" | "float", test, what a valid value is); a key absent from the composed config is skipped
_NUMBERS = (
    ("seed", "int", lambda v: 0 <= v < 2**32, "a whole number in [0, 2^32)"),
    ("threads", "int", lambda v: v >= 1, "the number of torch threads, 1 or more"),
    ("batch_size", "int", lambda v: v >= 1, "a whole number of examples, 1 or more"),
    ("lr", "float", lambda v: 0 < v < float("inf"), "a learning rate > 0, e.g. 3e-5"),
    ("weight_decay", "float", lambda v: 0 <= v < float("inf"), "a number >= 0"),
    ("warmup_ratio", "float", lambda v: 0 <= v <= 1, "a fraction of the steps in [0, 1]"),
    ("max_length", "int", lambda v: v >= 1, "a number of tokens, 1 or more"),
    ("encoder.max_length", "int", lambda v: v >= 1, "a number of tokens, 1 or more"),
    ("trainer.max_steps", "int", lambda v: v >= -1, "a number of steps (0: evaluate only; -1: bounded by epochs)"),
    ("trainer.max_epochs", "int", lambda v: v >= -1, "a number of epochs"),
    ("eval.every_n_steps", "int", lambda v: v >= 1, "a positive number of steps"),
    ("eval.batch_size", "int", lambda v: v >= 1, "a whole number of pairs, 1 or more"),
    ("eval.max_pairs", "int", lambda v: v >= 1, "null (all pairs) or a number of pairs, 1 or more"),
    ("data.max_train_examples", "int", lambda v: v >= 1, "null (all) or a number of examples, 1 or more"),
    ("data.num_workers", "int", lambda v: v >= 0, "a number of loader processes, 0 or more"),
)
_NULLABLE = ("eval.max_pairs", "data.max_train_examples", "trainer.max_epochs")
# where an instantiated `_target_` may come from (a command-line `_target_` could otherwise call any importable
# function, e.g. builtins.open or os.system); allow_any_target=true lifts it for a deliberate extension
TARGET_PREFIXES = ("csim.", "pytorch_lightning.", "lightning.", "torch.nn.", "torch.optim.")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+=,@")


def validate_fields(cfg: DictConfig) -> None:
    """Checks that need nothing but the config, run before anything is read or written: the run name, the numeric
    settings, the evaluation task lists and where `_target_`s point. Each failure names the field and the fix."""
    from omegaconf import OmegaConf

    name = str(cfg.get("name"))
    if not name or name.startswith(".") or not set(name) <= _NAME_CHARS:
        raise CsimError(f"name={name!r}: a run's name becomes its directory name under paths.output_root/runs, so it "
                        f"must be letters, digits and _-.+=,@ only, not start with a dot, and hold no '/' (a path "
                        f"like ../x or /x would write outside the output root); choose a plain name.")
    absent = object()
    for key, kind, ok, valid in _NUMBERS:
        value = OmegaConf.select(cfg, key, default=absent, throw_on_missing=False)
        if value is absent or (value is None and key in _NULLABLE):
            continue  # a group without this key (data=null, a GloVe encoder), or an optional setting left null
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if kind == "int" and isinstance(number, float):
            number = int(number) if number.is_integer() else None
        if number is None or not ok(number):
            raise CsimError(f"{key}={value!r} is not valid: it must be {valid}. Fix the value on the command line "
                            f"({key}=...) or in the experiment's yaml.")
    tasks, tests = cfg.eval.get("tasks"), cfg.eval.get("test_tasks")
    if not OmegaConf.is_list(tasks) or len(tasks) == 0:
        raise CsimError(f"eval.tasks={tasks!r}: give a list of at least one evaluation task, e.g. eval.tasks=[stsb_dev]; "
                        f"the first one selects the best checkpoint.")
    if tests is not None and not OmegaConf.is_list(tests):
        raise CsimError(f"eval.test_tasks={tests!r}: give a list of tasks, e.g. eval.test_tasks=[stsb_test] (or [] "
                        f"for none).")
    if not cfg.get("allow_any_target"):
        for where, target in _targets(OmegaConf.to_container(cfg, resolve=False)):
            if not isinstance(target, str) or not target.startswith(TARGET_PREFIXES):
                raise CsimError(f"{where}={target!r}: csim instantiates only classes and functions of "
                                f"{', '.join(p + '*' for p in TARGET_PREFIXES)} (a _target_ elsewhere could run any "
                                f"code). Use one of csim's options, or pass allow_any_target=true if you mean it.")


def _targets(node, where: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{where}.{k}" if where else str(k)
            if k == "_target_":
                yield path, v
            else:
                yield from _targets(v, path)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{where}[{i}]")


def check_inputs(cfg: DictConfig) -> None:
    """Read every evaluation and test task the run will need (files present and well-formed) before the first
    step, so that a missing or broken test file fails now rather than after the whole training."""
    from csim.data.tasks import load_task

    for name in [*cfg.eval.tasks, *(cfg.eval.get("test_tasks") or [])]:
        load_task(str(name), cfg.paths.data_dir, cfg.eval.get("max_pairs"))
