"""What `dmllab tune` refuses before any trial, in one line of its own (a database URL it cannot
use, a heartbeat of 0, a search changed under an existing study, one variant twice), and what it
allows: raising `trials` continues the same study."""

import re

import pytest

from dmllab import cli
from dmllab.experiments.search import load_search
from dmllab.experiments.spec import SpecError
from dmllab.experiments.tune import (
    StorageError,
    StudyMismatch,
    check_heartbeat,
    open_study,
    storage_url,
)

FIT = """\
fit:
  dataset: mixture
  dataset_options: {num_classes: 6, modes_per_class: 2, dim: 4, per_mode: 12}
  split: stratified
  val_fraction: 0.3
  epochs: 1
  batches_per_epoch: 2
  classes_per_batch: 3
  samples_per_class: 4
  embedding_dim: 4
space:
  lr: {low: 0.001, high: 0.1}
"""


def search(tmp_path, extra="trials: 3\n"):
    (tmp_path / "search.yaml").write_text(FIT + extra)
    return load_search(tmp_path / "search.yaml")


@pytest.mark.parametrize(
    "url, says",
    [
        ("bogus://x", "bogus://x: SQLAlchemy knows no database of this scheme; use sqlite:///"),
        ("mysql://me:secret@db/x", "mysql://me:***@db/x: the database driver of this scheme is"),
        ("not a url", "not a url is no SQLAlchemy URL; use sqlite:///"),
        ("sqlite:///", "sqlite:///: an in-memory database lives in one process"),
        ("sqlite://", "sqlite://: an in-memory database lives in one process"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_one_line_naming_it(tmp_path, url, says):
    with pytest.raises(StorageError) as raised:
        open_study(search(tmp_path), "base", url)
    message = str(raised.value)
    assert message.startswith(f"--storage {says}") and "\n" not in message
    assert "secret" not in message


@pytest.mark.parametrize("heartbeat", [0, -5, 1.5, True])
def test_a_heartbeat_below_one_second_is_refused(heartbeat):
    with pytest.raises(ValueError, match=re.escape(f"heartbeat={heartbeat!r}: give the seconds")):
        check_heartbeat(heartbeat)


def test_the_command_refuses_heartbeat_0_before_any_work(tmp_path, capsys):
    search(tmp_path)
    assert cli.main(["tune", str(tmp_path / "search.yaml"), "--heartbeat", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dmllab tune: heartbeat=0: give the seconds") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.yaml"]


def test_a_changed_space_names_the_changed_key_not_the_whole_search(tmp_path):
    open_study(search(tmp_path), "base", storage_url(search(tmp_path)))
    (tmp_path / "search.yaml").write_text(FIT.replace("high: 0.1", "high: 0.2") + "trials: 3\n")
    changed = load_search(tmp_path / "search.yaml")
    with pytest.raises(StudyMismatch) as raised:
        open_study(changed, "base", storage_url(changed))
    assert "(space.lr.high: 0.1 -> 0.2)" in str(raised.value)
    (tmp_path / "search.yaml").write_text(FIT + "  margin: {low: 0.1, high: 0.5}\ntrials: 3\n")
    added = load_search(tmp_path / "search.yaml")
    with pytest.raises(StudyMismatch, match=r"\(space\.margin: added\)"):
        open_study(added, "base", storage_url(added))


def test_raising_trials_continues_the_study_and_lowering_it_is_refused(tmp_path):
    first = search(tmp_path, "trials: 3\n")
    study = open_study(first, "base", storage_url(first))
    more = search(tmp_path, "trials: 4\n")
    again = open_study(more, "base", storage_url(more))
    assert again._study_id == study._study_id
    assert '"trials":4' in again.user_attrs["search"]
    fewer = search(tmp_path, "trials: 2\n")
    with pytest.raises(StudyMismatch, match="has a budget of trials=4; raise trials"):
        open_study(fewer, "base", storage_url(fewer))
    for changed in ("metric: recall@1\ntrials: 5\n", "trials: 5\nsampler_seed: 1\n"):
        other = search(tmp_path, changed)
        with pytest.raises(StudyMismatch, match="was run with another search"):
            open_study(other, "base", storage_url(other))


@pytest.mark.parametrize(
    "variants",
    [
        "variants:\n  a: {}\n  b: {}\n",
        "variants:\n  a: {margin: 0.3}\n  b: {margin: 0.3}\n",
        "variants:\n  a: {}\n  b: {margin: 0.2}\n",  # 0.2 is Config's default margin
    ],
)
def test_two_identical_variants_are_refused(tmp_path, variants):
    with pytest.raises(SpecError, match="variant 'b' is the same as variant 'a'"):
        search(tmp_path, variants)


def test_variants_that_differ_only_in_what_they_search_are_two(tmp_path):
    conditional = (
        "  margin: {low: 0.1, high: 0.5, when: {variant: [b]}}\nvariants:\n  a: {}\n  b: {}\n"
    )
    assert list(search(tmp_path, conditional).variants) == ["a", "b"]


def test_a_condition_on_a_searched_switch_is_checked_where_it_holds(tmp_path):
    """The second newcomer's false refusal: `lsd_tau` searched only where the searched
    `lsd_alpha` is on (and `proxy_lr` only for a searched proxy loss) was checked against the
    variant's LSD-off Config and refused."""
    found = search(
        tmp_path,
        "  lsd_alpha: {values: [0.0, 200.0]}\n"
        "  lsd_tau: {low: 0.1, high: 2.0, when: {lsd_alpha: 200.0}}\n"
        "  loss: {values: [triplet, proxy_anchor]}\n"
        "  proxy_lr: {low: 0.001, high: 0.1, when: {loss: proxy_anchor}}\n"
        "trials: 3\n",
    )
    # a trial that switches LSD off trains with LSD's settings at their defaults
    off = found.config("base", {"lsd_alpha": 0.0, "lr": 0.01})
    assert off.lsd_alpha == 0.0 and off.lsd_tau == 1.0
    on = found.config("base", {"lsd_alpha": 200.0, "lsd_tau": 0.5, "lr": 0.01})
    assert on.lsd_tau == 0.5
