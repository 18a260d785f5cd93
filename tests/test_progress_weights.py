"""Progress stages are weighted by the measured stage split (pipeline.MEMBRANE_SHARE)."""

import numpy as np
import pytest

from napari_emseg import pipeline
from napari_emseg.datasets.synthetic import make_synthetic_stack


@pytest.fixture(scope="module")
def stack():
    return make_synthetic_stack((3, 64, 64), seed=1)


def _stage_bounds(calls: list[tuple[int, int, str]], stage: str) -> tuple[int, int]:
    done = [d for d, _, message in calls if message.startswith(f"{stage}:")]
    return min(done), max(done)


def test_segment_membrane_stage_ends_at_the_measured_share(stack):
    calls = []
    pipeline.segment(
        stack.image, model="ridge", propagation="watershed", voxel_size=stack.scale,
        progress=lambda *a: calls.append(a),
    )  # fmt: skip
    share = 1000 * pipeline.MEMBRANE_SHARE["watershed"]
    assert _stage_bounds(calls, "membrane")[1] == pytest.approx(share, abs=1)
    assert _stage_bounds(calls, "propagation")[0] >= share
    assert calls[-1][0] == 1000


def test_a_given_membrane_map_takes_almost_no_share(stack):
    calls = []
    labels = np.zeros_like(stack.labels)
    labels[1] = stack.labels[1]
    membrane = pipeline.predict_membrane(stack.image, model="ridge", voxel_size=stack.scale)
    pipeline.propagate(
        stack.image, labels, 1, membrane=membrane, method="watershed", voxel_size=stack.scale,
        calibrate=False, progress=lambda *a: calls.append(a),
    )  # fmt: skip
    first_propagation = _stage_bounds(calls, "propagation")[0]
    assert first_propagation < 1000 * (pipeline.GIVEN_MEMBRANE_SHARE + 0.5)
    assert first_propagation > 1000 * pipeline.GIVEN_MEMBRANE_SHARE


def test_the_learned_propagator_gets_most_of_the_bar():
    assert pipeline.membrane_share("cconvlstm") < pipeline.membrane_share("watershed")
    assert pipeline.membrane_share(None, (50, 4, 4)) == pipeline.MEMBRANE_SHARE["cconvlstm"]
