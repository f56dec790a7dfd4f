"""Saving figures to files: matplotlib always, plotly as HTML always and as PNG/SVG/PDF when it can.

    save_figure(fig, "map.png")     # Path, or None with a warning saying why it was skipped

Static plotly images go through kaleido, which (from version 1) drives a Chromium-based browser
already on the machine; the lab never downloads one. Without kaleido or a browser, a static
plotly export is skipped with a warning that says what to install, and `.html` still works.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

STATIC = (".png", ".svg", ".pdf")


def save_figure(fig: Any, path: str | Path, *, scale: float = 2.0) -> Path | None:
    """Write a matplotlib or plotly figure; the format follows the file suffix.

    matplotlib Figure: .png, .svg, .pdf. plotly Figure: .html (standalone, plotly.js inlined),
    .png, .svg, .pdf (through kaleido; skipped with a warning and None when it cannot run).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if _is_matplotlib(fig):
        if suffix not in STATIC:
            raise ValueError(
                f"save_figure: a matplotlib figure saves as {', '.join(STATIC)}; got {path.name!r}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=75 * scale, bbox_inches="tight")
        return path
    if not _is_plotly(fig):
        raise TypeError(
            f"save_figure: expected a matplotlib or plotly figure; got {type(fig).__name__}"
        )
    if suffix not in (*STATIC, ".html"):
        raise ValueError(
            f"save_figure: a plotly figure saves as .html, {', '.join(STATIC)}; got {path.name!r}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        fig.write_html(path, include_plotlyjs=True, full_html=True)
        return path
    problem = why_no_plotly_export()
    if problem is None:
        try:
            fig.write_image(path, scale=scale)
            return path
        except (
            Exception
        ) as error:  # kaleido's errors come from a browser process: report, never crash
            problem = f"kaleido failed: {type(error).__name__}: {error}"
    warnings.warn(
        f"save_figure: skipped {path.name}: {problem}. Save as .html instead, or install the "
        "export extra (pip install 'dmllab[export]') and a Chromium (apt-get install chromium)",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


def why_no_plotly_export() -> str | None:
    """None when static plotly export should work, else the reason it cannot."""
    try:
        import kaleido
    except ImportError:
        return "kaleido is not installed"
    version = getattr(kaleido, "__version__", None)
    if version is not None and int(str(version).split(".")[0]) < 1:
        return None  # kaleido 0.x ships its own renderer
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return "kaleido's browser driver (choreographer) is missing"
    if Chromium.find_browser(skip_local=False) is None:
        return "no Chromium or Chrome browser was found (set BROWSER_PATH to one)"
    return None


def _is_matplotlib(fig: Any) -> bool:
    from matplotlib.figure import Figure

    return isinstance(fig, Figure)


def _is_plotly(fig: Any) -> bool:
    from plotly.basedatatypes import BaseFigure

    return isinstance(fig, BaseFigure)
