"""A lesson's "What we saw", rendered from the numbers its run produced.

Prose that quotes a measurement goes stale the moment the code changes. So a lesson writes its
findings as a template whose every number is a placeholder `{key:format}` naming an entry of the
lesson's metrics (the dict it saves as `metrics.json`), and `findings` fills them in:

>>> template = "LSD ended at {lsd/recall@1:.3f}, {lsd - baseline/recall@1:+.3f} over the baseline."
>>> text = findings(template, {"lsd/recall@1": 0.9381, "lsd - baseline/recall@1": 0.0452})
>>> print(text.data)
LSD ended at 0.938, +0.045 over the baseline.

Keys may hold any character but braces and colons; the format is Python's format spec. A key
that the metrics lack is an error naming the keys it has, so a renamed metric cannot leave a
blank in the text.

A conclusion is a verdict on a number, not fixed text: `{key:?words if above zero|words otherwise}`
picks its words by the sign of the metric (typically a claim's lower confidence bound), so a run
with other parameters cannot print "LSD ends higher" over a bound below zero:

>>> verdict = "{gain_lower:?LSD ends higher|LSD does not end clearly higher}."
>>> print(findings(verdict, {"gain_lower": -0.01}).data)
LSD does not end clearly higher.

A comparison of two variants reads its paired difference in both directions, with three texts:
`{claim:?if clearly higher|if clearly lower|if the run cannot tell them apart}`, where `claim` is
the difference's key (`A - B/metric`) and the metrics hold its one-sided bounds `claim_lower` and
`claim_upper` (`Results.headline` writes both). The words follow `dmllab.claims.verdict`: the
first when the lower bound is above zero, the second when the upper bound is below zero, the third
otherwise.

>>> three_way = "LSD {d:?beats|trails|cannot be told apart from} early stopping."
>>> print(findings(three_way, {"d": -0.033, "d_lower": -0.051, "d_upper": -0.014}).data)
LSD trails early stopping.

Each verdict is kept beside the text (`Findings.verdicts`: the key, the numbers read and the words
chosen), so a test can check every rendered verdict against the bounds it read. A lesson's kernel
keeps what it rendered (`rendered()`: the latest text of each template), and
`dmllab.report.save_lesson_outputs` writes it beside the lesson's metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from dmllab.claims import verdict

_PLACEHOLDER = re.compile(r"\{([^{}:]+):([^{}]*)\}")
_RENDERED: dict[str, Findings] = {}


class Findings:
    """Rendered Markdown (`data`) that Jupyter displays as Markdown and prints as text, with the
    verdicts it chose (`verdicts`: one dict per verdict placeholder, in order: `key`, the numbers
    read (`value`, or `lower` and `upper`), `outcome` and the `words` chosen)."""

    def __init__(self, data: str, verdicts: list[dict[str, Any]] | None = None) -> None:
        self.data = data
        self.verdicts = list(verdicts or [])

    def _repr_markdown_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return self.data


def findings(template: str, values: Mapping[str, float]) -> Findings:
    """`template` with each `{key:format}` replaced by `format(values[key], format)` and each
    verdict `{key:?...}` by its words (module docstring).

    Raises KeyError naming the missing key (and the keys there are), ValueError for a value that
    is not a finite number and for a verdict without two or three texts.
    """
    chosen: list[dict[str, Any]] = []

    def number(key: str) -> float:
        if key not in values:
            raise KeyError(
                f"findings: no metric {key!r}; the metrics have: {', '.join(sorted(values))}"
            )
        value = values[key]
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"findings: metric {key!r} is {value!r}, not a finite number")
        return float(value)

    def fill(match: re.Match[str]) -> str:
        key, spec = match.group(1).strip(), match.group(2)
        if not spec.startswith("?"):
            return format(number(key), spec)
        texts = spec[1:].split("|")
        if len(texts) == 2:
            value = number(key)
            outcome = "above zero" if value > 0 else "not above zero"
            words = texts[0] if value > 0 else texts[1]
            chosen.append({"key": key, "value": value, "outcome": outcome, "words": words})
            return words
        if len(texts) == 3:
            lower, upper = number(f"{key}_lower"), number(f"{key}_upper")
            outcome = verdict(lower, upper)
            words = texts[("higher", "lower", "undecided").index(outcome)]
            chosen.append(
                {"key": key, "lower": lower, "upper": upper, "outcome": outcome, "words": words}
            )
            return words
        raise ValueError(
            f"findings: the verdict on {key!r} needs two texts, '?above zero|otherwise', or "
            "three, '?clearly higher|clearly lower|cannot tell apart'"
        )

    rendered_text = Findings(_PLACEHOLDER.sub(fill, template), chosen)
    _RENDERED[template] = rendered_text
    return rendered_text


def rendered() -> list[Findings]:
    """What `findings` rendered in this process, one per template (its latest rendering), in the
    order the templates were first rendered: a lesson's "What we saw", for its saved outputs."""
    return list(_RENDERED.values())
