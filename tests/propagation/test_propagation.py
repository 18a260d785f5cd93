import numpy as np
import pytest

from napari_emseg.metrics import adapted_rand_error
from napari_emseg.propagation import list_methods, propagate
from napari_emseg.propagation.watershed import eroded_seeds


def two_cells(depth: int = 5, size: int = 48):
    """Two cells split by a vertical membrane that drifts one pixel per slice."""
    image = np.full((depth, size, size), 200, np.uint8)
    membrane = np.zeros(image.shape, np.float32)
    for z in range(depth):
        wall = size // 2 - 2 + z
        image[z, :, wall : wall + 2] = 30
        membrane[z, :, wall : wall + 2] = 1.0
    return image, membrane


def test_reference_slice_is_kept_exactly_and_ids_carry_through():
    image, membrane = two_cells()
    labels = np.zeros(image.shape, np.uint16)
    labels[2, :, :20] = 7
    labels[2, :, 20:] = 9
    labels[2, 0, 0] = 0  # an unlabelled pixel the user left: must stay 0
    out = propagate(image, labels, 2, membrane=membrane)
    np.testing.assert_array_equal(out[2], labels[2])
    for z in (0, 1, 3, 4):
        assert set(np.unique(out[z])) == {7, 9}
        wall = 48 // 2 - 2 + z
        assert (out[z, :, : wall - 1] == 7).all() and (out[z, :, wall + 3 :] == 9).all()
    assert labels[0].max() == 0  # the input is not modified


def test_z_range_limits_the_slices_that_change():
    image, membrane = two_cells()
    labels = np.zeros(image.shape, np.uint32)
    labels[2, :, :20], labels[2, :, 20:] = 1, 2
    labels[0] = 5
    out = propagate(image, labels, 2, membrane=membrane, z_range=(1, 3))
    assert (out[0] == 5).all() and (out[4] == 0).all()
    assert set(np.unique(out[1])) == {1, 2}


def test_objects_option_leaves_other_objects_untouched():
    image, membrane = two_cells()
    labels = np.zeros(image.shape, np.uint32)
    labels[2, :, :20], labels[2, :, 20:] = 1, 2
    labels[3] = 2  # object 2 wrongly covers slice 3; object 1 is corrected alone
    out = propagate(image, labels, 2, membrane=membrane, objects=[1])
    assert (out[3][labels[3] == 2] == 2).all()  # non-target voxels are kept
    assert (out[1] == 1).sum() > 0 and (out[1] == 2).sum() == 0


def ring(size: int, half: int, centre: int = 30) -> np.ndarray:
    """A square membrane outline of half-width ``half`` around ``centre``."""
    out = np.zeros((size, size), bool)
    lo, hi = centre - half, centre + half
    out[lo : hi + 1, lo] = out[lo : hi + 1, hi] = out[lo, lo : hi + 1] = out[hi, lo : hi + 1] = True
    return out


def test_an_object_whose_cell_closes_ends_there():
    # A neurite tapering through z: its cell is 29 px wide, then 11 px, then gone.
    image = np.full((3, 60, 60), 200, np.uint8)
    membrane = np.zeros(image.shape, np.float32)
    membrane[0][ring(60, 15)] = 1.0
    membrane[1][ring(60, 6)] = 1.0
    labels = np.zeros(image.shape, np.uint32)
    labels[0] = 1
    labels[0, 16:45, 16:45] = 2
    out = propagate(image, labels, 0, membrane=membrane)
    # Slice 1: 2 keeps only its own (much smaller) cell, below min_area_ratio: it ends.
    assert 2 not in np.unique(out[1]) and 2 not in np.unique(out[2])
    assert (out[2] == 1).all()


def test_a_shrinking_object_that_stays_large_enough_is_kept():
    image = np.full((2, 60, 60), 200, np.uint8)
    membrane = np.zeros(image.shape, np.float32)
    membrane[0][ring(60, 15)] = 1.0
    membrane[1][ring(60, 10)] = 1.0
    labels = np.zeros(image.shape, np.uint32)
    labels[0] = 1
    labels[0, 16:45, 16:45] = 2
    out = propagate(image, labels, 0, membrane=membrane)
    inside = out[1, 22:39, 22:39]
    assert (inside == 2).mean() > 0.9 and (out[1, :15] == 1).all()


def test_propagating_ground_truth_through_the_sample_is_accurate(tiny_stack):
    ref = tiny_stack.labels.shape[0] // 2
    labels = np.zeros_like(tiny_stack.labels)
    labels[ref] = tiny_stack.labels[ref]
    membrane = tiny_stack.membranes.astype(np.float32)
    out = propagate(tiny_stack.image, labels, ref, membrane=membrane)
    # Starting from the true reference and true membranes, 3D ids must mostly be right.
    assert adapted_rand_error(out, tiny_stack.labels) < 0.25
    ref_ids = set(np.unique(tiny_stack.labels[ref])) - {0}
    assert ref_ids <= set(np.unique(out[ref + 1])) | set(np.unique(out[ref - 1]))


def test_eroded_seeds_keep_a_core_of_thin_objects():
    labels = np.zeros((20, 20), np.int64)
    labels[2:18, 2:4] = 1  # 2 px wide
    labels[2:18, 6:18] = 2
    seeds = eroded_seeds(labels, 3.0)
    assert (seeds == 1).any() and (seeds == 2).sum() < (labels == 2).sum()


def test_eroded_seeds_shrink_each_object_by_its_own_radius_whatever_its_id():
    """Each object keeps the pixels at least min(erosion, half its depth) deep, checked one
    object at a time, with ids far above the pixel count (the downward sweep's range)."""
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(1)
    labels = ndi.zoom(rng.integers(0, 6, (6, 6)), 8, order=0).astype(np.int64)
    labels = np.where(labels > 0, labels + 7_000_000, 0)
    seeds = eroded_seeds(labels, 3.0)
    depth = ndi.distance_transform_edt(~find_boundaries(labels, mode="inner") & (labels != 0))
    for obj in np.unique(labels[labels != 0]):
        inside = labels == obj
        radius = min(3.0, 0.5 * float(np.float32(depth[inside].max())))
        assert np.array_equal(seeds == obj, inside & (depth >= radius)), obj
    assert eroded_seeds(np.zeros((4, 4), np.int64), 3.0).max() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ref_slice": 9}, "outside"),
        ({"method": "magic"}, "unknown propagation method"),
        ({"z_range": (3, 4)}, "contain the reference"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    image, membrane = two_cells()
    labels = np.zeros(image.shape, np.uint32)
    args = {"ref_slice": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        propagate(image, labels, args.pop("ref_slice"), membrane=membrane, **args)


def test_shape_mismatch_is_refused():
    image, membrane = two_cells()
    with pytest.raises(ValueError, match="differ"):
        propagate(image, np.zeros((5, 48, 47), np.uint32), 2, membrane=membrane)


def test_methods_are_listed():
    assert list_methods()[0] == "watershed"


@pytest.mark.slow
def test_classical_sizes_are_defined_in_nm(monkeypatch):
    """4 nm and 10 nm pixels get the same physical erosion, cells, cores and smoothing."""
    from napari_emseg.propagation import watershed as classical

    for pixel in (4.0, 10.0):
        sizes = classical.step_sizes(pixel)
        assert sizes["erosion"] * pixel == pytest.approx(classical.EROSION_NM)
        assert sizes["smoothing"] * pixel == pytest.approx(classical.RELIEF_SMOOTHING_NM)
        assert sizes["newcomer_core"] * pixel == pytest.approx(classical.NEWCOMER_CORE_NM)
        assert sizes["cell_min_size"] * pixel**2 == pytest.approx(
            classical.CELL_MIN_AREA_NM2, rel=0.1
        )
    seen = []
    real_step = classical.propagation_step

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(classical, "propagation_step", spy)
    image = np.full((3, 40, 40), 200, np.uint8)
    labels = np.zeros((3, 40, 40), np.uint32)
    labels[1, :, :19], labels[1, :, 21:] = 1, 2
    propagate(image, labels, 1, voxel_size=(10.0, 10.0, 10.0), consistency="none")
    assert seen and all(k["erosion"] == pytest.approx(1.6) for k in seen)
    propagate(image, labels, 1, consistency="none", pixel_nm=4.0, erosion=2.0)
    assert seen[-1]["erosion"] == 2.0 and seen[-1]["cell_min_size"] == 50  # px overrides


def test_the_same_tissue_at_two_pixel_sizes_gives_the_same_objects():
    """A stack and its 2.5x coarser copy (4 vs 10 nm) both propagate to their ground truth."""
    from skimage.transform import resize

    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.inference.resampling import to_pixel_size

    stack = make_synthetic_stack((5, 200, 200), seed=4)
    fine_membrane = (stack.labels == 0).astype(np.float32)
    coarse_gt = resize(stack.labels, (5, 80, 80), order=0, preserve_range=True, anti_aliasing=False)
    versions = {
        4.0: (fine_membrane, stack.labels),
        10.0: (
            np.clip(to_pixel_size(fine_membrane, 4.0, 10.0) * 2.5, 0, 1),
            coarse_gt.astype(np.uint32),
        ),
    }
    for pixel, (membrane, gt) in versions.items():
        reference = np.zeros_like(gt)
        reference[2] = gt[2]
        out = propagate(membrane, reference, 2, membrane=membrane, voxel_size=(50.0, pixel, pixel))
        assert adapted_rand_error(out, gt) < 0.1, pixel
