"""The demo's HTML report: written into a folder it makes, numbers printed for reading, and a
wide headline table that scrolls in its own box instead of the page."""

import json
import math

from dmllab.lessons import LessonResult
from dmllab.report import _number, write_report


def test_numbers_read_as_counts_small_values_and_three_decimals():
    assert [_number(v) for v in (16.0, 2.0, 0.0, -3.0)] == ["16", "2", "0", "-3"]
    assert _number(8e-05) == "8e-05" and _number(0.000227) == "0.000227"
    assert [_number(v) for v in (0.8862, -0.0303, 12.5)] == ["0.886", "-0.030", "12.500"]
    assert _number(math.inf) == "inf"


def test_the_report_makes_its_folder_and_boxes_the_wide_table(tmp_path):
    out = tmp_path / "lessons" / "00_x"
    out.mkdir(parents=True)
    metrics = {f"variant-{i}/metric-{j}": 0.5 + i / 100 for i in range(3) for j in range(30)}
    (out / "metrics.json").write_text(json.dumps(metrics | {"trials": 5.0, "asym": 8e-05}))
    lesson = LessonResult(name="00_x", notebook=tmp_path / "00_x.ipynb", output_dir=out)
    page = write_report(tmp_path / "not" / "yet", [lesson]).read_text()
    assert '<div class="wide"><table' in page
    assert ">5<" in page and ">8e-05<" in page and ">0.520<" in page
