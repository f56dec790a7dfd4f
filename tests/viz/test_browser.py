"""End to end in a real browser: JupyterLab renders the plotly map and the LabPanel as widgets,
pressing Train updates the panel's curves and map, and after a change of LSD weight (which changes
the set of curves) two more trainings each bring a map of their own; a longer training moves its
curves and status several times before it ends; all without a console error; no title leaves
its figure, no axis title runs into another panel, and every legend entry of the panel's map is
in view. A map that cannot be drawn for a new run (colour by sub-cluster, then a dataset without
them) is cleared and says why under "done", never showing the previous run. A lesson run in
JupyterLab, saved, closed with its kernel shut down and reopened shows its figures and no "model
not found", the server started as `make lab` starts it (`jupyter_lab_config.json`).

Needs Debian's Chromium at /usr/bin/chromium and the playwright package (never `playwright
install`); skipped otherwise. The server runs on 127.0.0.1 with a random port, a token and
Jupyter config/data/runtime dirs inside tmp_path, and is stopped by its PID at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the marker's reason below says what is missing
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        sync_playwright is None, reason="needs the playwright package (pip install playwright)"
    ),
]

CELLS = [
    (
        "import numpy as np\nfrom dmllab.viz import embedding_map\n"
        "from dmllab.viz.widgets import LabPanel"
    ),
    "embedding_map(np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 3)",
    (
        "panel = LabPanel(dataset='mixture', epochs=2, batches_per_epoch=3, probe_size=60, "
        "embedding_dim=4)\npanel"
    ),
    "watched = LabPanel(dataset='mixture', epochs=80, probe_size=60, embedding_dim=4)\nwatched",
    (
        "stale = LabPanel(dataset='digits-parity', epochs=2, batches_per_epoch=3, probe_size=100, "
        "embedding_dim=4)\nstale"
    ),
]


# Records, in the page, every text of a status element and every path of a curves plot's first line.
WATCH = """([status, curves]) => {
  window.seen = {status: new Set(), lines: new Set()};
  new MutationObserver(() => window.seen.status.add(status.textContent))
    .observe(status, {subtree: true, childList: true, characterData: true});
  new MutationObserver(() => {
    const line = curves.querySelector('.scatterlayer .trace path.js-line');
    if (line) window.seen.lines.add(line.getAttribute('d'));
  }).observe(curves, {subtree: true, childList: true, attributes: true});
}"""


def _notebook(path: Path) -> None:
    cells = [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": source,
        }
        for source in CELLS
    ]
    notebook = {
        "cells": cells,
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    }
    path.write_text(json.dumps(notebook))


def _quick_lesson(source: Path, target: Path) -> None:
    """A copy of a lesson with `quick = True` in a cell after its parameters cell, as papermill
    injects parameters."""
    notebook = nbformat.read(source, as_version=4)
    at = next(
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    )
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell("quick = True"))
    nbformat.write(notebook, target)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server rooted at tmp_path: yields (base_url, token, root)."""
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "panel.ipynb")
    for lesson in ("00_tour.ipynb", "03_bregman_geometry.ipynb"):
        _quick_lesson(ROOT / "notebooks" / lesson, root / lesson)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "DMLLAB_CACHE": str(tmp_path / "cache"),
        # the quick lessons run here write their outputs here, never into the test session's
        # lesson folder, which the claim tests read (they overwrote lessons 00 and 03's metrics)
        "DMLLAB_OUTPUT_DIR": str(tmp_path / "lessons"),
        "OMP_NUM_THREADS": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            f"--config={ROOT / 'jupyter_lab_config.json'}",  # as `make lab` passes it
            "--ServerApp.open_browser=False",
            "--allow-root",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"{base}/api/status?token={token}", timeout=2
                ) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab did not start; log:\n{(tmp_path / 'lab.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield base, token, tmp_path
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), then kill its process group if it lingers."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _launch(playwright):
    """Headless Chromium (the caller closes it)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
    )


def _new_page(browser):
    """A page of the size the tests measure against (1600 x 1400), patient with a slow lab."""
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    page.set_default_timeout(60_000)
    return page


def _accept_kernel_dialog(page) -> None:
    """A fresh JupyterLab asks which kernel to start for an unseen notebook: take the default."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # no dialog: the kernel started by itself
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=20_000)


def _drawn_lines(plot) -> int:
    """How many line traces of a plotly plot have a non-empty path."""
    paths = plot.locator(".scatterlayer .trace path.js-line")
    return sum(1 for i in range(paths.count()) if len(paths.nth(i).get_attribute("d") or "") > 1)


def _map_state(panel) -> tuple[str, list[str]]:
    """The panel map's title and the drawn positions of its points."""
    map_ = panel.locator(".js-plotly-plot").nth(1)
    title = map_.locator(".gtitle").first.text_content() or ""
    points = map_.locator(".scatterlayer .trace .points path")
    return title, [
        points.nth(i).get_attribute("transform") or "" for i in range(min(points.count(), 20))
    ]


def _box(locator) -> tuple[float, float, float, float]:
    box = locator.bounding_box()
    assert box is not None, locator
    return box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]


def _overlap(a, b) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


def _check_layout(plot) -> None:
    """The figure's titles stay inside it and no y-axis title runs into a panel's plot area."""
    figure = _box(plot.locator("svg.main-svg").first)
    for title in plot.locator(".gtitle").all():
        left, top, right, bottom = _box(title)
        inside = figure[0] <= left and right <= figure[2] + 1 and figure[1] <= top <= bottom
        assert inside and bottom <= figure[3] + 1, (title.text_content(), figure)
    areas = _plot_areas(plot)
    for title in plot.locator(".g-ytitle text").all():
        box = _box(title)
        assert not any(_overlap(box, area) for area in areas), title.text_content()


def _plot_areas(plot) -> list[tuple[float, float, float, float]]:
    """The boxes of a plotly figure's (sub)plot areas (plotly's drag rectangle covers each)."""
    return [_box(area) for area in plot.locator("rect.nsewdrag").all()]


def _legend_fits(plot) -> None:
    """Every legend entry lies inside the legend's visible box (no scrolling needed)."""
    legend = plot.locator(".legend").first
    visible = _box(legend.locator("rect.bg").first)
    for entry in legend.locator(".traces").all():
        box = _box(entry)
        assert visible[1] - 1 <= box[1] and box[3] <= visible[3] + 1, entry.text_content()


# Records, in the page, every text the status element shows from now on.
RECORD_STATUS = """status => {
  window.statuses = [];
  new MutationObserver(() => window.statuses.push(status.textContent))
    .observe(status, {subtree: true, childList: true, characterData: true});
}"""
# True once the status showed something else than "done: ..." (the training started) and now
# says "done:" again (it ended).
ENDED = """status => window.statuses.some(t => !t.includes('done:'))
  && status.textContent.includes('done:')"""


def _train_and_wait(panel, page, run: int) -> None:
    """Press Train and wait for this training's "done:" and its map (run `run`)."""
    status = panel.locator(".widget-html-content").last.element_handle()
    page.evaluate(RECORD_STATUS, status)
    panel.locator(".jupyter-widgets button.widget-button", has_text="Train").click()
    page.wait_for_function(ENDED, arg=status, timeout=120_000)
    panel.locator(".js-plotly-plot").nth(1).locator(".gtitle", has_text=f"run {run}:").wait_for(
        timeout=30_000
    )
    page.wait_for_timeout(500)


def test_lab_renders_the_map_and_the_panel_and_training_updates_them(lab):
    base, token, tmp_path = lab
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = _new_page(browser)
            console_errors: list[str] = []
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.goto(f"{base}/lab/tree/panel.ipynb?token={token}", wait_until="domcontentloaded")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _accept_kernel_dialog(page)
            page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=60_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            cells = page.locator(".jp-Notebook .jp-Cell")
            standalone = cells.nth(1).locator(".js-plotly-plot")
            standalone.locator("svg.main-svg").first.wait_for(timeout=90_000)
            assert standalone.locator(".scatterlayer .trace").count() == 3  # one trace per class

            panel = cells.nth(2).locator(".jp-Cell-outputArea")
            train = panel.locator(".jupyter-widgets button.widget-button", has_text="Train")
            train.wait_for(timeout=60_000)
            assert panel.locator(".widget-dropdown").count() >= 4  # real controls, not a text repr
            curves, map_ = (
                panel.locator(".js-plotly-plot").nth(0),
                panel.locator(".js-plotly-plot").nth(1),
            )
            map_.locator("svg.main-svg").first.wait_for(timeout=60_000)
            assert map_.locator(".scatterlayer .trace").count() == 0
            assert _drawn_lines(curves) == 0

            train.click()
            panel.locator(".widget-html-content", has_text="done:").wait_for(timeout=90_000)
            map_.locator(".scatterlayer .trace").first.wait_for(timeout=15_000)
            assert map_.locator(".scatterlayer .trace").count() >= 2, (
                "no class traces in the panel's map"
            )
            page.wait_for_timeout(500)
            assert _drawn_lines(curves) >= 4, "the training curves were not drawn"
            seen = [_map_state(panel)]
            assert seen[0][0].startswith("run 1:"), seen[0][0]
            errors_before = list(console_errors)

            # LSD on: a new set of curves (lsd_term); then two more trainings (the second with
            # another seed), each with its own map
            handle = (
                panel.locator(".widget-slider", has_text="LSD weight").locator(".noUi-handle").first
            )
            handle.focus()
            for _ in range(6):
                handle.press("ArrowRight")
            page.wait_for_timeout(300)
            for run in (2, 3):
                if run == 3:  # the same settings would give the same map: a new seed
                    seed = panel.locator(".widget-text", has_text="seed").locator("input")
                    seed.fill("1")
                    seed.press("Enter")
                    page.wait_for_timeout(300)
                _train_and_wait(panel, page, run)
                seen.append(_map_state(panel))
                assert seen[-1][0].startswith(f"run {run}:"), seen[-1][0]
                assert seen[-1][1] != seen[-2][1], (
                    f"run {run}'s map shows the previous run's points"
                )
            assert (
                panel.locator(".js-plotly-plot").nth(0).locator("text", has_text="LSD term").count()
                >= 1
            ), "the LSD weight did not reach the training (no LSD term panel)"
            for plot in panel.locator(".js-plotly-plot").all():
                _check_layout(plot)
            panel.screenshot(path=str(tmp_path / "lsd.png"))

            # A longer run (80 epochs of the default 10 batches) visibly moves: the page shows
            # several states of its curves and of its "epoch N of 80" status before it is done
            # (recorded in the page, as they are drawn).
            watched = cells.nth(3).locator(".jp-Cell-outputArea")
            watched.scroll_into_view_if_needed()
            page.evaluate(
                WATCH,
                [
                    watched.locator(".widget-html-content").first.element_handle(),
                    watched.locator(".js-plotly-plot").nth(0).element_handle(),
                ],
            )
            watched.locator(".jupyter-widgets button.widget-button", has_text="Train").click()
            watched.locator(".widget-html-content", has_text="done: 80 epochs").wait_for(
                timeout=90_000
            )
            shown = page.evaluate(
                "({status: [...window.seen.status], lines: [...window.seen.lines]})"
            )
            moving = [
                text for text in shown["status"] if re.search(r": epoch \d+ of 80, loss", text)
            ]
            assert len(moving) >= 3 and len(shown["lines"]) >= 3, shown["status"]
            assert console_errors == errors_before, console_errors[len(errors_before) :]
            page.screenshot(path=str(tmp_path / "lab.png"), full_page=True)
            _stale_map_is_never_shown(cells.nth(4).locator(".jp-Cell-outputArea"), page, tmp_path)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            (tmp_path / "failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
    assert (tmp_path / "lab.png").stat().st_size > 10_000


def _run_all_and_wait(page) -> None:
    """Run All Cells, and wait until every code cell has run (no "[*]" or "[ ]" prompt left)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll("
        "'.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim());"
        " return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t)); }",
        timeout=300_000,
    )


def _sessions(base: str, token: str) -> list:
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}") as answer:
        return json.loads(answer.read())


def _stale_map_is_never_shown(panel, page, shots: Path) -> None:
    """digits-parity coloured by sub-cluster, then digits (no sub-clusters): the second run's map
    cannot be drawn, so it is cleared and the reason stays under "done"; colouring by class brings
    the map back."""
    panel.scroll_into_view_if_needed()
    toggle = panel.locator(".widget-toggle-buttons button")
    toggle.filter(has_text="sub").click()
    _train_and_wait(panel, page, 1)
    map_ = panel.locator(".js-plotly-plot").nth(1)
    assert map_.locator(".scatterlayer .trace").count() == 10  # the ten digits
    _legend_fits(map_)
    _check_layout(map_)
    panel.screenshot(path=str(shots / "sub-clusters.png"))
    panel.locator(".widget-dropdown", has_text="dataset").locator("select").select_option("digits")
    page.wait_for_timeout(300)
    _train_and_wait(panel, page, 2)
    status = panel.locator(".widget-html-content").last
    assert "no map" in (map_.locator(".gtitle").first.text_content() or "")
    text = status.text_content() or ""
    assert "done:" in text and "no map: embedding_map: color_by='sub'" in text, text
    assert map_.locator(".scatterlayer .trace").count() == 0
    assert (
        status.locator("span", has_text="no map").first.evaluate("e => getComputedStyle(e).color")
        == "rgb(214, 39, 40)"
    )
    _check_layout(panel.locator(".js-plotly-plot").nth(1))
    panel.screenshot(path=str(shots / "no-map.png"))
    toggle.filter(has_text="class").click()  # a colouring digits have: the map comes back
    map_.locator(".scatterlayer .trace").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    assert map_.locator(".scatterlayer .trace").count() == 5  # digits' five training classes
    title = map_.locator(".gtitle").first.text_content() or ""
    assert title.startswith("run 2: probe set after epoch 2") and "no map" not in title, title
    assert "no map" not in (status.text_content() or "")
    panel.screenshot(path=str(shots / "map-back.png"))


def test_a_lesson_saved_in_lab_reopens_with_figures_and_no_dead_widgets(lab):
    base, token, tmp_path = lab
    lesson = "00_tour.ipynb"
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = _new_page(browser)
            page.goto(f"{base}/lab/tree/{lesson}?token={token}", wait_until="domcontentloaded")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _accept_kernel_dialog(page)
            page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=60_000)
            _run_all_and_wait(page)
            outputs = page.locator(".jp-Notebook .jp-OutputArea")
            outputs.locator("button.widget-button", has_text="Train").wait_for(timeout=60_000)
            live = page.locator(".jp-OutputArea .jupyter-widgets").count()
            assert live >= 3, "the lesson showed no live widgets to save"
            page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Save Notebook").first.click()
            page.wait_for_function(  # saved: the tab's "unsaved" dot is gone
                "() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=30_000
            )
            page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
            page.locator(
                ".lm-Menu-itemLabel", has_text="Close and Shut Down Notebook"
            ).first.click()
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=20_000)
            deadline = time.monotonic() + 90
            while _sessions(base, token):  # the kernel takes a while to shut down under load
                assert time.monotonic() < deadline, "the kernel was not shut down"
                time.sleep(1)

            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.goto(f"{base}/lab/tree/{lesson}?token={token}", wait_until="domcontentloaded")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _accept_kernel_dialog(page)
            page.locator(".jp-OutputArea .jp-RenderedPlotly").first.wait_for(timeout=60_000)
            # JupyterLab draws the outputs of the cells in view: look at every cell in turn
            text, plots = "", 0
            cells = page.locator(".jp-Notebook .jp-Cell")
            for i in range(cells.count()):
                cells.nth(i).scroll_into_view_if_needed()
                page.wait_for_timeout(300)
                outputs = cells.nth(i).locator(".jp-OutputArea")
                if outputs.count():
                    page.wait_for_timeout(700)  # a dead widget says so within this time
                    shown = outputs.first.text_content() or ""
                    text += shown
                    plots += outputs.first.locator(".jp-RenderedPlotly").count()
                    if "LabPanel: interactive" in shown or "MapExplorer" in shown:
                        page.screenshot(path=str(tmp_path / f"reopened-{i}.png"))
            assert "model not found" not in text and "Error displaying widget" not in text
            assert "LabPanel: interactive controls and live figures" in text
            figures = (
                (tmp_path / "root" / lesson).read_text().count('"application/vnd.plotly.v1+json"')
            )
            assert plots == figures >= 2, (plots, figures)  # each saved figure is drawn
            saved = nbformat.read(tmp_path / "root" / lesson, as_version=4)
            kinds = [
                kind
                for cell in saved.cells
                for output in cell.get("outputs", [])
                for kind in output.get("data", {})
            ]
            assert "widgets" not in saved.metadata
            assert "application/vnd.jupyter.widget-view+json" not in kinds

        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            (tmp_path / "failure.html").write_text(page.content())
            raise
        finally:
            browser.close()


def test_lesson_03_figures_and_tables_fit_a_1600_px_window(lab):
    """Lesson 03 run in JupyterLab: every table fits its output (no cut columns), and every
    figure keeps its titles inside, its legend entries in view, its axis titles off other panels
    and each plot at least 250 px wide (a long legend once squeezed one to 160 px)."""
    base, token, tmp_path = lab
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = _new_page(browser)
            page.goto(
                f"{base}/lab/tree/03_bregman_geometry.ipynb?token={token}",
                wait_until="domcontentloaded",
            )
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _accept_kernel_dialog(page)
            page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=60_000)
            _run_all_and_wait(page)
            cells = page.locator(".jp-Notebook .jp-Cell")
            tables = figures = 0
            for i in range(cells.count()):
                cells.nth(i).scroll_into_view_if_needed()
                for output in cells.nth(i).locator(".jp-OutputArea-output").all():
                    output.scroll_into_view_if_needed()
                    if output.locator("table").count():
                        tables += 1
                        width, room = output.evaluate("e => [e.scrollWidth, e.clientWidth]")
                        assert width <= room + 1, (i, width, room)
                    if "jp-RenderedPlotly" not in (output.get_attribute("class") or ""):
                        continue
                    output.locator(".main-svg").first.wait_for()
                    page.wait_for_timeout(300)
                    figures += 1
                    output.screenshot(path=str(tmp_path / f"lesson03-{i:02d}.png"))
                    _check_layout(output)
                    if output.locator(".legend").count():
                        _legend_fits(output)
                    for left, _top, right, _bottom in _plot_areas(output):
                        assert right - left >= 250, (i, right - left)
            assert tables >= 3 and figures >= 6, (tables, figures)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
