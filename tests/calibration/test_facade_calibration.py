"""The facade calibrates on the corrected slice: the estimated pixel size, then thresholds."""

import numpy as np
import pytest

import napari_emseg as em
from napari_emseg.datasets.synthetic import make_synthetic_stack_at


@pytest.mark.slow
def test_an_unknown_voxel_size_is_estimated_then_checked_on_the_reference():
    stack = make_synthetic_stack_at((4, 128, 128), 8.0)
    reference = np.zeros_like(stack.labels)
    reference[2] = stack.labels[2]
    with pytest.warns(em.VoxelSizeWarning, match="voxel size unknown: estimated"):
        result = em.propagate(stack.image, reference, 2, method="watershed", device="cpu")
    assert result.voxel_estimated  # the flag, not the wording of the note, says so
    choice = result.calibration.choices["pixel_nm"]
    assert result.voxel_size[-1] == pytest.approx(choice.value, abs=0.01)
    assert 8.0 * 0.75 <= choice.value <= 8.0 * 1.25
    assert len(choice.candidates) == 5 and choice.score <= choice.default_score
    # ties keep the estimate: the search only moves for a better score on the slice
    assert choice.value == choice.default or choice.score < choice.default_score
    assert result.notes[-1].startswith("calibrated pixel_nm")
    with pytest.warns(em.VoxelSizeWarning):
        plain = em.propagate(
            stack.image, reference, 2, method="watershed", device="cpu", calibrate=False
        )
    assert plain.calibration is None and plain.voxel_size[-1] == pytest.approx(choice.default)
    assert plain.voxel_estimated
    given = em.propagate(
        stack.image, reference, 2, method="watershed", device="cpu", voxel_size=stack.scale
    )
    assert "pixel_nm" not in given.calibration.choices  # a given size is never second-guessed
    assert not given.voxel_estimated
