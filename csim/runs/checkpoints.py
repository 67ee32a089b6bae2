"""What a resumed run needs beyond Lightning's own checkpoint: atomic checkpoint files and the RNG states (dropout
masks). The sampler that continues an epoch's permutation is csim.data.sampler."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary name and rename it: a kill during a save never leaves a truncated
    last.ckpt behind (the previous one stays valid)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class RNGState(pl.Callback):
    """Save torch / numpy / python RNG states with every checkpoint and restore them when training resumes, so the
    resumed run draws the same dropout masks as an uninterrupted one. Under data parallelism every rank's states are
    saved (ranks draw different numbers of dropout uniforms: their batches hold different numbers of tokens) and
    each rank restores its own."""

    def __init__(self):
        self._pending = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                           float(cached)]}  # tensors and plain types: loads with weights_only
        checkpoint["csim_rng"] = state
        if trainer.world_size > 1:  # every rank builds the checkpoint (rank 0 writes it): collect all ranks' states
            import torch.distributed as dist

            states = [None] * trainer.world_size
            dist.all_gather_object(states, state)
            checkpoint["csim_rng_ranks"] = states

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        ranks = checkpoint.get("csim_rng_ranks")
        if ranks is not None and len(ranks) == trainer.world_size:
            self._pending = ranks[trainer.global_rank]
        else:
            self._pending = checkpoint.get("csim_rng")

    def on_train_start(self, trainer, pl_module):
        if self._pending is not None:  # applied after data setup, right before the first resumed step
            torch.set_rng_state(self._pending["torch"])
            kind, keys, pos, has_gauss, cached = self._pending["numpy"]
            np.random.set_state((kind, np.asarray(keys).astype(np.uint32), pos, has_gauss, cached))
            random.setstate(self._pending["python"])
            self._pending = None
