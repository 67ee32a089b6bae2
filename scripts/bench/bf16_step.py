"""One MLM pretraining step of the mini encoder's shape, fp32 against bf16 autocast, on this CPU.

    .venv/bin/python scripts/bench/bf16_step.py [--threads 2]

Random token ids (batch 128, length 8-32, 15% masked), the packed forward (csim.encoders.unpadded) and fast dropout as
in MLM pretraining, AdamW; prints the mean seconds per step over 5 steps after a warm-up, twice per precision (run on
a quiet machine). Measured with it on an Intel Xeon with AMX (amx_tile, amx_bf16), 2 threads: fp32 0.46 / 0.39 s,
bf16 0.24 / 0.24 s, the 1.7x that conf/exp/mlm_pretrain.yaml and the README cite. It is what `${cpu_precision:auto}`
(csim/runs/hardware.py) decides from a single GEMM, measured on a whole step.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import BertConfig, BertForMaskedLM

from csim.encoders import fast_dropout, unpadded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                     vocab_size=30522)
    model = fast_dropout.swap(BertForMaskedLM(cfg))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch, length = 128, 32
    ids = torch.randint(1000, 30000, (batch, length))
    mask = (torch.arange(length)[None] < torch.randint(8, length + 1, (batch,))[:, None]).long()
    labels = torch.full((batch, length), -100)
    chosen = (torch.rand(batch, length) < 0.15) & mask.bool()
    labels[chosen] = ids[chosen]
    where = labels != -100

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = unpadded.last_states(model.bert, ids, mask, where.reshape(-1).nonzero().squeeze(1))
            loss = torch.nn.functional.cross_entropy(model.cls(hidden).float(), labels[where])
        loss.backward()
        opt.step()
        opt.zero_grad()

    for name, bf16 in [("fp32", False), ("bf16", True)] * 2:
        step(bf16)
        t = time.time()
        for _ in range(5):
            step(bf16)
        print(f"{name} {(time.time() - t) / 5:.3f} s per step")


if __name__ == "__main__":
    main()
