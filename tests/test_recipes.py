"""The paper recipes (`recipes/<benchmark>/<variant>.json`) stay loadable and stay the protocol:
each is a valid Config, they share Roth et al.'s settings, each variant changes only its own
component against its control, the README shows each one's command, and a tiny version of one
trains end to end through `dmllab fit --root` on the CPU."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import dmllab as dl
from dmllab import cli
from dmllab.config import Config
from dmllab.data.example_folder import write_example_folder
from weights_fixtures import place_in_hub, random_state

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
BENCHMARKS = ("cub200", "cars196", "sop")
# variant -> (its control, the Config fields in which it differs from the control)
VARIANTS = {
    "baseline": (None, set()),
    "lsd": ("baseline", {"lsd_alpha"}),
    "bregman": ("baseline", {"geometry"}),
    "baseline-28x4": ("baseline", {"classes_per_batch", "samples_per_class"}),
    "nearest": ("baseline-28x4", {"positives"}),
}
# Roth et al. (ICML 2020)'s protocol, shared by every recipe
PROTOCOL = {
    "model": "resnet50",
    "model_options": {"weights": "IMAGENET1K_V1"},
    "batchnorm": "frozen",
    "embedding_dim": 128,
    "normalize": True,
    "loss": "margin",
    "loss_options": {"beta": 1.2, "per_class_beta": True},
    "margin": 0.2,
    "negatives": "distance_weighted",
    "optimizer": "adam",
    "lr": 1e-5,
    "loss_lr": 5e-4,
    "weight_decay": 4e-4,
    "lr_schedule": "constant",
    "epochs": 150,
    "augment": "dml-standard",
    "dataset_options": {"image_size": 224},
    "split": "classes",
}


def recipe(benchmark: str, variant: str) -> Config:
    path = RECIPES / benchmark / f"{variant}.json"
    return Config.from_json(path.read_text(), str(path))


def differences(a: Config, b: Config) -> set[str]:
    first, second = a.to_dict(), b.to_dict()
    return {name for name in first if first[name] != second[name]}


def test_the_recipes_are_exactly_the_benchmarks_times_the_variants():
    found = sorted(str(path.relative_to(RECIPES)) for path in RECIPES.rglob("*.json"))
    expected = sorted(f"{b}/{v}.json" for b in BENCHMARKS for v in VARIANTS)
    assert found == expected


@pytest.mark.parametrize("benchmark", BENCHMARKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_recipe_is_a_config_that_follows_the_protocol(benchmark, variant):
    config = recipe(benchmark, variant)
    assert config.dataset == benchmark
    assert {name: getattr(config, name) for name in PROTOCOL} == PROTOCOL
    assert config.batch_size == 112
    assert "root" not in config.dataset_options  # given on the command line (--root)
    control, changed = VARIANTS[variant]
    if control is not None:
        assert differences(config, recipe(benchmark, control)) == changed


def test_the_baselines_are_roths_margin_rows_and_nearest_positives_have_a_choice():
    baseline = recipe("cub200", "baseline")
    assert (baseline.classes_per_batch, baseline.samples_per_class) == (56, 2)
    assert (baseline.positives, baseline.lsd_alpha, baseline.geometry) == (
        "random",
        0.0,
        "euclidean",
    )
    # with 2 samples per class an anchor has one positive: "nearest" would change nothing
    nearest = recipe("cub200", "nearest")
    assert nearest.positives == "nearest" and nearest.samples_per_class >= 3
    for benchmark in BENCHMARKS[1:]:  # the benchmarks differ in the data set alone
        for variant in VARIANTS:
            changed = differences(recipe(benchmark, variant), recipe("cub200", variant))
            assert changed == {"dataset"}, (benchmark, variant)


def test_the_readme_gives_each_recipe_one_command_with_the_data_root_as_its_argument():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Research: real benchmarks") :]
    section = section[: section.index("\n## ", 1)]
    commands = re.findall(r"torchrun [^\n]*recipes/(\S+)\.json --root (\S+)", section)
    assert sorted(name for name, _ in commands) == sorted(
        f"{b}/{v}" for b in BENCHMARKS for v in VARIANTS
    )
    assert {root for _, root in commands} <= {"$CUB", "$CARS", "$SOP"}


@pytest.mark.slow
def test_a_tiny_version_of_a_recipe_trains_through_dmllab_fit_with_root(tmp_path, monkeypatch):
    """The LSD recipe at CI size: ResNet-18 with (stand-in) pretrained weights from the hub cache,
    32 px, two epochs (the teacher exists from the second), on a generated CUB-layout folder."""
    weights = tmp_path / "weights.pth"
    torch.save(random_state("resnet18"), weights)
    place_in_hub(tmp_path / "torch", weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    root = write_example_folder(tmp_path / "cub", layout="cub200", classes=8, per_class=4)
    tiny = recipe("cub200", "lsd").replace(
        model="resnet18",
        dataset_options={"image_size": 32},
        classes_per_batch=3,
        epochs=2,
        batches_per_epoch=2,
        num_workers=0,
        checkpoint_every=1,
        device="cpu",
    )
    path = tmp_path / "tiny-lsd.json"
    path.write_text(tiny.to_json())
    out = tmp_path / "run"
    assert cli.main(["fit", str(path), "--root", str(root), "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["dataset_options"] == {"image_size": 32, "root": str(root)}
    run = dl.runs.load(out)
    assert len(run.history) == 2 and run.history[-1]["lsd_weight"] > 0
    assert 0.0 <= run.metrics["recall@1"] <= 1.0


def test_root_for_a_data_set_without_a_folder_is_one_line(tmp_path, capsys):
    path = tmp_path / "digits.json"
    path.write_text(Config(dataset="digits").to_json())
    assert cli.main(["fit", str(path), "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err.strip()
    assert "dataset 'digits' has no option(s) root" in error and "\n" not in error
