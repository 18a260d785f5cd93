"""Both widgets at 1600 x 1000 as a user sees them: what is visible without scrolling, the
lock state, one labels layer for both widgets, and one job per viewer."""

import numpy as np
import pytest
from gui_support import PROOFREAD, SEGMENT, wait_idle
from qtpy.QtCore import QPoint, QRect

pytestmark = pytest.mark.gui


def seen_without_scrolling(widget, control) -> bool:
    """Whether a control lies wholly inside its dock's visible area."""
    native = getattr(control, "native", control)
    viewport = widget._scroll.viewport()
    box = QRect(native.mapTo(viewport, QPoint(0, 0)), native.size())
    return native.isVisible() and viewport.rect().contains(box)


@pytest.mark.slow
def test_primary_actions_and_the_status_are_visible_at_1600x1000(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    viewer.open_sample("napari-emseg", "synthetic_em")
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    qtbot.wait(1000)  # the docks are fitted once napari has styled them
    assert window.height() <= 1000 and window.width() <= 1600
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= 0.55 * window.width()  # the canvas keeps the room
    for control in (
        segment.segment_button,
        segment.propagate_button,
        segment.export_button,
        segment.cancel_button,
        segment.tracing,
        segment.status,
    ):
        assert seen_without_scrolling(segment, control), control
    b = proofread.buttons
    worklist = proofread.worklist
    for control in (
        b["repropagate"],
        b["lock"],
        b["merge"],
        b["split"],
        b["adapt"],
        b["export"],
        worklist.find_button,
        worklist.next_button,
        worklist.previous_button,
        worklist.done_button,
        proofread.table,
        proofread.references,
        proofread.cancel_button,
        proofread.status,
    ):
        assert seen_without_scrolling(proofread, control), control
    table = proofread.table
    assert table.height() >= 4 * table.verticalHeader().defaultSectionSize()
    # Names are shown whole: the model, the dock titles.
    model = segment.model.native
    assert model.fontMetrics().horizontalAdvance(model.currentText()) < model.width() - 20
    for widget, title in ((segment, "Segment and propagate"), (proofread, "Proofread")):
        dock = widget._dock()
        assert dock.fontMetrics().horizontalAdvance(f"{title} (napari-emseg)") < dock.width()


@pytest.mark.slow
def test_the_lock_state_shows_on_the_button_and_on_the_layer(make_napari_viewer, small_stack):
    viewer = make_napari_viewer()
    labels = viewer.add_labels(small_stack.labels.copy(), name="labels", scale=small_stack.scale)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    obj = int(small_stack.labels[2, 40, 40])
    proofread.object.value = obj
    lock = proofread.buttons["lock"]
    assert lock.text == "Lock" and not lock.native.isChecked()
    lock.native.click()
    assert lock.text == "Unlock" and lock.native.isChecked()
    assert f"locked: {obj}" in proofread.references.value
    outline = viewer.layers["labels locked"]  # the locked object, outlined on the canvas
    np.testing.assert_array_equal(outline.data > 0, small_stack.labels == obj)
    assert outline.contour > 0 and viewer.layers.selection.active is labels
    assert outline not in [c for c in proofread.labels_layer.choices]  # not offered as data
    proofread.object.value = int(small_stack.labels[2, 5, 5])
    assert lock.text == "Lock"  # the button follows the selected object
    proofread.object.value = obj
    lock.native.click()
    assert lock.text == "Lock" and "labels locked" not in viewer.layers


@pytest.mark.slow
def test_both_widgets_follow_one_labels_layer(make_napari_viewer, small_stack, qtbot):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    segment.session.model = "ridge"
    segment.image_layer.value = image
    for run in range(2):  # a second Segment: both widgets move to its labels
        segment.segment_button.native.click()
        wait_idle(qtbot, segment)
        newest = [layer for layer in viewer.layers if layer.name.startswith("em labels")][-1]
        assert segment.labels_layer.value is newest is proofread.labels_layer.value, run
    first = viewer.layers["em labels"]
    proofread.labels_layer.value = first  # a choice in one widget is the other's
    assert segment.labels_layer.value is first
    other = viewer.add_labels(np.zeros_like(small_stack.labels), name="traced")
    assert segment.labels_layer.value is other is proofread.labels_layer.value  # the new one
    viewer.layers.selection.active = first  # selecting a labels layer in the layer list
    assert segment.labels_layer.value is first is proofread.labels_layer.value


def test_one_job_per_viewer(make_napari_viewer, small_stack, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    labels = viewer.add_labels(small_stack.labels.copy(), name="labels", scale=small_stack.scale)
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    segment.session.model = "ridge"
    segment.method.value = "watershed"
    segment.ref_slice.value = 2
    segment.propagate_button.native.click()
    assert segment.busy and proofread.busy  # one runner per viewer
    assert not proofread.buttons["repropagate"].enabled and proofread.cancel_button.enabled
    assert "busy: propagate is running" in proofread.status.value
    assert not proofread.repropagate_selected()  # refused, with a message
    assert "busy: propagate is running" in proofread.status.value
    before = np.array(labels.data)
    wait_idle(qtbot, segment)
    assert proofread.buttons["repropagate"].enabled and not proofread.cancel_button.enabled
    assert (np.asarray(labels.data) != before).any() and "voxels changed" in segment.status.value
