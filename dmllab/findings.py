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
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{([^{}:]+):([^{}]*)\}")


class Findings:
    """Rendered Markdown (`data`) that Jupyter displays as Markdown and prints as text."""

    def __init__(self, data: str) -> None:
        self.data = data

    def _repr_markdown_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return self.data


def findings(template: str, values: Mapping[str, float]) -> Findings:
    """`template` with each `{key:format}` replaced by `format(values[key], format)`.

    Raises KeyError naming the missing key (and the keys there are), ValueError for a value that
    is not a finite number.
    """

    def fill(match: re.Match[str]) -> str:
        key, spec = match.group(1).strip(), match.group(2)
        if key not in values:
            raise KeyError(
                f"findings: no metric {key!r}; the metrics have: {', '.join(sorted(values))}"
            )
        value = values[key]
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"findings: metric {key!r} is {value!r}, not a finite number")
        if spec.startswith("?"):
            above, bar, otherwise = spec[1:].partition("|")
            if not bar:
                raise ValueError(
                    f"findings: the verdict on {key!r} needs two texts, '?above zero|otherwise'"
                )
            return above if float(value) > 0 else otherwise
        return format(float(value), spec)

    return Findings(_PLACEHOLDER.sub(fill, template))
