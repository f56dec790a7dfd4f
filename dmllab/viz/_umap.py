"""umap-learn, imported with numba's on-disk cache switched on for its compiled functions.

A fresh process spent most of its first UMAP map compiling umap-learn's numba functions, because
umap-learn compiles them without `cache=True` (pynndescent, which it imports, caches its own).
`umap_module()` turns numba's file cache on for every module-level compiled function of
umap-learn before first use, so the machine code is written once and later processes load it.
`make setup` does that once (`dmllab.viz.projection.warm_up`). Lesson 00's first map in a fresh
process: 11.8 s before, 2.8 s with the cache warm (`benchmarks/bench_projection.py`).

Where numba writes the cache: under `$NUMBA_CACHE_DIR` when it is set, else beside umap-learn's
sources (`site-packages/umap/__pycache__/*.nbi, *.nbc`) when that folder is writable, else in
numba's per-user cache folder (`~/.cache/numba`). The cache holds exactly the code numba would
compile, so projections are identical with and without it; numba drops an entry whose source
file changed.

Numba keys a cache entry by the Python function and the argument types, not by compile options,
so where umap-learn compiles one function twice (its layout epoch, serial and parallel) only the
serial one (the one a seeded UMAP runs) is cached.
"""

from __future__ import annotations

import sys
from types import ModuleType

# Not pynndescent: it caches what it can itself; its NN-descent (UMAP's neighbour search above 4096
# points) uses dynamic globals that numba refuses to cache, with a warning.
PACKAGES = ("umap",)
_enabled: set[str] = set()


def umap_module() -> ModuleType:
    """`import umap`, with numba's file cache on for umap-learn's compiled functions (once per
    process). Returns the module."""
    import umap

    for package in PACKAGES:
        if package not in _enabled:
            cache_compiled(package)
            _enabled.add(package)
    return umap


def cache_compiled(package: str) -> int:
    """Switch numba's on-disk cache on for the module-level compiled functions of `package` and
    its imported sub-modules. Returns how many were switched on.

    Left as they are: closures (their cache key would pickle the closed-over values), functions
    that already cache, and functions numba cannot cache here (no writable cache folder). Numba
    keys a cache entry by the Python function and the argument types, not by compile options, so
    of the compiled functions made from one Python function (umap-learn's layout epoch is compiled
    serial and parallel) only the one serial one is cached, and none when one of them already is.
    """
    from numba.core.dispatcher import Dispatcher

    by_function: dict = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == package or name.startswith(package + ".")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and value.py_func.__module__ == name:
                by_function.setdefault(value.py_func, {})[id(value)] = value
    enabled = 0
    for function, dispatchers in by_function.items():
        # a dispatcher without a cache (numba's NullCache) reports no cache path
        uncached = [d for d in dispatchers.values() if d.stats.cache_path is None]
        serial = [d for d in uncached if not d.targetoptions.get("parallel")]
        if function.__closure__ is not None or len(uncached) < len(dispatchers):
            continue
        if len(dispatchers) > 1 and len(serial) != 1:
            continue
        try:
            (serial[0] if len(dispatchers) > 1 else uncached[0]).enable_caching()
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            continue
        enabled += 1
    return enabled
