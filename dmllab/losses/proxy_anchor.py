"""Proxy-Anchor loss (Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for Deep Metric Learning",
CVPR 2020), under any geometry.

Each proxy p (one per training class, `dmllab.losses.proxies`) is an anchor for the whole batch.
With s(x, p) = 1 - D(x || p), exactly the cosine similarity of the paper for the `cosine`
geometry (and in [-1, 1] for Euclidean distances between unit vectors, so alpha and delta keep
their meaning, as in the lab's multi-similarity loss),

    L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - delta)))
      + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x, p) + delta)))

P: every proxy; P+: the proxies of the classes in the batch; X_p+ / X_p-: the batch samples of
p's class / of the other classes. Defaults are the paper's: alpha = 32, delta = 0.1 (the margin;
`Config.margin` is the tuple losses' and is not read). The proxies train in their own optimiser
group at `Config.proxy_lr` (None: 100 x lr, as in the paper's code).

pytorch-metric-learning's `ProxyAnchorLoss` is the same loss under its `CosineSimilarity`; under a
distance it substitutes D for s with the margins' signs flipped (exp(alpha (D - delta)) and
exp(-alpha (D + delta))), a different loss from this one (which always reads s = 1 - D). That
version runs through the adapter (`loss="pml:ProxyAnchorLoss"`).

>>> import torch
>>> z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0]]), dim=1)
>>> loss = ProxyAnchorLoss("cosine", embedding_dim=2, num_classes=2)
>>> with torch.no_grad():
...     _ = loss.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
>>> round(loss(z, torch.tensor([0, 0, 1])).item(), 4)
4.8331
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dmllab.geometry.base import Geometry
from dmllab.losses.base import Inputs, at_least, mean_or_nan, register_loss
from dmllab.losses.proxies import ProxyLoss


@register_loss("proxy_anchor", checks={"alpha": at_least(0.0, open=True), "delta": at_least(0.0)})
class ProxyAnchorLoss(ProxyLoss):
    """Proxy-Anchor on s = 1 - D(x || proxy); see the module docstring."""

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        alpha: float = 32.0,
        delta: float = 0.1,
        **proxies: Any,
    ) -> None:
        super().__init__(geometry, **proxies)  # embedding_dim and the classes (ProxyLoss)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"proxy_anchor alpha must be a number > 0; got {alpha!r}")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta >= 0:
            raise ValueError(
                f"proxy_anchor delta (the margin) must be a number >= 0; got {delta!r}"
            )
        self.alpha = float(alpha)
        self.delta = float(delta)

    def _loss(self, inputs: Inputs) -> tuple[Tensor, dict[str, float]]:
        D = self.proxy_distances(inputs.z)
        positive = torch.zeros_like(D, dtype=torch.bool)
        positive[torch.arange(len(D), device=D.device), self.targets(inputs.labels)] = True
        s = 1.0 - D
        pos_term = _log1p_sum_exp(-self.alpha * (s - self.delta), positive)
        neg_term = _log1p_sum_exp(self.alpha * (s + self.delta), ~positive)
        with_positives = positive.any(dim=0)
        loss = pos_term[with_positives].mean() + neg_term.mean()
        stats = {
            "active": float(len(D)),
            "anchors": float(len(D)),
            "dropped": 0.0,
            "pos_dist": mean_or_nan(D.detach()[positive]),
            "neg_dist": mean_or_nan(D.detach()[~positive]),
        }
        return loss, stats

    def extra_repr(self) -> str:
        return f"proxies={tuple(self.proxies.shape)}, alpha={self.alpha:g}, delta={self.delta:g}"


def _log1p_sum_exp(x: Tensor, mask: Tensor) -> Tensor:
    """log(1 + sum_{i: mask[i, k]} exp(x[i, k])) for every column k, stably: [C]."""
    masked = x.masked_fill(~mask, -torch.inf)
    return torch.logsumexp(torch.cat([masked.new_zeros(1, x.shape[1]), masked]), dim=0)
