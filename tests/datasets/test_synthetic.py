"""Tests of the synthetic EM stack generator (bundled sample data)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_emseg.datasets.synthetic import SyntheticStack, make_synthetic_stack

SMALL = (8, 96, 96)


@pytest.fixture(scope="module")
def default_stack() -> SyntheticStack:
    return make_synthetic_stack()


@pytest.fixture(scope="module")
def small_stack() -> SyntheticStack:
    return make_synthetic_stack(SMALL, seed=3)


def _presence(labels: np.ndarray) -> np.ndarray:
    """(Z, N + 1) bool: object i present in slice z."""
    n = int(labels.max()) + 1
    return np.stack([np.bincount(s.ravel(), minlength=n) > 0 for s in labels])


def _pieces_per_object(labels: np.ndarray) -> np.ndarray:
    """(Z, N + 1) int: number of 2D connected components of each object in each slice."""
    n = int(labels.max()) + 1
    counts = np.zeros((labels.shape[0], n), int)
    for z, lab in enumerate(labels):
        # Membranes (label 0) separate different objects, so components of the foreground are
        # components of single objects.
        pieces, n_pieces = ndi.label(lab > 0)
        owner = np.zeros(n_pieces + 1, int)
        owner[pieces.ravel()] = lab.ravel()
        counts[z] = np.bincount(owner[1:], minlength=n)
    return counts


def test_shapes_dtypes_and_consecutive_ids(small_stack: SyntheticStack) -> None:
    s = small_stack
    assert s.image.shape == s.labels.shape == s.membranes.shape == SMALL
    assert s.image.dtype == np.uint8
    assert s.labels.dtype == np.uint32
    assert s.membranes.dtype == np.bool_
    assert s.scale == (50.0, 4.0, 4.0)
    ids = np.unique(s.labels)
    np.testing.assert_array_equal(ids, np.arange(ids[-1] + 1))  # 0 plus 1..N, no gaps


def test_scale_is_carried() -> None:
    s = make_synthetic_stack((2, 32, 32), scale=(30.0, 5.0, 5.0))
    assert s.scale == (30.0, 5.0, 5.0)


def test_deterministic_for_a_seed(small_stack: SyntheticStack) -> None:
    again = make_synthetic_stack(SMALL, seed=3)
    np.testing.assert_array_equal(again.image, small_stack.image)
    np.testing.assert_array_equal(again.labels, small_stack.labels)
    other = make_synthetic_stack(SMALL, seed=4)
    assert not np.array_equal(other.image, small_stack.image)
    assert not np.array_equal(other.labels, small_stack.labels)


def test_membranes_are_label_zero(small_stack: SyntheticStack) -> None:
    np.testing.assert_array_equal(small_stack.membranes, small_stack.labels == 0)
    assert 0.02 < small_stack.membranes.mean() < 0.3


def test_membranes_are_dark(small_stack: SyntheticStack) -> None:
    image = small_stack.image.astype(float)
    on, off = image[small_stack.membranes].mean(), image[~small_stack.membranes].mean()
    assert off - on >= 50
    assert 30 <= on <= 100
    assert 130 <= off <= 210


def test_no_noise_is_allowed() -> None:
    s = make_synthetic_stack((2, 48, 48), noise=0.0, seed=1)
    assert s.image.dtype == np.uint8


def test_membrane_width_thickens_membranes() -> None:
    thin = make_synthetic_stack(SMALL, seed=2, membrane_width=1.0).membranes.mean()
    thick = make_synthetic_stack(SMALL, seed=2, membrane_width=4.0).membranes.mean()
    assert thick > thin * 1.5


def test_ids_persist_through_z(small_stack: SyntheticStack) -> None:
    labels = small_stack.labels
    ious = []
    for a, b in zip(labels[:-1], labels[1:], strict=True):
        for i in np.intersect1d(np.unique(a), np.unique(b)):
            if i == 0:
                continue
            ma, mb = a == i, b == i
            ious.append((ma & mb).sum() / (ma | mb).sum())
    assert len(ious) > 0
    assert np.median(ious) > 0.5


def test_ids_are_contiguous_in_z(default_stack: SyntheticStack) -> None:
    # An object that disappears and comes back is a new object, so presence has no gaps.
    present = _presence(default_stack.labels)[:, 1:]
    first = present.argmax(axis=0)
    last = present.shape[0] - 1 - present[::-1].argmax(axis=0)
    assert np.all(present.sum(axis=0) == last - first + 1)


def test_topology_events(default_stack: SyntheticStack) -> None:
    labels = default_stack.labels
    present = _presence(labels)[:, 1:]
    assert (~present[0]).any(), "no object enters after the first slice"
    assert (~present[-1]).any(), "no object ends before the last slice"
    pieces = _pieces_per_object(labels)[:, 1:]
    branch = (pieces >= 2).any(axis=0) & (pieces == 1).any(axis=0)
    assert branch.any(), "no object splits into two 2D pieces that are one piece elsewhere"


def test_plausible_cell_count(default_stack: SyntheticStack) -> None:
    per_slice = [len(np.unique(s)) - 1 for s in default_stack.labels]
    assert 15 <= min(per_slice) and max(per_slice) <= 90
    # Most cells are big enough for a watershed to seed (4 nm pixels, axons >~ 100 nm).
    sizes = np.bincount(default_stack.labels[8].ravel())[1:]
    sizes = sizes[sizes > 0]
    assert np.median(sizes) > 500


def test_n_neurites_controls_density() -> None:
    few = make_synthetic_stack((2, 128, 128), seed=0, n_neurites=6).labels[0]
    many = make_synthetic_stack((2, 128, 128), seed=0, n_neurites=40).labels[0]
    assert len(np.unique(many)) > 2 * len(np.unique(few))


@pytest.mark.parametrize(
    "shape",
    [(64, 64), (2, 64, 64, 1), (1, 64, 64), (4, 16, 64), (4, 64, 31), (0, 0, 0)],
    ids=["2d", "4d", "one-slice", "short-y", "short-x", "empty"],
)
def test_bad_shapes_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        make_synthetic_stack(shape)


@pytest.mark.parametrize(
    "options",
    [{"n_neurites": 0}, {"membrane_width": 0.0}, {"noise": -0.1}, {"scale": (50.0, 0.0, 4.0)}],
    ids=["no-neurites", "no-membrane", "negative-noise", "zero-scale"],
)
def test_bad_options_raise(options: dict) -> None:
    with pytest.raises(ValueError):
        make_synthetic_stack((2, 32, 32), **options)
