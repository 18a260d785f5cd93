"""The start rule study: rules ranked by their worst excess over each condition's best."""

import numpy as np

from napari_emseg.evaluation.start_rule import gerhard_truth, report, rule_table


def _rows():
    # Rule "5/0.8" is never best but never far; "10/0.8" wins one condition and fails another.
    stats = {"otsu": 0.4, "p90": 0.9}
    return [
        {"condition": "a", "stats": stats, "scores": {"5/0.8": 0.05, "10/0.8": 0.04}},
        {"condition": "b", "stats": stats, "scores": {"5/0.8": 0.06, "10/0.8": 0.20}},
    ]


def test_the_rule_with_the_smallest_worst_excess_wins():
    table, winner = rule_table(_rows())
    assert winner == "5/0.8"
    assert table[2].startswith("| 5/0.8 | 0.010 |") and table[3].startswith("| 10/0.8 | 0.140 |")


def test_the_report_names_the_winner_and_every_condition(tmp_path):
    out = tmp_path / "start-rule.md"
    report(_rows(), out)
    text = out.read_text()
    assert "**Chosen: 5/0.8**" in text and "| a | 10/0.8 | 0.040 | 0.050 |" in text


def test_gerhard_cells_are_the_components_between_membranes():
    mask = np.zeros((1, 5, 5), bool)
    mask[0, :, 2] = True
    cells = gerhard_truth(mask)
    assert cells[0, 0, 0] != cells[0, 0, 4] and (cells[mask] == 0).all()
