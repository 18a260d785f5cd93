"""Choices scored on the corrected slice: which slices count, thresholds, method, pixel size."""

import numpy as np
import pytest

from napari_emseg.calibration import calibrate, choose_pixel_size, usable_slices
from napari_emseg.calibration.method import choose_method
from napari_emseg.calibration.threshold import choose_threshold
from napari_emseg.segmentation.supervoxels import supervoxel_hierarchy


def _grid_labels(size: int = 48, cell: int = 12) -> np.ndarray:
    """A slice of square cells (ids 1..N) with 1-px walls of 0 between them."""
    yy, xx = np.mgrid[0:size, 0:size]
    labels = (yy // cell) * (size // cell) + xx // cell + 1
    labels[(yy % cell == 0) | (xx % cell == 0)] = 0
    return labels.astype(np.uint32)


def test_only_dense_slices_with_enough_objects_are_calibrated_on():
    labels = np.zeros((3, 48, 48), np.uint32)
    labels[0] = _grid_labels()  # 16 cells over the whole slice
    labels[1, :10, :10] = 5  # one traced neuron
    usable, reason = usable_slices(labels, [0, 1, 2])
    assert usable == [0]
    assert "slice 1 is labelled over" in reason and "slice 2" in reason


def _walled_membrane() -> np.ndarray:
    """Cells with strong walls; each cell also has a faint wall (0.45) across its middle."""
    wall = (_grid_labels() == 0).astype(np.float32)
    faint = np.zeros_like(wall)
    faint[6::12, :] = 0.45
    return np.repeat(np.maximum(wall, faint)[None], 3, axis=0)


@pytest.mark.parametrize("halves_are_cells", [False, True])
def test_the_threshold_follows_what_the_user_says_a_cell_is(halves_are_cells):
    membrane = _walled_membrane()
    truth = np.zeros((3, 48, 48), np.uint32)
    truth[1] = _grid_labels()
    if halves_are_cells:  # the user split every cell at its faint wall
        truth[1] = np.where(truth[1] > 0, truth[1] * 2 + (np.arange(48)[:, None] % 12 > 6), 0)
    hierarchy = supervoxel_hierarchy(membrane, sigma=0, per_slice=False)
    choice = choose_threshold(hierarchy, truth, [1], default=0.8)
    cut = hierarchy.table(choice.value)[hierarchy.fragments[1]]
    top, bottom = cut[2, 2], cut[9, 2]  # the two halves of the first cell
    assert (top != bottom) == halves_are_cells
    assert choice.score <= choice.default_score and choice.scored_on == [1]


def test_the_default_stays_unless_another_threshold_clearly_beats_it():
    truth = np.zeros((3, 48, 48), np.uint32)
    truth[1] = _grid_labels()
    truth[1] = np.where(truth[1] > 0, truth[1] * 2 + (np.arange(48)[:, None] % 12 > 6), 0)
    hierarchy = supervoxel_hierarchy(_walled_membrane(), sigma=0, per_slice=False)
    choice = choose_threshold(hierarchy, truth, [1], default=0.3)
    assert choice.candidates["0.4"] <= choice.candidates["0.3"]  # 0.4 ties: no reason to move
    assert choice.value == 0.3


def test_a_split_weight_makes_the_cut_pay_for_its_splits():
    """Halved cells cost nothing achievable but half their pairs plainly: the mixed score sits
    between the two, and a full weight is the plain error of the cut."""
    from napari_emseg.calibration.scoring import achievable_error, slice_error

    hierarchy = supervoxel_hierarchy(_walled_membrane(), sigma=0, per_slice=False)
    truth = np.zeros((3, 48, 48), np.uint32)
    truth[1] = _grid_labels()
    low = 0.3  # below the faint walls: every cell stays in two halves
    cut = hierarchy.table(low)[hierarchy.fragments[1]]
    achievable, plain = achievable_error(cut, truth[1]), slice_error(cut, truth[1])
    assert achievable < plain
    scores = {
        w: choose_threshold(hierarchy, truth, [1], default=low, split_weight=w).candidates["0.3"]
        for w in (0.0, 0.5, 1.0)
    }
    assert scores[0.0] == pytest.approx(achievable, abs=1e-4)
    assert scores[1.0] == pytest.approx(plain, abs=1e-4)
    assert scores[0.5] == pytest.approx((achievable + plain) / 2, abs=1e-4)


def test_the_method_is_scored_only_on_slices_it_did_not_start_from():
    labels = np.zeros((5, 48, 48), np.uint32)
    labels[[0, 4]] = _grid_labels()
    seen = []

    def run(image, only, ref, *, membrane, method, z_range):
        seen.append((ref, sorted(z for z in range(5) if only[z].any())))
        out = np.repeat(only[ref][None], 5, axis=0)
        return out if method == "good" else np.where(out > 0, 1, 0)  # "bad" merges all

    choice = choose_method(
        None, labels, [0, 4], membrane=None, methods=["bad", "good"], default="bad", run=run
    )
    assert choice.value == "good" and choice.default_score > choice.score == 0.0
    assert seen and all(visible == [ref] for ref, visible in seen)  # the other slice unseen
    assert choice.scored_on == [0, 4]


def test_the_pixel_size_that_segments_the_corrected_slice_is_kept():
    truth = np.zeros((1, 48, 48), np.uint32)
    truth[0] = _grid_labels()
    walls = (truth == 0).astype(np.float32)

    def predict(stack, pixel_nm):  # the network sees the cells only near the true 10 nm
        return walls if abs(pixel_nm - 10.0) < 0.5 else np.zeros_like(walls)

    choice = choose_pixel_size(np.zeros((1, 48, 48)), truth, [0], estimate=9.0, predict=predict)
    assert abs(choice.value - 10.0) < 0.5 and choice.default == 9.0
    assert choice.score < choice.default_score


def test_calibrate_chooses_the_3d_threshold_for_isotropic_and_the_vote_for_thick_sections():
    membrane = _walled_membrane()
    labels = np.zeros((3, 48, 48), np.uint32)
    labels[1] = _grid_labels()
    image = (255 * (1 - membrane)).astype(np.uint8)
    iso = calibrate(image, labels, [1], membrane=membrane, voxel_size=(8, 8, 8), method="m")
    thick = calibrate(image, labels, [1], membrane=membrane, voxel_size=(50, 4, 4), method="m")
    assert list(iso.choices) == ["threshold"] and iso.hierarchy is not None
    assert list(thick.choices) == ["vote_threshold"]
    assert iso.summary().startswith("calibrated threshold")
    sparse = labels.copy()
    sparse[1][sparse[1] > 2] = 0
    skipped = calibrate(image, sparse, [1], membrane=membrane, voxel_size=(8, 8, 8), method="m")
    assert not skipped.choices and "calibration skipped: slice 1" in skipped.summary()
