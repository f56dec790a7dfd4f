"""One registry per kind is the single source of names: Config validation, the widgets and the
README's "What is inside" table all read it. Every registry is a `dmllab.registry.Registry`: each
builds every entry it holds and refuses a second component under a taken name."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import torch

import dmllab
from dmllab import data, geometry, losses, models, optim
from dmllab.config import Config
from dmllab.data import transforms
from dmllab.data.example_folder import LAYOUTS, write_example_folder
from dmllab.registry import DuplicateName, Registry
from dmllab.values import BadValue

README = Path(__file__).resolve().parents[1] / "README.md"

# README kind -> (registry, the Config field that names it, or None)
REGISTRIES = {
    "dataset": (data.DATASETS, "dataset"),
    "model": (models.MODELS, "model"),
    "geometry": (geometry.GEOMETRIES, "geometry"),
    "loss": (losses.LOSSES, "loss"),
    "positives strategy": (losses.POSITIVES, "positives"),
    "negatives strategy": (losses.NEGATIVES, "negatives"),
    "regulariser": (losses.REGULARISERS, None),
    "optimizer": (optim.OPTIMIZERS, "optimizer"),
    "learning-rate schedule": (optim.SCHEDULES, "lr_schedule"),
    "augment": (transforms.TRANSFORMS, "augment"),
}


def readme_names() -> dict[str, list[str]]:
    """kind -> the names in the README table's rows of that kind: the `backticked` words of the
    name cell outside parentheses (those hold options, e.g. `nearest` (+ `k_positives`))."""
    text = README.read_text()
    table = text[text.index("## What is inside") :]
    table = table[: table.index("\n## ")]
    names: dict[str, list[str]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("kind", "---"):
            continue
        outside = re.sub(r"\([^)]*\)", "", cells[1])
        names.setdefault(cells[0], []).extend(re.findall(r"`([^`]+)`", outside))
    return names


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_the_readme_table_lists_exactly_the_registered_names(kind):
    listed = readme_names().get(kind, [])
    assert sorted(listed) == sorted(REGISTRIES[kind][0]), f"README 'What is inside', kind {kind!r}"
    assert len(listed) == len(set(listed)), f"README lists a {kind} twice"


@pytest.mark.parametrize("kind", sorted(k for k, (_, field) in REGISTRIES.items() if field))
def test_config_accepts_every_registered_name_and_refuses_others_listing_them(kind):
    registry, field = REGISTRIES[kind]
    extra = (
        {"samples_per_class": 4, "normalize": False} if field in ("positives", "geometry") else {}
    )
    for name in registry:
        assert getattr(Config(**{field: name}, **extra), field) == name
    with pytest.raises(
        BadValue,
        match=f"Config.{field}='nope' is not known; choose one of: "
        + re.escape(", ".join(sorted(registry))),
    ):
        Config(**{field: "nope"})


def test_a_component_registered_at_run_time_is_accepted_by_config(monkeypatch):
    monkeypatch.setitem(losses.LOSSES, "my_loss", losses.LOSSES["triplet"])
    assert Config(loss="my_loss").loss == "my_loss"


# What a registry's builder supplies (its `context`), one example value per name, and the options
# without a default that an entry needs to be built at all.
CONTEXT = {
    "geometry": geometry.Euclidean(),
    **dict(zip(losses.SELECTION, ("all", "all", 0.2, 1), strict=True)),
    "classes": None,
    "num_classes": 3,
    "embedding_dim": 4,
    "dim": 4,
    "input_shape": (3, 16, 16),
    "image_shape": (3, 16, 16),
    "load_weights": True,
    "params": [torch.nn.Parameter(torch.zeros(2))],
    "lr": 0.1,
    "weight_decay": 0.0,
    "optimizer": torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1),
    "total_steps": 10,
    "steps_per_epoch": 2,
    "image_size": 16,
}
REQUIRED = {
    ("regulariser", "lsd"): {"alpha": 1.0},
    ("learning-rate schedule", "multistep"): {"milestones": [1, 3]},
}
# what an entry of each kind builds
BUILT = {
    "dataset": data.Dataset,
    "model": tuple,
    "geometry": geometry.Geometry,
    "loss": losses.MetricLoss,
    "positives strategy": losses.PositiveStrategy,
    "negatives strategy": losses.NegativeStrategy,
    "regulariser": losses.Regulariser,
    "optimizer": torch.optim.Optimizer,
    "learning-rate schedule": (torch.optim.lr_scheduler.LRScheduler, type(None)),
    "augment": transforms.TransformPair,
}


def every_registry() -> dict[str, Registry]:
    """kind -> registry, for every Registry held by a module of the package (each imported)."""
    found: dict[str, Registry] = {}
    for module in pkgutil.walk_packages(dmllab.__path__, "dmllab."):
        if module.name.endswith("__main__"):  # runs the command line
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, Registry):
                assert found.setdefault(value.kind, value) is value, f"two {value.kind} registries"
    return found


def test_every_registry_is_listed_here():
    listed = {id(registry) for registry, _ in REGISTRIES.values()}
    missing = sorted(
        kind for kind, registry in every_registry().items() if id(registry) not in listed
    )
    assert not missing, f"add the {missing} registry(ies) to REGISTRIES (and the README table)"


def _options(kind, name, registry, root_of):
    """The options that build `name` here: the required ones, and a generated folder for the
    image datasets (the lab never downloads)."""
    options = dict(REQUIRED.get((kind, name), {}))
    if kind == "dataset" and "root" in registry.options(name):
        options.update(root=str(root_of(name)), image_size=16)
    required = [k for k, v in registry.options(name).items() if v is inspect.Parameter.empty]
    assert set(required) <= set(options), f"add example values for {kind} {name!r}: {required}"
    return options


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_entry_of_every_registry_builds(kind, tmp_path):
    registry = REGISTRIES[kind][0]
    unknown = sorted(set(registry.context) - set(CONTEXT))
    assert not unknown, f"add an example value for the {kind} context {unknown} to CONTEXT"

    def root_of(layout):
        assert layout in LAYOUTS
        return write_example_folder(
            tmp_path / layout, layout=layout, classes=4, per_class=2, size=16
        )

    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    memory = torch.tensor([5, 2, 1, 0])  # rows of every class, as a reference set
    z = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    x = torch.rand(2, *CONTEXT["input_shape"])
    for name in registry:
        built = registry.build(name, CONTEXT, **_options(kind, name, registry, root_of))
        assert isinstance(built, BUILT[kind]), (kind, name, built)
        if kind == "loss":  # each loss computes on a batch, and against a reference set
            assert torch.isfinite(built(z, labels))
            assert torch.isfinite(built(z, labels, z[memory], labels[memory]))
        elif kind == "model":  # a trunk and its output width (None: no head)
            trunk, width = built
            assert trunk(x).shape[1] == (width or x[0].numel())
        elif kind == "dataset":
            assert len(built) > 0


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registry_refuses_a_taken_name(kind):
    registry = REGISTRIES[kind][0]

    def other(*args, **kwargs):
        """A component defined elsewhere."""

    for name in registry:
        held = registry[name]
        with pytest.raises(DuplicateName, match=f"{kind} name {name!r} is taken by"):
            registry.register(name, other)
        with pytest.raises(DuplicateName):
            registry[name] = other
        assert registry[name] is held
