"""The simulated proofreader (issue #16): edit counts, what each edit may change, honesty."""

import numpy as np
import pytest

from napari_emseg.evaluation.oracle import REPROPAGATE, simulate_proofreading
from napari_emseg.metrics import adapted_rand_error


@pytest.fixture()
def run(three_cells):
    """Simulate proofreading of ``start`` against the three cells of its depth."""

    def simulate(start: np.ndarray, **options):
        image, gt, membrane = three_cells(start.shape[0])
        options = {"membrane": membrane, "target_are": 0.0, "keep_diffs": True, **options}
        return simulate_proofreading(image, gt, start, **options), gt

    return simulate


def test_one_false_merge_needs_one_split(three_cells, run):
    _, gt, _ = three_cells()
    start = gt.copy()
    start[(gt == 1) | (gt == 2) | ((gt == 0) & (np.arange(30) < 18))] = 1  # 1 and 2 merged
    result, _ = run(start)
    assert result.actions == {"merge": 0, "split": 1, "paint": 0, "undo": 0}
    assert result.final_are == 0.0 and result.reached
    assert [s.kind for s in result.steps] == ["split", REPROPAGATE]


def test_one_false_split_needs_one_merge(three_cells, run):
    _, gt, _ = three_cells()
    start = gt.copy()
    start[2:][start[2:] == 3] = 7  # object 3 split in two along z
    result, _ = run(start)
    assert result.actions == {"merge": 1, "split": 0, "paint": 0, "undo": 0}
    assert result.final_are == 0.0
    assert [s.kind for s in result.steps] == ["merge"]  # a whole-object merge: no repropagation


def replay(start: np.ndarray, result, gt: np.ndarray) -> None:
    """Apply the steps to the start, checking that each changed only what its tool may."""
    labels = start.astype(np.uint32)
    references: set[int] = set(result.references) - {s.z for s in result.steps}
    before_repropagation = None
    for step in result.steps:
        diff = step.diff
        old, new = labels[diff.indices], diff.values
        zs = set(diff.indices[0].tolist())
        if step.kind == "merge":
            assert np.unique(old).size == 1 and np.unique(new).size == 1 and old[0] != new[0]
            if step.z is None:  # the whole object goes
                assert diff.size == np.count_nonzero(labels == old[0])
            else:
                assert zs == {step.z}
        elif step.kind == "split":
            assert zs == {step.z} and np.unique(old).size == 1
            assert not np.isin(new, labels).any()  # the parts get new ids
        elif step.kind == "paint":
            assert zs == {step.z}
        elif step.kind == REPROPAGATE:
            assert not zs & references  # reference slices are never overwritten
            before_repropagation = labels.copy()
        else:
            assert step.kind == "undo"
        if step.z is not None:
            references.add(step.z)
        diff.apply(labels)
        if step.kind == "undo":  # exactly what the repropagation changed goes back
            np.testing.assert_array_equal(labels, before_repropagation)
        assert step.are == adapted_rand_error(labels, gt)  # the running score is exact
    np.testing.assert_array_equal(labels, result.labels)
    assert result.final_are == adapted_rand_error(result.labels, gt)


def test_each_edit_changes_only_what_it_may_and_every_are_is_exact(three_cells, run):
    _, gt, _ = three_cells(6)
    start = gt.copy()
    start[3:][np.isin(start[3:], [1, 2])] = 1  # false merge in slices 3-5
    start[:, :, 8:10][start[:, :, 8:10] == 0] = 1
    start[:2][start[:2] == 3] = 9  # false split of object 3
    start[1, 2:6, 22:26] = 0  # unlabelled hole: only the brush fills it
    start[4, 3:5, 2:4] = 3  # a speck of the wrong object
    result, _ = run(start, max_actions=50)
    assert result.final_are == 0.0
    assert {s.kind for s in result.steps} == {"merge", "split", "paint", REPROPAGATE}
    replay(start, result, gt)


def test_a_repropagation_that_raises_the_error_is_undone(three_cells):
    image, gt, membrane = three_cells()
    start = gt.copy()
    start[(gt == 1) | (gt == 2) | ((gt == 0) & (np.arange(30) < 18))] = 1
    start[2:, :, 13:18] = 2
    membrane[1:] = np.random.default_rng(1).random(membrane[1:].shape)  # misleading
    result = simulate_proofreading(
        image, gt, start, membrane=membrane, target_are=0.0, max_actions=6, keep_diffs=True
    )
    kinds = [s.kind for s in result.steps]
    assert "undo" in kinds and result.actions["undo"] == kinds.count("undo")
    undone = kinds.index("undo")
    assert kinds[undone - 1] == REPROPAGATE
    assert result.steps[undone - 1].are > result.steps[undone].are == result.steps[undone - 2].are
    replay(start, result, gt)
    cap = sum(kind != REPROPAGATE for kind in kinds[:undone])  # no edit left for the undo
    capped = simulate_proofreading(
        image, gt, start, membrane=membrane, target_are=0.0, max_actions=cap, keep_diffs=True
    )
    assert capped.total_actions == cap and capped.steps[-1].kind == REPROPAGATE
    replay(start, capped, gt)


def test_an_error_no_tool_lowers_is_skipped_and_the_loop_ends():
    gt = np.ones((2, 3, 3), np.uint16)
    gt[:, 1, 1] = 2  # a one-pixel neurite through both slices, unlabelled in the start:
    start = np.where(gt == 2, 0, gt)  # painting one pixel alone leaves every score as it was
    image, membrane = np.full(gt.shape, 99, np.uint8), np.zeros(gt.shape, np.float32)
    result = simulate_proofreading(
        image, gt, start, membrane=membrane, target_are=0.0, max_actions=1000
    )
    assert result.total_actions == 0 and result.skipped == 2  # tried in each slice, once
    assert result.stop_reason == "no error left that a tool lowers"
    assert result.final_are == adapted_rand_error(start, gt) > 0


def test_random_start_terminates_within_the_cap_with_an_honest_score(three_cells):
    image, gt, membrane = three_cells()
    start = np.random.default_rng(0).integers(0, 6, gt.shape).astype(np.uint16)
    result = simulate_proofreading(
        image, gt, start, membrane=membrane, target_are=0.0, max_actions=40
    )
    assert result.total_actions <= 40
    assert result.final_are == adapted_rand_error(result.labels, gt)
    assert result.steps[-1].are == result.final_are
    assert result.curve()[1][-1] == result.final_are
    nothing = simulate_proofreading(image, gt, start, membrane=membrane, max_actions=0)
    assert nothing.steps == [] and nothing.stop_reason == "max actions (0) reached"
    np.testing.assert_array_equal(nothing.labels, start)
