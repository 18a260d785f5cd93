"""Sparse tracing: a reference with a few painted neurons carries exactly those."""

import numpy as np
import pytest

from napari_emseg.datasets.synthetic import make_synthetic_stack
from napari_emseg.proofreading import repropagate
from napari_emseg.propagation import propagate
from napari_emseg.propagation.sparse import coverage, drop_placeholders, grow_scribbles, is_sparse


@pytest.fixture(scope="module")
def stack():
    return make_synthetic_stack((6, 96, 96), seed=3)


def _perfect_map(labels):
    from napari_emseg.training.data import boundaries_from_instances

    return boundaries_from_instances(labels).astype(np.float32)


def _two_largest(gt_slice):
    ids, counts = np.unique(gt_slice[gt_slice > 0], return_counts=True)
    return ids[np.argsort(counts)[-2:]]


def _dot(mask):
    """One 3x3 dot at the point of ``mask`` farthest from its edge."""
    from scipy import ndimage as ndi

    y, x = np.unravel_index(np.argmax(ndi.distance_transform_edt(mask)), mask.shape)
    dot = np.zeros_like(mask)
    dot[y - 1 : y + 2, x - 1 : x + 2] = True
    return dot


@pytest.mark.parametrize("method", ["watershed", "cconvlstm"])
def test_two_filled_neurons_are_carried_alone_and_stay_in_their_cells(stack, method):
    membrane = _perfect_map(stack.labels)
    ref = 3
    chosen = _two_largest(stack.labels[ref])
    labels = np.zeros(stack.labels.shape, np.uint32)
    for new_id, gt_id in enumerate(chosen, start=1):
        labels[ref][stack.labels[ref] == gt_id] = new_id
    assert is_sparse(labels[ref])
    out = propagate(
        stack.image, labels, ref, membrane=membrane, method=method, sparse=True, pixel_nm=4.0
    )
    assert set(np.unique(out).tolist()) <= {0, 1, 2}  # nothing invented
    for new_id, gt_id in enumerate(chosen, start=1):
        mine = out == new_id
        assert mine[ref - 1].any() and mine[ref + 1].any()  # carried both ways
        inside = np.mean(stack.labels[mine & (stack.labels > 0)] == gt_id)
        assert inside > 0.85  # no bleeding into the neighbours (membrane pixels aside)


def test_dense_mode_on_the_same_reference_invents_objects(stack):
    # The contrast that makes the sparse mode necessary (the reported bug).
    membrane = _perfect_map(stack.labels)
    labels = np.zeros(stack.labels.shape, np.uint32)
    labels[3][stack.labels[3] == _two_largest(stack.labels[3])[0]] = 1
    out = propagate(stack.image, labels, 3, membrane=membrane, method="watershed", sparse=False)
    assert np.unique(out).size > 3


def test_a_dot_grows_to_its_neuron_and_is_carried(stack):
    membrane = _perfect_map(stack.labels)
    ref = 2
    gt_id = _two_largest(stack.labels[ref])[-1]
    labels = np.zeros(stack.labels.shape, np.uint16)
    labels[ref][_dot(stack.labels[ref] == gt_id)] = 9
    out = propagate(stack.image, labels, ref, membrane=membrane, method="watershed", sparse=None)
    grown = out[ref] == 9
    truth = stack.labels[ref] == gt_id
    assert (grown & truth).sum() > 0.8 * truth.sum()
    assert np.mean(truth[grown & (stack.labels[ref] > 0)]) > 0.9
    assert (out[ref + 1] == 9).sum() > 0.5 * (stack.labels[ref + 1] == gt_id).sum()
    assert set(np.unique(out).tolist()) == {0, 9}


def test_sparse_mode_keeps_objects_traced_elsewhere(stack):
    membrane = _perfect_map(stack.labels)
    a, b = _two_largest(stack.labels[4])
    labels = np.zeros(stack.labels.shape, np.uint32)
    labels[:2][stack.labels[:2] == a] = 5  # traced earlier on slices 0-1
    labels[4][stack.labels[4] == b] = 6
    out = propagate(stack.image, labels, 4, membrane=membrane, method="watershed", sparse=True)
    assert (out[:2][labels[:2] == 5] == 5).all()
    assert (out == 6).any(axis=(1, 2)).sum() >= 3


def test_repropagate_in_sparse_mode_grows_the_reference_dots_only(stack):
    membrane = _perfect_map(stack.labels)
    gt_id = _two_largest(stack.labels[1])[-1]
    labels = np.zeros(stack.labels.shape, np.uint32)
    labels[1][_dot(stack.labels[1] == gt_id)] = 3
    out = repropagate(
        stack.image, labels, references=[1], membrane=membrane, method="watershed", sparse=True
    )
    assert set(np.unique(out).tolist()) == {0, 3}
    assert (out[1] == 3).sum() > 20 and (out[2] == 3).any()


def test_grow_scribbles_keeps_painted_pixels_and_ignores_spills():
    cells = np.repeat(np.array([[1, 1, 1, 2, 2, 2]]), 4, axis=0)
    ref = np.zeros_like(cells)
    ref[:, 0:3] = 4  # a full cell...
    ref[0, 3] = 4  # ...with one pixel spilled into the neighbour: not 10 % of the object
    ref[2, 5] = 8  # a dot in the neighbour cell
    out = grow_scribbles(ref, cells)
    assert (out[:, :3] == 4).all() and out[0, 3] == 4
    assert (out[1:, 3:] == 8).all()
    assert coverage(out) == 1.0


def test_drop_placeholders_restores_what_was_there():
    out = np.array([[1, 7, 7, 3]])
    labels = np.array([[1, 1, 0, 3]])
    assert drop_placeholders(out, labels, 7, np.array([1])).tolist() == [[1, 0, 0, 3]]


def test_traced_objects_meet_their_unlabelled_neighbours_as_in_a_dense_run():
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.propagation import propagate

    stack = make_synthetic_stack((6, 128, 128), seed=7)
    membrane = predict_membrane(stack.image, model="ridge")
    dense_ref = np.zeros_like(stack.labels)
    dense_ref[3] = stack.labels[3]
    ids, counts = np.unique(stack.labels[3][stack.labels[3] > 0], return_counts=True)
    traced = ids[np.argsort(counts)[-2:]]  # the two largest cells
    sparse_ref = np.where(np.isin(dense_ref, traced), dense_ref, 0)
    options = {"membrane": membrane, "method": "watershed", "voxel_size": stack.scale}
    dense = propagate(stack.image, dense_ref, 3, sparse=False, **options)
    sparse = propagate(stack.image, sparse_ref, 3, sparse=True, **options)
    assert set(np.unique(sparse).tolist()) == {0, *traced.tolist()}
    for obj in traced:
        a, b = dense == obj, sparse == obj
        assert np.count_nonzero(a & b) / np.count_nonzero(a | b) >= 0.8  # not flooding
