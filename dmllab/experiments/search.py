"""A hyper-parameter search: a space over Config fields, the variants to compare, one budget.

A search-space file is read through the same declarative reader as a sweep's grid
(`dmllab.experiments.spec`), so every value is checked like the Config field it sets and a bad
spec fails before any trial runs, naming the file, the line and the key:

    fit: {dataset: mixture, epochs: 6, val_fraction: 0.3}    # base Config fields
    space:
      lr: {low: 1.0e-4, high: 3.0e-2, log: true}             # a float field: a float range
      embedding_dim: {low: 4, high: 32, log: true}           # an int field: an int range
      negatives: {values: [semihard, hardest]}               # a categorical
      k_positives: {low: 1, high: 3, when: {positives: nearest}}   # only where the condition holds
    variants:                                                # one study each, the same budget
      random: {positives: random}
      nearest: {positives: nearest}
    trials: 20          # finished trials per study (complete or pruned; failed ones are retried)
    metric: map@r       # the objective: this metric on the validation split (recall@1 or map@r)
    seeds: [0, 1, 2]    # each study's best configuration is retrained on these, measured on test
    sampler_seed: 0     # TPE's seed: a study never changes with Optuna's defaults
    startup_trials: 10  # TPE's random trials before it models the space
    pruner: median      # stop a trial whose validation curve falls below the median (or none)
    out: runs/tuned     # default: the file's name without .yaml, beside it

The objective never reads the test split: it trains with `val_fraction` carving a validation
split out of the training classes and scores the trained model there (`score`); `monitor_test`
is refused. A `when` condition names a Config field (fixed by `fit` or the variant, or searched
earlier in the space) or `variant`, and the values under which the parameter is searched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmllab.config import MAX_SEED, Config
from dmllab.experiments import spec
from dmllab.experiments.plan import VARIANT, first_repeat
from dmllab.experiments.spec import REQUIRED, Key, Schema, SpecError, Where
from dmllab.values import BadValue, canonical

if TYPE_CHECKING:
    import optuna

    from dmllab.runs import Run

METRICS = ("map@r", "recall@1")
PRUNERS = ("median", "none")
MAX_TRIALS = 1_000_000
_KINDS = {item.name: str(item.type).split(" ")[0] for item in dataclasses.fields(Config)}
_FIXED = {
    "seed": "seeds come from 'seeds' (the reproductions) and 'fit' (the search)",
    "val_fraction": "it decides what the objective measures: set it under 'fit'",
    "monitor_test": "it reads the test split every epoch, and a search never reads it",
}


@dataclass(frozen=True)
class Param:
    """One searched Config field: a range (`low`..`high`, on a `log` scale, by `step`) for a
    number field, or `values` to choose from; searched only where `when` holds (field or
    'variant' -> the values under which it is searched)."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    values: tuple[Any, ...] | None = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def applies(self, fields: Mapping[str, Any]) -> bool:
        """Whether the condition holds for a trial's fields (and its `variant`)."""
        return all(fields.get(name) in allowed for name, allowed in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        """This parameter's value for `trial` (Optuna's define-by-run API)."""
        if self.values is not None:
            return trial.suggest_categorical(self.name, list(self.values))
        assert self.low is not None and self.high is not None
        if _KINDS[self.name] == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The values that bound this parameter: checked in a Config before any trial runs."""
        return list(self.values) if self.values is not None else [self.low, self.high]


@dataclass(frozen=True)
class Search:
    """A search: base Config fields (`fit`), the `space`, named `variants` (one study each, with
    the same budget of `trials`), the objective `metric` on the validation split, the
    reproduction `seeds`, TPE's `sampler_seed` and `startup_trials`, the `pruner`, the output
    folder `out` and the study names' prefix `name`."""

    fit: dict[str, Any]
    space: tuple[Param, ...]
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {"base": {}})
    trials: int = 20
    metric: str = "map@r"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    sampler_seed: int = 0
    startup_trials: int = 10
    pruner: str = "median"
    out: Path = Path("tuned")
    name: str = "search"

    def sample(self, trial: optuna.Trial, variant: str) -> dict[str, Any]:
        """The trial's values of the parameters that apply (in the space's order)."""
        fields = {**self.config(variant).to_dict(), VARIANT: variant}
        chosen: dict[str, Any] = {}
        for param in self.space:
            if param.applies(fields):
                chosen[param.name] = fields[param.name] = param.suggest(trial)
        return chosen

    def config(self, variant: str, params: Mapping[str, Any] | None = None) -> Config:
        """The Config of `variant` with searched values `params`. A setting of the variant that
        a searched value switches off (LSD's when a trial draws `lsd_alpha=0`) returns to its
        default, as in `Config.replace`."""
        values = {**self.fit, **self.variants[variant], **(params or {})}
        if params:
            values = Config.unread_at_defaults(values, keep=params)
        return Config.from_dict(values)

    def recorded(self, variant: str) -> dict[str, Any]:
        """What a study of `variant` was run with: compared when a study is resumed."""
        return {
            "fit": self.config(variant).to_dict(),
            "space": [dataclasses.asdict(param) for param in self.space],
            "metric": self.metric,
            "trials": self.trials,
            "sampler_seed": self.sampler_seed,
            "startup_trials": self.startup_trials,
            "pruner": self.pruner,
        }

    def study_name(self, variant: str) -> str:
        return f"{self.name}/{variant}"


def score(run: Run, metric: str) -> float:
    """`metric` (recall@1 or map@r) of a trained run on its validation split, never its test
    split. Raises ValueError when the run has no validation split."""
    from dmllab.metrics import retrieval

    if run.val is None:
        raise ValueError("a search scores a run on its validation split: set val_fraction > 0")
    z, y = run.embed_decoded(run.val)  # a failed file's black stand-in is not scored
    return float(retrieval(z, y, geometry=run.geometry, ks=(1,))[metric])


# --------------------------------------------------------------------------- reading a search
def _param_schema() -> Schema:
    number = _number
    return Schema(
        "search parameter",
        (
            Key("low", number),
            Key("high", number),
            Key("log", spec.flag, False),
            Key("step", number),
            Key("values", _values),
            Key("when", _when, {}),
        ),
        shape="a search parameter is a mapping: {low: .., high: ..} or {values: [..]}",
    )


def _number(value: Any, where: Where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(f"{where.key!r} must be a number; got {value!r}")
    return value


def _values(value: Any, where: Where) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise where.error(f"{where.key!r} is a list of the values to choose from")
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, (bool, int, float, str)):
            raise where.at(i).error(f"{where.key!r}: a choice is a plain value; got {item!r}")
    repeated = first_repeat(value)
    if repeated is not None:
        raise where.error(f"{where.key!r} lists {repeated!r} twice; each value once")
    if len(value) < 2:
        raise where.error(
            f"{where.key!r} needs at least 2 different values (one value is no choice: set the "
            "field under 'fit')"
        )
    return tuple(value)


def _when(value: Any, where: Where) -> dict[str, tuple[Any, ...]]:
    if not isinstance(value, dict) or not value:
        raise where.error(
            f"{where.key!r} maps a Config field (or 'variant') to the value(s) under which this "
            "parameter is searched"
        )
    condition = {}
    for name, allowed in value.items():
        listed = allowed if isinstance(allowed, list) else [allowed]
        if name != VARIANT:
            for i, item in enumerate(listed):
                at = where.at(name, i) if isinstance(allowed, list) else where.at(name)
                spec.check_config_value(name, item, at)
        condition[name] = tuple(listed)
    return condition


def _space(value: Any, where: Where) -> tuple[Param, ...]:
    if not isinstance(value, dict) or not value:
        raise where.error(f"{where.key!r} maps Config fields to the range or values to search")
    schema = _param_schema()
    params = []
    for name, described in value.items():
        at = where.at(name)
        if name not in spec.CONFIG_FIELDS:
            raise at.error(
                f"Config has no field {name!r}{spec.did_you_mean(str(name), spec.CONFIG_FIELDS)}"
            )
        if name in _FIXED:
            raise at.error(f"{name!r} cannot be searched: {_FIXED[name]}")
        data = schema.check(described, at)
        params.append(_param(name, data, at))
    return tuple(params)


def _param(name: str, data: dict[str, Any], where: Where) -> Param:
    ranged = data["low"] is not None or data["high"] is not None
    if (data["values"] is not None) == ranged:
        raise where.error(
            f"{where.key!r}: give a range ('low' and 'high') or 'values' to choose from, not both"
            if ranged
            else f"{where.key!r}: give a range ('low' and 'high') or 'values' to choose from"
        )
    if data["values"] is not None:
        for key in ("log", "step"):
            if data[key] not in (None, False):
                raise where.at(key).error(
                    f"{where.key!r}: {key!r} applies to a range, not to values"
                )
        for i, item in enumerate(data["values"]):
            spec.check_config_value(name, item, where.at("values", i))
        return Param(name, values=data["values"], when=data["when"])
    if _KINDS[name] not in ("int", "float"):
        raise where.error(
            f"{where.key!r}: Config.{name} is not a number; give 'values' to choose from"
        )
    for key in ("low", "high"):
        if data[key] is None:
            raise where.error(f"{where.key!r}: a range needs both 'low' and 'high'")
        spec.check_config_value(name, data[key], where.at(key))
    low, high = data["low"], data["high"]
    if low == high:
        raise where.at("high").error(
            f"{where.key!r}: the range [{low}, {high}] is empty (low = high)"
        )
    if low > high:
        raise where.at("low").error(f"{where.key!r}: low > high ({low} > {high})")
    if data["log"] and low <= 0:
        raise where.at("low").error(
            f"{where.key!r}: a log scale needs a positive range; got low = {low}"
        )
    if data["step"] is not None:
        if data["log"]:
            raise where.at("step").error(f"{where.key!r}: a log scale takes no 'step'")
        if not 0 < data["step"] <= high - low:
            raise where.at("step").error(f"{where.key!r}: 'step' must be in (0, high - low]")
    return Param(name, low, high, data["log"], data["step"], when=data["when"])


def _variants(value: Any, where: Where) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not value:
        raise where.error(f"{where.key!r} maps each variant's name to the Config fields it sets")
    for name, fields in value.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise where.at(str(name)).error(f"{where.key!r}: a variant's name is text without '/'")
        spec.config_fields(fields, where.at(name))
        for fixed in set(fields or {}) & set(_FIXED):
            raise where.at(name, fixed).error(f"a variant cannot set {fixed!r}: {_FIXED[fixed]}")
    return {name: dict(fields or {}) for name, fields in value.items()}


SEARCH = Schema(
    "search-space file",
    (
        Key("fit", spec.config_fields, REQUIRED, "the base Config fields ('fit:')"),
        Key("space", _space, REQUIRED, "the Config fields to search ('space:')"),
        Key("variants", _variants, {"base": {}}, "the variants, one study each"),
        Key("trials", spec.count(1, MAX_TRIALS), 20, "finished trials per study"),
        Key("metric", spec.choice(METRICS), "map@r", "the validation metric to maximise"),
        Key("seeds", spec.seeds, [0, 1, 2], "the reproduction seeds"),
        Key("sampler_seed", spec.count(0, MAX_SEED), 0, "TPE's seed"),
        Key("startup_trials", spec.count(1, MAX_TRIALS), 10, "TPE's random trials"),
        Key("pruner", spec.choice(PRUNERS), "median", "median or none"),
        Key("out", spec.folder, None, "the output folder"),
    ),
    shape="a search-space file is a mapping with 'fit', 'space' and 'variants'",
)


def load_search(source: str | Path | Mapping[str, Any]) -> Search:
    """Read and check a search-space file (or the same mapping given in Python) before any trial
    runs: every key through the `SEARCH` schema, every searched value's bounds in every variant's
    Config. Raises SpecError (a ValueError) naming the file, the line and the key."""
    data, where = SEARCH.read(source)
    fit = data["fit"]
    fit_where = where.at("fit")
    for name in ("monitor_test",):
        if fit.get(name):
            raise fit_where.at(name).error(f"{name!r} cannot be on in a search: {_FIXED[name]}")
    if not fit.get("val_fraction"):
        raise fit_where.at("val_fraction").error(
            "a search scores each trial on a validation split of the training classes: set "
            "fit.val_fraction > 0 (e.g. 0.3); the test split is never read during a search"
        )
    searched = {param.name for param in data["space"]}
    for variant, fields in data["variants"].items():
        for name in set(fields) & searched:
            raise where.at("variants", variant, name).error(
                f"variant {variant!r} sets {name!r}, which the space searches; fix it in the "
                "variant or search it, not both"
            )
    _check_conditions(data["space"], data["variants"], where)
    if isinstance(source, (str, Path)):
        path = Path(source)
        out = Path(data["out"] or path.with_suffix(""))
        out = out if out.is_absolute() else path.parent / out
        name = path.stem
    else:
        out, name = Path(data["out"] or "tuned"), "search"
    search = Search(
        fit=fit,
        space=data["space"],
        variants=data["variants"],
        trials=data["trials"],
        metric=data["metric"],
        seeds=data["seeds"],
        sampler_seed=data["sampler_seed"],
        startup_trials=data["startup_trials"],
        pruner=data["pruner"],
        out=out,
        name=name,
    )
    _check_configs(search, where)
    return search


def _check_conditions(
    space: tuple[Param, ...], variants: dict[str, dict[str, Any]], where: Where
) -> None:
    """A condition names a variant that exists, or a field searched before it (or fixed)."""
    order = [param.name for param in space]
    for param in space:
        for name, allowed in param.when.items():
            at = where.at("space", param.name, "when", name)
            if name == VARIANT:
                unknown = [v for v in allowed if v not in variants]
                if unknown:
                    raise at.error(
                        f"no variant {unknown[0]!r}; the variants are: {', '.join(variants)}"
                    )
            elif name in order and order.index(name) >= order.index(param.name):
                raise at.error(
                    f"{param.name!r} depends on {name!r}, which is searched after it (or is "
                    "itself): list the condition's field first"
                )


def _check_configs(search: Search, where: Where) -> None:
    """Every variant's Config, and each searched value's bounds in it, are valid Configs (where
    the parameter's condition on fixed fields holds in that variant), and no two variants are the
    same search (the same Config, the same parameters searched: one variant twice)."""
    searched = {param.name for param in search.space}
    seen: dict[str, str] = {}
    for variant in search.variants:
        try:
            fields = {**search.config(variant).to_dict(), VARIANT: variant}
        except BadValue as error:
            raise where.at("variants", variant).error(f"variant {variant!r}: {error}") from error
        applies = [
            dataclasses.replace(
                param, when={k: v for k, v in param.when.items() if k not in searched}
            ).applies(fields)
            for param in search.space
        ]
        same = canonical([search.config(variant).to_dict(), applies])
        if same in seen:
            raise where.at("variants", variant).error(
                f"variant {variant!r} is the same as variant {seen[same]!r} (the same Config "
                "and space): one variant twice; make them differ or keep one"
            )
        seen[same] = variant
        for param, applied in zip(search.space, applies, strict=True):
            if not applied:
                continue
            # a condition on other searched fields holds in the trials that draw this one
            drawn_with = {k: next(iter(v)) for k, v in param.when.items() if k in searched}
            for value in param.corners():
                try:
                    search.config(variant, {**drawn_with, param.name: value})
                except BadValue as error:
                    raise where.at("space", param.name).error(
                        f"{param.name}={value!r} in variant {variant!r}: {error}"
                    ) from error


__all__ = ["METRICS", "Param", "Search", "SpecError", "load_search", "score"]
