"""Proxy-NCA loss (Movshovitz-Attias, Toshev, Leung, Ioffe, Singh, "No Fuss Distance Metric
Learning using Proxies", ICCV 2017), under any geometry.

Each sample is classified by a softmax over its distances to the proxies (one learned vector per
training class, `dmllab.losses.proxies`, in the second argument of D):

    L = mean_i -log( exp(-D(x_i || p_{y_i}) / T) / sum_k exp(-D(x_i || p_k) / T) )

T = `temperature` (default 1, the paper's unscaled distances). The positive proxy stays in the
denominator, as in pytorch-metric-learning's `ProxyNCALoss` (softmax_scale = 1 / T) and in
ProxyNCA++ (Teh, DeVries, Taylor, ECCV 2020, whose low temperature, e.g. T = 1/9, is this loss's
main knob); the paper's formula leaves it out, which makes the loss unbounded below. The paper
reads D as the squared Euclidean distance between normalised vectors: `geometry="sqeuclidean"`
with normalised embeddings and proxies near the sphere. The proxies train in their own optimiser
group at `Config.proxy_lr` (None: 100 x lr).

>>> import torch
>>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> loss = ProxyNCALoss("sqeuclidean", embedding_dim=2, num_classes=2)
>>> with torch.no_grad():
...     _ = loss.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
>>> round(loss(z, torch.tensor([0, 1])).item(), 4)  # log(1 + e^-2)
0.1269
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.nn import functional as F

from dmllab.geometry.base import Geometry
from dmllab.losses.base import Inputs, at_least, mean_or_nan, register_loss
from dmllab.losses.proxies import ProxyLoss


@register_loss("proxy_nca", checks={"temperature": at_least(0.0, open=True)})
class ProxyNCALoss(ProxyLoss):
    """CE over logits -D(x, proxy) / temperature; see the module docstring."""

    def __init__(
        self,
        geometry: Geometry | str,
        *,
        temperature: float = 1.0,
        **proxies: Any,
    ) -> None:
        super().__init__(geometry, **proxies)  # embedding_dim and the classes (ProxyLoss)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not temperature > 0
        ):
            raise ValueError(f"proxy_nca temperature must be > 0; got {temperature!r}")
        self.temperature = float(temperature)

    def _loss(self, inputs: Inputs) -> tuple[Tensor, dict[str, float]]:
        D = self.proxy_distances(inputs.z)
        target = self.targets(inputs.labels)
        loss = F.cross_entropy(-D / self.temperature, target)
        own = F.one_hot(target, D.shape[1]).bool()
        stats = {
            "active": float(len(D)),
            "anchors": float(len(D)),
            "dropped": 0.0,
            "pos_dist": mean_or_nan(D.detach()[own]),
            "neg_dist": mean_or_nan(D.detach()[~own]),
        }
        return loss, stats

    def extra_repr(self) -> str:
        return f"proxies={tuple(self.proxies.shape)}, temperature={self.temperature:g}"
