"""The project's promises about its own files: dependencies in sync, notebooks stored clean,
no upper pins, the README's Python blocks and shell lines run."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge / pytorch channel names that differ from the PyPI names
CONDA_TO_PYPI = {"pytorch": "torch", "python-kaleido": "kaleido"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()


def pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {_name(r): r for r in requirements}


def conda_dependencies() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            names |= {_name(r) for r in entry.get("pip", [])}
        elif _name(entry) not in ("python", "pip"):
            names.add(CONDA_TO_PYPI.get(_name(entry), _name(entry)))
    return names


def test_environment_yml_lists_exactly_the_pyproject_dependencies():
    in_pyproject = set(pyproject_dependencies())
    in_conda = conda_dependencies()
    assert in_pyproject - in_conda == set(), "add these to environment.yml"
    assert in_conda - in_pyproject == set(), (
        "add these to pyproject.toml (or remove them from environment.yml)"
    )


def test_no_upper_pins_in_package_metadata():
    for requirement in pyproject_dependencies().values():
        assert "<" not in requirement and "==" not in requirement, requirement


def test_the_constraint_pins_torch_and_its_torchvision_exactly():
    lines = [
        line
        for line in (ROOT / "constraints" / "cpu.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == ["torch==2.13.0", "torchvision==0.28.0"]  # one matched pair


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / "README.md").read_text()
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_the_test_extra_brings_the_pml_the_cross_checks_read():
    """The cross-checks against pytorch-metric-learning skip without it; where the test extra is
    installed it must be there, in a module layout `tests/pml_compat.py` knows (2.x or 3), so that
    none of them passes by being skipped."""
    import importlib.metadata

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [_name(r) for r in extra["optional-dependencies"]["test"]]
    assert "pytorch-metric-learning" in names

    def installed(name):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True

    absent = [name for name in names if name != "pytorch-metric-learning" and not installed(name)]
    if absent:
        pytest.skip(f"the test extra is not installed (no {', '.join(absent)})")
    assert installed("pytorch-metric-learning"), "the test extra is installed without PML"
    import pml_compat  # fails, not skips, for a layout it does not know

    assert callable(pml_compat.AccuracyCalculator) and callable(pml_compat.CustomKNN)


def notebooks():
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    result = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{path.name} has outputs: run `nbstripout {path}`"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebooks_have_a_parameters_cell_with_seed_quick_output_dir(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one code cell tagged 'parameters'"
    source = "".join(tagged[0]["source"])
    for name in ("seed", "quick", "output_dir"):
        assert re.search(rf"^{name}\s*=", source, re.M), f"parameters cell lacks {name}"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def readme_shell_lines() -> list[str]:
    """Every command of the README's ```bash blocks, in order (comments dropped), except the
    research recipes' `torchrun ... recipes/<benchmark>/<variant>.json --root $DATA` lines: they
    need the benchmark's images and days of a GPU, so `tests/test_recipes.py` checks that they are
    exactly the recipes and trains a shrunken recipe through the same `dmllab fit --root`."""
    lines = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command and not command.startswith("#") and not RECIPE_LINE.search(command):
                lines.append(command)
    return lines


RECIPE_LINE = re.compile(r"^torchrun .* recipes/\S+\.json --root \$\w+$")


@pytest.mark.slow
def test_readme_shell_examples_run(tmp_path):
    """Every shell line of the README runs. The make targets are dry-run (`make -n`: they exist
    and resolve; `make test` is this suite itself and `make demo`'s lessons run under nbval in
    it), and the maintainers' `pytest --nbval-lax notebooks/` is checked to be what `make test`
    runs; every other line runs as it stands, in order, in a folder holding a copy of the lessons
    and the README's grid file."""
    lines = readme_shell_lines()
    assert any(line.startswith("dmllab run ") for line in lines), "the README shows no dmllab run"
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    # the README's grid file (its other YAML block is a search space for `dmllab tune`)
    (grid,) = [b for b in readme_blocks("yaml") if textwrap.dedent(b).startswith("notebook:")]
    (tmp_path / "grid.yaml").write_text(textwrap.dedent(grid))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for line in lines:
        if line.startswith("make "):
            target = line.split()[1]
            dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
            assert dry.returncode == 0, (line, dry.stderr)
        elif line == "pytest --nbval-lax notebooks/":
            assert "-m pytest --nbval-lax" in (ROOT / "Makefile").read_text()
            testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
            assert testpaths["ini_options"]["testpaths"][0] == "notebooks"
        else:
            result = subprocess.run(
                ["bash", "-c", line],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-3000:])


def readme_python_blocks() -> list[str]:
    return [textwrap.dedent(block) for block in readme_blocks("python")]


def test_readme_python_blocks_run(tmp_path):
    blocks = readme_python_blocks()
    assert blocks, "the README shows no Python"
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_markdown_file_the_product_names_is_in_the_repository():
    """Code, notebooks and documents cite only files a clone has (design notes kept elsewhere are
    said in the product's own words)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    texts = [
        name
        for name in tracked
        if name.endswith((".py", ".toml", ".md", ".ipynb", ".yml", ".yaml", ".txt"))
        or name in ("Makefile", ".ci/run")
    ]
    missing = {
        (name, cited)
        for name in texts
        for cited in re.findall(r"[\w./-]*\w\.md\b", (ROOT / name).read_text(errors="replace"))
        if not any(path == cited or path.endswith("/" + cited) for path in tracked)
    }
    assert not missing, sorted(missing)


def test_strict_nbval_on_the_output_free_lessons_is_refused_naming_the_lax_command():
    """Strict --nbval skips cells that were never run, so on these notebooks it would pass having
    compared nothing; conftest.py refuses it before any kernel starts."""
    result = _collect_lesson_00("--nbval")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "stored without outputs" in result.stderr and "--nbval-lax" in result.stderr
    lax = _collect_lesson_00("--nbval-lax")
    assert lax.returncode == 0 and "Cell 0" in lax.stdout, lax.stdout + lax.stderr


def _collect_lesson_00(flag: str) -> subprocess.CompletedProcess[str]:
    """pytest FLAG --collect-only on lesson 00, in a fresh process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            flag,
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "notebooks/00_tour.ipynb",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
