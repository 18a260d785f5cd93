"""The effort study's pieces: edit counts to each milestone, the table, the ranking and the
verdict on issue #16's target, the reference slice's own cost and the speed run."""

import importlib.util

import numpy as np
import pytest

from napari_emseg.evaluation.data import Block
from napari_emseg.evaluation.effort import (
    TARGET,
    Start,
    edits_to,
    plot_curves,
    ranking,
    reference_cost,
    reference_line,
    speed_run,
    table,
    verdict,
)
from napari_emseg.evaluation.oracle import OracleResult, Step


def result(ares: list[float], *, cap: int = 100) -> OracleResult:
    """An oracle result whose error after each edit is ``ares[1:]`` (``ares[0]``: the start)."""
    steps = [Step("merge", 10, are, 0.1) for are in ares[1:]]
    return OracleResult(
        labels=np.zeros((1, 2, 2), np.uint32),
        actions={"merge": len(steps), "split": 0, "paint": 0, "undo": 0},
        steps=steps,
        engine_seconds=0.1 * len(steps),
        wall_seconds=0.2 * len(steps),
        initial_are=ares[0],
        final_are=ares[-1],
        target_are=TARGET,
        max_actions=cap,
        reached=ares[-1] <= TARGET,
        stop_reason="target reached" if ares[-1] <= TARGET else "cap",
    )


def starts(b_ares, d_ares, reference=None) -> list[Start]:
    return [
        Start("a", "(a) automatic", result([0.5, 0.3])),
        Start("b-watershed", "(b) watershed", result(b_ares), reference_edits=reference),
        Start("c", "(c) adapted", note="not yet available"),
        Start("d", "(d) slice by slice", result(d_ares)),
    ]


def test_edits_to_each_milestone():
    r = result([0.5, 0.3, 0.15, 0.04])
    assert [edits_to(r, level) for level in (0.2, 0.1, TARGET, 0.01)] == [2, 3, 3, None]
    assert edits_to(result([0.01]), TARGET) == 0


def test_the_table_counts_edits_and_notes_rows_that_did_not_run():
    lines = table(starts([0.4, 0.1, 0.04], [0.5, 0.3, 0.25]))
    assert lines[0].startswith("| start | ARE at start | edits to ARE <= 0.2 |")
    assert lines[3].startswith("| (b) watershed | 0.400 | 1 | 1 | 2 | 100 | 0.0400 after 2 edits")
    assert "| > 2 | > 2 | > 2 |" in lines[5]  # (d) never reached 0.2
    assert lines[4] == "| (c) adapted | - | - | - | - | - | - | not yet available | - | - | - |"


def test_ranking_puts_the_cheapest_start_first():
    text = ranking(starts([0.4, 0.04], [0.5, 0.3, 0.2, 0.04]))
    assert text.endswith(": (b) watershed, (d), (a).")


def test_the_verdict_compares_with_half_the_baseline():
    assert verdict(starts([0.4, 0.04], [0.5, 0.3, 0.2, 0.04])).startswith("**met**")
    assert verdict(starts([0.4, 0.2, 0.04], [0.5, 0.3, 0.04])).startswith("**NOT met**")
    missing = verdict(starts([0.4, 0.2], [0.5, 0.3, 0.2, 0.04]))
    assert missing.startswith("**NOT met**: (b) with `watershed` was still at ARE 0.2000")
    undecided = verdict(starts([0.4, 0.3], [0.5, 0.4]))
    assert undecided.startswith("**undecided** within the caps")
    # The reference slice's own edits count towards the whole cost.
    costly = verdict(starts([0.4, 0.04], [0.5, 0.3, 0.2, 0.04], reference=result([0.5, 0.3, 0.04])))
    assert "With the 2 edits that correct the reference slice: 3, NOT met." in costly


def test_reference_line_says_what_correcting_the_reference_costs():
    assert reference_line(starts([0.4, 0.04], [0.5, 0.04])) == ""
    free = reference_line(starts([0.4, 0.04], [0.5, 0.04], reference=result([0.01])))
    assert "already at ARE 0.010" in free
    paid = reference_line(starts([0.4, 0.04], [0.5, 0.04], reference=result([0.5, 0.2, 0.04])))
    assert "needs 2 edits (2 merges, 0 splits, 0 paints)" in paid


def test_reference_cost_proofreads_the_reference_slice_alone(tiny_stack):
    block = Block("synthetic", tiny_stack.image, tiny_stack.labels, 3, tiny_stack.scale)
    block.membrane = tiny_stack.membranes.astype(np.float32)
    cost = reference_cost(block, max_actions=40)
    assert cost.repropagations == 0 and cost.labels.shape == (1, 96, 96)
    assert cost.final_are <= cost.initial_are and cost.total_actions <= 40


@pytest.mark.slow
def test_the_speed_run_times_the_loop_on_a_synthetic_stack():
    run = speed_run((6, 64, 64), actions=3)
    r = run["result"]
    assert run["shape"] == (6, 64, 64) and r.total_actions <= 3 and r.engine_seconds > 0


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_the_figure_is_drawn(tmp_path):
    path = tmp_path / "effort.png"
    plot_curves({"gala": starts([0.4, 0.04], [0.5, 0.04]), "isbi": starts([0.3], [0.3])}, path)
    assert path.stat().st_size > 1000
