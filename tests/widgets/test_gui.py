"""The widget driven through the manifest, as a user would (Qt under Xvfb)."""

import numpy as np
import pytest

from napari_emseg.io import read_volume

pytestmark = pytest.mark.gui

WIDGET = ("napari-emseg", "Segment and propagate")


@pytest.fixture()
def loop(make_napari_viewer, qtbot):
    """A viewer with a small synthetic stack, segmented through the widget."""
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    viewer = make_napari_viewer()
    stack = make_synthetic_stack((6, 128, 128), seed=1)
    image = viewer.add_image(stack.image, name="em", scale=stack.scale)
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    widget.image_layer.value = image
    widget.segment_button.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    return viewer, widget, stack


@pytest.mark.slow
def test_manifest_contributions_are_reachable(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-emseg", "synthetic_em")
    assert [layer.name for layer in layers] == ["synthetic EM", "synthetic ground truth"]
    assert layers[0].scale.tolist() == [50.0, 4.0, 4.0]
    assert [str(u) for u in layers[0].units] == ["nanometer"] * 3
    assert tuple(layers[0].axis_labels) == ("z", "y", "x")
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    assert widget.image_layer.value is layers[0]
    assert widget.labels_layer.value is layers[1]


def test_segment_correct_propagate_export_and_undo(loop, qtbot, tmp_path, monkeypatch):
    viewer, widget, stack = loop
    labels_layer = viewer.layers["em labels"]
    assert viewer.layers["em membrane"].data.shape == stack.image.shape
    assert labels_layer.scale.tolist() == [50.0, 4.0, 4.0]
    image = viewer.layers["em"]  # the labels live in the image's space
    assert tuple(labels_layer.axis_labels) == tuple(image.axis_labels)
    assert tuple(labels_layer.units) == tuple(image.units)
    assert widget.labels_layer.value is labels_layer
    ref = 2
    before = np.array(labels_layer.data)
    assert 5 <= len(np.unique(before[ref])) <= 40

    # Correct the reference slice as a user would: erase one object, give another a new id.
    ids, sizes = np.unique(before[ref], return_counts=True)
    erased, renamed = (int(i) for i in ids[np.argsort(sizes)[::-1][:2]])
    new_id = int(before.max()) + 1
    labels_layer.fill((ref, *np.argwhere(before[ref] == erased)[0]), 0)
    labels_layer.fill((ref, *np.argwhere(before[ref] == renamed)[0]), new_id)
    edited = np.array(labels_layer.data[ref])
    assert (edited == new_id).any() and not (edited == erased).any()

    viewer.dims.set_current_step(0, ref)
    widget.set_ref_button.native.click()
    assert widget.ref_slice.value == ref
    widget.propagate_button.native.click()
    assert labels_layer.editable  # toggling it would erase napari's undo history
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    after = np.array(labels_layer.data)
    np.testing.assert_array_equal(after[ref], edited)  # the reference slice is never changed
    for z in (ref - 1, ref + 1):
        assert (after[z] == new_id).any()  # the new object reached the neighbours
        assert not (after[z] == erased).any()  # the erased one did not come back
    assert "Ctrl+Z" in widget.status.value

    # Export through the button (the save dialog is answered by the test).
    target = tmp_path / "exported.tif"
    monkeypatch.setattr(
        "napari_emseg._widgets.segment_widget.QFileDialog.getSaveFileName",
        lambda *args, **kwargs: (str(target), "TIFF (*.tif *.tiff)"),
    )
    widget.export_button.native.click()
    exported = read_volume(target)
    np.testing.assert_array_equal(exported.data, after)
    assert exported.scale == pytest.approx((50.0, 4.0, 4.0)) and exported.is_labels

    # One undo takes back the whole propagation, and only it.
    labels_layer.undo()
    np.testing.assert_array_equal(np.array(labels_layer.data)[ref], edited)
    restored = np.array(labels_layer.data)
    others = [z for z in range(restored.shape[0]) if z != ref]
    np.testing.assert_array_equal(restored[others], before[others])
    labels_layer.redo()
    np.testing.assert_array_equal(np.array(labels_layer.data), after)


@pytest.mark.parametrize("cancel", [False, True])
def test_two_edits_and_a_propagation_undo_back_to_the_start(loop, qtbot, cancel):
    viewer, widget, _ = loop
    labels_layer = viewer.layers["em labels"]
    original = np.array(labels_layer.data)
    labels_layer.paint((2, 20, 20), 4242)  # two hand edits on the reference slice
    labels_layer.fill((2, *np.argwhere(original[2] == original[2, 64, 64])[0]), 4243)
    widget.ref_slice.value = 2
    widget.propagate_button.native.click()
    if cancel:  # while the job runs (see test_cancel_leaves_the_layers_as_they_were)
        widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    if cancel:
        assert "cancelled" in widget.status.value
    else:
        assert not np.array_equal(np.array(labels_layer.data)[[1, 3]], original[[1, 3]])
        labels_layer.undo()  # the propagation
    labels_layer.undo()
    labels_layer.undo()  # both hand edits are still in the history
    np.testing.assert_array_equal(np.array(labels_layer.data), original)


@pytest.mark.slow
def test_voxels_painted_while_propagating_keep_the_painted_value(loop, qtbot):
    viewer, widget, _ = loop
    labels_layer = viewer.layers["em labels"]
    widget.ref_slice.value = 2
    widget.propagate_button.native.click()
    labels_layer.paint((4, 30, 30), 999)  # while the job runs
    painted = np.array(labels_layer.data[4])
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    after = np.array(labels_layer.data[4])
    np.testing.assert_array_equal(after[painted == 999], 999)


@pytest.mark.slow
def test_cancel_leaves_the_layers_as_they_were(loop, qtbot):
    viewer, widget, _ = loop
    labels_layer = viewer.layers["em labels"]
    before = np.array(labels_layer.data)
    n_layers = len(viewer.layers)
    widget.ref_slice.value = 1
    # Cancel as soon as the job runs (not on its first progress report: the runner polls
    # progress, and a fast job can be done by then); the engine checks between its steps.
    widget.propagate_button.native.click()
    assert widget.busy
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "cancelled" in widget.status.value
    np.testing.assert_array_equal(np.array(labels_layer.data), before)
    assert len(viewer.layers) == n_layers


@pytest.mark.slow
def test_a_second_run_is_refused_while_one_is_running(loop, qtbot):
    _, widget, _ = loop
    widget.ref_slice.value = 1  # a slice not propagated from yet: a full propagation
    assert widget.propagate()
    assert not widget.propagate()  # refused: a job is running
    assert not widget.segment_button.enabled
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.segment_button.enabled


def test_mismatched_layers_give_a_message_not_an_error(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 32, 32), np.uint8), name="em")
    viewer.add_labels(np.zeros((3, 32, 30), np.uint32), name="labels")
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    assert not widget.propagate()
    assert "must be the same 3D shape" in widget.status.value


@pytest.mark.slow
def test_edits_are_journalled_and_offered_back_after_a_crash(make_napari_viewer, qtbot):
    from napari_emseg.proofreading.journal import pending_journals

    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((2, 40, 40), np.uint32), name="work", scale=(50, 4, 4))
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    assert widget.labels_layer.value is labels
    labels.paint((0, 10, 10), 3)
    labels.paint((1, 30, 30), 4)
    qtbot.waitUntil(lambda: len(widget.autosaver.journal_of(labels).edits) > 0, timeout=5_000)
    qtbot.waitUntil(
        lambda: np.array_equal(widget.autosaver.journal_of(labels).final_state(), labels.data),
        timeout=5_000,
    )
    expected = np.array(labels.data)

    # A crash: the journal stays behind; the next widget offers it back.
    viewer2 = make_napari_viewer()
    _, widget2 = viewer2.window.add_plugin_dock_widget(*WIDGET)
    assert not widget2.restore_button.native.isHidden() and "restore" in widget2.status.value
    assert len(pending_journals()) == 1
    (restored,) = widget2.restore_autosaved()
    np.testing.assert_array_equal(np.array(restored.data), expected)
    assert restored.scale.tolist() == [50.0, 4.0, 4.0]
    restored.undo()  # the replayed edits are undoable, one by one
    assert not np.array_equal(np.array(restored.data), expected)
    assert widget2.restore_button.native.isHidden()


@pytest.mark.slow
def test_after_segment_a_correction_is_propagated_alone(loop, qtbot):
    viewer, widget, _ = loop
    labels_layer = viewer.layers["em labels"]
    ref = widget.ref_slice.value
    assert viewer.dims.current_step[0] == ref  # the slice to correct is the one shown
    before = np.array(labels_layer.data)
    ids, sizes = np.unique(before[ref][before[ref] > 0], return_counts=True)
    keep, gone = (int(i) for i in ids[np.argsort(sizes)[::-1][:2]])
    labels_layer.fill((ref, *np.argwhere(before[ref] == gone)[0]), keep)  # a 2D merge
    widget.propagate_button.native.click()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    after = np.array(labels_layer.data)
    changed = after != before
    assert changed.any() and f"objects [{keep}, {gone}]" in widget.status.value
    # Only the two objects (and unlabelled voxels) were touched: everything else is as it was.
    assert np.isin(before[changed], [0, keep, gone]).all()


@pytest.mark.slow
def test_autosave_compares_the_painted_box_and_the_whole_volume_only_after_undo(
    make_napari_viewer, qtbot, monkeypatch
):
    from napari_emseg.proofreading.journal import SessionJournal

    regions = []
    record = SessionJournal.record

    def spy(self, labels, region=None):
        regions.append(region)
        return record(self, labels, region)

    monkeypatch.setattr(SessionJournal, "record", spy)
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((3, 64, 64), np.uint32), name="work")
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    labels.brush_size = 4
    labels.paint((1, 30, 30), 5)
    qtbot.waitUntil(lambda: len(regions) == 1, timeout=5_000)
    widget.autosaver.flush()
    box = regions[0]
    assert box is not None and box[0] == slice(1, 2) and box[1].stop - box[1].start <= 8
    labels.undo()
    qtbot.waitUntil(lambda: len(regions) == 2, timeout=10_000)
    widget.autosaver.flush()
    assert regions[1] is None  # undo: the whole volume, in the worker thread
    np.testing.assert_array_equal(widget.autosaver.journal_of(labels).final_state(), labels.data)


def test_voxel_size_field_is_prefilled_shared_and_used(make_napari_viewer, qtbot, monkeypatch):
    """Both widgets show the image's voxel size; a size typed in one is what runs use."""
    from napari_emseg import pipeline

    viewer = make_napari_viewer()
    image = viewer.add_image(np.full((3, 32, 32), 128, np.uint8), name="fib", scale=(1, 1, 1))
    _, segment = viewer.window.add_plugin_dock_widget(*WIDGET)
    _, proofread = viewer.window.add_plugin_dock_widget("napari-emseg", "Proofread")
    proofread.image_layer.value = image
    assert segment.image_layer.value is image  # one image for both widgets
    assert segment.voxel_size.widget.value == ""  # unknown
    calibrated = viewer.add_image(np.zeros((3, 32, 32), np.uint8), name="sstem", scale=(50, 4, 4))
    segment.image_layer.value = calibrated
    assert segment.voxel_size.widget.value == "50 4 4"  # from the file's scale

    segment.image_layer.value = image
    segment.voxel_size.widget.value = "10, 10 10"
    assert proofread.viewer_session.voxel_size(image) == (10.0, 10.0, 10.0)  # one session
    assert "10 10 10" in segment.status.value
    assert image.scale.tolist() == [1, 1, 1]  # the display is left alone
    segment.voxel_size.widget.value = "10 10"
    assert "three positive numbers" in segment.status.value
    assert segment.viewer_session.voxel_size(image) == (10.0, 10.0, 10.0)  # kept the last good

    seen = {}

    def fake_segment(data, **kwargs):
        seen.update(kwargs)
        return pipeline.Segmentation(
            np.zeros(data.shape, np.float32), np.ones(data.shape, np.uint32), 1
        )

    monkeypatch.setattr(pipeline, "segment", fake_segment)
    segment.segment_button.native.click()
    qtbot.waitUntil(lambda: not segment.busy, timeout=30_000)
    assert seen["voxel_size"] == (10.0, 10.0, 10.0)
