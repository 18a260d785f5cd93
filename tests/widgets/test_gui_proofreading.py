"""The Proofread widget driven through the manifest on a small synthetic stack."""

import numpy as np
import pytest

from napari_emseg.io import read_volume

pytestmark = pytest.mark.gui

PROOFREAD = ("napari-emseg", "Proofread")


@pytest.fixture()
def proofread(make_napari_viewer):
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    viewer = make_napari_viewer()
    stack = make_synthetic_stack((6, 96, 96), seed=2)
    image = viewer.add_image(stack.image, name="em", scale=stack.scale)
    viewer.add_image(stack.membranes.astype(np.float32), name="em membrane", scale=stack.scale)
    labels = viewer.add_labels(stack.labels.copy(), name="labels", scale=stack.scale)
    _, widget = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    widget.labels_layer.value = labels
    widget.image_layer.value = image
    return viewer, widget, labels, stack


def two_touching_ids(plane: np.ndarray) -> tuple[int, int]:
    """Two large neighbouring objects (separated by a membrane of label 0)."""
    from scipy import ndimage as ndi

    ids, counts = np.unique(plane[plane > 0], return_counts=True)
    size = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    for a in ids[np.argsort(counts)[::-1]]:
        near = ndi.binary_dilation(plane == a, iterations=3)
        others = set(np.unique(plane[near]).tolist()) - {0, int(a)}
        if others:
            return int(a), max(others, key=size.get)
    raise AssertionError("no neighbouring objects")


def test_merge_delete_new_id_with_undo(proofread):
    viewer, widget, labels, _ = proofread
    before = np.array(labels.data)
    a, b = two_touching_ids(before[3])
    widget.object.value, widget.other.value = a, b
    assert labels.selected_label == a  # the widget and the layer share the selection
    widget.buttons["merge"].native.click()
    merged = np.array(labels.data)
    assert not (merged == b).any() and (merged[before == b] == a).all()
    labels.undo()  # the whole merge is one undo step
    np.testing.assert_array_equal(np.array(labels.data), before)
    labels.redo()
    np.testing.assert_array_equal(np.array(labels.data), merged)
    labels.undo()

    widget.this_slice_only.value = True
    viewer.dims.set_current_step(0, 2)
    widget.buttons["delete"].native.click()
    deleted = np.array(labels.data)
    assert not (deleted[2] == a).any() and (deleted[3] == a).any()

    widget.buttons["new"].native.click()
    assert widget.object.value == before.max() + 1 == labels.selected_label


def test_locked_objects_are_never_changed(proofread):
    _, widget, labels, _ = proofread
    data = np.array(labels.data)
    a, b = two_touching_ids(data[3])
    widget.object.value = a
    widget.buttons["lock"].native.click()
    widget.other.value = b
    widget.buttons["merge"].native.click()
    assert "locked" in widget.status.value
    np.testing.assert_array_equal(np.array(labels.data), data)


def test_split_at_seeds(proofread):
    viewer, widget, labels, _ = proofread
    data = np.array(labels.data)
    ids, counts = np.unique(data[3][data[3] > 0], return_counts=True)
    obj = int(ids[counts.argmax()])
    ys, xs = np.nonzero(data[3] == obj)
    far = np.argsort(xs)
    seeds = [(3, ys[far[5]], xs[far[5]]), (3, ys[far[-5]], xs[far[-5]])]
    widget.object.value = obj
    points = widget.place_seeds()
    points.data = np.array([points.world_to_data(labels.data_to_world(s)) for s in seeds])
    widget.buttons["split"].native.click()
    after = np.array(labels.data)
    assert after[seeds[0]] == obj and after[seeds[1]] not in (0, obj)
    assert (after[3] == after[seeds[1]]).sum() > 10
    np.testing.assert_array_equal(after[2], data[2])  # a 2D split of one slice


def test_repropagate_an_edited_object_and_keep_hand_edits(proofread, qtbot):
    viewer, widget, labels, _ = proofread
    viewer.dims.set_current_step(0, 3)
    widget.buttons["reference"].native.click()
    assert widget.session.reference_slices == {3}
    data = np.array(labels.data)
    a, b = two_touching_ids(data[3])
    # A correction on the reference slice: b is merged into a there only.
    labels.fill((3, *np.argwhere(data[3] == b)[0]), a)
    # A hand edit on slice 0 that must survive.
    labels.paint((0, 5, 5), 99)
    hand = np.array(labels.data[0])
    widget.buttons["repropagate"].native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    after = np.array(labels.data)
    np.testing.assert_array_equal(after[3], np.where(data[3] == b, a, data[3]))
    np.testing.assert_array_equal(after[0], hand)
    assert (after[2] == a).sum() > (data[2] == a).sum()  # a took over b's place nearby
    labels.undo()
    assert (np.array(labels.data)[2] == data[2]).all()


def test_find_and_walk_through_suspicious_places(proofread, qtbot):
    viewer, widget, labels, _ = proofread
    data = np.array(labels.data)
    a, b = two_touching_ids(data[3])
    swapped = data.copy()
    swapped[3][data[3] == a], swapped[3][data[3] == b] = b, a  # a planted id swap
    labels.data = swapped
    widget.worklist.find_button.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.table.rowCount() == len(widget.suspicious) > 0
    top = {(s.obj, s.z) for s in widget.suspicious[:4]}
    assert {(a, 3), (b, 3)} & top
    assert "labels suspicion" in viewer.layers
    widget.worklist.next_button.native.click()
    first = widget.suspicious[0]
    assert viewer.dims.current_step[0] == first.z and widget.object.value == first.obj
    ring = viewer.layers["worklist place"]  # the object meant is ringed ...
    np.testing.assert_allclose(ring.data[0], [first.z, *first.centroid])
    assert viewer.layers.selection.active is labels  # ... and the paint tools stay at hand


def test_a_corrected_slice_is_not_ranked_suspicious_again(proofread, qtbot):
    viewer, widget, labels, _ = proofread
    data = np.array(labels.data)
    a, b = two_touching_ids(data[3])
    swapped = data.copy()
    swapped[3][data[3] == a], swapped[3][data[3] == b] = b, a
    labels.data = swapped
    viewer.dims.set_current_step(0, 3)
    widget.buttons["reference"].native.click()  # the user vouches for slice 3
    widget.worklist.find_button.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert all(s.z != 3 for s in widget.suspicious)


def test_repropagate_keeps_the_undo_history(proofread, qtbot):
    viewer, widget, labels, _ = proofread
    original = np.array(labels.data)
    viewer.dims.set_current_step(0, 3)
    widget.buttons["reference"].native.click()
    a, b = two_touching_ids(original[3])
    labels.paint((1, 5, 5), 98)  # a hand edit elsewhere
    labels.fill((3, *np.argwhere(original[3] == b)[0]), a)  # a correction on the reference
    widget.buttons["repropagate"].native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert not np.array_equal(np.array(labels.data), original)
    for _ in range(3):  # the repropagation, the fill, the paint
        labels.undo()
    np.testing.assert_array_equal(np.array(labels.data), original)


def test_export_tiff_csv_and_ome_zarr(proofread, tmp_path):
    _, widget, labels, stack = proofread
    written = widget.export(tmp_path / "proofread.tif")
    assert [p.suffix for p in written] == [".tif", ".csv"]
    np.testing.assert_array_equal(read_volume(written[0]).data, labels.data)
    rows = written[1].read_text().splitlines()
    assert rows[0].startswith("id,voxels") and len(rows) == len(np.unique(labels.data))
    zarr_path = widget.export_zarr(tmp_path / "proofread.ome.zarr")
    back = read_volume(f"{zarr_path}:labels/{labels.name}", as_labels=True)
    np.testing.assert_array_equal(read_volume(zarr_path).data, stack.image)  # with its image
    np.testing.assert_array_equal(back.data, labels.data)
    assert back.scale == pytest.approx(stack.scale)
    assert widget.export_zarr(tmp_path / "proofread.ome.zarr") is None  # no silent overwrite
    assert "exists" in widget.status.value


def test_shortcuts_are_bound_to_this_viewer(proofread):
    viewer, widget, labels, _ = proofread
    from napari.utils.key_bindings import coerce_keybinding

    from napari_emseg._widgets.shortcuts import SHORTCUTS

    bound = {coerce_keybinding(key) for key in viewer.keymap}
    assert {coerce_keybinding(key) for key in SHORTCUTS} <= bound
    viewer.keymap[coerce_keybinding("Shift-N")](viewer)
    assert widget.object.value == np.asarray(labels.data).max() + 1
    # The same action as the manifest's command (the command palette's entry).
    from napari_emseg._widgets import shortcuts

    widget.object.value = 1
    shortcuts.new_id(viewer)
    assert widget.object.value == np.asarray(labels.data).max() + 1


def test_jump_to_an_object_and_show_its_extent(proofread):
    viewer, widget, labels, _ = proofread
    data = np.array(labels.data)
    obj = int(data[5][data[5] > 0][0])
    widget.object.value = obj
    widget.buttons["jump"].native.click()
    zs = np.nonzero((data == obj).any(axis=(1, 2)))[0]
    assert zs[0] <= viewer.dims.current_step[0] <= zs[-1]
    widget.buttons["extent"].native.click()
    assert labels.show_selected_label and f"object {obj}: {(data == obj).sum()} voxels" in (
        widget.status.value
    )
    widget.buttons["extent"].native.click()
    assert not labels.show_selected_label


def test_segment_widget_propagation_keeps_locked_objects_and_hand_edits(proofread, qtbot):
    viewer, widget, labels, _ = proofread
    _, segmenter = viewer.window.add_plugin_dock_widget("napari-emseg", "Segment and propagate")
    segmenter.labels_layer.value = labels
    segmenter.image_layer.value = viewer.layers["em"]
    data = np.array(labels.data)
    locked = int(np.bincount(data[1].ravel())[1:].argmax() + 1)
    widget.object.value = locked
    widget.buttons["lock"].native.click()
    labels.paint((4, 40, 40), 77)  # a hand edit on slice 4
    hand = np.array(labels.data[4])
    segmenter.ref_slice.value = 2
    segmenter.propagate_button.native.click()
    qtbot.waitUntil(lambda: not segmenter.busy, timeout=60_000)
    after = np.array(labels.data)
    np.testing.assert_array_equal(after[4], hand)
    others = [0, 1, 2, 3, 5]  # the locked object is exactly where it was (slice 4 was painted)
    np.testing.assert_array_equal(after[others] == locked, data[others] == locked)
    assert (after != data).any()  # the propagation did change the unprotected objects
    assert "hand-edited slices kept: [4]" in segmenter.status.value
    assert 2 in widget.session.reference_slices  # one session for both widgets
