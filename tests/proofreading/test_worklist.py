"""The worklist: suspicious places ranked by what fixing them is worth, one row per object."""

import numpy as np

from napari_emseg.proofreading.consistency import find_suspicious, rank_places


def neurites_with_errors() -> np.ndarray:
    """Two large neurites through 7 slices, a speck in every slice but one, and errors."""
    labels = np.zeros((7, 60, 60), np.uint16)
    labels[:, 5:55, 5:30], labels[:, 5:55, 30:55] = 1, 2
    labels[:, 58, 58] = 3  # a one-pixel speck ...
    labels[1, 58, 58] = 0  # ... missing in slice 1: a sure but worthless error
    labels[4, 5:55, 5:25] = 2  # object 2 swallows most of object 1 in slice 4
    labels[5, 5:55, 5:25] = 2  # ... and in slice 5
    return labels


def test_a_large_likely_error_outranks_a_sure_error_in_a_speck():
    labels = neurites_with_errors()
    found = find_suspicious(labels)
    speck = next(s for s in found if s.obj == 3)
    assert speck.score >= max(s.score for s in found if s.obj != 3)  # sure, by score alone
    places = rank_places(labels, found)
    assert [p.obj for p in places] == [1, 2, 3]  # but worth least
    assert places[-1].area == 1 and places[-1].gain < 1


def test_one_row_per_object_with_its_slices_box_and_reason():
    labels = neurites_with_errors()
    found = find_suspicious(labels)
    places = rank_places(labels, found)
    assert len({p.obj for p in places}) == len(places) == len({s.obj for s in found})
    one = next(p for p in places if p.obj == 1)
    listed = sorted(s.z for s in found if s.obj == 1)
    assert one.slices == tuple(listed) and one.z in (4, 5)
    assert one.gain == sum(s.score * 1250 for s in found if s.obj == 1)  # at its full size
    y0, x0, y1, x1 = one.box
    ys, xs = np.nonzero(labels[one.z] == 1)
    assert (y0, x0, y1, x1) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
    assert one.area == 1250 and ys.size < 1250 and "abrupt change" in one.reason
    assert f"+{len(listed) - 1} more slices" in one.reason
    speck = next(p for p in places if p.obj == 3)
    assert speck.z == 1 and "missing" in speck.reason
    assert speck.box == (58, 58, 59, 59)  # a gap: where it lies around the slice


def test_limit_and_objects_marked_done():
    labels = neurites_with_errors()
    found = find_suspicious(labels)
    assert [p.obj for p in rank_places(labels, found, limit=1)] == [1]
    assert [p.obj for p in rank_places(labels, found, exclude=[1])] == [2, 3]
    assert rank_places(labels, []) == []
