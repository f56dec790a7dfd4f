"""What an experiment runs: factors, each with its levels, crossed with each other and with seeds.

A factor is either a list of values of the field (a `Config` field, or a lesson's parameter in a
sweep) named like the factor, or named levels that each set some fields:

    plan = Plan({"positives": ["random", "nearest"],
                 "lsd": {"plain": {"lsd_alpha": 0.0}, "lsd": {"lsd_alpha": 200.0}}}, seeds=[0, 1])
    [(job.variant, job.levels, job.changes) for job in plan.jobs()][:2]
    # [("random-plain", {"positives": "random", "lsd": "plain"},
    #   {"positives": "random", "lsd_alpha": 0.0, "seed": 0}),
    #  ("random-plain", {...}, {..., "seed": 1})]

The jobs are every combination of one level per factor (the first factor varying slowest), each
for every seed (the seeds vary fastest). A job's `variant` joins its levels' names with "-";
named variants, `Plan.named({"baseline": {}, "lsd": {...}}, seeds)`, are the one factor
"variant" whose level names are the variants' names. Seeds are never a factor: every variant runs
on the same seeds, so that variants can be compared paired by seed (`dmllab.claims`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dmllab.values import canonical

VARIANT = "variant"  # the factor of named variants, and the table column that names each variant

Levels = Sequence[Any] | Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Job:
    """One run of a plan: its variant's name, each factor's level, and the fields it sets.

    levels:  factor -> the value it sets (a list factor) or its level's name (named levels).
    changes: the fields (or a lesson's parameters) the job sets over the base, `seed` last.
    """

    variant: str
    levels: dict[str, Any]
    changes: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.changes["seed"]


@dataclass
class Plan:
    """Factors (name -> levels) crossed with each other and with `seeds`.

    Raises ValueError, before anything runs, for no seeds, a repeated seed (a repeated run is not
    a new paired sample), a factor without levels or with a level twice, a factor named 'seed' or
    a level that sets 'seed' (seeds come from `seeds`), a factor 'variant' beside other factors,
    and two factors that set the same field."""

    factors: dict[str, Levels]
    seeds: list[int] = field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        self.factors = dict(self.factors)
        self.seeds = [int(seed) for seed in self.seeds]
        if not self.seeds:
            raise ValueError("a plan needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"seeds {self.seeds} repeat a seed; a repeated run is not a new paired sample, "
                "so give distinct seeds"
            )
        if "seed" in self.factors:
            raise ValueError(
                "'seed' is not a factor: give the seeds as `seeds`, so that every variant runs on "
                "each"
            )
        if VARIANT in self.factors and len(self.factors) > 1:
            raise ValueError(
                f"'{VARIANT}' names each row of the results; call the factor of named variants "
                "something else when there are other factors"
            )
        setters: dict[str, str] = {}
        for name, levels in self.factors.items():
            if isinstance(levels, Mapping):
                if not all(isinstance(fields, Mapping) for fields in levels.values()):
                    raise ValueError(
                        f"factor {name!r}: each named level maps fields to values; got {levels!r}"
                    )
            elif isinstance(levels, str) or not isinstance(levels, Sequence):
                raise ValueError(
                    f"factor {name!r}: give a list of values or named levels ({{name: changes}}); "
                    f"got {levels!r}"
                )
            if not levels:
                raise ValueError(
                    f"factor {name!r} has no levels; e.g. {{'baseline': {{}}}} for one variant"
                )
            repeated = first_repeat(list(levels))
            if repeated is not None:
                raise ValueError(f"factor {name!r} lists {repeated!r} twice; each level runs once")
            options = self._options(name)
            seeded = sorted(label for label, _, fields in options if "seed" in fields)
            if seeded:
                raise ValueError(
                    f"level(s) {', '.join(seeded)} of {name!r} set 'seed'; every variant runs on "
                    "`seeds` (so that variants are paired by seed): remove it from the level"
                )
            for set_field in {key for _, _, fields in options for key in fields}:
                if setters.setdefault(set_field, name) != name:
                    raise ValueError(
                        f"factors {setters[set_field]!r} and {name!r} both set {set_field!r}; "
                        "let one factor set each field"
                    )

    @classmethod
    def named(cls, variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int] = (0,)) -> Plan:
        """Named variants ({name: field changes}) over `seeds`: the one factor 'variant'."""
        return cls({VARIANT: variants}, list(seeds))

    @property
    def names(self) -> list[str]:
        """The factors that the results keep as columns (named variants need none: 'variant' is
        one)."""
        return [name for name in self.factors if name != VARIANT]

    def jobs(self) -> list[Job]:
        """Every combination of one level per factor (first factor slowest), then every seed."""
        jobs: list[Job] = []
        for combination in itertools.product(*(self._options(name) for name in self.factors)):
            variant = variant_name([label for label, _, _ in combination])
            levels = {
                name: level for name, (_, level, _) in zip(self.factors, combination, strict=True)
            }
            changes = {key: value for _, _, fields in combination for key, value in fields.items()}
            jobs.extend(Job(variant, levels, {**changes, "seed": seed}) for seed in self.seeds)
        return jobs

    def _options(self, name: str) -> list[tuple[str, Any, dict[str, Any]]]:
        """A factor's levels as (name in the variant's name, value in the results, fields it
        sets)."""
        levels = self.factors[name]
        if isinstance(levels, Mapping):
            return [(str(label), str(label), dict(fields)) for label, fields in levels.items()]
        return [(level_name(value), value, {name: value}) for value in levels]


def level_name(value: Any) -> str:
    """A level as a variant's name shows it: a string as it is, anything else as its JSON."""
    return value if isinstance(value, str) else canonical(value)


def variant_name(labels: Sequence[str]) -> str:
    """The levels' names joined by "-" (`nearest-lsd-bregman`); `base` for no factor at all."""
    return "-".join(labels) if labels else "base"


def first_repeat(items: Sequence[Any]) -> Any:
    """The first item equal (as JSON) to one before it, or None."""
    seen = set()
    for item in items:
        key = canonical(item)
        if key in seen:
            return item
        seen.add(key)
    return None
