"""torchvision's import failures become one error that names the fix."""

import builtins

import pytest

from dmllab import vision


def test_a_mismatched_or_missing_torchvision_names_the_fix(monkeypatch):
    real = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(vision.VisionUnavailable, match=r"does not match torch .*nms.*install"):
        vision.require("ResNet trunks")

    def missing(name, *args, **kwargs):
        if name == "torchvision":
            raise ImportError("No module named 'torchvision'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", missing)
    with pytest.raises(
        vision.VisionUnavailable, match=r"ResNet trunks need torchvision.*make setup"
    ):
        vision.require("ResNet trunks")


def test_the_installed_pair_imports():
    assert vision.require().__version__.startswith(vision.PAIRS["2.13"])
