"""Results tables for people, and the experiment runner's progress bar."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from dmllab.experiments import Results


def _results() -> Results:
    rows = [
        {"variant": "nearest", "seed": s, "recall@1": v, "asymmetry": math.nan}
        for s, v in enumerate([0.9072361, 0.8, 0.85])
    ]
    rows += [{"variant": "random", "seed": 0, "recall@1": 0.6004999, "asymmetry": 0.12345}]
    return Results(pd.DataFrame(rows))


def test_readable_shows_mean_and_std_rounded_without_helper_columns():
    table = _results().readable(["recall@1", "asymmetry"])
    assert list(table.index) == ["nearest", "random"] and list(table.columns) == [
        "recall@1",
        "asymmetry",
        "seeds",
    ]
    assert table.loc["nearest", "recall@1"] == "0.852 ± 0.054"
    assert table.loc["random", "recall@1"] == "0.600"  # one seed: no spread, not "± nan"
    assert table.loc["nearest", "asymmetry"] == ""  # never measured: blank, not NaN
    assert table.loc["random", "asymmetry"] == "0.123"
    assert table["seeds"].tolist() == [3, 1]
    assert _results().readable(["recall@1"], decimals=2).loc["nearest", "recall@1"] == "0.85 ± 0.05"
    with pytest.raises(ValueError, match=r"no metric\(s\) \['map@r'\]"):
        _results().readable(["map@r"])


def _fake_fit(config, dataset=None, progress=True, **fit_options):
    from viz_fixtures import hand_run

    assert progress is False  # one bar over the runs, none per epoch inside it
    return hand_run(epochs=1)


def test_run_variants_shows_one_bar_over_variants_and_seeds(monkeypatch, capsys):
    from dmllab import experiments
    from dmllab.config import Config
    from dmllab.experiments import runner

    monkeypatch.setattr(runner, "fit", _fake_fit)
    monkeypatch.setattr(runner, "evaluate", lambda run, **options: {"recall@1": 0.5})
    monkeypatch.delenv("DMLLAB_PROGRESS", raising=False)
    results = experiments.run_variants(
        Config(), {"a": {}, "b": {"lsd_alpha": 1.0}}, seeds=(0, 1, 2)
    )
    assert len(results.table) == 6
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert bar.startswith("b, seed 2: 100%") and "6/6" in bar
    monkeypatch.setenv("DMLLAB_PROGRESS", "0")
    experiments.run_variants(Config(), {"a": {}}, seeds=(0,))
    experiments.run_variants(Config(), {"a": {}}, seeds=(0,), progress=False)
    assert capsys.readouterr().err == ""


def test_headline_of_a_single_seed_has_no_spread_and_metrics_json_holds_it_as_null(tmp_path):
    from dmllab.report import save_lesson_outputs

    headline = _results().headline(["recall@1"])
    assert headline["nearest/recall@1_std"] == pytest.approx(0.0536, abs=1e-4)
    assert headline["random/recall@1"] == pytest.approx(0.6004999)
    assert math.isnan(headline["random/recall@1_std"])  # one seed: not 0.0
    save_lesson_outputs(tmp_path, headline)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["random/recall@1_std"] is None
    assert written["nearest/recall@1_std"] == headline["nearest/recall@1_std"]
