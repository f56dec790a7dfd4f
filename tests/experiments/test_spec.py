"""The one schema reader of grid and search-space files: every bad spec fails before any work,
in one line that names the file, the line and the key."""

import pytest

from dmllab.experiments.grid import GridError, load_grid
from dmllab.experiments.spec import Key, Schema, SpecError, config_fields, seeds


def test_a_misspelt_grid_key_is_named_with_its_line_and_the_key_meant(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("fit: {epochs: 2}\nseed: [0, 1]\n")
    with pytest.raises(
        GridError, match=r"grid.yaml:2: unknown key 'seed' \(did you mean 'seeds'\?\)"
    ):
        load_grid(path)


def test_a_bad_value_in_a_list_is_named_at_its_own_line(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("fit: {epochs: 2}\nparameters:\n  lr:\n    - 0.1\n    - -2.0\n")
    with pytest.raises(GridError, match=r"grid.yaml:5: Config.lr=-2.0 is outside"):
        load_grid(path)


def test_a_misspelt_config_field_is_named_with_the_field_meant(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("fit:\n  epochs: 2\n  lsd_alpa: 1.0\n")
    with pytest.raises(GridError, match=r":3: Config has no field 'lsd_alpa' \(did you mean"):
        load_grid(path)


def test_a_schema_reads_a_python_mapping_and_names_the_key_without_a_line():
    schema = Schema(
        "test spec",
        (Key("fit", config_fields, {}), Key("seeds", seeds, [0])),
        shape="a test spec is a mapping",
    )
    values, _ = schema.read({"fit": {"epochs": 3}})
    assert values == {"fit": {"epochs": 3}, "seeds": [0]}
    with pytest.raises(SpecError, match=r"^the test spec: 'seeds' lists 1 twice"):
        schema.read({"seeds": [1, 1]})
    with pytest.raises(ValueError, match=r"^the test spec: a test spec is a mapping$"):
        schema.read([1])
