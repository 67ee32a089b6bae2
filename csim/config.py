"""Composition: conf/ through Hydra, the scale layer and the config resolvers (the run identity is csim.runs.identity).

The scale layer. `conf/scale/<name>.yaml` holds a `set:` mapping of dotted keys, a `by_choice:` mapping
(group -> chosen option -> dotted keys inside that group, e.g. what replaces wiki1m at this scale), and an
experiment may add `scales.<name>:` entries of its own. They are applied after the experiment (which carries the paper recipe) and
under the command line, so `scale=cpu trainer.max_steps=50` means what it says. Hydra appends `+exp=` after every
primary default, so a plain config group cannot sit between the experiment and the command line; this layer does.

It is applied inside Hydra's composition (`ScaledConfigLoader`), so every config Hydra hands out has it: the run,
each job of a `-m` sweep, `--cfg job`, `--info`, and the compose API (`compose_run`, `csim tables`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from csim.runs.hardware import cpu_precision
from csim.runs.identity import model_fingerprint
from csim.runs.tracking import wandb_offline


def _pkg_path(module: str) -> str:
    """${pkg_path:NAME}: the folder of an installed Python package (e.g. data shipped in a wheel)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    return str(Path(spec.origin).parent) if spec and spec.origin else f"<package {module} not installed>"


if not OmegaConf.has_resolver("pkg_path"):
    OmegaConf.register_new_resolver("pkg_path", _pkg_path)
if not OmegaConf.has_resolver("model_fingerprint"):
    OmegaConf.register_new_resolver("model_fingerprint", model_fingerprint)
if not OmegaConf.has_resolver("cpu_precision"):
    OmegaConf.register_new_resolver("cpu_precision", cpu_precision)
if not OmegaConf.has_resolver("wandb_offline"):
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline)


def _override_keys(overrides: list[str]) -> set[str]:
    keys = set()
    for o in overrides:
        k = o.split("=", 1)[0].lstrip("+~")
        keys.add(k)
    return keys


def _has_key(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def apply_scale(cfg: DictConfig, cli_overrides: list[str] = (), choices: dict | None = None) -> DictConfig:
    """Overlay the scale's values (and the experiment's own `scales.<name>:`) under the command line.
    `choices` maps config groups to the chosen option (Hydra's runtime.choices). A value the command line set wins,
    also below a mapping the scale sets (`+encoder.random_init.num_hidden_layers=4 scale=smoke`: the smoke model with
    4 layers)."""
    name = cfg.scale.name
    layer = dict(OmegaConf.to_container(cfg.scale.set, resolve=False)) if cfg.scale.get("set") else {}
    # `set:` is generic: a key applies only where the composed config has it (encoder.model_name changes a
    # transformer encoder, not a GloVe one; data.max_train_examples nothing when data is null)
    layer = {k: v for k, v in layer.items() if _has_key(cfg, k)}
    for group, options in (cfg.scale.get("by_choice") or {}).items():
        chosen = (choices or {}).get(group)
        if chosen in options and cfg.get(group) is not None:
            for key, value in OmegaConf.to_container(options[chosen], resolve=False).items():
                layer[f"{group}.{key}"] = value
    per_exp = cfg.get("scales") or {}
    if name in per_exp and per_exp[name]:
        layer.update(OmegaConf.to_container(per_exp[name], resolve=False))
    # keys set on the command line win; a group choice there (data=nli) only picks the option the layer applies to
    cli = {k for k in _override_keys(list(cli_overrides)) if k not in (choices or {})}
    with open_dict(cfg):
        for key, value in layer.items():
            if any(key == c or key.startswith(c + ".") for c in cli):
                continue  # the command line wins
            below = [c for c in cli if c.startswith(key + ".")]  # command-line values inside this mapping
            kept = {c: OmegaConf.select(cfg, c) for c in below}
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
            for c, v in kept.items():
                OmegaConf.update(cfg, c, v, merge=False, force_add=True)
    return cfg


def _scaled_loader_class():
    """Hydra's config loader with the scale layer applied at the end of every composition. Hydra 1.3 offers no hook
    between composing a config and using it (1.4 adds the `on_compose_config` callback), and the layer depends on
    the composed config (which keys exist, which options were chosen), so no config source or defaults-list entry
    can express it; this subclass is that hook, installed by `install_scale_layer`."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    class ScaledConfigLoader(ConfigLoaderImpl):
        def _load_configuration_impl(self, *args, **kwargs):
            cfg = super()._load_configuration_impl(*args, **kwargs)
            if isinstance(cfg.get("scale"), DictConfig) and "name" in cfg.scale:
                with open_dict(cfg):
                    apply_scale(cfg, list(cfg.hydra.overrides.task), dict(cfg.hydra.runtime.choices))
            return cfg

    return ScaledConfigLoader


def install_scale_layer() -> None:
    """Make every Hydra app and compose call in this process apply the scale layer (idempotent)."""
    import hydra._internal.hydra as hydra_internal

    if getattr(hydra_internal.ConfigLoaderImpl, "__name__", "") != "ScaledConfigLoader":
        hydra_internal.ConfigLoaderImpl = _scaled_loader_class()


CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_run(overrides: list[str]) -> DictConfig:
    """Compose conf/ with `overrides`, the scale layer applied, exactly as `csim train` does; works inside a running
    Hydra app (e.g. a stage of a two-stage experiment) and outside one (tests, the tables runner)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    install_scale_layer()
    overrides = list(overrides)
    if GlobalHydra.instance().is_initialized():
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def first_stage_overrides(cfg: DictConfig) -> list[str]:
    """The overrides of the run a two-stage experiment's `init_from` names, at the same scale, seed and paths (what
    csim.train.first_stage runs, and what csim.tables.launch sends ahead of the two-stage cells)."""
    same = [f"scale={cfg.scale.name}", f"seed={cfg.seed}", f"paths.data_dir={cfg.paths.data_dir}",
            f"paths.output_root={cfg.paths.output_root}", f"paths.cache_dir={cfg.paths.cache_dir}",
            f"paths.models_dir={cfg.paths.models_dir}", f"threads={cfg.threads}"]
    return [*cfg.init_from, *same]
