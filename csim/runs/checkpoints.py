"""What a resumed run needs beyond Lightning's own checkpoint: atomic checkpoint files and the RNG states (dropout
masks). The sampler that continues an epoch's permutation is csim.data.sampler."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary name and rename it: a kill during a save never leaves a truncated
    last.ckpt behind (the previous one stays valid), and a failed save (a full disk) removes its partial file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


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


class WallClock(pl.Callback):
    """A run's wall time over all its processes: every checkpoint stores the seconds spent so far
    (`csim_wall_seconds`) and a resumed run counts on from there (the time between a process's last checkpoint and
    its kill is lost)."""

    def __init__(self, start: float | None = None):
        self.start = time.time() if start is None else start
        self.before = 0.0

    def seconds(self) -> float:
        return self.before + time.time() - self.start

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["csim_wall_seconds"] = self.seconds()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.before = float(checkpoint.get("csim_wall_seconds", 0.0))


def tokenizer_digest(encoder) -> str | None:
    """A digest of the encoder's vocabulary (token -> id) and its pre-tokenisation settings, or None for an encoder
    without a tokenizer object. A resumed run must map text to the same ids as the run that wrote its checkpoint."""
    import hashlib
    import json

    tok = getattr(encoder, "tokenizer", None)
    if tok is not None and hasattr(tok, "get_vocab"):  # a Hugging Face tokenizer
        vocab = tok.get_vocab()
        settings = {k: getattr(tok, k, None) for k in ("do_lower_case", "model_max_length", "padding_side")}
    elif isinstance(getattr(encoder, "vocab", None), dict):  # a word-level encoder (csim.encoders.words)
        vocab, settings, tok = encoder.vocab, getattr(encoder, "config", {}), encoder
    else:
        return None
    h = hashlib.sha256(json.dumps([type(tok).__name__, settings], sort_keys=True, default=str).encode())
    h.update("\n".join(f"{i}\t{w}" for w, i in sorted(vocab.items(), key=lambda wi: wi[1])).encode())  # by id
    return h.hexdigest()[:16]


class TokenizerDigest(pl.Callback):
    """Store the run's tokenizer digest in every checkpoint (`csim_tokenizer`); `resume_checkpoint` compares it."""

    def __init__(self, digest: str | None):
        self.digest = digest

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self.digest is not None:
            checkpoint["csim_tokenizer"] = self.digest


def resume_checkpoint(path: str | Path, digest: str | None = None) -> str | None:
    """The checkpoint to resume from (`path` when it exists), after checking that it is one csim wrote and can use:
    it loads with `torch.load(weights_only=True)` (tensors and plain containers only: Lightning's dict, optimizer and
    scheduler states and csim's RNG states are all such; a pickle that would import or call anything else is refused
    before it runs), it is not damaged, and its tokenizer digest is this run's. Each refusal is a CsimError."""
    import pickle

    from csim.errors import CsimError

    path = Path(path)
    if not path.exists():
        return None
    fix = (f"Start the run over with resume=false (which deletes its run directory {path.parent.parent}), or delete "
           f"{path} to restart from step 0.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        raise CsimError(f"Refusing to resume from {path}: it holds objects other than tensors and plain values "
                        f"(torch.load with weights_only=True refused: {str(e).splitlines()[0][:200]}), so it is not a "
                        f"checkpoint csim wrote, and loading it could run code. Do not use it. {fix}") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, EOF, bad magic: torch raises several types
        raise CsimError(f"The checkpoint {path} is damaged and cannot be read ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); csim writes checkpoints "
                        f"atomically, so something else truncated or changed it. {fix}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CsimError(f"{path} is not a Lightning checkpoint (no state_dict). {fix}")
    saved = ckpt.get("csim_tokenizer")
    if digest is not None and saved is not None and saved != digest:
        raise CsimError(f"The checkpoint {path} was trained with another tokenizer (digest {saved}) than this run "
                        f"builds now ({digest}), e.g. after its tokenizer cache was deleted and rebuilt: resuming "
                        f"would pair its weights with other token ids. Restore that tokenizer cache (paths.cache_dir) "
                        f"or start over. {fix}")
    return str(path)
