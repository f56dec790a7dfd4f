"""One registry per kind is the single source of names: Config validation, the widgets and the
README's "What is inside" table all read it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dmllab import data, geometry, losses, models
from dmllab.config import Config
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
