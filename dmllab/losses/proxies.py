"""`ProxyLoss`: the shared part of the proxy losses (one learned vector per training class).

A proxy loss compares every sample with learned class *proxies* p_1..p_C [C, d], a Parameter, read
through the geometry as D(z_i || p_k) = geometry.pairwise(z, proxies) [B, C]: the proxies go in
the second argument, as class means do for prototypes (for a Bregman divergence the mean of a
class minimises sum_i D(x_i || c), so the second argument is where a class's centre belongs). It
selects no tuples (a plain `MetricLoss`, no positives or negatives) and reads no reference set
(`reads_reference = False`: the proxies stand in for it; a `ref` passed in is not read, and
`Config` refuses a cross-batch memory for these losses).

Sizes come from the build context, named as constructor parameters: `embedding_dim` (d) and the
training classes (`classes`, their label ids, or `num_classes` C for ids 0..C-1; `fit` passes
them). Proxy k belongs to the k-th smallest class id, so labels need not be 0..C-1. The proxies
start as random unit vectors (the scale of L2-normalised embeddings, under every fixed geometry)
and are trained in an optimiser group of their own at `Config.proxy_lr` (None: 100 x lr, the
Proxy-Anchor authors' setting: proxies move far more slowly than the network otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss, class_ids, class_positions, embedding_size

__all__ = ["ProxyLoss", "class_ids", "class_positions"]


class ProxyLoss(MetricLoss):
    """Base class: proxies [C, d] (a Parameter), their class ids (`proxy_classes`, a buffer, so a
    saved run restores them), `proxy_distances(z)` = D(z || proxies) [B, C] and `targets(labels)`,
    each label's proxy. Raises ValueError without an embedding dimension or with fewer than 2
    classes, and for a batch label that has no proxy."""

    reads_reference = False
    proxies: nn.Parameter
    proxy_classes: Tensor

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        embedding_dim: int | None = None,
        num_classes: int | None = None,
        classes: Sequence[int] | Tensor | None = None,
    ) -> None:
        super().__init__(geometry)
        name = type(self).__name__
        size = embedding_size(embedding_dim, name)
        ids = class_ids(num_classes, classes, name)
        self.register_buffer("proxy_classes", ids)
        self.proxies = nn.Parameter(F.normalize(torch.randn(len(ids), size), dim=1))

    def proxy_distances(self, z: Tensor) -> Tensor:
        """D(z_i || p_k) [B, C]: the batch against the proxies (proxies second)."""
        return self.geometry.pairwise(z, self.proxies.to(z.dtype))

    def targets(self, labels: Tensor) -> Tensor:
        """Each label's proxy: its position among `proxy_classes` [B]; ValueError for a label
        that has none."""
        return class_positions(self.proxy_classes, labels, type(self).__name__)

    def proxy_parameters(self) -> list[nn.Parameter]:
        return [self.proxies]

    @classmethod
    def learns_proxies(cls, options: Mapping[str, Any]) -> bool:
        return True
