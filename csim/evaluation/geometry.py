"""Alignment and uniformity of an embedding space (Wang & Isola, ICML 2020), as SimCSE §5 / Figure 2 measures them.

On L2-normalised embeddings f:
  alignment  = E_{(x, x+) ~ positive pairs} ||f(x) - f(x+)||^2          (alpha = 2)
  uniformity = log E_{x, y ~ data, x != y} exp(-2 ||f(x) - f(y)||^2)    (t = 2)
Lower is better for both. SimCSE takes STS-B dev pairs with a gold score above 4 as the positive pairs and all STS-B
dev sentences as the data; each distinct sentence counts once, and a sentence is not paired with itself (the
pairwise distances of Wang & Isola's reference code, torch.pdist).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

POSITIVE_THRESHOLD = 4.0  # SimCSE §5: "pairs with scores higher than 4 as positive pairs" (STS-B dev, scores 0-5)


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> float:
    """E ||x_i - y_i||^alpha over rows; x, y are L2-normalised [n, d] embeddings of positive pairs."""
    return float((x.double() - y.double()).norm(dim=1).pow(alpha).mean())


def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """log E_{i<j} exp(-t ||x_i - x_j||^2) over distinct rows of L2-normalised [n, d] embeddings (n >= 2)."""
    return float(torch.pdist(x.double(), p=2).pow(2).mul(-t).exp().mean().log())


def pair_geometry(texts1: list[str], texts2: list[str], emb1: torch.Tensor, emb2: torch.Tensor, scores,
                  prefix: str, threshold: float = POSITIVE_THRESHOLD) -> dict[str, float]:
    """{prefix_alignment, prefix_uniformity} from the embeddings of an STS set's pairs: alignment over the pairs with a
    gold score above `threshold` (omitted when there are none), uniformity over its distinct sentences."""
    a, b = F.normalize(emb1.double(), dim=-1), F.normalize(emb2.double(), dim=-1)
    pos = torch.as_tensor([float(s) > threshold for s in scores], dtype=torch.bool)
    out: dict[str, float] = {}
    if bool(pos.any()):
        out[f"{prefix}_alignment"] = alignment(a[pos], b[pos])
    first: dict[str, int] = {}
    for i, t in enumerate(list(texts1) + list(texts2)):
        first.setdefault(t, i)
    if len(first) >= 2:
        out[f"{prefix}_uniformity"] = uniformity(torch.cat([a, b])[list(first.values())])
    return out


def plot_trajectory(history: list[dict], path: str | Path, prefix: str = "stsb_dev") -> bool:
    """The training trajectory in the alignment-uniformity plane, as SimCSE's Figure 2 (x: uniformity, y: alignment,
    one point per evaluation, arrows in the training direction, the first and last steps labelled). Written as a PNG
    atomically; returns False (and writes nothing) when no evaluation has both values."""
    ka, ku = f"{prefix}_alignment", f"{prefix}_uniformity"
    pts = [(h[ku], h[ka], h.get("step")) for h in history if ka in h and ku in h]
    if not pts:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=120)
    FigureCanvasAgg(fig)  # the Agg canvas explicitly: no pyplot, no global backend switch
    ax = fig.add_subplot()
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    ax.plot(xs, ys, "o", color="tab:blue", markersize=4)
    for (x0, y0, _), (x1, y1, _) in zip(pts, pts[1:]):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 1})
    for x, y, step in (pts[0], pts[-1]) if len(pts) > 1 else pts[:1]:
        ax.annotate(f"step {step}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(r"$\ell_{uniform}$ (lower is better)")
    ax.set_ylabel(r"$\ell_{align}$ (lower is better)")
    ax.set_title(f"{prefix}: alignment vs uniformity during training", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
