"""The things scripts/bench times, each built the way its users build it.

- CsimSimCSE: csim's unsupervised SimCSE step loop, composed with csim.config.compose_run and instantiated with Hydra
  exactly as csim/train.py does (SentenceModule + TrainDataModule + pytorch_lightning.Trainer), without the STS
  evaluation callback and checkpoints (they are not part of the step loop).
- STSimCSE: sentence-transformers' SentenceTransformerTrainer with MultipleNegativesRankingLoss on (s, s) pairs, with
  the same optimizer settings, batch, max length, clipping and sentences.
- CsimMLM: the MLM pretraining step of the mini encoder (csim.modules.mlm.MLMModule + MLMDataModule).
Each `window(steps)` builds a fresh trainer (so a fresh optimizer and data iterator) and returns its StepLog.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import OmegaConf

from measure import HFStepTimer, LightningStepTimer, StepLog, Stopwatch


def _lightning_window(cfg, module, data, steps: int, measure, **extra) -> StepLog:
    log = StepLog()
    kw = OmegaConf.to_container(cfg.trainer, resolve=True)
    kw.update(max_steps=steps, enable_progress_bar=False, **extra)
    trainer = pl.Trainer(**kw, logger=instantiate(cfg.logger), callbacks=[LightningStepTimer(log, measure)],
                         enable_checkpointing=False, enable_model_summary=False, default_root_dir=cfg.run_dir)
    trainer.fit(module, datamodule=data)
    return log


def _simcse_tokens(batch) -> dict:
    ids = batch["tokens"]["input_ids"]
    return {"rows": int(ids.shape[0]), "length": int(ids.shape[1]),
            "real_tokens": int(batch["tokens"]["attention_mask"].sum())}


class CsimSimCSE:
    """csim train +exp=simcse_unsup scale=cpu encoder.model_name=<model_path>, as a step loop."""

    def __init__(self, model_path: str, n_train: int, threads: int, seed: int, output_root: str,
                 extra_overrides: tuple[str, ...] = ()):
        from csim.config import compose_run
        from csim.train import prepare

        self.cfg = prepare(compose_run([
            "+exp=simcse_unsup", "scale=cpu", f"encoder.model_name={model_path}",
            f"data.max_train_examples={n_train}", f"threads={threads}", f"seed={seed}",
            f"paths.output_root={output_root}",
            # the encoder folder's own dropout, as sentence-transformers loads it (the cpu scale's SimCSE 0.2 would
            # make the two sides train different models)
            "encoder.dropout=null", *extra_overrides]))
        cfg = self.cfg
        # encode as sentence-transformers does here (max_seq_length = the recipe's max_length), not at the evaluation
        # length (every token) csim's evaluator uses: the comparison is of the same work
        cfg.encoder.eval_max_length = cfg.max_length
        pl.seed_everything(seed, workers=True, verbose=False)
        augment, loss = instantiate(cfg.augment), instantiate(cfg.loss)
        self.module = instantiate(cfg.module, encoder=instantiate(cfg.encoder), loss=loss)
        self.data = instantiate(cfg.data, encoder=self.module.encoder, augment=augment)
        t0 = time.perf_counter()
        self.data.setup("fit")  # augment + tokenise once (datasets.map, cached), as a run does before its first step
        self.setup_seconds = time.perf_counter() - t0
        self.batch_size = int(cfg.batch_size)

    def sentences(self) -> list[str]:
        """The training sentences the data module reads (its source, first data.max_train_examples lines)."""
        raw = instantiate(self.cfg.data.source)()
        n = self.cfg.data.max_train_examples
        return list(raw.select(range(min(n, len(raw))))["text"])

    def window(self, steps: int) -> StepLog:
        return _lightning_window(self.cfg, self.module, self.data, steps, _simcse_tokens)

    @property
    def encoder(self):
        return self.module.encoder


def _st_imports():
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    try:  # sentence-transformers >= 6 moved the losses; older releases have them at sentence_transformers.losses
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    return SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments, MultipleNegativesRankingLoss


class STSimCSE:
    """Unsupervised SimCSE the sentence-transformers way: MNRL(scale = 1/temperature = 20) on (s, s) pairs; the
    optimizer, LR, schedule, clipping, batch and max length taken from csim's composed config `cfg`."""

    def __init__(self, model_path: str, sentences: list[str], cfg, optim: str, output_dir: str):
        import datasets

        SentenceTransformer, _, _, MNRL = _st_imports()
        self.model = SentenceTransformer(model_path, device="cpu")
        self.model.max_seq_length = int(cfg.max_length)
        self.scale = 1.0 / float(cfg.loss.temperature)
        self.loss = MNRL(self.model, scale=self.scale)
        self.dataset = datasets.Dataset.from_dict({"anchor": sentences, "positive": sentences})
        self.cfg, self.optim, self.output_dir = cfg, optim, output_dir
        self.batch_size = int(cfg.batch_size)

    def window(self, steps: int) -> StepLog:
        from transformers import PrinterCallback

        _, Trainer, Args, _ = _st_imports()
        cfg, log = self.cfg, StepLog()
        args = Args(output_dir=self.output_dir, per_device_train_batch_size=self.batch_size,
                    learning_rate=float(cfg.lr), weight_decay=float(cfg.weight_decay), warmup_steps=0,
                    lr_scheduler_type="linear", max_grad_norm=float(cfg.optim.gradient_clip_val), optim=self.optim,
                    max_steps=steps, logging_steps=int(cfg.trainer.log_every_n_steps), save_strategy="no",
                    report_to="none", disable_tqdm=True, dataloader_drop_last=True, seed=int(cfg.seed), use_cpu=True)
        trainer = Trainer(model=self.model, args=args, train_dataset=self.dataset, loss=self.loss,
                          callbacks=[HFStepTimer(log)])
        trainer.remove_callback(PrinterCallback)  # the end-of-train metrics dict, printed once per window
        trainer.train()
        return log

    def encode_timed(self, sentences: list[str], batch_size: int) -> Stopwatch:
        with Stopwatch() as sw:
            self.model.encode(sentences, batch_size=batch_size, show_progress_bar=False)
        return sw


def csim_encode_timed(encoder, sentences: list[str], batch_size: int) -> Stopwatch:
    """csim's evaluator path: SentenceEncoder.encode (deduplicated, length-sorted, inference mode)."""
    with Stopwatch() as sw:
        encoder.encode(sentences, batch_size=batch_size)
    return sw


def _mlm_tokens(batch) -> dict:
    ids = batch["input_ids"]
    return {"rows": int(ids.shape[0]), "length": int(ids.shape[1]), "real_tokens": int(batch["attention_mask"].sum()),
            "masked": int((batch["labels"] != -100).sum()),
            "masked_per_row": int((batch["labels"] != -100).sum(1).max())}


class CsimMLM:
    """csim train +exp=mlm_pretrain (the mini encoder's shape, batch 128, max length 32) as a step loop; GloVe
    initialisation is off (it changes initial values, not the step), and validation is off (not part of the step)."""

    def __init__(self, n_train: int, threads: int, seed: int, output_root: str, extra_overrides: tuple[str, ...] = ()):
        from csim.config import compose_run
        from csim.train import prepare

        self.cfg = prepare(compose_run([
            "+exp=mlm_pretrain", f"data.max_train_examples={n_train}", "module.glove_init=false",
            f"threads={threads}", f"seed={seed}", f"paths.output_root={output_root}", *extra_overrides]))
        cfg = self.cfg
        # encode as sentence-transformers does here (max_seq_length = the recipe's max_length), not at the evaluation
        # length (every token) csim's evaluator uses: the comparison is of the same work
        cfg.encoder.eval_max_length = cfg.max_length
        pl.seed_everything(seed, workers=True, verbose=False)
        self.module = instantiate(cfg.module, encoder=instantiate(cfg.encoder), loss=None)
        self.data = instantiate(cfg.data, encoder=self.module.encoder, augment=None)
        t0 = time.perf_counter()
        self.data.setup("fit")
        self.setup_seconds = time.perf_counter() - t0
        self.batch_size = int(cfg.batch_size)

    def window(self, steps: int) -> StepLog:
        return _lightning_window(self.cfg, self.module, self.data, steps, _mlm_tokens, limit_val_batches=0)
