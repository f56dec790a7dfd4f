"""Results tables for people, and the experiment runner's progress bar."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dmllab.experiments import Results


def _results() -> Results:
    rows = [{"variant": "nearest", "seed": s, "recall@1": v, "asymmetry": math.nan}
            for s, v in enumerate([0.9072361, 0.8, 0.85])]
    rows += [{"variant": "random", "seed": 0, "recall@1": 0.6004999, "asymmetry": 0.12345}]
    return Results(pd.DataFrame(rows))


def test_readable_shows_mean_and_std_rounded_without_helper_columns():
    table = _results().readable(["recall@1", "asymmetry"])
    assert list(table.index) == ["nearest", "random"] and list(table.columns) == ["recall@1", "asymmetry", "seeds"]
    assert table.loc["nearest", "recall@1"] == "0.852 ± 0.054"
    assert table.loc["random", "recall@1"] == "0.600"        # one seed: no spread, not "± nan"
    assert table.loc["nearest", "asymmetry"] == ""           # never measured: blank, not NaN
    assert table.loc["random", "asymmetry"] == "0.123"
    assert table["seeds"].tolist() == [3, 1]
    assert _results().readable(["recall@1"], decimals=2).loc["nearest", "recall@1"] == "0.85 ± 0.05"
    with pytest.raises(ValueError, match=r"no metric\(s\) \['map@r'\]"):
        _results().readable(["map@r"])
