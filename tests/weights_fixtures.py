"""Stand-ins for ImageNet weights: state dicts saved from randomly initialised torchvision models,
placed where the lab looks for them (torch's hub cache under TORCH_HOME, or a local file). Nothing
is downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dmllab import vision

#: torchvision's file name of each model's IMAGENET1K_V1 weights in torch's hub cache
CACHE_NAME = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth"}


def random_state(arch: str = "resnet18", seed: int = 7) -> dict[str, torch.Tensor]:
    """The state dict (classifier included) of a randomly initialised torchvision `arch`, with
    BatchNorm statistics that differ from a fresh layer's, so that loading them shows."""
    torch.manual_seed(seed)
    net = getattr(vision.require("the weights fixtures").models, arch)()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def place_in_hub(torch_home: Path, source: Path, arch: str = "resnet18") -> Path:
    """Make `source` the IMAGENET1K_V1 file of `arch` in the hub cache of TORCH_HOME=`torch_home`
    (a symbolic link); returns its path."""
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = checkpoints / CACHE_NAME[arch]
    target.symlink_to(source)
    return target
