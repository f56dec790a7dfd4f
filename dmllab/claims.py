"""Claims ("A beats B on metric m") asserted the one sound way: paired per-seed differences and a
one-sided lower confidence bound on their mean.

For seeds s = 1..n, both variants trained with the same split, label noise and initialisation
(the seed fixes all three), the paired differences are d_s = m_A(s) - m_B(s) and

    lower = mean(d) - t_{confidence, n - 1} * sd(d) / sqrt(n)      (one-sided, Student t)

The claim holds when lower > 0: with probability `confidence` the mean gain is positive, under
the usual normal model of seed-to-seed variation. The same rule read the other way,

    upper = mean(d) + t_{confidence, n - 1} * sd(d) / sqrt(n)

says A is clearly *lower* than B when upper < 0; when neither bound clears zero the run cannot
tell the two apart. `verdict(lower, upper)` is that rule, and the lessons' words follow it
(`dmllab.findings`). Pairing removes the variation the two variants
share (a hard split, an unlucky initialisation), so a few seeds can establish a gain that is
smaller than either variant's own spread. Comparing a difference of means with the larger std
(about one sigma, unpaired) can neither do that nor say how sure it is.

>>> better, worse = [0.91, 0.93, 0.92, 0.95], [0.88, 0.90, 0.90, 0.91]
>>> result = paired_difference(better, worse, metric="recall@1")
>>> round(result.mean, 4), round(result.lower, 4), result.n, result.holds
(0.03, 0.0204, 4, True)
>>> round(result.upper, 4), result.verdict
(0.0396, 'higher')
>>> print(result)
recall@1: +0.030 (95% lower bound +0.020, 4 paired seeds)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Verdict = Literal["higher", "lower", "undecided"]


def verdict(lower: float, upper: float) -> Verdict:
    """The claim rule in both directions, for a difference A - B with one-sided confidence bounds
    `lower` <= `upper`: "higher" (A clearly higher) when lower > 0, "lower" (A clearly lower) when
    upper < 0, else "undecided" (the run cannot tell A from B).

    >>> verdict(0.004, 0.09), verdict(-0.051, -0.014), verdict(-0.02, 0.03)
    ('higher', 'lower', 'undecided')

    Raises ValueError for bounds that are not finite or not in order."""
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower > upper:
        raise ValueError(
            f"verdict needs finite bounds with lower <= upper; got lower={lower!r}, upper={upper!r}"
        )
    if lower > 0:
        return "higher"
    if upper < 0:
        return "lower"
    return "undecided"


@dataclass(frozen=True)
class PairedDifference:
    """mean, sd and one-sided confidence bounds of the paired differences d_s = a_s - b_s.

    `holds` is lower > 0; `verdict` reads both bounds (`verdict`).
    """

    metric: str
    better: str
    worse: str
    n: int
    mean: float
    sd: float
    lower: float
    upper: float
    confidence: float

    @property
    def holds(self) -> bool:
        return self.lower > 0

    @property
    def verdict(self) -> Verdict:
        """ "higher", "lower" or "undecided": the claim rule read in both directions."""
        return verdict(self.lower, self.upper)

    def as_row(self) -> dict[str, Any]:
        """A flat dict for a table: the claim's names, then the numbers rounded to 3 decimals."""
        row = asdict(self)
        for key in ("mean", "sd", "lower", "upper"):
            row[key] = round(row[key], 3)
        row["holds"] = self.holds
        return row

    def __str__(self) -> str:
        name = (
            self.metric
            if not (self.better or self.worse)
            else f"{self.better} - {self.worse}, {self.metric}"
        )
        return (
            f"{name}: {self.mean:+.3f} ({100 * self.confidence:.0f}% lower bound "
            f"{self.lower:+.3f}, {self.n} paired seeds)"
        )


def paired_difference(
    better: Sequence[float],
    worse: Sequence[float],
    *,
    metric: str = "",
    names: tuple[str, str] = ("", ""),
    confidence: float = 0.95,
) -> PairedDifference:
    """The paired difference of two variants' per-seed values (same seeds, same order), with its
    one-sided `confidence` bounds below (`lower`) and above (`upper`) the mean.

    better, worse: [n] floats, element s of both measured with seed s; n >= 2.
    Raises ValueError for unequal lengths, fewer than 2 pairs, non-finite values or a confidence
    outside (0.5, 1).
    """
    a, b = [float(v) for v in better], [float(v) for v in worse]
    if len(a) != len(b):
        raise ValueError(
            "paired_difference needs one value per seed for both variants; "
            f"got {len(a)} and {len(b)}"
        )
    if len(a) < 2:
        raise ValueError(
            f"paired_difference needs at least 2 paired seeds for a confidence bound; got {len(a)}"
        )
    if not all(math.isfinite(v) for v in a + b):
        raise ValueError(f"paired_difference got a non-finite value: {a} vs {b}")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1); got {confidence!r}")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half_width = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return PairedDifference(
        metric, names[0], names[1], n, mean, sd, mean - half_width, mean + half_width, confidence
    )


def t_quantile(level: float, dof: int) -> float:
    """The `level` quantile of Student's t with `dof` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(level, dof))
