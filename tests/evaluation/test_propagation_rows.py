"""Rows of the propagation study on a synthetic stack with its true membranes."""

import numpy as np
import pytest

from napari_emseg.evaluation import propagation as study
from napari_emseg.evaluation.data import Block
from napari_emseg.evaluation.propagation import (
    Row,
    copy_row,
    evaluate_block,
    propagator_row,
    table,
    targets,
    waterz_rows,
)
from napari_emseg.evaluation.waterz import waterz_available


@pytest.fixture()
def block(tiny_stack):
    block = Block("synthetic", tiny_stack.image, tiny_stack.labels, 3, tiny_stack.scale)
    block.membrane = tiny_stack.membranes.astype(np.float32)
    return block


def test_rows_from_the_ground_truth_beat_the_copied_reference(block):
    rows = evaluate_block(block, ["copy", "watershed", "auto-watershed"], "cpu")
    copy, from_truth, automatic = rows
    assert copy.method == "reference copied to every slice"
    assert (from_truth.reference, automatic.reference) == ("ground truth", "2D watershed")
    assert from_truth.are < copy.are  # propagation follows the neurites through z
    assert all(0 <= r.are <= 1 and r.objects > 0 and r.seconds >= 0 for r in rows)
    assert copy.objects == np.count_nonzero(np.unique(block.reference()[block.ref]))


def test_copy_row_scores_the_copied_slice(block):
    row = copy_row(block)
    copied = np.broadcast_to(block.reference()[block.ref], block.gt.shape)
    assert row.are == study.score(copied, block.gt).are


def test_a_learned_variant_without_weights_becomes_a_note(block, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("no trained weights for variant st")

    monkeypatch.setattr("napari_emseg.propagation.propagate", missing)
    reference = block.reference()[block.ref]
    row = propagator_row(block, "cconvlstm ST", "ground truth", reference, 0.0, "cconvlstm", "cpu")
    assert row.are is None and row.note.startswith("not trained (FileNotFoundError")
    unknown = propagator_row(block, "x", "ground truth", reference, 0.0, "magic", "cpu")
    assert unknown.note == "method `magic` is not registered yet"


def test_unknown_rows_are_refused(block):
    with pytest.raises(ValueError, match="unknown methods"):
        evaluate_block(block, ["copy", "teleport"], "cpu")


@pytest.mark.skipif(waterz_available(), reason="checks the note written without waterz")
def test_waterz_rows_say_when_waterz_is_missing(block):
    (row,) = waterz_rows(block)
    assert row.are is None and "waterz not installed" in row.note


def test_the_table_marks_rows_not_measured():
    rows = [
        Row("watershed", "ground truth", 0.25, 0.5, 0.125, 1.25, 12),
        Row("st", "gt", note="a|b"),
    ]
    lines = table(rows).splitlines()
    assert lines[2] == "| watershed | ground truth | 0.250 | 0.500 | 0.125 | 12 | 1.2 |  |"
    assert lines[3] == "| st | gt | - | - | - | - | - | a\\|b |"


def rows_with(stc: float, classical: float, variants=(0.4, 0.3, 0.2)) -> list[Row]:
    names = [f"cconvlstm {v}" for v in ("ST", "STL", "STN")]
    rows = [Row(n, "ground truth", are) for n, are in zip(names, variants, strict=True)]
    rows += [Row("cconvlstm STC", "ground truth", stc), Row("watershed", "ground truth", classical)]
    return rows + [Row("waterz, mean affinity", "none (not used)", 0.3)]


def test_targets_are_checked_on_the_rows():
    met = targets("gala", rows_with(stc=0.1, classical=0.3))
    assert (
        "STC ARE 0.100 against half of the classical propagator's (0.300 / 2 = 0.150): met" in met
    )
    assert "waterz's (0.300 / 2 = 0.150): met" in met
    assert "ST 0.400, STL 0.300, STN 0.200, STC 0.100: ordered" in met
    missed = targets("gala", rows_with(stc=0.25, classical=0.3, variants=(0.2, 0.3, 0.1)))
    assert missed.count("NOT met") == 2 and "NOT ordered" in missed
    assert "neither target can be checked" in targets(
        "gala", [Row("watershed", "ground truth", 0.2)]
    )
