import numpy as np
import pytest

from napari_emseg.metrics import adapted_rand_error
from napari_emseg.segmentation.watershed import watershed_slice, watershed_stack


def grid_membrane(cells_y: int, cells_x: int, cell: int = 30, wall: int = 2) -> np.ndarray:
    """Rectangular cells of ``cell`` px separated by ``wall``-px membranes (value 1)."""
    size_y, size_x = cells_y * cell, cells_x * cell
    membrane = np.zeros((size_y, size_x), np.float32)
    for k in range(1, cells_y):
        membrane[k * cell - wall // 2 : k * cell + wall - wall // 2, :] = 1
    for k in range(1, cells_x):
        membrane[:, k * cell - wall // 2 : k * cell + wall - wall // 2] = 1
    return membrane


def test_one_label_per_cell_with_consecutive_ids():
    labels = watershed_slice(grid_membrane(2, 3), min_size=50)
    assert sorted(np.unique(labels).tolist()) == [1, 2, 3, 4, 5, 6]
    # Each cell centre has its own label.
    centres = [labels[15 + 30 * i, 15 + 30 * j] for i in range(2) for j in range(3)]
    assert len(set(centres)) == 6


def test_small_regions_are_merged_into_neighbours():
    membrane = np.zeros((60, 60), np.float32)
    membrane[:, 29:31] = 1.0
    membrane[:7, 6] = membrane[6, :7] = 1.0  # a 6x6 corner pocket of the left cell
    with_small = watershed_slice(membrane, min_size=0, h=2.0, smoothing=0)
    cleaned = watershed_slice(membrane, min_size=100, h=2.0, smoothing=0)
    assert with_small.max() == 3  # the pocket is its own region...
    assert cleaned.max() == 2  # ...until clean-up merges it away
    assert cleaned[2, 2] == cleaned[40, 5]


def test_stack_ids_are_unique_per_slice():
    membrane = np.stack([grid_membrane(2, 1), grid_membrane(1, 1).repeat(2, axis=0)])
    labels = watershed_stack(membrane, min_size=50)
    assert set(np.unique(labels[0])).isdisjoint(np.unique(labels[1]))
    assert np.unique(labels).tolist() == [1, 2, 3]


def test_all_membrane_or_no_membrane_slices_do_not_fail():
    assert watershed_slice(np.ones((20, 20), np.float32)).max() == 1
    assert watershed_slice(np.zeros((20, 20), np.float32)).max() == 1


def test_sample_segmentation_is_close_to_ground_truth(tiny_stack):
    labels = watershed_stack((tiny_stack.membranes).astype(np.float32), min_size=20)
    # Per-slice ids are not linked in z, so score slice by slice.
    errors = [adapted_rand_error(labels[z], tiny_stack.labels[z]) for z in range(labels.shape[0])]
    assert np.mean(errors) < 0.2


def test_cancel():
    from napari_emseg._progress import Cancelled

    with pytest.raises(Cancelled):
        watershed_stack(np.zeros((2, 10, 10), np.float32), cancel=lambda: True)
