"""The model card (README.md) of an exported model: how it was trained, on what, how it scores and under which
protocol, and which csim built it, so a model folder handed to someone else (or pushed to the Hub) explains itself."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from csim.runs.files import write_text_atomic

# the recipe's keys, in reading order (those a config does not have are left out)
RECIPE = ("name", "scale.name", "seed", "encoder._target_", "encoder.model_name", "encoder.random_init",
          "encoder.pooler", "encoder.mlp", "encoder.dropout", "augment._target_", "augment.ratio",
          "loss._target_", "loss.temperature", "loss.margin", "module._target_", "batch_size", "lr",
          "weight_decay", "warmup_ratio", "max_length", "trainer.max_steps", "trainer.precision",
          "eval.every_n_steps", "eval.select_best", "init_from")
DATA = ("data._target_", "data.source", "data.max_train_examples")


def _rows(cfg: DictConfig, keys) -> list[str]:
    out = []
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if isinstance(value, (DictConfig, list)) or OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        out.append(f"| `{key}` | `{value}` |")
    return out


def render(cfg: DictConfig, metrics: dict, version: str, commit: str) -> str:
    name = Path(str(cfg.run_dir)).name
    scores = [(k, v) for k, v in metrics.items() if k.endswith("_spearman") and isinstance(v, (int, float))]
    cap = cfg.eval.get("max_pairs")
    protocol = (f"Spearman correlation x 100 between the cosine similarity of the two sentences' embeddings and the "
                f"gold score (csim.evaluation.sts), on the {cfg.eval.get('text', 'official')} text of each task "
                f"(official: the released sentences; senteval: SentEval's tokenized copy). `best_*` is the best of the dev evaluations every "
                f"{cfg.eval.every_n_steps} steps (at step {metrics.get('best_step')}); the test scores are those of "
                + ("that best-dev checkpoint, which is also the exported model" if cfg.eval.get("select_best", True)
                   else "the final weights, which are the exported model")
                + (f". Each task was capped at its first {cap} pairs (eval.max_pairs), so these are not comparable "
                   f"to published numbers." if cap else "."))
    lines = [
        "---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
        "tags: [sentence-transformers, sentence-similarity, csim]", "---", "",
        f"# {name}", "",
        f"A sentence encoder trained by csim {version} (commit `{commit}`): experiment `{cfg.name}` at scale "
        f"`{cfg.scale.name}`, seed {cfg.seed}, {metrics.get('steps')} training steps.", "",
        "```python", "from sentence_transformers import SentenceTransformer", "",
        "model = SentenceTransformer(\"path/to/this/folder\")", "embeddings = model.encode([\"A sentence.\"])", "```",
        "", "## Scores", "", protocol, "", "| metric | value |", "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in scores], "",
        "## Recipe", "", "The resolved values that define the run (the full config is the run directory's config.yaml).",
        "", "| key | value |", "|---|---|", *_rows(cfg, RECIPE), "",
        "## Data", "", "| key | value |", "|---|---|", *_rows(cfg, DATA),
        f"| evaluation tasks | dev {list(cfg.eval.tasks)}, test {list(cfg.eval.test_tasks)} |", "",
        "## Reproduce", "", f"With csim at commit `{commit}`:", "", "```bash",
        f"csim train +exp={cfg.name} scale={cfg.scale.name} seed={cfg.seed}   # plus the overrides in the recipe",
        "```", "",
    ]
    return "\n".join(lines)


def write_model_card(model_dir: Path, cfg: DictConfig, metrics: dict, commit: str) -> Path:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("csim")
    except PackageNotFoundError:
        __version__ = "unknown"
    path = Path(model_dir) / "README.md"
    write_text_atomic(path, render(cfg, metrics, __version__, commit))
    return path
