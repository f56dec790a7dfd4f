"""CONTRIBUTING.md's recipes run as they stand: a new loss, strategy, geometry, dataset,
regulariser and callback, each written once and then used like the built-in ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def recipe_code() -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", CONTRIBUTING.read_text(), flags=re.S))


def test_contributing_has_a_recipe_for_each_kind():
    headings = re.findall(r"^### (.+)$", CONTRIBUTING.read_text(), flags=re.M)
    assert headings == [
        "A loss",
        "A selection strategy",
        "A geometry",
        "A dataset",
        "A regulariser",
        "A callback",
    ]


@pytest.mark.slow
def test_the_recipes_run_as_written(tmp_path):
    # One process, so that what a recipe registers does not leak into the other tests' registries.
    script = tmp_path / "recipes.py"
    script.write_text(recipe_code() + "\nprint('recipes ok')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DMLLAB_PROGRESS": "0"}
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("recipes ok"), out.stderr[-3000:]


def test_the_recipe_files_pass_the_style_checks(tmp_path):
    # The blocks that open with a docstring are files as a contributor would write them.
    files = [
        b
        for b in re.findall(r"```python\n(.*?)```", CONTRIBUTING.read_text(), flags=re.S)
        if b.startswith('"""')
    ]
    assert len(files) == 6
    for i, text in enumerate(files):
        (tmp_path / f"recipe_{i}.py").write_text(text)
    config = str(CONTRIBUTING.parent / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        out = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--config", config, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
