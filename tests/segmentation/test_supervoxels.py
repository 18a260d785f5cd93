import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_emseg.propagation import PROPAGATORS, Propagator, propagate
from napari_emseg.segmentation.supervoxels import (
    is_anisotropic,
    majority_vote,
    membrane_anisotropy,
    membrane_supervoxels,
    supervoxel_vote,
)


def wall(depth: int = 5, size: int = 24, x: int = 12) -> np.ndarray:
    """A membrane map with one straight wall at column ``x`` through every slice."""
    membrane = np.zeros((depth, size, size), np.float32)
    membrane[:, :, x] = 1.0
    return membrane


# Columns clear of the wall: the wall's own column goes to either side's supervoxel.
AWAY = np.r_[0:11, 14:24]


def halves(depth: int = 5, size: int = 24, x: int = 12) -> np.ndarray:
    labels = np.zeros((depth, size, size), np.uint32)
    labels[:, :, :x], labels[:, :, x:] = 1, 2
    return labels


def test_a_supervoxel_split_between_two_masks_takes_the_majority_id():
    sv = np.array([[[1, 1, 1, 1, 1, 2, 2, 2]]])
    labels = np.array([[[4, 4, 4, 9, 9, 9, 9, 4]]])
    out = majority_vote(labels, sv)
    assert out.tolist() == [[[4, 4, 4, 4, 4, 9, 9, 9]]]
    assert labels.tolist() == [[[4, 4, 4, 9, 9, 9, 9, 4]]]  # the input is not modified


def test_zeros_do_not_vote_and_forbidden_ids_do_not_win():
    sv = np.array([[1, 1, 1, 2, 2, 2, 3, 3]])
    labels = np.array([[0, 0, 5, 6, 6, 7, 0, 0]])
    assert majority_vote(labels, sv).tolist() == [[5, 5, 5, 6, 6, 6, 0, 0]]
    out = majority_vote(labels, sv, forbidden=[6])
    assert out.tolist() == [[5, 5, 5, 6, 6, 7, 0, 0]]  # 6 may not win: 2 is left as it was
    editable = np.array([[True, False, True, True, True, True, True, True]])
    assert majority_vote(labels, sv, editable=editable).tolist() == [[5, 0, 5, 6, 6, 6, 0, 0]]


def test_supervoxels_merge_across_faint_faces_only():
    membrane = wall()
    membrane[:, 5, :12] = 0.2  # a faint line splits the left cell in two basins
    split = membrane_supervoxels(membrane, threshold=0.1, sigma=0)
    merged = membrane_supervoxels(membrane, threshold=0.3, sigma=0)
    assert split[0, 2, 2] != split[0, 9, 2]
    assert merged[0, 2, 2] == merged[0, 9, 2] == merged[4, 20, 2]
    assert merged[0, 2, 2] != merged[0, 2, 20]  # the real membrane still separates


def test_a_weak_map_keeps_its_membranes():
    # A map that never exceeds 0.5 (a classical filter's): the threshold scales with it.
    weak = 0.5 * wall()
    sv = membrane_supervoxels(weak, threshold=0.6, sigma=0)
    assert sv[0, 0, 0] != sv[0, 0, 20]
    labels = halves()
    labels[1:, :, 8:12] = 2
    out = supervoxel_vote(labels, weak, threshold=0.6, fixed_slices=[0])
    assert (out[:, :, :11] == 1).all() and (out[:, :, 14:] == 2).all()


def test_per_slice_supervoxels_never_span_two_slices():
    sv = membrane_supervoxels(wall(), per_slice=True)
    for z in range(4):
        assert not set(np.unique(sv[z])) & set(np.unique(sv[z + 1]))
    assert len(np.unique(membrane_supervoxels(wall(), per_slice=False))) == 2


def test_anisotropy_from_voxel_size_or_from_the_map():
    assert is_anisotropic((50, 4, 4)) and not is_anisotropic((10, 10, 10))
    blobs = ndi.gaussian_filter(np.random.default_rng(1).random((64, 40, 40)), 4)
    assert membrane_anisotropy(blobs) < 1.5 < 6 < membrane_anisotropy(blobs[::8])
    assert not is_anisotropic(None, blobs) and is_anisotropic(None, blobs[::8])
    assert not is_anisotropic(None)


def test_vote_corrects_a_spill_but_keeps_the_reference_slice():
    labels = halves()
    labels[1:, :, 8:12] = 2  # 2 spilled across the wall into 1's cell, reference included
    out = supervoxel_vote(labels, wall(), fixed_slices=[1])
    np.testing.assert_array_equal(out[1], labels[1])
    expected = halves()
    for z in (0, 2, 3, 4):
        np.testing.assert_array_equal(out[z][:, AWAY], expected[z][:, AWAY])


def test_fixed_ids_keep_their_voxels_and_no_one_takes_their_id():
    labels = halves()
    labels[:, :, 8:12] = 2  # fixed 2 holds part of 1's cell...
    labels[:, :, 14:16] = 3  # ...and target 3 part of 2's
    labels[:, :, 20:] = 1  # target 1 part of 2's cell too
    out = supervoxel_vote(labels, wall(), fixed_ids=[2])
    np.testing.assert_array_equal(out == 2, labels == 2)
    assert (out[:, :, 14:16] == 3).all() and (out[:, :, 20:] == 1).all()  # 2 may not win
    # Without the constraint the vote would hand all of them to 2.
    free = supervoxel_vote(labels, wall())
    assert (free[:, :, 14:] == 2).all() and (free[:, :, :11] == 1).all()


@pytest.fixture
def spilling(monkeypatch):
    """A fake method: each filled slice is ``halves`` with 2 spilled into 1's cell."""

    def method(image, labels, ref_slice, *, membrane, z_lo, z_hi, objects, **_):
        out = halves(*labels.shape[:2])
        out[:, :, 8:12] = 2
        out[ref_slice] = 7  # methods may scribble on the reference: propagate restores it
        return out

    monkeypatch.setitem(PROPAGATORS, "spilling", Propagator("spilling", method))
    return method


def test_propagate_votes_after_the_method(spilling):
    image, membrane = np.zeros((5, 24, 24), np.uint8), wall()
    labels = np.zeros(image.shape, np.uint16)
    labels[2] = halves()[2]
    labels[2, 0, 0] = 0
    out = propagate(image, labels, 2, membrane=membrane, method="spilling")
    np.testing.assert_array_equal(out[2], labels[2])
    for z in (0, 1, 3, 4):
        np.testing.assert_array_equal(out[z][:, AWAY], halves()[z][:, AWAY])
    plain = propagate(image, labels, 2, membrane=membrane, method="spilling", consistency="none")
    assert (plain[[0, 1, 3, 4], :, 8:12] == 2).all()
    ranged = propagate(image, labels, 2, membrane=membrane, method="spilling", z_range=(1, 3))
    assert (ranged[[0, 4]] == 0).all() and (ranged[1, :, 8:12] == 1).all()


def test_propagate_with_objects_changes_only_those(monkeypatch):
    image, membrane = np.zeros((5, 24, 24), np.uint8), wall()
    labels = halves()
    labels[:, :, 20:] = 5  # a third object in the right cell

    def method(image, labels, ref_slice, *, objects, **_):
        # As a method must with ``objects``: only 1 and 5 move, 2 keeps its voxels.
        out = labels.copy()
        out[:, :, 4:8] = 5  # target 5 spilled into 1's cell
        out[:, :, 8:10] = 0  # and left some of it empty
        return out

    monkeypatch.setitem(PROPAGATORS, "targeted", Propagator("targeted", method))
    labels[:, :, 14:16] = 1  # target 1 wrongly holds part of 2's cell everywhere
    out = propagate(image, labels, 0, membrane=membrane, method="targeted", objects=[1, 5])
    changed = out != labels
    assert not (changed & (labels == 2)).any()  # 2's voxels are kept...
    assert set(np.unique(out[changed])) <= {0, 1, 5}  # ...and no voxel becomes 2
    assert (out[1:, :, 4:8] == 1).all()  # the spill of 5 went back to 1 by vote
    assert (out[1:, :, 8:10] == 0).all() and (out[:, :, 14:16] == 1).all()
    np.testing.assert_array_equal(out[0], labels[0])


def test_propagate_passes_the_pixel_size_to_cconvlstm(monkeypatch):
    seen = {}

    def method(image, labels, ref_slice, **options):
        seen.update(options)
        return labels.copy()

    monkeypatch.setitem(PROPAGATORS, "cconvlstm", Propagator("cconvlstm", method))
    image, membrane = np.zeros((3, 24, 24), np.uint8), wall(3)
    propagate(image, halves(3), 1, membrane=membrane, method="cconvlstm", voxel_size=(50, 4, 4))
    assert seen["pixel_nm"] == 4.0 and "voxel_size" not in seen
    with pytest.raises(ValueError, match="unknown consistency"):
        propagate(image, halves(3), 1, membrane=membrane, consistency="always")


def test_propagate_real_method_still_follows_the_membranes():
    membrane = wall(5, 40, 19)
    image = np.where(membrane > 0, 30, 200).astype(np.uint8)
    labels = np.zeros(image.shape, np.uint32)
    labels[2, :, :19], labels[2, :, 20:] = 1, 2
    for voxel_size in (None, (50, 4, 4), (10, 10, 10)):
        out = propagate(image, labels, 2, membrane=membrane, voxel_size=voxel_size)
        assert (out[:, :, :18] == 1).all() and (out[:, :, 21:] == 2).all()
        np.testing.assert_array_equal(out[2], labels[2])


@pytest.mark.parametrize("per_slice", [False, True])
def test_one_recorded_agglomeration_gives_every_threshold(per_slice):
    from skimage.metrics import variation_of_information

    from napari_emseg.segmentation.supervoxels import supervoxel_hierarchy

    rng = np.random.default_rng(4)
    membrane = ndi.gaussian_filter(rng.random((6, 40, 40)), 2).astype(np.float32)
    membrane = (membrane - membrane.min()) / np.ptp(membrane)
    hierarchy = supervoxel_hierarchy(membrane, per_slice=per_slice, sigma=0.5)
    counts = []
    for threshold in (0.0, 0.2, 0.4, 0.6, 0.8):
        direct = membrane_supervoxels(membrane, threshold=threshold, per_slice=per_slice, sigma=0.5)
        cut = hierarchy.labels(threshold)
        assert sum(variation_of_information(direct, cut)) == pytest.approx(0.0, abs=1e-9)
        counts.append(np.unique(cut).size)
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def _vote_by_sorting(labels: np.ndarray, supervoxels: np.ndarray) -> np.ndarray:
    """The vote written plainly with np.unique: most votes, the larger id on a tie."""
    out = labels.copy()
    for s in np.unique(supervoxels):
        inside = supervoxels == s
        ids, counts = np.unique(labels[inside & (labels != 0)], return_counts=True)
        if s != 0 and ids.size:
            out[inside] = ids[counts == counts.max()].max()
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_vote_matches_a_plain_count_with_ties_and_large_ids(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, (3, 9, 9)).astype(np.uint32)
    if seed % 2:  # sparse large ids go by the sorting path, small ones by a lookup table
        labels[labels == 3] = 2**31 + seed
    supervoxels = rng.integers(0, 12, (3, 9, 9))
    assert np.array_equal(majority_vote(labels, supervoxels), _vote_by_sorting(labels, supervoxels))


def test_per_slice_fragments_are_each_slices_basins_numbered_in_slice_order():
    """Slices run in threads; the ids are those of a loop over the slices."""
    from skimage.morphology import local_minima
    from skimage.segmentation import watershed

    from napari_emseg.segmentation.supervoxels import _fragments

    relief = ndi.gaussian_filter(np.random.default_rng(0).random((6, 40, 40)), (0, 2, 2))
    found = _fragments(relief, per_slice=True)
    offset = 0
    for z in range(relief.shape[0]):
        markers, n = ndi.label(local_minima(relief[z], connectivity=1))
        np.testing.assert_array_equal(found[z], watershed(relief[z], markers) + offset)
        offset += n
