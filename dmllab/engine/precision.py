"""Mixed precision as one policy object: where autocast applies, and how the backward pass and the
optimiser step are scaled.

    Config.precision   trunk forward runs in      gradients
    "32"               float32                    as they are
    "bf16-mixed"       bfloat16 autocast          as they are (bfloat16 keeps float32's range)
    "16-mixed"         float16 autocast (CUDA)    scaled by a GradScaler (float16 underflows)

Only the trunk and head run under autocast (`AutocastForward` wraps the embedder): the embeddings
come out in float32, and the distances, the selection of pairs and triplets, LSD's lists and a
learned Bregman generator are computed in float32 whatever the trunk runs in (they are outside the
autocast region). This uses `torch.autocast` and `torch.amp.GradScaler`, PyTorch's own AMP.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from dmllab.config import PRECISIONS

__all__ = ["AutocastForward", "Precision"]
_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class Precision:
    """The precision policy `name` on `device`.

    Raises ValueError for an unknown name, for "16-mixed" off CUDA (float16 autocast needs a
    GradScaler and CUDA's kernels; use "bf16-mixed" on a CPU), and for a mixed precision on a
    device without autocast support."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {name!r}")
        if name == "16-mixed" and device.type != "cuda":
            raise ValueError(
                f"Config.precision='16-mixed' needs a CUDA device (float16 autocast with a "
                f"GradScaler); this run is on {device.type!r}: use precision='bf16-mixed' on a "
                "CPU, or '32'"
            )
        if name != "32" and device.type not in ("cpu", "cuda"):
            raise ValueError(
                f"Config.precision={name!r} is supported on 'cpu' and 'cuda' devices; this run is "
                f"on {device.type!r}: use precision='32'"
            )
        self.name = name
        self.device = device
        self.dtype = _DTYPES.get(name, torch.float32)
        self.scaler = torch.amp.GradScaler(device.type) if name == "16-mixed" else None

    @property
    def mixed(self) -> bool:
        """Whether the trunk runs in a lower precision than float32."""
        return self.name != "32"

    def autocast(self) -> AbstractContextManager[Any]:
        """The context the trunk's forward pass runs in (nothing for "32")."""
        if not self.mixed:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        """loss.backward(), scaled by the GradScaler under "16-mixed"."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true scale (before clipping or checking them)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(); under "16-mixed" the scaler's step, which skips a step whose
        gradients overflowed, then its update of the scale."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scaler": self.scaler.state_dict() if self.scaler else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"the checkpoint was trained with precision {state.get('name')!r}, this run uses "
                f"{self.name!r}"
            )
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


class AutocastForward(nn.Module):
    """The embedder's forward pass under the precision policy; embeddings returned in float32.

    Only used when the precision is mixed ("32" calls the embedder directly)."""

    def __init__(self, model: nn.Module, precision: Precision) -> None:
        super().__init__()
        self.model = model
        self.precision = precision

    def forward(self, x: Tensor) -> Tensor:
        with self.precision.autocast():
            z = self.model(x)
        return z.float()
