"""The loss family: each loss against an independent reference on small random tensors (sentence-transformers'
losses, torch.nn.TripletMarginLoss, or a direct loop-by-loop transcription of the published formula), finite
gradients, and the clear refusals."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from csim.errors import CsimError
from csim.losses.cosine_mse import CosineMSE
from csim.losses.infonce import InfoNCE, SupervisedSimCSE
from csim.losses.nt_xent import NTXent
from csim.losses.soft_nn import SoftNearestNeighbour
from csim.losses.softmax_nli import SoftmaxNLI
from csim.losses.triplet import Triplet


def _st_losses():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers.sentence_transformer import losses
    return losses


def _tensors(n=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3)]


class _Identity(torch.nn.Module):
    """A stand-in SentenceTransformer for sentence-transformers' losses: the features already are the embeddings."""

    device = torch.device("cpu")

    def forward(self, features):
        return {"sentence_embedding": features["x"]}


# --- InfoNCE / supervised SimCSE vs sentence-transformers' MultipleNegativesRankingLoss ---------------------------

@pytest.mark.parametrize("with_neg", [False, True])
def test_infonce_and_supervised_simcse_equal_mnrl(with_neg):
    a, b, n = _tensors()
    mnrl = _st_losses().MultipleNegativesRankingLoss(None, scale=1 / 0.05)  # scale = 1 / temperature
    ref = mnrl.compute_loss_from_embeddings([a, b, n] if with_neg else [a, b], None)
    assert InfoNCE(0.05)(a, b, emb_neg=n if with_neg else None).item() == pytest.approx(ref.item(), rel=1e-9)
    if with_neg:
        assert SupervisedSimCSE(0.05)(a, b, emb_neg=n).item() == pytest.approx(ref.item(), rel=1e-9)


def test_supervised_simcse_hard_negative_weight_and_requirement():
    a, b, n = _tensors()
    base = SupervisedSimCSE(0.05)(a, b, emb_neg=n)
    # a positive weight raises every anchor's own hard-negative logit: the loss can only grow
    assert SupervisedSimCSE(0.05, hard_negative_weight=1.0)(a, b, emb_neg=n) > base
    assert SupervisedSimCSE.needs_negatives and not InfoNCE.needs_negatives
    with pytest.raises(CsimError, match="hard negatives"):
        SupervisedSimCSE(0.05)(a, b)


# --- NT-Xent vs a transcription of SimCLR's Eq. 1 -----------------------------------------------------------------

def _nt_xent_reference(a, b, tau):
    z = torch.cat([a, b])
    n2 = z.shape[0]
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sim = [float(torch.dot(z[i], z[k]) / (z[i].norm() * z[k].norm())) / tau for k in range(n2)]
        total += -(sim[j] - math.log(sum(math.exp(sim[k]) for k in range(n2) if k != i)))
    return total / n2


@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_nt_xent_equals_formula(tau):
    a, b, _ = _tensors(n=5)
    assert NTXent(tau)(a, b).item() == pytest.approx(_nt_xent_reference(a, b, tau), rel=1e-9)


def test_nt_xent_differs_from_infonce():
    """Same-side negatives make NT-Xent a different objective from SimCSE's N x N InfoNCE."""
    a, b, _ = _tensors()
    assert NTXent(0.05)(a, b).item() != pytest.approx(InfoNCE(0.05)(a, b).item(), rel=1e-3)


# --- Triplet vs torch.nn.TripletMarginLoss and brute-force mining --------------------------------------------------

def test_triplet_equals_torch_triplet_margin_loss():
    a, b, n = _tensors()
    ref = torch.nn.TripletMarginLoss(margin=1.0, p=2, eps=0.0)(a, b, n)
    assert Triplet(margin=1.0)(a, b, emb_neg=n).item() == pytest.approx(ref.item(), rel=1e-9)
    ref_margin = torch.nn.TripletMarginLoss(margin=0.3, p=2, eps=0.0)(a, b, n)
    assert Triplet(margin=0.3)(a, b, emb_neg=n).item() == pytest.approx(ref_margin.item(), rel=1e-9)


def test_triplet_squared_distance_is_facenet_form():
    a, b, n = _tensors()
    ref = torch.relu((a - b).pow(2).sum(1) - (a - n).pow(2).sum(1) + 1.0).mean()
    assert Triplet(distance="squared_euclidean")(a, b, emb_neg=n).item() == pytest.approx(ref.item(), rel=1e-9)


def _mined_reference(a, b, n, mode, margin=1.0):
    total, fallbacks = 0.0, 0
    for i in range(a.shape[0]):
        d_ap = float((a[i] - b[i]).norm())
        cands = [float((a[i] - b[j]).norm()) for j in range(b.shape[0]) if j != i]
        if n is not None:
            cands += [float((a[i] - x).norm()) for x in n]
        if mode == "batch_hard":
            d_an = min(cands)
        else:
            farther = [d for d in cands if d > d_ap]
            fallbacks += not farther
            d_an = min(farther) if farther else max(cands)
        total += max(0.0, d_ap - d_an + margin)
    return total / a.shape[0], fallbacks


@pytest.mark.parametrize("mode", ["batch_hard", "batch_semi_hard"])
@pytest.mark.parametrize("with_neg", [False, True])
@pytest.mark.parametrize("spread", [0.8, 4.0])
def test_triplet_in_batch_mining_equals_brute_force(mode, with_neg, spread):
    a, b, n = _tensors(n=7, d=4, seed=3)
    # spread 0.8: positives near their anchors (semi-hard candidates exist); 4.0: far, so for some anchors every
    # candidate is nearer than the positive and semi-hard mining falls back to the farthest candidate
    b = a + spread * b
    neg = n if with_neg else None
    loss = Triplet(margin=1.0, mining=mode)
    assert loss.in_batch_negatives and not loss.needs_negatives
    ref, fallbacks = _mined_reference(a, b, neg, mode)
    assert loss(a, b, emb_neg=neg).item() == pytest.approx(ref, rel=1e-9)
    if mode == "batch_semi_hard" and with_neg:
        assert (fallbacks > 0) == (spread > 1)


def test_triplet_refusals():
    a, b, _ = _tensors()
    with pytest.raises(CsimError, match="needs a negative"):
        Triplet()(a, b)
    with pytest.raises(CsimError, match="mining"):
        Triplet(mining="hardest")


# --- soft nearest neighbour vs a transcription of Frosst et al. Eq. 1 --------------------------------------------

def _snn_reference(points, classes, n_anchor, temperature):
    total = 0.0
    for i in range(n_anchor):
        def w(j):
            return math.exp(-float((points[i] - points[j]).pow(2).sum()) / temperature)

        num = sum(w(j) for j in range(len(points)) if j != i and classes[j] == classes[i])
        den = sum(w(k) for k in range(len(points)) if k != i)
        total += -math.log(num / den)
    return total / n_anchor


def test_soft_nn_equals_formula_without_labels():
    a, b, _ = _tensors(n=5, d=3)
    points, classes = torch.cat([a, b]), list(range(5)) * 2
    ref = _snn_reference(points, classes, 10, 2.0)
    # rel 1e-6: the loss keeps log T as a float32 tensor (it can be a learned parameter)
    assert SoftNearestNeighbour(2.0, normalize=False)(a, b).item() == pytest.approx(ref, rel=1e-6)


def test_soft_nn_equals_formula_with_labels_and_negatives():
    a, b, n = _tensors(n=6, d=3, seed=1)
    y = torch.tensor([0, 1, 0, 2, 1, 0])
    points = torch.cat([a, b, n])
    classes = y.tolist() * 2 + [-1 - k for k in range(6)]  # negatives: classes of their own
    ref = _snn_reference(points, classes, 12, 1.5)
    got = SoftNearestNeighbour(1.5, normalize=False, use_labels=True)(a, b, labels=y, emb_neg=n).item()
    assert got == pytest.approx(ref, rel=1e-6)
    normed = SoftNearestNeighbour(0.1, normalize=True)(a, b).item()
    unit = torch.nn.functional.normalize(torch.cat([a, b]), dim=-1)
    assert normed == pytest.approx(_snn_reference(unit, list(range(6)) * 2, 12, 0.1), rel=1e-6)


def test_soft_nn_labels_are_opt_in_and_checked():
    a, b, _ = _tensors()
    scores = torch.rand(6, dtype=torch.float64) * 5
    # default: labels (an NLI relation, an STS score) are not classes and are ignored
    assert SoftNearestNeighbour(0.5)(a, b, labels=scores) == SoftNearestNeighbour(0.5)(a, b)
    assert not SoftNearestNeighbour().needs_labels and SoftNearestNeighbour(use_labels=True).needs_labels
    with pytest.raises(CsimError, match="integer class labels"):
        SoftNearestNeighbour(use_labels=True)(a, b, labels=scores)


def test_soft_nn_learned_temperature_gets_a_gradient():
    a, b, _ = _tensors()
    loss = SoftNearestNeighbour(0.5, learn_temperature=True)
    assert [n for n, _ in loss.named_parameters()] == ["log_temperature"]
    loss(a.float(), b.float()).backward()
    assert loss.log_temperature.grad is not None and torch.isfinite(loss.log_temperature.grad)
    assert loss.temperature == pytest.approx(0.5)


# --- SBERT's objectives vs sentence-transformers' SoftmaxLoss and CosineSimilarityLoss ---------------------------

@pytest.mark.parametrize("concat,flags", [
    (["u", "v", "|u-v|"], (True, True, False)),          # SBERT's default
    (["u", "v", "|u-v|", "u*v"], (True, True, True)),    # InferSent / USE
    (["|u-v|", "u*v"], (False, True, True)),
    (["u", "v", "u*v"], (True, False, True)),
])
def test_softmax_nli_equals_sentence_transformers_softmax_loss(concat, flags):
    a, b, _ = (t.float() for t in _tensors(d=8))
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    ours = SoftmaxNLI(num_labels=3, concat=concat, dim=8)
    ref = _st_losses().SoftmaxLoss(_Identity(), 8, 3, concatenation_sent_rep=flags[0],
                                   concatenation_sent_difference=flags[1],
                                   concatenation_sent_multiplication=flags[2])
    ref.classifier.load_state_dict(ours.classifier.state_dict())  # the same W_t; the forward passes are independent
    assert ours(a, b, labels).item() == pytest.approx(ref([{"x": a}, {"x": b}], labels).item(), rel=1e-6)


def test_softmax_nli_bind_and_refusals():
    loss = SoftmaxNLI()
    with pytest.raises(CsimError, match="bind"):
        loss(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 1]))
    loss.bind(4)
    assert loss.classifier.in_features == 12 and loss.classifier.out_features == 3
    with pytest.raises(CsimError, match="float scores"):
        loss(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0.5, 4.0]))
    with pytest.raises(CsimError, match="concat"):
        SoftmaxNLI(concat=["u", "u+v"])


def test_cosine_mse_equals_cosine_similarity_loss():
    a, b, _ = (t.float() for t in _tensors())  # CosineSimilarityLoss casts the labels to float32
    scores = torch.tensor([0.0, 1.2, 2.5, 3.8, 4.6, 5.0])
    ref = _st_losses().CosineSimilarityLoss(None).compute_loss_from_embeddings([a, b], scores / 5.0)
    assert CosineMSE(5.0)(a, b, scores).item() == pytest.approx(ref.item(), rel=1e-6)
    with pytest.raises(CsimError, match="gold scores"):
        CosineMSE()(a, b)


# --- every loss: finite gradients with respect to every input -----------------------------------------------------

GRAD_CASES = [
    (lambda: InfoNCE(0.05), {}),
    (lambda: SupervisedSimCSE(0.05, hard_negative_weight=0.5), {"neg": True}),
    (lambda: NTXent(0.05), {}),
    (lambda: Triplet(), {"neg": True}),
    (lambda: Triplet(mining="batch_hard"), {}),
    (lambda: Triplet(mining="batch_semi_hard"), {"neg": True}),
    (lambda: SoftNearestNeighbour(0.1), {"neg": True}),
    (lambda: SoftNearestNeighbour(0.1, use_labels=True), {"labels": torch.tensor([0, 1, 0, 1, 2, 2])}),
    (lambda: SoftmaxNLI(dim=8), {"labels": torch.tensor([0, 1, 2, 0, 1, 2])}),
    (lambda: CosineMSE(), {"labels": torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])}),
]


@pytest.mark.parametrize("make,extra", GRAD_CASES)
def test_gradients_are_finite(make, extra):
    a, b, n = (t.float().requires_grad_() for t in _tensors(seed=7))
    loss = make()(a, b, labels=extra.get("labels"), emb_neg=n if extra.get("neg") else None)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for t in ([a, b, n] if extra.get("neg") else [a, b]):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
