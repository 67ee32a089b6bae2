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
    resumed run draws the same dropout masks as an uninterrupted one."""

    def __init__(self):
        self._pending = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["csim_rng"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                  "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                            float(cached)]}  # tensors and plain types: loads with weights_only

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self._pending = checkpoint.get("csim_rng")

    def on_train_start(self, trainer, pl_module):
        if self._pending is not None:  # applied after data setup, right before the first resumed step
            torch.set_rng_state(self._pending["torch"])
            kind, keys, pos, has_gauss, cached = self._pending["numpy"]
            np.random.set_state((kind, np.asarray(keys).astype(np.uint32), pos, has_gauss, cached))
            random.setstate(self._pending["python"])
            self._pending = None
