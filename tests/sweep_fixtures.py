"""Sweep folders as a sweep leaves them, made without training (for the report and shard tests)."""

import json

from dmllab import records
from dmllab.experiments import cells as sweep_cells


def fake_cell(out, params, recorded, metrics):
    """A finished cell as run_cell leaves it (for report tests that need no training)."""
    folder = out / sweep_cells.cell_name(params)
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    files = records.manifest(folder, ["params.json", "metrics.json"])
    (folder / "cell.json").write_text(
        json.dumps({"params": params, "recorded": recorded, "files": files})
    )
    return folder


def fit_recorded(**fields):
    from dmllab.config import Config

    return {"fit": Config(**fields).to_dict()}
