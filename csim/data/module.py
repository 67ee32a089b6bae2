"""The training data module: read (once), augment (once, seeded per example), tokenise (once), all through
`datasets.map` with explicit fingerprints so the results are cached; batches are padded dynamically and every view
of a batch is padded together so the encoder sees them in one forward pass."""

from __future__ import annotations

import hashlib
import json
from typing import Callable

import datasets
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from csim.data.sampler import ResumableRandomSampler
from csim.errors import CsimError


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def example_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index) % (2**63)


class TrainDataModule(pl.LightningDataModule):
    """source: a reader (partial) returning a Dataset with "text" and optional text_pos / text_neg / label / score /
    following columns. provides: the columns that source yields (checked against the loss and augmentation)."""

    VIEW_COLUMNS = ("view1", "view2", "neg")

    def __init__(self, source: Callable[[], datasets.Dataset], provides: list[str], encoder=None, augment=None,
                 batch_size: int = 64, seed: int = 42, max_train_examples: int | None = None, num_workers: int = 0,
                 label_column: str | None = None, cache_dir: str = "cache"):
        super().__init__()
        self.source, self.provides = source, list(provides)
        self.encoder, self.augment = encoder, augment
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.max_train_examples, self.label_column = max_train_examples, label_column
        self.cache_dir = cache_dir
        self.train_set = None

    def _augment_fingerprint(self) -> str:
        state = {k: v for k, v in vars(self.augment).items() if isinstance(v, (int, float, str, bool, list, tuple, type(None)))}
        return _key(type(self.augment).__qualname__, state)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        raw = self.source()
        if self.max_train_examples is not None and len(raw) > self.max_train_examples:
            raw = raw.select(range(self.max_train_examples))
        for col in getattr(self.augment, "needs", ()):
            if col not in raw.column_names:
                raise CsimError(f"The augmentation {type(self.augment).__name__} needs a {col!r} column that the "
                                f"training data does not have (columns: {raw.column_names}); pick data that provides it.")
        seed = self.seed
        augment = self.augment
        keep = [c for c in ("label", "score") if c in raw.column_names]

        def do_augment(batch, indices):
            out = augment(batch, [example_seed(seed, i) for i in indices])
            out.update({c: batch[c] for c in keep})
            return out

        fp = _key(raw._fingerprint, self._augment_fingerprint(), seed)
        views = raw.map(do_augment, batched=True, with_indices=True, remove_columns=raw.column_names,
                        new_fingerprint=fp, desc="augment")
        encoder = self.encoder
        present = [c for c in self.VIEW_COLUMNS if c in views.column_names]

        def do_tokenize(batch):
            out = {}
            for c in present:
                for k, v in encoder.tokenize(batch[c]).items():
                    out[f"{c}.{k}"] = v
            return out

        tfp = _key(fp, encoder.token_key())
        self.train_set = views.map(do_tokenize, batched=True, remove_columns=present, new_fingerprint=tfp,
                                   desc="tokenize")
        self.view_columns = present

    def collate(self, rows: list[dict]) -> dict:
        views = []
        for c in self.view_columns:
            pre = c + "."
            views.extend({k[len(pre):]: v for k, v in r.items() if k.startswith(pre)} for r in rows)
        batch = {"tokens": self.encoder.collate(views), "n_views": len(self.view_columns)}
        if "label" in rows[0]:
            batch["labels"] = torch.tensor([r["label"] for r in rows])
        elif "score" in rows[0]:
            batch["labels"] = torch.tensor([r["score"] for r in rows], dtype=torch.float)
        return batch

    def train_dataloader(self) -> DataLoader:
        # one process keeps the last, partial batch, as HF Trainer (dataloader_drop_last=False, SimCSE's trainer) and
        # sentence-transformers' DataLoader(shuffle=True, batch_size=16) do; under data parallelism it is dropped,
        # since gathering in-batch negatives needs the same batch size on every rank
        return DataLoader(self.train_set, collate_fn=self.collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, **resumable_sampling(self, keep_last=True))


def describe_source(source) -> str:
    """A training source (a partial of a reader) in words, for error messages: its reader and files or hub name."""
    keywords = getattr(source, "keywords", {}) or {}
    shown = {k: v for k, v in keywords.items() if k not in ("data_dir", "cache_dir") and v is not None}
    name = getattr(getattr(source, "func", source), "__name__", type(source).__name__)
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def device_batch_size(batch_size: int, world_size: int = 1, accumulate: int = 1) -> int:
    """`batch_size` is the global batch: the examples of one optimizer step, over every device and every
    accumulated micro-batch (as the papers state it: SimCSE's 64 / 512). Each device's loader takes
    batch_size / (world_size * accumulate); in-batch-negative losses gather the devices' batches back together
    (csim.losses.gather), so each anchor sees batch_size / accumulate - 1 negatives."""
    parts = int(world_size) * int(accumulate)
    if int(batch_size) % parts:
        raise CsimError(f"batch_size={batch_size} is the global batch (all devices, all accumulated batches) and "
                        f"must divide evenly over {world_size} device(s) x trainer.accumulate_grad_batches="
                        f"{accumulate}; set batch_size to a multiple of {parts} (e.g. {parts * max(1, int(batch_size) // parts)}).")
    return int(batch_size) // parts


def resumable_sampling(dm: pl.LightningDataModule, keep_last: bool = False) -> dict:
    """Batch size, sampler, generator and drop_last for a training DataLoader: a seeded permutation per epoch, split
    over the ranks, that, when the trainer was restored from a checkpoint, continues the epoch where that checkpoint
    left it (the restored step says where: each optimizer step consumed `accumulate` batches on every rank).
    keep_last: keep each epoch's last, partial batch when there is one process (never under data parallelism)."""
    if len(dm.train_set) < dm.batch_size:  # not one full batch: a run of partial batches, or of 0 steps
        raise CsimError(f"The training data ({describe_source(dm.source)}) has {len(dm.train_set)} examples (after "
                        f"data.max_train_examples={getattr(dm, 'max_train_examples', None)}), fewer than "
                        f"batch_size={dm.batch_size}, so not one full batch can be drawn: every step would see fewer "
                        f"examples than the recipe's batch, and where partial batches are dropped (data parallelism, "
                        f"MLM pretraining) the run would train 0 steps. Give it more data or set batch_size to at most {len(dm.train_set)}.")
    trainer = dm.trainer
    world = int(trainer.world_size) if trainer is not None else 1
    rank = int(trainer.global_rank) if trainer is not None else 0
    accumulate = int(trainer.accumulate_grad_batches) if trainer is not None else 1
    per_device = device_batch_size(dm.batch_size, world, accumulate)
    batches_done = (trainer.global_step if trainer is not None else 0) * accumulate
    keep = keep_last and world == 1
    per_rank = len(dm.train_set) // world
    per_epoch = max(1, -(-per_rank // per_device) if keep else per_rank // per_device)  # batches per rank and epoch
    sampler = ResumableRandomSampler(len(dm.train_set), dm.seed, batches_done // per_epoch,
                                     (batches_done % per_epoch) * per_device, rank=rank, world_size=world)
    g = torch.Generator()
    g.manual_seed(dm.seed)  # the loader's own seed draws come from here, not from the global RNG
    return {"batch_size": per_device, "sampler": sampler, "generator": g, "drop_last": not keep}


# PairDataModule: reads and augments exactly as TrainDataModule (the paired augmentation gives view1 = s1,
# view2 = s2), then tokenises each (view1, view2) as one pair sequence with the encoder's `tokenize_pairs`
# (datasets.map, cached), so a cross-encoder's batch is one view of N pair sequences instead of 2N sentences.
class PairDataModule(TrainDataModule):
    PAIR = "pair"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None and self.view_columns == [self.PAIR]:
            return
        super().setup(stage)
        if not hasattr(self.encoder, "tokenize_pairs"):
            raise CsimError(f"{type(self).__name__} is the data module of cross-encoders, but the encoder "
                            f"{type(self.encoder).__name__} does not tokenise pairs; use data._target_="
                            f"csim.data.module.TrainDataModule with a bi-encoder, or encoder=cross_encoder.")
        if self.view_columns[:2] != ["view1", "view2"]:
            raise CsimError("A cross-encoder trains on sentence pairs; the augmentation must give view1 and view2 "
                            "(augment=paired with data that has text and text_pos).")
        encoder, old = self.encoder, [c for c in self.train_set.column_names if c.split(".")[0] in self.view_columns]

        def join(batch):
            return {f"{self.PAIR}.{k}": v for k, v in encoder.tokenize_pairs(batch["view1.text"],
                                                                              batch["view2.text"]).items()}

        fp = _key(self.train_set._fingerprint, encoder.token_key(), self.PAIR)
        self.train_set = self.train_set.map(join, batched=True, remove_columns=old, new_fingerprint=fp,
                                            desc="tokenize pairs")
        self.view_columns = [self.PAIR]
