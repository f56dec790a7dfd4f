"""File names of any bytes (issue 23, case 4): Latin-1 names load and train, and every path the lab
prints or writes survives them: `dmllab verify` under a strict UTF-8 stdout, messages, records,
checkpoints and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import dmllab as dl
from dmllab import cli
from dmllab.data import BadImagesError, load
from dmllab.errors import describe
from dmllab.paths import printable

ROOT = Path(__file__).resolve().parents[2]
SIZE = 8


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)  # how Python spells a file name of these bytes


def _image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(shade).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels // 2 + shade).save(path, format="PNG")


def _latin1_folder(root: Path) -> Path:
    for c, raw in enumerate((b"caf\xe9", b"na\xefve", b"\xc5ngstr\xf6m")):  # Latin-1, not UTF-8
        for i in range(4):
            _image(root / _name(raw) / _name(b"photo_\xe9t\xe9_%d.png" % i), 60 * c + 10 * i)
    return root


def test_latin1_names_train_and_verify_prints_them_under_a_strict_utf8_stdout(tmp_path):
    root = _latin1_folder(tmp_path / _name(b"donn\xe9es"))
    config = dl.Config(dataset="folder", dataset_options={"root": str(root), "image_size": SIZE},
                       split="stratified", model="cnn", model_options={"channels": [4]},
                       embedding_dim=4, classes_per_batch=2, samples_per_class=2, epochs=1,
                       batches_per_epoch=2)  # fmt: skip
    run = dl.fit(config, progress=False)
    assert run.train.meta["class_names"] == ["caf\\xe9", "na\\xefve", "\\xc5ngstr\\xf6m"]
    bad = root / _name(b"caf\xe9") / _name(b"cass\xe9.png")
    bad.write_bytes(b"")
    command = [sys.executable, "-m", "dmllab", "verify", str(root)]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert result.returncode == 1, result.stderr.decode(errors="replace")
    out, err = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")  # strict: valid UTF-8
    assert (
        out == "/".join([printable(root), "caf\\xe9", "cass\\xe9.png"]) + ": empty file (0 bytes)\n"
    )
    assert "1 bad image file(s) under" in err and "donn\\xe9es" in err
    with pytest.raises(BadImagesError) as error:
        load("folder", root=root, image_size=SIZE)
    assert error.value.bad[0].path == str(bad)  # the name itself: it opens the file
    str(error.value).encode("utf-8")  # the message is printable as it is


def test_records_checkpoints_and_json_keep_a_root_of_any_bytes(tmp_path):
    root = _latin1_folder(tmp_path / _name(b"\xff\xfe pictures"))
    config = dl.Config(dataset="folder", dataset_options={"root": str(root), "image_size": SIZE},
                       split="stratified", model="cnn", model_options={"channels": [4]},
                       embedding_dim=4, classes_per_batch=2, samples_per_class=2, epochs=2,
                       batches_per_epoch=2, checkpoint_every=1)  # fmt: skip
    assert dl.Config.from_json(config.to_json()) == config
    config.to_json().encode("ascii")  # JSON escapes what is not ASCII
    out = tmp_path / _name(b"run \xe9")
    run = dl.fit(config, checkpoint_dir=out, progress=False)
    run.save(out)
    again = dl.runs.load(out, data=load("folder", root=root, image_size=SIZE))
    assert again.config == config and again.data is not None
    assert json.loads((out / "config.json").read_text())["dataset_options"]["root"] == str(root)
    resumed = dl.fit(config, resume=out, progress=False)
    assert resumed.history == run.history
    missing = OSError(2, "No such file or directory", str(root / "gone.png"))
    assert describe(missing).endswith("\\xff\\xfe pictures/gone.png")


def test_the_command_line_prints_any_error_with_escapes(tmp_path, capsys):
    root = tmp_path / _name(b"ra\xefz")
    root.mkdir()
    with pytest.raises(SystemExit) as error:
        cli.main(["verify", str(root)])
    assert "ra\\xefz" in str(error.value) and "no images" in str(error.value)
    assert cli.main(["fit", str(root / _name(b"caf\xe9.json"))]) == 1
    printed = capsys.readouterr().err
    printed.encode("utf-8")
    assert "caf\\xe9.json" in printed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(
        st.binary(min_size=1, max_size=40).filter(
            lambda raw: b"/" not in raw and b"\x00" not in raw and not raw.startswith(b".")
        ),
        min_size=2,
        max_size=4,
        unique=True,
    )
)
def test_property_any_bytes_in_file_names_load_and_every_message_prints(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("bytes")
    paths = [root / "class" / (_name(raw) + ".png") for raw in names]
    for i, path in enumerate(paths):
        _image(path, 20 * i)
    data = load("folder", root=root, image_size=SIZE)
    assert sorted(data.x.paths) == sorted(str(path) for path in paths)
    paths[0].write_bytes(b"")
    with pytest.raises(BadImagesError) as error:
        load("folder", root=root, image_size=SIZE)
    message = str(error.value)
    message.encode("utf-8")  # strict: no lone surrogate
    assert printable(paths[0]) in message
    for path in paths:
        shown = printable(path)
        shown.encode("utf-8")
        raw = os.fsencode(path)
        try:
            assert shown == raw.decode("utf-8")  # a valid UTF-8 name shows as itself
        except UnicodeDecodeError:
            assert "\\x" in shown
