"""The claim rule: paired per-seed differences and a one-sided lower confidence bound."""

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab.claims import paired_difference, t_quantile, verdict
from dmllab.experiments import Results


def loop_bound(a, b, confidence):
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return mean - t_quantile(confidence, n - 1) * math.sqrt(var / n)


def test_t_quantile_matches_the_table():
    # Student t one-sided 95% critical values (any statistics table)
    for dof, value in [(1, 6.314), (2, 2.920), (4, 2.132), (9, 1.833)]:
        assert t_quantile(0.95, dof) == pytest.approx(value, abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=12),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_bound_matches_a_loop_and_never_exceeds_the_mean(pairs, confidence):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    result = paired_difference(a, b, confidence=confidence)
    assert result.lower == pytest.approx(loop_bound(a, b, confidence), abs=1e-12)
    assert result.lower <= result.mean + 1e-12
    assert result.holds == (result.lower > 0)
    # the upper bound mirrors the lower one; the verdict reads both
    assert result.upper - result.mean == pytest.approx(result.mean - result.lower, abs=1e-12)
    swapped = paired_difference(b, a, confidence=confidence)
    assert swapped.lower == pytest.approx(-result.upper, abs=1e-12)
    expected = "higher" if result.lower > 0 else "lower" if result.upper < 0 else "undecided"
    assert result.verdict == expected
    assert swapped.verdict == {"higher": "lower", "lower": "higher"}.get(expected, expected)


def test_pairing_sees_a_consistent_gain_that_the_spread_rule_misses():
    # Every seed gains 0.01 but seeds differ by 0.05: unpaired "difference > std" fails, pairing
    # holds.
    base = [0.80, 0.85, 0.90, 0.83, 0.88]
    better = [v + 0.01 + 0.001 * i for i, v in enumerate(base)]
    result = paired_difference(better, base)
    assert result.holds and result.lower > 0.009
    assert result.mean < pd.Series(base).std()


def test_a_gain_on_some_seeds_and_a_loss_on_others_does_not_hold():
    result = paired_difference([0.9, 0.8, 0.9, 0.8], [0.85, 0.85, 0.85, 0.85])
    assert not result.holds and result.verdict == "undecided"


def test_lesson_02s_lsd_against_early_stopping_reads_as_clearly_lower():
    # the instance: a difference of -0.033 whose upper bound is -0.014 is no tie
    assert verdict(-0.051, -0.014) == "lower"
    assert paired_difference([0.80, 0.81, 0.79], [0.83, 0.845, 0.82]).verdict == "lower"


@pytest.mark.parametrize(
    "lower, upper", [(math.nan, 0.0), (0.0, math.inf), (0.2, 0.1)], ids=["nan", "inf", "order"]
)
def test_a_verdict_needs_finite_ordered_bounds(lower, upper):
    with pytest.raises(ValueError, match="lower <= upper"):
        verdict(lower, upper)


@pytest.mark.parametrize(
    "a, b, message",
    [
        ([1.0], [0.0], "at least 2"),
        ([1.0, 2.0], [1.0], "one value per seed"),
        ([1.0, math.nan], [0.0, 0.0], "non-finite"),
    ],
)
def test_bad_inputs_are_refused(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b)


def test_results_pair_variants_by_seed_not_by_row_order():
    table = pd.DataFrame(
        [
            {"variant": "a", "seed": 0, "m": 0.5},
            {"variant": "a", "seed": 1, "m": 0.9},
            {"variant": "b", "seed": 1, "m": 0.8},
            {"variant": "b", "seed": 0, "m": 0.4},
        ]
    )
    result = Results(table).difference("m", "a", "b")
    assert result.mean == pytest.approx(0.1) and result.sd == pytest.approx(0.0, abs=1e-12)
    claims = Results(table).claims([("m", "a", "b")])
    assert claims.loc[0, "verdict"] == "higher" and list(claims.columns) == [
        "metric",
        "better",
        "worse",
        "mean",
        "sd",
        "lower",
        "upper",
        "n",
        "verdict",
    ]
    headline = Results(table).headline(["m"], prefix="x-", claims=[("m", "a", "b")])
    assert headline["x-a - b/m"] == pytest.approx(0.1)
    assert {"x-a - b/m_lower", "x-a - b/m_upper"} <= set(headline)


def test_results_refuse_unpaired_seeds():
    table = pd.DataFrame(
        [
            {"variant": "a", "seed": 0, "m": 0.5},
            {"variant": "a", "seed": 1, "m": 0.9},
            {"variant": "b", "seed": 0, "m": 0.4},
            {"variant": "b", "seed": 2, "m": 0.4},
        ]
    )
    with pytest.raises(ValueError, match="different seeds"):
        Results(table).difference("m", "a", "b")


def test_a_table_with_a_seed_twice_is_refused():
    table = pd.DataFrame(
        [
            {"variant": v, "seed": 0, "m": m}
            for v, m in (("a", 0.5), ("a", 0.6), ("b", 0.4), ("b", 0.4))
        ]
    )
    with pytest.raises(ValueError, match="seed twice"):
        Results(table).difference("m", "a", "b")
    with pytest.raises(ValueError, match="at least one"):
        Results(table).claims([])


@pytest.mark.parametrize(
    "seeds, variants, message",
    [
        ((0, 0), {"a": {}, "b": {}}, "repeat a seed"),
        ((0, 1), {"a": {"seed": 5}, "b": {}}, "set 'seed'"),
    ],
)
def test_run_variants_refuses_unpaired_designs_before_training(seeds, variants, message):
    from dmllab.config import Config
    from dmllab.experiments import run_variants

    with pytest.raises(ValueError, match=message):
        run_variants(Config(), variants, seeds=seeds)
