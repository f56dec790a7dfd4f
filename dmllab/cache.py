"""Where dmllab keeps files it can recompute: one folder, `$DMLLAB_CACHE`, else `~/.cache/dmllab`.

Parsed datasets (`mnist_5k-*.npz`) sit at its top, projections in `projections/`. Deleting the
folder loses nothing but time.

>>> cache_dir("projections").relative_to(cache_dir()).as_posix()
'projections'
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder (`$DMLLAB_CACHE`, or `~/.cache/dmllab` when it is unset or empty), or the
    sub-folder `parts` of it. Nothing is created; writers make the folder they write to."""
    root = os.environ.get("DMLLAB_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "dmllab"
    return base.joinpath(*parts)
