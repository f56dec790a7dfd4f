"""Run records: what `fit` returns, how it is saved and loaded, and aggregation over seeds.

A saved run is a directory with `config.json`, `metrics.json`, `history.csv` and `model.pt`
(state dicts only, loaded with `weights_only=True`; a model wrapped by `torch.compile` or
(Distributed)DataParallel is saved as the module it wraps, so its record loads like any other).
`model.pt` also says which data the run was trained on: the data set's name, a SHA-256
fingerprint of its splits (inputs, labels, order), the input shape and the number of classes.
The folder is written beside its place and renamed into it, so it is complete or absent; `load`
never attaches data with another fingerprint. `Run.embed` (and so `evaluate`) refuses rows of
another shape than the run was trained on.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from torch import Tensor, nn

from dmllab import records
from dmllab.backbones import COMPILED, plain_key, plain_keys
from dmllab.build import build_components, prepare
from dmllab.claims import t_quantile
from dmllab.config import Config
from dmllab.data import Splits
from dmllab.data.dataset import Dataset
from dmllab.data.loader import embedding_batches
from dmllab.geometry.base import Geometry
from dmllab.records import RecordError
from dmllab.values import BadValue, canonical

RECORD_FILES = ("config.json", "metrics.json", "history.csv", "model.pt")
#: The training's checkpoint (`dmllab.engine.checkpoint`), kept beside the record in its folder.
CHECKPOINT = "checkpoint.pt"


@dataclass
class Run:
    """A trained model and everything needed to read it.

    model:     the embedder (eval mode after `fit`).
    geometry:  the geometry the loss trained (it may have learned parameters).
    history:   one dict per epoch (loss, LSD term and weight, active tuples, distances,
               validation metrics, ...).
    snapshots: epoch -> [probe_size, d] embeddings of `probe_index` rows of the training split.
    config:    the Config that produced the run.
    data:      the train / val / test splits (None when loaded from disk without its data).
    loss_fn:   the loss module (learnable loss parameters, e.g. the margin loss's beta).
    data_identity: what `data_identity(data)` gave when the run was saved (set by `load`).
    """

    model: nn.Module
    geometry: Geometry
    config: Config
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    probe_index: Tensor | None = None
    data: Splits | None = None
    loss_fn: nn.Module | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    data_identity: dict[str, Any] | None = None

    @property
    def train(self) -> Dataset:
        return self._splits().train

    @property
    def test(self) -> Dataset:
        return self._splits().test

    @property
    def val(self) -> Dataset | None:
        return self._splits().val

    def _splits(self) -> Splits:
        if self.data is None:
            trained_on = (
                (
                    f" (it was trained on {self.data_identity['name']!r}; load it with "
                    "dmllab.runs.load(path, data=that_dataset))"
                )
                if self.data_identity
                else ""
            )
            raise ValueError(f"this run carries no data{trained_on}; pass a dataset explicitly")
        return self.data

    def embed(self, data: Dataset | Tensor, batch_size: int = 1024) -> Tensor:
        """Embeddings of a dataset (or raw inputs) in eval mode, on the CPU, in chunks of
        `batch_size` rows (`embed_with_failures` without the rows that failed)."""
        return self.embed_with_failures(data, batch_size)[0]

    def embed_decoded(self, data: Dataset) -> tuple[Tensor, Tensor]:
        """(embeddings, labels) of the rows of `data` whose inputs decoded: `embed_with_failures`
        with the rows of failed files (`on_bad_image="skip"`) left out, for metrics that must not
        score a black stand-in image."""
        z, failed = self.embed_with_failures(data)
        return z[~failed], data.y[~failed]

    @torch.no_grad()
    def embed_with_failures(
        self, data: Dataset | Tensor, batch_size: int = 1024
    ) -> tuple[Tensor, Tensor]:
        """(embeddings [N, d] float32, failed [N] bool): the embeddings of a dataset (or raw
        inputs) in eval mode, on the CPU, in chunks of `batch_size` rows, and which rows are the
        black images of files that failed to decode (`on_bad_image="skip"`; all False otherwise).

        Lazy inputs (image folders) stream through the loader (`dmllab.data.loader`): decoded by
        `config.num_workers` worker processes through the evaluation transform of
        `config.augment`, a few batches at a time, so no split is ever held decoded. A file that
        fails raises BadImageError naming it, or, under `config.on_bad_image="skip"`, embeds as a
        black image with a warning naming it, marked in `failed` (`evaluate` leaves such rows out
        of its metrics).

        Raises ValueError when the rows do not have the shape the run was trained on (its
        training split's, or the record's when it was loaded without data), naming both; a run
        that knows neither (built by hand without data) embeds what it is given."""
        x = data.x if isinstance(data, Dataset) else data
        self._check_input(data)
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        was_training = self.model.training
        self.model.eval()
        result: Tensor | None = None
        start = 0
        failed: list[int] = []
        try:
            for batch in self._batches(x, batch_size, device, failed):
                z = self.model(batch.to(device)).float().cpu()
                if result is None:  # one [N, d] result: many small chunks kept between the
                    result = torch.empty(len(x), *z.shape[1:])  # freed batches grow the heap
                result[start : start + len(z)] = z
                start += len(z)
        finally:
            self.model.train(was_training)
        if result is None:
            raise ValueError("nothing to embed: the inputs have no rows")
        mask = torch.zeros(len(result), dtype=torch.bool)
        mask[failed] = True
        return result, mask

    def _batches(
        self, x: Any, batch_size: int, device: torch.device, failed: list[int]
    ) -> Iterator[Tensor]:
        if isinstance(x, Tensor):
            for start in range(0, len(x), batch_size):
                yield x[torch.arange(start, min(start + batch_size, len(x)))]
            return
        yield from embedding_batches(
            x,
            batch_size,
            augment=self.config.augment,
            num_workers=self.config.num_workers,
            pin_memory=device.type == "cuda",
            on_bad_image=self.config.on_bad_image,
            failed=failed,
        )

    def input_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...] | None] | None:
        """(input shape of one row, image shape or None) the run was trained on: from its
        training split, else from its record (`data_identity`); None when it knows neither."""
        if self.data is not None:
            train = self.data.train
            return _row_shape(train.x), train.image_shape
        if self.data_identity is not None:
            image = self.data_identity.get("image_shape")
            return tuple(self.data_identity["input_shape"]), None if image is None else tuple(image)
        return None

    def _check_input(self, data: Dataset | Tensor) -> None:
        recorded = self.input_shapes()
        if recorded is None or len(data.x if isinstance(data, Dataset) else data) == 0:
            return
        shape, image = recorded
        given_image = data.image_shape if isinstance(data, Dataset) else None
        given_image = None if given_image is None else tuple(given_image)
        given = _row_shape(data.x if isinstance(data, Dataset) else data)
        if given == tuple(shape) and (image is None or given_image in (None, tuple(image))):
            return
        what = f"the data {data.name!r} has" if isinstance(data, Dataset) else "the inputs have"
        raise ValueError(
            f"this run was trained on rows of shape {tuple(shape)}{_images(image)}, but {what} "
            f"rows of shape {given}{_images(given_image)}; the model cannot read them. "
            "Evaluate data of the run's shape (the same data set's features; an image folder "
            "loaded with the run's image_size), or train a run on this data"
        )

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)

    # ---------------------------------------------------------------- records on disk
    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the run record (config.json, metrics.json, history.csv, model.pt) to `directory`.

        The files are written into a hidden folder beside it and renamed into place, so the
        record is complete or absent, an old record there survives a crash, and a symlink in an
        old record is replaced, never followed. A training checkpoint in the folder
        (`checkpoint.pt`) is kept. A record of this same Config there is replaced (a resumed
        run saves again); one of another Config (or one whose config.json cannot be read) only
        with `overwrite=True`. Raises RecordError when `directory` holds files that are not a
        run record's (they would be lost) or, without `overwrite`, another Config's record;
        OSError when it cannot be written."""
        directory = Path(directory)
        kept = (*RECORD_FILES, CHECKPOINT)
        if directory.is_dir() and not directory.is_symlink():
            foreign = sorted(p.name for p in directory.iterdir() if p.name not in kept)
            if foreign:
                raise RecordError(
                    f"{directory} holds files that are not part of a run record "
                    f"({', '.join(foreign[:5])}); save the run into a new or empty folder"
                )
            if not overwrite:
                self._refuse_another_record(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = records.staging_dir(directory)
        try:
            self.write_files(staging)
            checkpoint = directory / CHECKPOINT
            if checkpoint.is_file() and not checkpoint.is_symlink():
                os.link(checkpoint, staging / CHECKPOINT)  # the same file, carried over
            records.publish(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    def _refuse_another_record(self, directory: Path) -> None:
        record = directory / "config.json"
        if not record.exists():
            return
        try:
            saved = Config.completed(records.read_json(record, "run's config"))
        except (RecordError, BadValue, OSError):
            saved = None
        if saved is None or canonical(saved) != canonical(self.config.to_dict()):
            which = "another configuration's" if saved is not None else "an unreadable"
            raise RecordError(
                f"{directory} holds {which} run record; save this run into a new folder, or "
                "pass overwrite=True to replace it"
            )

    def write_files(self, directory: Path) -> None:
        """The record's files, written into the existing folder `directory` (no renaming: callers
        that need the folder complete-or-absent write into a staging folder, as `save` does)."""
        (directory / "config.json").write_text(self.config.to_json())
        (directory / "metrics.json").write_text(
            json.dumps(records.json_numbers(self.metrics), indent=2, sort_keys=True)
        )
        self.history_frame().to_csv(directory / "history.csv", index=False)
        state: dict[str, Any] = {
            "model": plain_state_dict(self.model),
            "geometry": plain_state_dict(self.geometry),
            "data": self._data_record(),
        }
        if self.loss_fn is not None:
            state["loss"] = plain_state_dict(self.loss_fn)
        torch.save(state, directory / "model.pt")

    def _data_record(self) -> dict[str, Any]:
        if self.data is not None:
            return data_identity(self.data)
        if self.data_identity is not None:
            return self.data_identity
        raise ValueError(
            "this run has no data and no record of its data, so its record could not be loaded "
            "again; fit it with a dataset, or load it with dmllab.runs.load(path, data=...)"
        )


def unwrapped(module: nn.Module) -> nn.Module:
    """The module that `torch.compile` or (Distributed)DataParallel wraps (however deeply), else
    `module` itself. The wrappers rename every weight (`_orig_mod.` / `module.` in front)."""
    while True:
        if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            module = module.module
            continue
        children = dict(module.named_children())
        if list(children) == [COMPILED]:  # torch.compile's wrapper holds only the original
            module = children[COMPILED]
            continue
        return module


def plain_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """The state dict of `unwrapped(module)`, with the `_orig_mod.` of compiled submodules taken
    out of its keys: the names the same module has when it was built and never wrapped."""
    return {plain_key(key): value for key, value in unwrapped(module).state_dict().items()}


def _load_weights(module: nn.Module, state: Mapping[str, Tensor], part: str, path: Path) -> None:
    """Load `state` into `module`, refusing (RecordError naming `path`) weights that do not fit:
    the keys that are missing or unexpected, a few of each, or the first shapes that differ.
    Records saved from a wrapped module before they were saved plain load too."""
    expected = set(module.state_dict())
    state = plain_keys(state, expected)
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        found = "; ".join(
            f"{label} {_few(keys)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        )
        raise RecordError(
            f"{path}: the {part} weights do not fit the {part} its config.json builds ({found})"
        )
    try:
        module.load_state_dict(state)
    except RuntimeError as error:  # the same keys with other shapes
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise RecordError(
            f"{path}: the {part} weights do not fit the {part} its config.json builds "
            f"({'; '.join(lines[:3]) or str(error).splitlines()[0]})"
        ) from None


def _few(keys: list[str], shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(repr(key) for key in keys[:shown]) + more


def _row_shape(x: Any) -> tuple[int, ...]:
    """The shape of one row of `x` (a tensor or array, or lazy inputs: one row is decoded)."""
    shape = getattr(x, "shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape[1:])
    return tuple(int(s) for s in x[torch.tensor([0])].shape[1:])


def _images(image_shape: Sequence[int] | None) -> str:
    if image_shape is None:
        return ""
    return f" (images {'x'.join(str(s) for s in image_shape)})"


def data_identity(splits: Splits) -> dict[str, Any]:
    """What a run record keeps about its data: `name`, `fingerprint` (SHA-256 over every split's
    inputs, labels and order; image folders by their file list and image size), `input_shape`,
    `image_shape` and `num_classes` of the training split."""
    digest = hashlib.sha256()
    for part in ("train", "val", "test"):
        data = getattr(splits, part)
        digest.update(part.encode())
        if data is None:
            continue
        for tensor in (data.y, data.sub if data.sub is not None else torch.empty(0)):
            digest.update(str(tuple(tensor.shape)).encode() + tensor.numpy().tobytes())
        if isinstance(data.x, Tensor):
            x = data.x.detach().cpu().contiguous()
            digest.update(f"{x.dtype}{tuple(x.shape)}".encode() + x.numpy().tobytes())
        else:  # lazy inputs (image folders): their files and decoding size, not the pixels
            digest.update(
                repr(
                    (getattr(data.x, "paths", None), getattr(data.x, "size", None), len(data.x))
                ).encode()
            )
    train = splits.train
    return {
        "name": train.name,
        "fingerprint": digest.hexdigest(),
        "input_shape": list(_row_shape(train.x)),
        "image_shape": list(train.image_shape) if train.image_shape is not None else None,
        "num_classes": int(train.num_classes),
    }


def load(directory: str | Path, *, data: Dataset | None = None, rebuild_data: bool = True) -> Run:
    """Load a run saved by `Run.save`. Weights are read with `weights_only=True`.

    data:          the Dataset the run was trained on (for a run on one's own data); its splits
                   must have the recorded fingerprint.
    rebuild_data:  without `data`, rebuild the config's named data set and attach its splits only
                   when their fingerprint equals the record's (otherwise the run has no data).

    Raises RecordError naming the file when a record file is missing, empty or damaged, and when
    `data` is not the data the run was trained on (or the record predates data fingerprints)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise records.missing_record(directory, "run record")
    config_path = directory / "config.json"
    try:
        config = Config.from_dict(records.read_json(config_path, "run's config"))
    except BadValue as error:
        raise RecordError(f"{config_path}: {error}") from None
    state = _read_state(directory / "model.pt")
    identity = state.get("data")
    splits = _attach(directory, config, identity, data, rebuild_data)
    if (
        identity is None
    ):  # then `data` was given (_attach refuses a record without one), so splits are there
        identity = data_identity(cast(Splits, splits))
    model, geometry, loss_fn = build_components(
        config,
        identity["input_shape"],
        identity["num_classes"],
        identity["image_shape"],
        load_weights=False,  # the record's weights replace any pretrained ones
    )
    parts = [("model", model), ("geometry", geometry)] + (
        [("loss", loss_fn)] if "loss" in state else []
    )
    for part, module in parts:
        _load_weights(module, state[part], part, directory / "model.pt")
    model.eval()
    return Run(
        model=model,
        geometry=geometry,
        config=config,
        history=_read_history(directory / "history.csv"),
        data=splits,
        loss_fn=loss_fn,
        metrics=_read_metrics(directory / "metrics.json"),
        data_identity=identity,
    )


def _attach(
    directory: Path,
    config: Config,
    identity: dict[str, Any] | None,
    data: Dataset | None,
    rebuild_data: bool,
) -> Splits | None:
    if data is not None:
        splits = prepare(config, data)
        if identity is not None and data_identity(splits)["fingerprint"] != identity["fingerprint"]:
            raise RecordError(
                f"{directory} was trained on {identity['name']!r} "
                f"(fingerprint {identity['fingerprint'][:12]}), not on the given {data.name!r} "
                f"(fingerprint {data_identity(splits)['fingerprint'][:12]}): "
                "pass the same rows, labels and order, or load the run without data"
            )
        return splits
    if identity is None:
        raise RecordError(
            f"{directory / 'model.pt'} does not say which data the run was trained on (saved by "
            "an older dmllab); load it with dmllab.runs.load(path, data=the_training_dataset)"
        )
    if rebuild_data and config.dataset_options.get("root") is None:
        splits = prepare(config)
        if data_identity(splits)["fingerprint"] == identity["fingerprint"]:
            return splits
    return None


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RecordError(f"{path}: the run's weights are missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, OSError, ValueError) as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RecordError(
            f"{path}: cannot read the run's weights ({cause}); the file is damaged or cut "
            "short: train the run again"
        ) from None
    missing = [
        key for key in ("model", "geometry") if not isinstance(state, dict) or key not in state
    ]
    if missing:
        raise RecordError(f"{path}: not a dmllab run's weights (no {', '.join(missing)} state)")
    return state


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text()
    if not text.strip():
        return []
    try:
        return [
            {str(key): value for key, value in row.items()}
            for row in pd.read_csv(io.StringIO(text)).to_dict("records")
        ]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: cannot read the run's history ({error})") from None


def _read_metrics(path: Path) -> dict[str, Any]:
    return records.read_json(path, "run's metrics") if path.exists() else {}


# -------------------------------------------------------------------- aggregation
def aggregate(
    records: Iterable[Mapping[Any, Any]],
    by: list[str],
    metrics: list[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean, std, count and a Student-t confidence half-width per group of `by` keys.

    Columns `<metric>_mean`, `_std` (sample std, ddof=1), `_ci` (half-width of the two-sided
    `confidence` interval of the mean) and `_n` (values, NaN left out). A single value has no
    spread: std and ci are NaN when n < 2 (and the mean is NaN when n = 0).
    A `by` value may be any JSON value (dicts and lists are grouped by their JSON text).

    >>> rows = [{"pos": "nearest", "r1": 0.8}, {"pos": "nearest", "r1": 0.9},
    ...         {"pos": "random", "r1": 0.5}, {"pos": "random", "r1": 0.7}]
    >>> table = aggregate(rows, by=["pos"], metrics=["r1"])
    >>> table[["pos", "r1_mean", "r1_n"]].round(3).values.tolist()
    [['nearest', 0.85, 2], ['random', 0.6, 2]]
    """
    records = list(records)
    frame = pd.DataFrame(records)
    if frame.empty:
        raise ValueError("aggregate: no records")
    missing = [key for key in by if key not in frame.columns]
    if missing:
        raise ValueError(
            f"aggregate: records have no column(s) {missing}; columns: {list(frame.columns)}"
        )
    for name in by:  # the values as given: no 1 -> 1.0 or None -> NaN
        frame[name] = pd.Series(
            [record.get(name) for record in records], dtype=object, index=frame.index
        )
    if metrics is None:
        metrics = [
            c for c in frame.columns if c not in by and pd.api.types.is_numeric_dtype(frame[c])
        ]
    keyed = [name for name in by if _needs_key(frame[name])]
    keys = [frame[name].map(canonical) if name in keyed else frame[name] for name in by]
    rows = []
    for _, group in frame.groupby(keys, sort=True, dropna=False):
        row: dict[str, Any] = {name: group[name].iloc[0] for name in by}
        for metric in metrics:
            values = group[metric].dropna().to_numpy(dtype=float)
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = std
            row[f"{metric}_ci"] = (
                t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
            )
            row[f"{metric}_n"] = n
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in keyed:
        table[name] = pd.Series([row[name] for row in rows], dtype=object)
    return table


def _needs_key(column: pd.Series) -> bool:
    """Whether a column's values cannot be grouped as they are: dicts, lists, or kinds that pandas
    would merge or refuse to sort (False and 0, None and 0, strings and numbers)."""
    kinds = {type(None) if isinstance(v, float) and math.isnan(v) else type(v) for v in column}
    return not (kinds <= {int, float} or kinds == {str} or kinds == {bool})
