"""The rules every report shares: the ground-truth reference, one score, markdown, the machine."""

import subprocess
import sys

import numpy as np
import pytest

from napari_emseg.evaluation.machine import describe_machine, git_commit, timed
from napari_emseg.evaluation.reference import (
    GROW_REFERENCE_PX,
    reference_from_truth,
    reference_slice,
)
from napari_emseg.evaluation.report import (
    cell,
    command_line,
    markdown_table,
    number,
    table_row,
    write_report,
)
from napari_emseg.evaluation.scoring import score
from napari_emseg.metrics import adapted_rand_error


def two_cells(depth: int = 3) -> np.ndarray:
    """Two cells split by a 4 px boundary (ids 0) in every slice."""
    gt = np.zeros((depth, 6, 20), np.uint32)
    gt[:, :, :8], gt[:, :, 12:] = 1, 2
    return gt


def test_the_reference_grows_into_the_boundary_only_on_its_slice():
    gt = two_cells()
    labels = reference_from_truth(gt, 1)
    assert labels.dtype == np.uint32 and GROW_REFERENCE_PX == 10
    assert (labels[1] > 0).all()  # dense, as a proofread slice
    assert labels[1, 0].tolist() == [1] * 10 + [2] * 10  # each boundary pixel to its nearest
    assert not labels[0].any() and not labels[2].any()
    np.testing.assert_array_equal(labels[1][gt[1] > 0], gt[1][gt[1] > 0])  # truth kept


def test_grow_limits_how_far_the_reference_reaches():
    gt = two_cells()
    one = reference_slice(gt[0], grow=1)
    assert one[0].tolist() == [1] * 9 + [0, 0] + [2] * 9
    np.testing.assert_array_equal(reference_slice(gt[0], grow=0), gt[0])


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda gt: reference_from_truth(gt, 3), "outside 0..2"),
        (lambda gt: reference_from_truth(gt[0], 0), r"\(Z, Y, X\)"),
        (lambda gt: reference_slice(gt, grow=1), "2D"),
        (lambda gt: reference_slice(gt[0], grow=-1), ">= 0"),
    ],
)
def test_bad_references_are_refused(call, needle):
    with pytest.raises(ValueError, match=needle):
        call(two_cells())


def test_score_is_the_metrics_own_and_names_splits_and_merges():
    gt = two_cells()
    assert score(gt, gt).are == 0.0 and score(gt, gt).objects == 2
    split = gt.copy()
    split[:, :3][split[:, :3] == 1] = 7  # cell 1 cut in two
    s = score(split, gt)
    assert s.are == pytest.approx(adapted_rand_error(split, gt)) and s.are > 0
    assert s.voi_split > 0 and s.voi_merge == 0 and s.objects == 3
    merged = score(np.where(gt > 0, 5, 0), gt)
    assert merged.voi_merge == pytest.approx(1.0) and merged.voi_split == 0


def test_markdown_tables_escape_cells_and_check_their_width():
    lines = markdown_table(["a", "b"], [["x|y", None], [1, "two\nlines"]])
    assert lines == ["| a | b |", "| --- | --- |", "| x\\|y | - |", "| 1 | two lines |"]
    assert table_row([0.5, "-"]) == "| 0.5 | - |"
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2"):
        markdown_table(["a", "b"], [["only"]])
    assert number(None) == "-" == cell(None) and number(2.0, 1) == "2.0"


def test_a_report_names_its_command_and_is_written_with_its_folders(tmp_path):
    assert command_line("scripts/x.py", []) == ".venv/bin/python scripts/x.py"
    assert command_line("scripts/x.py", ["--only", "ISBI 0-29:w"]).endswith("'ISBI 0-29:w'")
    path = write_report(tmp_path / "docs" / "results" / "r.md", "# r\n")
    assert path.read_text() == "# r\n"


def test_the_machine_line_and_the_commit(tmp_path):
    line = describe_machine()
    assert "CPU cores" in line and line.endswith("no GPU used")
    assert git_commit(tmp_path) == "unknown"  # not a checkout
    here = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if here.returncode == 0:
        assert git_commit() == here.stdout.strip()


def test_timed_returns_the_result_and_its_seconds():
    value, seconds = timed(sorted, [3, 1, 2])
    assert value == [1, 2, 3] and 0 <= seconds < 5
    _, slept = timed(subprocess.run, [sys.executable, "-c", "import time; time.sleep(0.2)"])
    assert slept >= 0.2
