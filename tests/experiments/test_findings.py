"""findings: a lesson's prose rendered from its metrics, never hand-written numbers."""

import pytest

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
