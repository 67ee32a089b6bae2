"""FastDropout keeps nn.Dropout's distribution (keep with probability 1 - p, scale by 1 / (1 - p)) and semantics."""

import torch
from torch import nn
from transformers import BertConfig, BertModel

from csim.encoders.fast_dropout import FastDropout, dropout, swap


def test_keep_rate_scale_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(400, 500, requires_grad=True)
    y = dropout(x, 0.2)
    kept = y != 0
    n = kept.numel()
    # keep rate within 5 binomial standard deviations of 0.8
    assert abs(kept.float().mean().item() - 0.8) < 5 * (0.8 * 0.2 / n) ** 0.5
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.8))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # d/dx (x * mask / (1 - p)) = mask / (1 - p)


def test_eval_zero_p_and_seed():
    x = torch.randn(8, 16)
    assert dropout(x, 0.2, training=False) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    torch.manual_seed(1)
    a = dropout(x, 0.3)
    torch.manual_seed(1)
    assert torch.equal(a, dropout(x, 0.3)), "same seed, same mask"
    m = FastDropout(0.3).eval()
    assert m(x) is x


def test_swap_replaces_every_dropout_and_keeps_p():
    model = BertModel(BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                 hidden_dropout_prob=0.15, attention_probs_dropout_prob=0.25))
    before = [(name, m.p) for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    swap(model)
    after = [(name, m.p) for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    assert before == after and len(after) == 1 + 2 * 3  # embeddings + per layer: attention probs, two outputs
    assert all(type(m) is FastDropout for m in model.modules() if isinstance(m, nn.Dropout))
