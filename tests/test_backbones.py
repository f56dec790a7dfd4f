"""torchvision ResNet trunks with weights from torch's hub cache or a local file, never downloaded:
loaded exactly, refused with the keys or the path named, normalised for ImageNet, frozen
BatchNorm, and trained on an image folder. Every weights file here is one the test saves from a
randomly initialised torchvision model."""

from __future__ import annotations

import argparse
import builtins
import re
import urllib.request

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import dmllab as dl
from dmllab import models, vision
from dmllab.backbones import IMAGENET_MEAN, IMAGENET_STD, ImageNetNormalize, WeightsError
from dmllab.build import build_components
from dmllab.data.example_folder import write_example_folder
from weights_fixtures import CACHE_NAME, place_in_hub, random_state

torchvision = vision.require("the backbone tests")
SHAPE = (3, 32, 32)
URL = "https://download.pytorch.org/models/"


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to download fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def resnet18_state(tmp_path_factory):
    """A randomly initialised torchvision ResNet-18's state dict (classifier included), and the
    file it is saved in."""
    state = random_state("resnet18")
    path = tmp_path_factory.mktemp("weights") / "my-resnet18.pth"
    torch.save(state, path)
    return state, path


@pytest.fixture
def hub(tmp_path, monkeypatch, resnet18_state):
    """A torch hub cache (TORCH_HOME) holding the ResNet-18 file under torchvision's name."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return place_in_hub(tmp_path / "torch", resnet18_state[1]).parent


def assert_loaded(model, state):
    loaded = model.trunk.net.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("name", ["IMAGENET1K_V1", "DEFAULT"])
def test_named_weights_are_read_from_the_torch_hub_cache(hub, resnet18_state, name):
    model = models.build("resnet18", SHAPE, 16, weights=name)
    assert torch.hub.get_dir() == str(hub.parent)
    assert_loaded(model, resnet18_state[0])


def test_a_local_file_loads_the_same_weights(resnet18_state, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    model = models.build("resnet18", SHAPE, 16, weights=str(resnet18_state[1]))
    assert_loaded(model, resnet18_state[0])


def test_pretrained_trunks_normalise_for_imagenet_and_random_ones_do_not(resnet18_state):
    pretrained = models.build("resnet18", SHAPE, 16, weights=str(resnet18_state[1])).eval()
    assert isinstance(pretrained.trunk.normalize, ImageNetNormalize)
    x = torch.rand(4, *SHAPE)  # image data in [0, 1]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = pretrained.trunk.net((x - mean) / std)
    assert torch.allclose(pretrained.trunk(x), expected, atol=1e-6)
    assert torch.allclose(pretrained.trunk(x.flatten(1)), expected, atol=1e-6)  # flattened rows
    keys = pretrained.state_dict()
    assert not any(key.endswith(("normalize.mean", "normalize.std")) for key in keys)
    assert "trunk.1.conv1.weight" in keys  # the names records of ResNet runs have always had
    random = models.build("resnet18", SHAPE, 16)
    assert isinstance(random.trunk.normalize, nn.Identity)


def test_the_classifier_is_removed_and_its_keys_ignored(resnet18_state):
    assert any(key.startswith("fc.") for key in resnet18_state[0])
    model = models.build("resnet18", SHAPE, 16, weights=str(resnet18_state[1]))
    assert isinstance(model.trunk.net.fc, nn.Identity)
    assert not any(".fc." in key for key in model.state_dict())
    assert model.head.in_features == 512 and model(torch.rand(2, *SHAPE)).shape == (2, 16)


@pytest.mark.parametrize("arch, name", [("resnet18", "IMAGENET1K_V1"), ("resnet50", "DEFAULT")])
def test_weights_missing_from_the_cache_name_the_path_and_how_to_place_them(
    tmp_path, monkeypatch, arch, name
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    file = CACHE_NAME[arch] if name == "IMAGENET1K_V1" else "resnet50-11ad3fa6.pth"
    path = tmp_path / "torch" / "hub" / "checkpoints" / file
    with pytest.raises(WeightsError) as caught:
        models.build(arch, SHAPE, 16, weights=name)
    message = str(caught.value)
    assert f"read from {path} (torch's hub cache" in message
    assert "dmllab never downloads" in message and f"publishes it at {URL}{file}" in message
    assert "model_options={'weights': '/path/to/file.pth'}" in message
    assert "\n" not in message


def test_neither_a_name_nor_a_file_is_refused_listing_the_names(tmp_path):
    names = re.escape("torchvision's resnet50 (IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT)")
    with pytest.raises(WeightsError, match=f"neither a weights name of {names} nor an existing"):
        models.build("resnet50", SHAPE, 16, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="must be a torchvision weights name or a file path"):
        models.build("resnet18", SHAPE, 16, weights=3)


def test_wrong_keys_are_named(resnet18_state, tmp_path):
    state = dict(resnet18_state[0])
    state["extra.weight"] = torch.zeros(3)
    state["layer1.0.conv1.renamed"] = state.pop("layer1.0.conv1.weight")
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as caught:
        models.build("resnet18", SHAPE, 16, weights=str(path))
    message = str(caught.value)
    assert f"the weights in {path} do not fit torchvision's resnet18" in message
    assert "1 missing key(s): 'layer1.0.conv1.weight'" in message
    assert "2 unexpected key(s): " in message
    assert "'extra.weight'" in message and "'layer1.0.conv1.renamed'" in message


def test_weights_of_another_model_name_the_keys_of_another_shape(resnet18_state):
    shape = re.escape("'layer1.0.conv1.weight' (64, 64, 3, 3) (the model has (64, 64, 1, 1))")
    with pytest.raises(WeightsError, match=rf"resnet50: \d+ key\(s\) of another shape: {shape}"):
        models.build("resnet50", SHAPE, 16, weights=str(resnet18_state[1]))


def test_a_state_dict_under_another_prefix_is_named_with_it(resnet18_state, tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save({f"backbone.{k}": v for k, v in resnet18_state[0].items()}, path)
    hint = r"every key carries the prefix 'backbone.'.*save the inner model's state_dict\(\)"
    with pytest.raises(WeightsError, match=rf"missing key\(s\): 'conv1.weight'.*{hint}"):
        models.build("resnet18", SHAPE, 16, weights=str(path))


WRAPPINGS = {
    "plain": lambda state: state,
    "DDP": lambda state: {f"module.{k}": v for k, v in state.items()},
    "compiled": lambda state: {f"_orig_mod.{k}": v for k, v in state.items()},
    "timm checkpoint": lambda state: {"state_dict": state, "epoch": 3, "arch": "resnet18"},
    "torchvision checkpoint": lambda state: {
        "model": {f"module.{k}": v for k, v in state.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
        "lr_scheduler": {"last_epoch": 2},
        "args": argparse.Namespace(lr=0.1, model="resnet18"),
        "epoch": 2,
    },
}


@pytest.mark.parametrize("wrapping", list(WRAPPINGS))
def test_common_checkpoint_wrappings_load_the_same_weights(resnet18_state, tmp_path, wrapping):
    """The acceptance instance (issue 23): a checkpoint {"state_dict": ...} or {"model": ...},
    or a state dict saved from DDP / DataParallel (`module.` prefix), was refused."""
    path = tmp_path / "wrapped.pth"
    torch.save(WRAPPINGS[wrapping](resnet18_state[0]), path)
    assert_loaded(models.build("resnet18", SHAPE, 16, weights=str(path)), resnet18_state[0])


def test_a_path_under_home_is_expanded(resnet18_state, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "w.pth").write_bytes(resnet18_state[1].read_bytes())
    assert_loaded(models.build("resnet18", SHAPE, 16, weights="~/w.pth"), resnet18_state[0])


def _one_line_without_unsafe_advice(message, path):
    assert str(path) in message and "\n" not in message and "\x1b" not in message
    assert "weights_only=False" not in message and "state dict" in message


def test_a_pickled_model_or_a_text_file_is_one_line_saying_what_it_holds(tmp_path):
    """The acceptance instance (issue 23): torch's weights_only message, with ANSI codes and the
    advice weights_only=False, or a KeyError for a text file."""
    full, text = tmp_path / "full.pth", tmp_path / "notes.pth"
    torch.save(torchvision.models.resnet18(), full)
    text.write_text("hello")
    with pytest.raises(WeightsError) as caught:
        models.build("resnet18", SHAPE, 16, weights=str(full))
    assert "holds a pickled torchvision.models.resnet.ResNet object" in str(caught.value)
    _one_line_without_unsafe_advice(str(caught.value), full)
    with pytest.raises(WeightsError, match=r"it holds text \(it starts with 'hello'\)") as caught:
        models.build("resnet18", SHAPE, 16, weights=str(text))
    _one_line_without_unsafe_advice(str(caught.value), text)


class Foreign:
    """An object that is not a state dict."""


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=64),
        st.text(max_size=40).map(str.encode),
        st.sampled_from(["object", "list", "model", "namespace", "nested"]),
    ),
)
def test_property_a_file_that_is_not_a_state_dict_is_one_line_naming_it(tmp_path, content):
    path = tmp_path / "foreign.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(
            {
                "object": Foreign(),
                "list": [torch.zeros(2)],
                "model": nn.Linear(2, 2),
                "namespace": argparse.Namespace(lr=0.1),
                "nested": {"model": {"model": {}}, "epoch": 1},
            }[content],
            path,
        )
    with pytest.raises(WeightsError) as caught:
        models.build("resnet18", SHAPE, 16, weights=str(path))
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and "\x1b" not in message
    assert "weights_only=False" not in message


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "cannot read the weights in"),
        (b"", "cannot read the weights in"),
        ([torch.zeros(2)], "does not hold a state dict .* but a list"),
    ],
)
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(WeightsError, match=re.escape(str(path))) as caught:
        models.build("resnet18", SHAPE, 16, weights=str(path))
    assert re.search(message, str(caught.value))


def test_a_torchvision_that_does_not_import_is_one_line_naming_the_fix(monkeypatch):
    real = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist\nmore lines")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(vision.VisionUnavailable) as caught:
        models.build("resnet18", SHAPE, 16)
    message = str(caught.value)
    assert message.startswith("ResNet trunks (model='resnet18') need torchvision, but")
    assert "install torchvision==0.28.*" in message and "\n" not in message


def test_frozen_batchnorm_keeps_the_pretrained_statistics_and_trains_none(resnet18_state):
    config = dl.Config(model="resnet18", model_options={"weights": str(resnet18_state[1])},
                       batchnorm="frozen", embedding_dim=16)  # fmt: skip
    model, _, _ = build_components(config, SHAPE, 4, SHAPE)
    frozen_class = torchvision.ops.misc.FrozenBatchNorm2d
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    frozen = dict(model.trunk.net.named_modules())["layer2.1.bn2"]
    assert isinstance(frozen, frozen_class)
    state = resnet18_state[0]
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(frozen, name), state[f"layer2.1.bn2.{name}"]), name
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert not any("bn" in name or "downsample.1" in name for name in trainable)
    x = torch.rand(4, *SHAPE)
    assert torch.equal(model.train()(x), model.eval()(x))  # no batch statistics in training


@pytest.mark.slow
def test_a_resnet18_trains_on_an_image_folder_and_its_record_loads_without_the_weights_file(
    hub, resnet18_state, tmp_path, monkeypatch
):
    root = write_example_folder(tmp_path / "shapes", classes=6, per_class=6, size=32)
    config = dl.Config(dataset="folder", dataset_options={"root": str(root), "image_size": 32},
                       model="resnet18", model_options={"weights": "IMAGENET1K_V1"},
                       batchnorm="frozen", embedding_dim=16, loss="margin",
                       negatives="distance_weighted", classes_per_batch=3, samples_per_class=2,
                       epochs=2, batches_per_epoch=2, lr=1e-3, seed=0)  # fmt: skip
    run = dl.fit(config, progress=False)
    assert len(run.history) == 2
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in run.history)
    trained = run.model.trunk.net.state_dict()
    assert not torch.equal(trained["conv1.weight"], resnet18_state[0]["conv1.weight"])
    saved = run.save(tmp_path / "run")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))  # the cache file is gone
    loaded = dl.runs.load(saved)
    x = run.data.test.x[torch.arange(6)]
    assert torch.equal(loaded.model(x), run.model(x))
    assert isinstance(loaded.model.trunk.normalize, ImageNetNormalize)
