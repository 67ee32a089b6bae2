"""SimCSE's successors (conf/tables/successors.yaml): each mechanism against a loop-by-loop transcription of the paper's
(or official code's) definition on a small example: symmetric InfoNCE, GS-InfoNCE, MixCSE, word repetition, the
momentum-encoder queue (ESimCSE) and ConSERT's embedding-layer views."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT
from csim.errors import CsimError
from csim.losses.gs_infonce import GaussianSmoothedInfoNCE
from csim.losses.infonce import InfoNCE
from csim.losses.mixcse import MixCSE
from csim.losses.symmetric_infonce import SymmetricInfoNCE


def _tensors(n=5, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]


def _cos(x, y):
    x, y = x.detach(), y.detach()
    return float(torch.dot(x, y) / (x.norm() * y.norm()))


def _nll(logits: list[float], target: int) -> float:
    """-log softmax(logits)[target], written out."""
    return -(logits[target] - math.log(sum(math.exp(v) for v in logits)))


# --- symmetric InfoNCE (CLIP) ----------------------------------------------------------------------------------------

def test_symmetric_infonce_is_the_mean_of_the_two_directional_infonce_losses():
    a, b = _tensors()
    sym = SymmetricInfoNCE(0.05)(a, b)
    assert sym.item() == pytest.approx(((InfoNCE(0.05)(a, b) + InfoNCE(0.05)(b, a)) / 2).item(), rel=1e-12)
    t, n = 0.05, a.shape[0]
    ref = sum(_nll([_cos(a[i], b[j]) / t for j in range(n)], i) + _nll([_cos(b[i], a[j]) / t for j in range(n)], i)
              for i in range(n)) / (2 * n)
    assert sym.item() == pytest.approx(ref, rel=1e-9)
    learned = SymmetricInfoNCE(0.05, learn_temperature=True)
    assert learned.log_scale.requires_grad and learned(a, b).item() == pytest.approx(sym.item(), rel=1e-6)
    with pytest.raises(CsimError, match="loss.temperature"):
        SymmetricInfoNCE(0)


# --- GS-InfoNCE ------------------------------------------------------------------------------------------------------

def test_gs_infonce_appends_gaussian_negatives_as_the_official_code():
    a, b = _tensors()
    loss = GaussianSmoothedInfoNCE(0.05, noise_size=7, noise_std=0.5)
    torch.manual_seed(3)
    value = loss(a, b)
    torch.manual_seed(3)
    g = torch.randn(7, a.shape[1], dtype=a.dtype) * 0.5  # torch.normal(0, random_std, size=(random_size, d))
    assert g.std().item() == pytest.approx(0.5, abs=0.2)
    t, n = 0.05, a.shape[0]
    ref = sum(_nll([_cos(a[i], b[j]) / t for j in range(n)] + [_cos(a[i], g[k]) / t for k in range(7)], i)
              for i in range(n)) / n
    assert value.item() == pytest.approx(ref, rel=1e-9)
    torch.manual_seed(3)
    assert loss(a, b).item() == value.item()          # the run's seed fixes the noise
    assert loss(a, b).item() != value.item()          # a fresh draw each step
    assert value.item() > InfoNCE(0.05)(a, b).item()  # more negatives: the loss only grows
    assert GaussianSmoothedInfoNCE(0.05, noise_size=0)(a, b).item() == pytest.approx(InfoNCE(0.05)(a, b).item())
    with pytest.raises(CsimError, match="noise_size"):
        GaussianSmoothedInfoNCE(noise_size=-1)


# --- MixCSE ----------------------------------------------------------------------------------------------------------

def _mixcse_reference(h, hp, lam, t, form):
    """The official cl_forward (form='code') or §3's single mixed negative (form='paper'), with explicit indices."""
    n = h.shape[0]
    total = 0.0
    for i in range(n):
        row = [_cos(h[i], hp[j]) / t for j in range(n)]
        if form == "paper":
            row.append(_cos(h[i], lam * hp[i] + (1 - lam) * hp[(i + 1) % n]) / t)
        else:
            for j in range(n):  # block 1: m_j = lam h+_j + (1 - lam) h+_{j+1}; [i, i-1] masked to 0
                m = lam * hp[j] + (1 - lam) * hp[(j + 1) % n]
                row.append(0.0 if j == (i - 1) % n else _cos(h[i], m) / t)
            mix = lam * h[i] + (1 - lam) * h[(i + 1) % n]
            for j in range(n):  # block 2: n_i = lam h_i + (1 - lam) h_{i+1} against h+_j; [i, i+1] masked to 0
                row.append(0.0 if j == (i + 1) % n else _cos(mix, hp[j]) / t)
        total += _nll(row, i)
    return total / n


@pytest.mark.parametrize("form", ["code", "paper"])
def test_mixcse_matches_its_definition_and_stops_the_gradient_through_the_mix(form):
    h, hp = _tensors()
    loss = MixCSE(0.05, lam=0.6, form=form)(h, hp)
    assert loss.item() == pytest.approx(_mixcse_reference(h.detach(), hp.detach(), 0.6, 0.05, form), rel=1e-9)
    loss.backward()
    grads = (h.grad.clone(), hp.grad.clone())
    # the same objective with the mixed features built from constants: equal gradients (stop-gradient)
    h2, hp2 = (x.detach().clone().requires_grad_(True) for x in (h, hp))
    a = F.normalize(h2, dim=-1)
    m = F.normalize(0.6 * hp.detach() + 0.4 * hp.detach().roll(-1, 0), dim=-1)
    blocks = [a @ F.normalize(hp2, dim=-1).T]
    if form == "paper":
        blocks.append((a * m).sum(-1, keepdim=True))
    else:
        eye = torch.eye(5, dtype=a.dtype)
        mix = F.normalize(0.6 * h.detach() + 0.4 * h.detach().roll(-1, 0), dim=-1)
        blocks += [(a @ m.T) * (1 - eye.roll(-1, 1)), (mix @ F.normalize(hp2, dim=-1).T) * (1 - eye.roll(1, 1))]
    F.cross_entropy(torch.cat(blocks, 1) / 0.05, torch.arange(5)).backward()
    assert torch.allclose(grads[0], h2.grad) and torch.allclose(grads[1], hp2.grad)
    with pytest.raises(CsimError, match="loss.lam"):
        MixCSE(lam=1.5)


# --- word repetition (ESimCSE §3.1) ----------------------------------------------------------------------------------

def test_word_repetition_follows_esimcse_section_3_1():
    from csim.augment.word_repetition import WordRepetition

    aug = WordRepetition(dup_rate=0.32)
    text = "the quick brown fox jumps over the lazy dog near the old river bank today"
    words = text.split()
    seen = set()
    for seed in range(200):
        out = aug({"text": [text]}, [seed])
        assert out["view1"] == [text]
        # transcription: dup_len ~ U{0..max(2, int(dup_rate * n))}, dup_set = dup_len distinct positions
        rng = random.Random(seed)
        dup_len = rng.randint(0, max(2, int(0.32 * len(words))))
        dup_set = set(rng.sample(range(len(words)), min(dup_len, len(words))))
        expected = " ".join(w for i, w in enumerate(words) for _ in range(2 if i in dup_set else 1))
        assert out["view2"] == [expected]
        seen.add(len(expected.split()) - len(words))
    assert seen == set(range(0, int(0.32 * len(words)) + 1))  # 0..4 repeated words for 15 words
    assert WordRepetition(0.32)({"text": ["hi"]}, [1])["view2"][0] in ("hi", "hi hi")
    with pytest.raises(CsimError, match="augment.dup_rate"):
        WordRepetition(dup_rate=1.5)


# --- momentum-encoder queue (ESimCSE §3.2) ---------------------------------------------------------------------------

class _Toy(torch.nn.Module):
    """A stand-in encoder: a linear map with dropout (so eval mode is visible), `dim`, forward(tokens, head)."""

    dim = 4

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, tokens, head=False):
        return self.drop(self.lin(tokens["x"]))


def _batch(n, seed):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return {"tokens": {"x": torch.cat([x, x])}, "n_views": 2}


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_momentum_queue_holds_the_last_momentum_embeddings_without_gradient():
    from csim.modules.momentum_queue import MomentumQueueModule

    torch.manual_seed(0)
    module = MomentumQueueModule(_Toy(), InfoNCE(0.05), queue_size=5, momentum=0.9)
    assert not any(p.requires_grad for p in module.momentum_encoder.parameters())
    assert module.queued() is None
    theta_m = [p.detach().clone() for p in module.momentum_encoder.parameters()]
    expected_queue = []
    for step in range(4):  # batches of 2: the queue (5) fills at step 3 and then drops its oldest rows
        with torch.no_grad():  # stand-in for an optimiser step: the encoder moves, the momentum copy follows
            for p in module.encoder.parameters():
                p.add_(0.1 * (step + 1))
        batch = _batch(2, step)
        before = module.queued()
        before = None if before is None else before.clone()
        module.train()
        torch.manual_seed(100 + step)
        loss = module.training_step(batch, step)
        theta_m = [0.9 * m + 0.1 * p.detach() for m, p in zip(theta_m, module.encoder.parameters())]
        for m, p in zip(theta_m, module.momentum_encoder.parameters()):
            assert torch.allclose(m, p)  # theta_m <- m theta_m + (1 - m) theta
        # the loss used the queue as it was before this batch (dropout views of the encoder)
        torch.manual_seed(100 + step)
        views = module.encoder(batch["tokens"]).chunk(2)
        assert loss.item() == pytest.approx(InfoNCE(0.05)(views[0], views[1], emb_neg=before).item(), rel=1e-6)
        # then the batch's view 1, encoded by the momentum encoder with dropout off, is appended
        w, b = theta_m
        expected_queue = (expected_queue + list(batch["tokens"]["x"][:2] @ w.T + b))[-5:]
        assert torch.allclose(module.queued(), torch.stack(expected_queue), atol=1e-6)
        assert not module.queued().requires_grad
        loss.backward()
        assert module.queue.grad is None
    assert int(module.queue_len) == 5 and module.training  # train mode restored after the queue's eval pass
    assert "queue" in module.state_dict() and "queue_len" in module.state_dict()  # resumed with the run
    with pytest.raises(CsimError, match="queue_size"):
        MomentumQueueModule(_Toy(), InfoNCE(0.05), queue_size=0)
    with pytest.raises(CsimError, match="hard_negative_weight"):
        MomentumQueueModule(_Toy(), InfoNCE(0.05, hard_negative_weight=1.0))


# --- the table, at smoke scale ---------------------------------------------------------------------------------------

def test_successors_table_composes_and_runs_every_row_at_smoke_scale(tmp_path, cache_dir):
    """`csim tables --table successors --scale smoke` (what `make reproduce-tables TABLE=successors SCALE=smoke`
    runs), 4 steps per row: every row trains, the report has the paper column and the rank agreement."""
    from test_tables import progress, read_csv, run_tables

    from csim.tables.spec import load_specs

    spec = load_specs(ROOT / "conf" / "tables", ["successors"])[0]
    code, stdout = run_tables(tmp_path / "results", tmp_path / "outputs", cache_dir, seeds="42", table="successors")
    assert code == 0, stdout
    ran = progress(stdout)
    assert {label for label, _ in ran} == {r.label for r in spec.rows}
    assert all(what == "trained" for what in ran.values())
    rows = read_csv(tmp_path / "results" / "smoke" / "successors.csv")
    assert list(rows) == [r.label for r in spec.rows]
    assert all(r["status"] == "ok" and r["csim_mean"] != "" for r in rows.values())
    assert float(rows["ESimCSE (word repetition + momentum queue)"]["paper"]) == 80.17
    md = (tmp_path / "results" / "smoke" / "successors.md").read_text()
    assert "Rank agreement" in md and "7-task avg 78.27" in md
    assert float(rows["DiffCSE (conditional replaced-token detection)"]["paper"]) == 80.59
    m3 = [r for label, r in rows.items() if label.startswith("M3-style")]
    assert len(m3) == 4 and all(r["paper"] == "" for r in m3)
    assert len({d.name for d in (tmp_path / "outputs" / "runs").iterdir() if d.name.startswith("m3-")}) == 4
    for name in ("esimcse", "consert", "mixcse", "gs_infonce", "symmetric_infonce", "promptbert", "diffcse", "m3"):
        assert any(d.name.startswith(f"{name}-") for d in (tmp_path / "outputs" / "runs").iterdir())


# --- determinism across an interruption --------------------------------------------------------------------------

@pytest.mark.parametrize("exp,target", [
    ("esimcse", "csim.modules.momentum_queue.MomentumQueueModule.training_step"),   # the queue and momentum encoder
    ("gs_infonce", "csim.losses.gs_infonce.GaussianSmoothedInfoNCE.forward"),      # the noise's generator state
    ("consert", "csim.modules.consert.ConSERTModule.embed_views"),                 # the views' generator state
    ("diffcse", "csim.modules.diffcse.DiffCSEModule.training_step"),               # the masks' generator state
])
def test_interrupted_run_resumes_to_the_same_numbers(exp, target, run_smoke, tmp_path, monkeypatch):
    """A run that dies after its step-10 checkpoint resumes from it (queue, momentum encoder and generator states
    restored) and ends with the numbers of an uninterrupted run."""
    import importlib

    args = [f"+exp={exp}", "trainer.max_steps=20", "eval.every_n_steps=10"]
    reference = run_smoke(args, output_root=tmp_path / "reference")
    module_name, cls_name, fn_name = target.rsplit(".", 2)
    cls = getattr(importlib.import_module(module_name), cls_name)
    original, calls = getattr(cls, fn_name), []

    def dies_at_step_15(self, *a, **kw):
        calls.append(1)
        if len(calls) == 15:
            raise RuntimeError("simulated crash")
        return original(self, *a, **kw)

    monkeypatch.setattr(cls, fn_name, dies_at_step_15)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_smoke(args, output_root=tmp_path / "crashed")
    assert list((tmp_path / "crashed").glob("runs/*/checkpoints/last.ckpt"))
    resumed_calls = []

    def counted(self, *a, **kw):
        resumed_calls.append(1)
        return original(self, *a, **kw)

    monkeypatch.setattr(cls, fn_name, counted)
    resumed = run_smoke(args, output_root=tmp_path / "crashed")
    assert len(resumed_calls) == 10  # steps 11-20 only: it resumed from the step-10 checkpoint
    keys = ("best_stsb_dev_spearman", "best_step", "stsb_test_spearman", "steps")
    assert {k: resumed[k] for k in keys} == {k: reference[k] for k in keys}
    assert [h["stsb_dev_spearman"] for h in resumed["history"]] == [h["stsb_dev_spearman"]
                                                                     for h in reference["history"]]
