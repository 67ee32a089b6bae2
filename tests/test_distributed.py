"""Data parallelism on CPU (gloo, 2 processes): every in-batch loss sees the global batch, and a 2-process step has
the loss and the gradients of one process on the concatenated batch; the pairwise-distance form of the triplet and
soft-NN losses gives the values of the [N, M, d] difference form."""

from __future__ import annotations

import pytest
import torch

N, D_IN, D = 6, 8, 5  # rows per rank, input and embedding sizes

LOSSES = {  # name -> (target, kwargs, uses hard negatives, uses integer labels)
    "infonce": ("csim.losses.infonce.InfoNCE", {"temperature": 0.05}, False, False),
    "supervised_simcse": ("csim.losses.infonce.SupervisedSimCSE", {"hard_negative_weight": 0.5}, True, False),
    "nt_xent": ("csim.losses.nt_xent.NTXent", {"temperature": 0.1}, False, False),
    "soft_nn": ("csim.losses.soft_nn.SoftNearestNeighbour", {"learn_temperature": True}, False, False),
    "soft_nn_labels_neg": ("csim.losses.soft_nn.SoftNearestNeighbour", {"use_labels": True, "temperature": 0.5},
                           True, True),
    "triplet_batch_hard": ("csim.losses.triplet.Triplet", {"mining": "batch_hard", "margin": 0.5}, True, False),
    "triplet_semi_hard": ("csim.losses.triplet.Triplet", {"mining": "batch_semi_hard"}, False, False),
}


class Step(torch.nn.Module):
    """Encoder + loss; forward is one training step's loss (DDP must see the forward to reduce the gradients)."""

    def __init__(self, name: str, gather=None):
        import importlib

        super().__init__()
        target, kwargs, self.neg, self.lab = LOSSES[name]
        mod, _, cls = target.rpartition(".")
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(D_IN, D)
        self.loss = getattr(importlib.import_module(mod), cls)(**kwargs, gather_across_devices=gather)  # may hold a parameter

    def forward(self, x, labels):
        e = self.enc(x.reshape(-1, D_IN)).reshape(3, x.shape[1], D)
        return self.loss(e[0], e[1], labels=labels if self.lab else None, emb_neg=e[2] if self.neg else None)


def _inputs(world: int):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, world * N, D_IN, generator=g)  # anchors, positives, negatives
    labels = torch.randint(0, 3, (world * N,), generator=g)
    return x, labels


def _single(name: str, world: int) -> tuple[float, dict]:
    model = Step(name)
    x, labels = _inputs(world)
    loss = model(x, labels)
    loss.backward()
    return loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()}


def _worker(rank: int, world: int, init_file: str, out: str):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    x, labels = _inputs(world)
    part = slice(rank * N, (rank + 1) * N)
    for name in LOSSES:
        for gather in (None, False):
            model = DDP(Step(name, gather))  # averages the gradients over the ranks, as Lightning's DDP
            loss = model(x[:, part], labels[part])
            loss.backward()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            results[(name, gather)] = ((mean / world).item(), loss.item(),
                                       {k[len("module."):]: p.grad.clone() for k, p in model.named_parameters()})
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    import torch.multiprocessing as mp

    d = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(d / "init"), str(d / "out.pt")), nprocs=2, join=True)
    return torch.load(d / "out.pt", weights_only=False)


@pytest.mark.parametrize("name", list(LOSSES))
def test_two_processes_equal_one_process_on_the_concatenated_batch(two_ranks, name):
    loss, grads = _single(name, world=2)
    mean_loss, _, ddp_grads = two_ranks[(name, None)]
    assert mean_loss == pytest.approx(loss, abs=1e-5)
    assert set(ddp_grads) == set(grads)
    for k in grads:
        torch.testing.assert_close(ddp_grads[k], grads[k], atol=1e-5, rtol=1e-5, msg=f"{name}: gradient of {k}")


@pytest.mark.parametrize("name", ["infonce", "nt_xent", "triplet_batch_hard"])
def test_gather_off_scores_each_rank_on_its_own_batch(two_ranks, name):
    _, rank0_loss, _ = two_ranks[(name, False)]
    model = Step(name)
    x, labels = _inputs(2)
    local = model(x[:, :N], labels[:N]).item()
    assert rank0_loss == pytest.approx(local, abs=1e-6)
    assert rank0_loss != pytest.approx(_single(name, world=2)[0], abs=1e-3)


def _broadcast_sq_dist(x, y):
    return (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1)


@pytest.mark.parametrize("kwargs", [{"mining": "batch_hard"}, {"mining": "batch_semi_hard"},
                                    {"mining": "batch_hard", "distance": "squared_euclidean"}])
def test_triplet_pairwise_form_equals_difference_form(kwargs):
    from csim.losses.triplet import Triplet

    g = torch.Generator().manual_seed(3)
    a, b, n = (torch.randn(16, 12, generator=g) for _ in range(3))
    loss = Triplet(**kwargs)
    ref = Triplet(**kwargs)
    ref._dist = lambda x, y: ref._root(_broadcast_sq_dist(x, y))  # the former [N, M, d] form
    assert loss(a, b, emb_neg=n).item() == pytest.approx(ref(a, b, emb_neg=n).item(), abs=1e-5)
    assert loss(a, b).item() == pytest.approx(ref(a, b).item(), abs=1e-5)


def test_soft_nn_pairwise_form_equals_difference_form():
    import torch.nn.functional as F

    from csim.losses.soft_nn import SoftNearestNeighbour

    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(10, 7, generator=g), torch.randn(10, 7, generator=g)
    t = 0.3
    x = F.normalize(torch.cat([a, b]), dim=-1)  # the loss's definition, written out with the difference tensor
    logits = -_broadcast_sq_dist(x, x) / t
    eye = torch.eye(20, dtype=torch.bool)
    pos = torch.zeros(20, 20, dtype=torch.bool)
    pos[torch.arange(10), torch.arange(10, 20)] = pos[torch.arange(10, 20), torch.arange(10)] = True
    ref = (logits.masked_fill(eye, -1e30).logsumexp(1) - logits.masked_fill(~pos, -1e30).logsumexp(1)).mean()
    assert SoftNearestNeighbour(temperature=t)(a, b).item() == pytest.approx(ref.item(), abs=1e-5)


def test_pairwise_sq_dist_is_never_negative():
    from csim.losses.gather import pairwise_sq_dist

    x = torch.randn(5, 4) * 1e3
    assert bool((pairwise_sq_dist(x, x) >= 0).all())
    assert bool((pairwise_sq_dist(x, x).diagonal() <= 1e-5 * x.pow(2).sum(-1)).all())  # rounding only


def test_global_batch_divides_over_devices_and_accumulation():
    from csim.data.module import device_batch_size
    from csim.errors import CsimError

    assert device_batch_size(64) == 64 and device_batch_size(64, 2) == 32 and device_batch_size(512, 4, 2) == 64
    with pytest.raises(CsimError, match=r"batch_size=64 is the global batch.*3 device"):
        device_batch_size(64, 3)


def _batches(n, seed, world, per_device, steps, resume_at=None, accumulate=1):
    """Every rank's batches (index lists) over `steps` optimizer steps, as the loaders of a run (resumed at a step)."""
    from types import SimpleNamespace

    from csim.data.module import resumable_sampling

    out = []
    for rank in range(world):
        def loader(step):
            trainer = SimpleNamespace(world_size=world, global_rank=rank, accumulate_grad_batches=accumulate,
                                      global_step=step)
            dm = SimpleNamespace(trainer=trainer, train_set=range(n), batch_size=per_device * world * accumulate,
                                 seed=seed)
            return resumable_sampling(dm)

        batches, step, epoch = [], resume_at or 0, None
        kw = loader(step)
        sampler, b = kw["sampler"], kw["batch_size"]
        epoch = sampler.start_epoch
        while len(batches) < (steps - (resume_at or 0)) * accumulate:
            sampler.set_epoch(epoch)
            order = list(sampler)
            full = len(sampler) // b  # batches in a whole epoch (Lightning sizes the epoch by len(sampler))
            done = full - len(order) // b
            batches += [order[i * b:(i + 1) * b] for i in range(full - done)]
            epoch += 1
        out.append(batches[: (steps - (resume_at or 0)) * accumulate])
    return out


@pytest.mark.parametrize("world,accumulate", [(1, 1), (2, 1), (2, 2)])
def test_resumed_sampler_gives_the_batches_of_the_uninterrupted_run(world, accumulate):
    full = _batches(50, 7, world, 4, steps=9, accumulate=accumulate)
    for rank in range(world):  # the ranks split each epoch's permutation: no example on two ranks
        others = {i for r in range(world) if r != rank for batch in full[r][:2] for i in batch}
        assert not others & {i for batch in full[rank][:2] for i in batch}
    for k in (1, 4, 6):
        resumed = _batches(50, 7, world, 4, steps=9, resume_at=k, accumulate=accumulate)
        assert [r[k * accumulate:] for r in full] == resumed


def test_paper_scale_trains_in_mixed_precision_where_it_pays(monkeypatch):
    from conftest import compose
    from csim.runs import hardware
    from csim.train import trainer_precision

    assert compose(["+exp=simcse_unsup"]).trainer.precision == "mixed"  # the paper scale (default)
    assert compose(["+exp=simcse_unsup", "scale=smoke"]).trainer.precision == "32-true"
    # no GPU here: on a CPU `mixed` is the cpu scale's measured choice (the mini-encoder build runs at paper scale)
    for speedup, expected in ((10.0, "bf16-mixed"), (0.05, "32-true")):   # an AMX Xeon / a CPU without bf16 units
        monkeypatch.setattr(hardware, "bf16_gemm_speedup", lambda speedup=speedup: speedup)
        assert trainer_precision("mixed", "auto") == trainer_precision("mixed", "cpu") == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for bf16, expected in ((True, "bf16-mixed"), (False, "16-mixed")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        assert trainer_precision("mixed", "gpu") == expected
    assert trainer_precision("16-mixed", "cpu") == "16-mixed"
