"""findings: a lesson's prose rendered from its metrics, never hand-written numbers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab.findings import findings


def test_fills_every_placeholder_with_its_format():
    text = findings(
        "a {x/r@1:.3f}, b {x - y/r@1:+.2f}, c {n:.0f} of {m:.0f}",
        {"x/r@1": 0.12345, "x - y/r@1": -0.019, "n": 3.0, "m": 960},
    )
    assert text.data == "a 0.123, b -0.02, c 3 of 960"
    assert text._repr_markdown_() == text.data


def test_a_missing_metric_is_an_error_that_lists_the_metrics():
    with pytest.raises(KeyError, match=r"no metric 'gone'.*the metrics have: here"):
        findings("{gone:.3f}", {"here": 1.0})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_non_finite_metric_is_refused(value):
    with pytest.raises(ValueError, match="not a finite number"):
        findings("{x:.3f}", {"x": value})


def test_text_without_placeholders_is_unchanged():
    assert findings("no numbers here {}", {}).data == "no numbers here {}"


@pytest.mark.parametrize("value, words", [(0.02, "holds"), (0.0, "open"), (-0.3, "open")])
def test_a_verdict_follows_the_sign_of_its_metric(value, words):
    assert findings("{x_lower:?holds|open}", {"x_lower": value}).data == words


def test_a_verdict_needs_both_texts():
    with pytest.raises(ValueError, match="needs two texts"):
        findings("{x:?holds}", {"x": 1.0})


@settings(max_examples=60, deadline=None)
@given(
    mean=st.floats(-1, 1),
    half_width=st.floats(0, 1),
)
def test_a_three_text_verdict_reads_both_bounds(mean, half_width):
    lower, upper = mean - half_width, mean + half_width
    metrics = {"a - b/m": mean, "a - b/m_lower": lower, "a - b/m_upper": upper}
    text = findings("{a - b/m:?HIGHER|LOWER|TIE}", metrics)
    expected = "HIGHER" if lower > 0 else "LOWER" if upper < 0 else "TIE"
    assert text.data == expected
    assert text.verdicts == [
        {
            "key": "a - b/m",
            "lower": lower,
            "upper": upper,
            "outcome": {"HIGHER": "higher", "LOWER": "lower", "TIE": "undecided"}[expected],
            "words": expected,
        }
    ]


def test_lesson_02s_lsd_against_early_stopping_is_no_tie():
    metrics = {"d": -0.033, "d_lower": -0.051, "d_upper": -0.014}
    assert findings("{d:?higher|lower|cannot tell}", metrics).data == "lower"


def test_a_three_text_verdict_needs_both_bounds():
    with pytest.raises(KeyError, match="no metric 'd_upper'"):
        findings("{d:?higher|lower|cannot tell}", {"d": 0.1, "d_lower": 0.05})


def test_a_verdict_with_four_texts_is_refused():
    with pytest.raises(ValueError, match="or three"):
        findings("{d:?a|b|c|d}", {"d": 0.1, "d_lower": 0.0, "d_upper": 0.2})


def test_two_text_verdicts_are_recorded_with_the_value_they_read():
    text = findings("{x_lower:?holds|open} and {x_lower:.2f}", {"x_lower": 0.25})
    assert text.data == "holds and 0.25"
    assert text.verdicts == [
        {"key": "x_lower", "value": 0.25, "outcome": "above zero", "words": "holds"}
    ]


def test_a_kernel_keeps_the_latest_rendering_of_each_template(tmp_path):
    import json

    from dmllab.findings import _RENDERED, rendered
    from dmllab.report import save_lesson_outputs

    _RENDERED.clear()
    findings("first {a:.1f}", {"a": 1.0})
    findings("second {b:?yes|no}", {"b": -1.0})
    findings("first {a:.1f}", {"a": 2.0})  # the cell run again
    assert [found.data for found in rendered()] == ["first 2.0", "second no"]
    save_lesson_outputs(tmp_path, {"a": 2.0, "b": -1.0})
    saved = json.loads((tmp_path / "findings.json").read_text())
    assert [entry["text"] for entry in saved] == ["first 2.0", "second no"]
    assert saved[1]["verdicts"][0]["words"] == "no"
    _RENDERED.clear()
