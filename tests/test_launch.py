"""`dmllab fit --nproc N`: local DDP ranks that train like one process and listen on loopback
only."""

import ipaddress
import json
import os
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

import dmllab as dl
from dmllab import cli
from dmllab.config import Config


def listening_addresses(pids):
    """The local addresses of the TCP sockets in LISTEN state that processes `pids` hold."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # the process ended or one of its fds closed while we looked
            continue
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                hex_address, port = fields[1].split(":")
                raw = bytes.fromhex(hex_address)
                raw = b"".join(
                    raw[i : i + 4][::-1] for i in range(0, len(raw), 4)
                )  # per-word little-endian
                found.add((ipaddress.ip_address(raw), int(port, 16)))
    return found


def descendants(pid):
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return children | {d for child in children for d in descendants(child)}


def is_loopback(address):
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux /proc"
)
def test_two_local_ranks_train_like_one_process_and_listen_only_on_loopback(tmp_path):
    config = Config(
        dataset="mixture",
        split="stratified",
        epochs=2,
        batches_per_epoch=3,
        classes_per_batch=4,
        samples_per_class=4,
        embedding_dim=4,
        loss="margin",
        positives="nearest",
        lsd_alpha=5.0,
    )
    (tmp_path / "config.json").write_text(config.to_json())
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.update(listening_addresses(descendants(os.getpid())))
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert (
            cli.main(
                [
                    "fit",
                    str(tmp_path / "config.json"),
                    "--out",
                    str(tmp_path / "ranks"),
                    "--quiet",
                    "--nproc",
                    "2",
                ]
            )
            == 0
        )
    finally:
        done.set()
        watcher.join()
    assert seen, (
        "saw no listening socket of the ranks (gloo listens for its peers), so checked nothing"
    )
    assert all(is_loopback(address) for address, _ in seen), sorted(map(str, seen))

    single = dl.fit(config, progress=False)
    single.metrics.update(dl.evaluate(single))
    metrics = json.loads((tmp_path / "ranks" / "metrics.json").read_text())
    for name, value in single.metrics.items():
        assert metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    history = pd.read_csv(tmp_path / "ranks" / "history.csv")
    assert history["loss"].tolist() == pytest.approx(
        [row["loss"] for row in single.history], rel=1e-5
    )


def test_nproc_must_be_positive_and_on_the_cpu(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(Config().to_json())
    with pytest.raises(SystemExit, match="--nproc must be >= 1; got 0"):
        cli.main(["fit", str(tmp_path / "config.json"), "--nproc", "0"])
    # the newcomer's case: 5 x 8 = 40 over 3 ranks, said before any rank starts
    with pytest.raises(SystemExit, match="40 samples cannot be split evenly over 3 processes"):
        cli.main(["fit", str(tmp_path / "config.json"), "--nproc", "3"])
    monkeypatch.setattr("dmllab.train.resolve_device", lambda name: torch.device("cuda", 0))
    with pytest.raises(SystemExit, match=r"--nproc starts CPU processes.*torchrun"):
        cli.main(["fit", str(tmp_path / "config.json"), "--nproc", "2"])


@pytest.mark.slow
def test_an_error_inside_a_rank_reads_as_in_one_process(tmp_path, capsys):
    """Issue 23, case 6: a configuration refused inside the ranks (its data set's folder is not
    there, found only when the rank loads it) printed "ProcessRaisedException: -- Process 0
    terminated with the following error:" and cut the cause."""
    config = Config(
        dataset="folder",
        dataset_options={"root": str(tmp_path / "no-such-folder")},
        classes_per_batch=2,
        samples_per_class=2,
    )
    (tmp_path / "config.json").write_text(config.to_json())
    command = ["fit", str(tmp_path / "config.json"), "--quiet", "--out", str(tmp_path / "out")]
    assert cli.main(command) == 1
    single = capsys.readouterr().err
    assert cli.main([*command, "--nproc", "2"]) == 1
    assert capsys.readouterr().err == single
    assert single.startswith("dmllab fit: ValueError: dataset 'folder': root ") and (
        "is not a folder" in single
    )
    with pytest.raises(ValueError, match="is not a folder") as error:  # --debug: the traceback
        cli.main(["--debug", *command, "--nproc", "2"])
    innermost = error.value.__cause__
    assert isinstance(innermost, dl.distributed.RankTraceback)
    assert "in _fit_command" in str(innermost) and "folders.py" in str(innermost)
