"""Propagation by 3D agglomeration named by the reference slice."""

import numpy as np
import pytest

from napari_emseg.datasets.synthetic import make_synthetic_stack
from napari_emseg.metrics import adapted_rand_error
from napari_emseg.propagation import PROPAGATORS, get_propagator, propagate
from napari_emseg.propagation.agglomeration import label_segments, reference_ids
from napari_emseg.training.data import boundaries_from_instances


@pytest.fixture(scope="module")
def stack():
    return make_synthetic_stack((8, 96, 96), seed=2, scale=(8.0, 8.0, 8.0))


def _map(labels):
    return boundaries_from_instances(labels).astype(np.float32)


def test_the_reference_names_the_segments_and_the_rest_are_newcomers(stack):
    membrane = _map(stack.labels)
    labels = np.zeros(stack.labels.shape, np.uint32)
    labels[4] = stack.labels[4] + 100  # the user's ids differ from the truth's
    out = propagate(stack.image, labels, 4, membrane=membrane, method="agglomeration")
    assert (out[4] == labels[4]).all()
    # The synthetic neurites drift a few pixels per slice, so z-faces between neighbours carry
    # no membrane and some merge: far from perfect, far from one object per slice.
    assert adapted_rand_error(out, stack.labels) < 0.2
    carried = set(np.unique(out[0])) & set(np.unique(labels[4]))
    assert len(carried) > 0.5 * len(set(np.unique(stack.labels[0])) - {0})


def test_a_segment_the_reference_does_not_name_enters_with_a_new_id():
    membrane = np.zeros((4, 20, 20), np.float32)
    membrane[:, :, 9:11] = 1.0  # a wall: left and right halves
    membrane[3:, 9:11, :10] = 1.0  # a second neurite enters on the left at slice 3...
    membrane[2, 9:, :10] = 1.0  # ...capped by membrane on slice 2
    labels = np.zeros(membrane.shape, np.uint16)
    labels[0, :, :9], labels[0, :, 11:] = 3, 4
    out = propagate(membrane, labels, 0, membrane=membrane, method="agglomeration")
    assert out[3, 2, 15] == 4 and out[3, 2, 2] == 3
    assert out[3, 15, 2] == 5  # the newcomer: not 3, a fresh id


def test_targeted_agglomeration_moves_only_the_targets(stack):
    membrane = _map(stack.labels)
    labels = stack.labels.astype(np.uint32).copy()
    target = int(np.bincount(stack.labels[4].ravel())[1:].argmax()) + 1
    labels[:, :, :] = np.where(labels == target, 0, labels)  # lost everywhere...
    labels[4][stack.labels[4] == target] = target  # ...but corrected on slice 4
    out = propagate(
        stack.image, labels, 4, membrane=membrane, method="agglomeration", objects=[target]
    )
    others = (labels != 0) & (labels != target)
    assert (out[others] == labels[others]).all()
    assert ((out == target) & (stack.labels == target)).sum() > 0.8 * (stack.labels == target).sum()


def test_reference_ids_and_newcomer_numbering():
    segments = np.array([[[1, 1, 2, 3]], [[1, 1, 2, 3]]])
    ref = np.array([[7, 7, 0, 8]])
    assert reference_ids(ref, segments[0]).tolist() == [0, 7, 0, 8]
    out = label_segments(segments, ref, 0, next_id=20, newcomers=True)
    assert out[1].tolist() == [[7, 7, 20, 8]]
    assert label_segments(segments, ref, 0, next_id=20, newcomers=False)[1].tolist() == [
        [7, 7, 0, 8]
    ]


def test_the_registry_says_what_each_method_needs():
    assert get_propagator("cconvlstm").needs_network and get_propagator("cconvlstm").window == 5
    assert not get_propagator("agglomeration").vote
    assert set(PROPAGATORS) >= {"watershed", "cconvlstm", "agglomeration"}
    with pytest.raises(ValueError, match="unknown propagation method 'foo'"):
        get_propagator("foo")
