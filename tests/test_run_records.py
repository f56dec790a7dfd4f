"""Run records are complete or absent, name their data, and damaged files are named when loading
fails."""

import json
import math
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import dmllab as dl
from dmllab.config import Config
from dmllab.records import RecordError


def tiny(**changes):
    base = dict(
        dataset="mixture",
        dataset_options={"num_classes": 4, "modes_per_class": 1, "dim": 4, "per_mode": 12},
        split="stratified",
        epochs=1,
        batches_per_epoch=2,
        classes_per_batch=2,
        samples_per_class=3,
        embedding_dim=4,
        seed=0,
    )
    return Config(**{**base, **changes})


def own_data(dim, seed=0, n=40):
    generator = torch.Generator().manual_seed(seed)
    return dl.data.Dataset(
        x=torch.randn(n, dim, generator=generator), y=torch.arange(n) % 4, name=f"mine-{dim}"
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    run = dl.fit(tiny(), progress=False)
    return run, run.save(tmp_path_factory.mktemp("runs") / "run")


def test_a_record_names_its_data_and_round_trips(saved):
    run, path = saved
    loaded = dl.runs.load(path)
    assert (
        loaded.data_identity["name"] == run.train.name
        and len(loaded.data_identity["fingerprint"]) == 64
    )
    torch.testing.assert_close(loaded.embed(loaded.test), run.embed(run.test))


def test_a_run_on_own_data_never_gets_other_data_attached(tmp_path):
    data = own_data(64)
    run = dl.fit(tiny(dataset="digits", dataset_options={}), data, progress=False)
    path = run.save(tmp_path / "run")
    loaded = dl.runs.load(path)  # config.dataset is digits, but the run was not trained on it
    assert loaded.data is None
    with pytest.raises(ValueError, match=r"trained on 'mine-64'.*data="):
        loaded.test  # noqa: B018 - the property raises
    again = dl.runs.load(path, data=data)
    torch.testing.assert_close(again.embed(again.test), run.embed(run.test))
    for wrong in (own_data(64, seed=1), own_data(10)):
        with pytest.raises(RecordError, match="trained on 'mine-64'"):
            dl.runs.load(path, data=wrong)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "model.pt").write_bytes(b""), "model.pt: cannot read the run's weights"),
        (
            lambda p: (p / "model.pt").write_bytes((p / "model.pt").read_bytes()[:300]),
            "model.pt: cannot read",
        ),
        (
            lambda p: torch.save({"model": {}}, p / "model.pt"),
            "model.pt: not a dmllab run's weights \\(no geometry",
        ),
        (lambda p: (p / "config.json").write_text(""), "config.json: the run's config is empty"),
        (lambda p: (p / "config.json").write_text('{"lr": 0.1'), "config.json: not valid JSON"),
        (
            lambda p: (p / "config.json").write_text('{"lr": "fast"}'),
            "config.json: Config.lr must be a number",
        ),
        (
            lambda p: (p / "metrics.json").write_text("[1]"),
            "metrics.json: the run's metrics should be a JSON dict",
        ),
        (lambda p: (p / "model.pt").unlink(), "model.pt: the run's weights are missing"),
    ],
)
def test_damaged_records_name_the_file(saved, tmp_path, damage, message):
    import shutil

    path = tmp_path / "copy"
    shutil.copytree(saved[1], path)
    damage(path)
    with pytest.raises(RecordError, match=message):
        dl.runs.load(path)


def test_saving_over_a_record_replaces_it_whole_and_never_follows_symlinks(saved, tmp_path):
    run, _ = saved
    path = run.save(tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (path / "metrics.json").unlink()
    (path / "metrics.json").symlink_to(victim)
    run.save(path)
    assert victim.read_text() == "keep me" and not (path / "metrics.json").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "victim.txt"]
    (path.parent / "other").mkdir()
    (path.parent / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RecordError, match=r"notes.txt"):
        run.save(path.parent / "other")


SAVE_AND_DIE = textwrap.dedent("""
    import os, signal, sys, torch
    import dmllab as dl
    run = dl.runs.load(sys.argv[1])
    run.metrics = {"new": 1.0}
    real_save = torch.save
    def dying_save(state, path):
        with open(path, "wb") as handle:
            handle.write(b"PK partial")
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = dying_save
    run.save(sys.argv[1])
""")


def test_a_kill_while_the_model_is_written_keeps_the_old_record(saved, tmp_path):
    run, _ = saved
    path = run.save(tmp_path / "run")
    before = (path / "metrics.json").read_text()
    died = subprocess.run(
        [sys.executable, "-c", SAVE_AND_DIE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert (path / "metrics.json").read_text() == before
    assert dl.runs.load(path).metrics == json.loads(before)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert all(name.startswith(".run.partial-") for name in leftovers)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(json_values, st.floats(0, 1)), min_size=1, max_size=8))
@example([(None, 0.1), (1, 0.2), ({"mu": 0.05}, 0.3), ([1, 2], 0.4), ("a", 0.5)])
def test_aggregate_groups_any_json_parameter_value(rows):
    from dmllab.values import canonical

    table = dl.runs.aggregate(
        [{"options": value, "r1": r1} for value, r1 in rows], by=["options"], metrics=["r1"]
    )
    assert len(table) == len({canonical(value) for value, _ in rows})
    assert table["r1_n"].sum() == len(rows)
    assert {canonical(v) for v in table["options"]} == {canonical(value) for value, _ in rows}


def test_aggregate_gives_a_single_value_no_spread_rather_than_zero():
    table = dl.runs.aggregate(
        [{"pos": "a", "r1": 0.8}, {"pos": "a", "r1": 0.9}, {"pos": "b", "r1": 0.5}],
        by=["pos"],
        metrics=["r1"],
    ).set_index("pos")
    assert table.loc["a", "r1_std"] == pytest.approx(0.0707107)
    assert table.loc["a", "r1_ci"] == pytest.approx(12.7062 * 0.0707107 / 2**0.5, rel=1e-4)
    assert table.loc["b", "r1_mean"] == 0.5 and table.loc["b", "r1_n"] == 1
    assert math.isnan(table.loc["b", "r1_std"]) and math.isnan(table.loc["b", "r1_ci"])
    empty = dl.runs.aggregate([{"pos": "c", "r1": None}], by=["pos"], metrics=["r1"])
    assert (
        empty["r1_n"].tolist() == [0]
        and empty[["r1_mean", "r1_std", "r1_ci"]].isna().to_numpy().all()
    )


# ------------------------------------------------------------------ issue 23, case 7: wrappers
def _round_trip(run, tmp_path, name):
    expected = run.embed(run.test)
    loaded = dl.runs.load(run.save(tmp_path / name))
    torch.testing.assert_close(loaded.embed(loaded.test), expected, rtol=1e-5, atol=1e-6)
    return loaded


def _compiles():
    """Why torch.compile cannot run here (no C compiler, an unsupported platform), or None."""
    try:
        torch.compile(torch.nn.Linear(2, 2))(torch.ones(1, 2))
    except Exception as error:  # any failure of the compiler stack means: it cannot compile here
        return f"torch.compile cannot compile here: {type(error).__name__}: {error}"[:200]
    return None


def test_a_compiled_models_record_loads(tmp_path):
    """The issue's instance: after run.model = torch.compile(run.model), runs.save wrote
    `_orig_mod.`-prefixed weights and runs.load refused them ("weights do not fit")."""
    reason = _compiles()
    if reason is not None:
        pytest.skip(reason)
    run = dl.fit(tiny(), progress=False)
    run.model = torch.compile(run.model)
    _round_trip(run, tmp_path, "compiled")
    state = torch.load(tmp_path / "compiled" / "model.pt", weights_only=True)
    assert not any("_orig_mod" in key for key in state["model"])


def test_wrapped_parts_are_saved_as_the_modules_they_wrap(tmp_path):
    """torch.compile's wrapper without its compiler (backend="eager"), around the model, a
    submodule and a learned geometry: the record holds the plain names."""
    run = dl.fit(tiny(geometry="bregman", normalize=False), progress=False)
    plain = {part: getattr(run, part).state_dict() for part in ("model", "geometry")}
    run.model.trunk = torch.compile(run.model.trunk, backend="eager")
    run.model = torch.compile(run.model, backend="eager")
    run.geometry = torch.compile(run.geometry, backend="eager")
    assert any(key.startswith("_orig_mod.") for key in run.model.state_dict())
    loaded = _round_trip(run, tmp_path, "eager")
    for part, state in plain.items():
        assert list(getattr(loaded, part).state_dict()) == list(state)


def test_a_distributed_data_parallel_models_record_loads(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    run = dl.fit(tiny(), progress=False)
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        run.model = DistributedDataParallel(run.model)
        _round_trip(run, tmp_path, "ddp")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module."])
def test_records_saved_from_a_wrapper_before_load_too(saved, tmp_path, prefix):
    import shutil

    run, path = saved
    shutil.copytree(path, tmp_path / "old")
    state = torch.load(tmp_path / "old" / "model.pt", weights_only=True)
    state["model"] = {prefix + key: value for key, value in state["model"].items()}
    torch.save(state, tmp_path / "old" / "model.pt")
    loaded = dl.runs.load(tmp_path / "old")
    torch.testing.assert_close(loaded.embed(loaded.test), run.embed(run.test))


def test_weights_that_truly_do_not_fit_name_the_keys_that_differ(saved, tmp_path):
    import shutil

    _, path = saved
    shutil.copytree(path, tmp_path / "odd")
    state = torch.load(tmp_path / "odd" / "model.pt", weights_only=True)
    keys = list(state["model"])
    state["model"]["extra.weight"] = state["model"].pop(keys[0])
    torch.save(state, tmp_path / "odd" / "model.pt")
    with pytest.raises(
        RecordError,
        match=rf"the model weights do not fit the model its config.json builds \(missing "
        rf"'{re.escape(keys[0])}'; unexpected 'extra.weight'\)",
    ):
        dl.runs.load(tmp_path / "odd")
    state["model"][keys[0]] = state["model"].pop("extra.weight")[:1]
    torch.save(state, tmp_path / "odd" / "model.pt")
    with pytest.raises(RecordError, match=rf"size mismatch for {re.escape(keys[0])}"):
        dl.runs.load(tmp_path / "odd")


# ------------------------------------------------------------------ issue 23, case 8: shapes
def test_evaluating_data_of_another_shape_names_both_shapes(tmp_path):
    """The issue's instance: a digits run evaluated on mnist-5k failed inside torch with "mat1
    and mat2 shapes cannot be multiplied"."""
    run = dl.fit(tiny(dataset="digits", dataset_options={}), progress=False)
    message = (
        r"trained on rows of shape \(64,\) \(images 1x8x8\), but the data 'mnist-5k' has rows "
        r"of shape \(784,\) \(images 1x28x28\)"
    )
    with pytest.raises(ValueError, match=message):
        dl.evaluate(run, "mnist-5k")
    with pytest.raises(ValueError, match=r"\(64,\).*the inputs have rows of shape \(3, 4\)"):
        run.embed(torch.zeros(2, 3, 4))
    loaded = dl.runs.load(run.save(tmp_path / "digits"), rebuild_data=False)
    assert loaded.data is None  # the shapes come from the record
    with pytest.raises(ValueError, match=message):
        dl.evaluate(loaded, "mnist-5k")
    assert dl.evaluate(loaded, "digits")["recall@1"] > 0


def test_a_folder_run_evaluated_at_another_image_size_names_both(tmp_path):
    from dmllab.data.example_folder import write_example_folder

    root = write_example_folder(tmp_path / "shapes", layout="folder", classes=4, per_class=6)
    config = tiny(
        dataset="folder",
        dataset_options={"root": str(root), "image_size": 16},
        classes_per_batch=2,
        samples_per_class=2,
    )
    run = dl.fit(config, progress=False)
    other = dl.data.load("folder", root=str(root), image_size=24)
    with pytest.raises(
        ValueError,
        match=r"rows of shape \(3, 16, 16\) \(images 3x16x16\), but the data 'folder' has rows "
        r"of shape \(3, 24, 24\) \(images 3x24x24\).*image_size",
    ):
        dl.evaluate(run, other)
    loaded = dl.runs.load(run.save(tmp_path / "folder-run"))  # a root: the data is not rebuilt
    with pytest.raises(ValueError, match=r"\(3, 16, 16\).*\(3, 24, 24\)"):
        loaded.embed(other)


@pytest.mark.parametrize("batchnorm", ["auto", "batch", "frozen"])
def test_a_record_of_a_model_with_batchnorm_loads_under_every_policy(tmp_path, batchnorm):
    """Frozen BatchNorm layers hold no `num_batches_tracked`: their record was refused as not
    fitting the model its config builds, until the config's policy was part of building it."""
    from dmllab.data.example_folder import write_example_folder

    root = write_example_folder(tmp_path / "shapes", classes=4, per_class=4, size=8)
    config = tiny(dataset="folder", dataset_options={"root": str(root), "image_size": 8},
                  split="classes", model="cnn", batchnorm=batchnorm)  # fmt: skip
    run = dl.fit(config, progress=False)
    loaded = dl.runs.load(run.save(tmp_path / "run"))
    x = run.data.test.x[torch.arange(4)]
    assert torch.equal(loaded.model(x), run.model(x))
