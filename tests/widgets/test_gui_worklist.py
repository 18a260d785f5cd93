"""The worklist as a proofreader uses it: one row per object, worth most first, with the
reason; Next and Back (buttons and keys) zoom to the object; Done marks it and moves on."""

import numpy as np
import pytest
from gui_support import PROOFREAD, wait_idle
from napari.utils.key_bindings import coerce_keybinding

pytestmark = pytest.mark.gui


@pytest.fixture()
def worklist(make_napari_viewer, small_stack, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    labels = small_stack.labels.copy()
    ids, sizes = np.unique(labels[3][labels[3] > 0], return_counts=True)
    big, other = (int(i) for i in ids[np.argsort(sizes)[::-1][:2]])
    labels[3][small_stack.labels[3] == big] = other  # the largest object lost in slice 3
    labels[2, 47:49, 47:49] = 999  # a speck in one slice: likely wrong, but worth little
    layer = viewer.add_labels(labels, name="labels", scale=small_stack.scale)
    _, widget = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    widget.worklist.find_button.native.click()
    wait_idle(qtbot, widget)
    return viewer, widget, layer, big


def test_places_are_one_per_object_worth_most_first_with_their_reason(worklist):
    _, widget, _, big = worklist
    places = widget.suspicious
    assert 0 < len(places) <= 50 and widget.table.rowCount() == len(places)
    assert len({p.obj for p in places}) == len(places)  # one row per object
    assert [p.gain for p in places] == sorted((p.gain for p in places), reverse=True)
    assert places[0].obj == big  # the big error first ...
    speck = next(p for p in places if p.obj == 999)
    assert speck.score >= 0.5 and speck.gain < 0.01 * places[0].gain  # ... a speck after
    for row, place in enumerate(places):
        assert widget.table.item(row, 3).text() == place.reason != ""
    assert "worth most are listed" in widget.status.value


def visible(viewer, camera, box_world):
    """(whether the box is wholly in view, the share of the view it fills)."""
    height, width = viewer.canvas.size
    half = np.array([height, width]) / camera.zoom / 2
    centre = np.array(camera.center[-2:])
    lo, hi = box_world
    inside = (lo >= centre - half).all() and (hi <= centre + half).all()
    return inside, (hi - lo).max() * camera.zoom / min(height, width)


def test_next_and_back_zoom_to_the_object_and_done_moves_on(worklist):
    viewer, widget, layer, _ = worklist
    places = widget.suspicious
    widget.worklist.next_button.native.click()
    first = places[0]
    assert viewer.dims.current_step[0] == first.z and widget.object.value == first.obj
    y0, x0, y1, x1 = first.box
    scale = np.asarray(layer.scale[-2:])
    box = (np.array([y0, x0]) * scale, np.array([y1, x1]) * scale)
    inside, share = visible(viewer, viewer.scene.camera, box)
    assert inside and share >= 0.25  # zoomed to the object, all of it in view
    assert "place 1 of" in widget.status.value and first.reason in widget.status.value
    keys = viewer.keymap
    keys[coerce_keybinding("Shift-F")](viewer)  # next, by key
    assert widget.worklist.index == 1 and widget.object.value == places[1].obj
    keys[coerce_keybinding("Shift-B")](viewer)  # back
    assert widget.worklist.index == 0
    keys[coerce_keybinding("Shift-K")](viewer)  # done: marked, and on to the next
    assert widget.table.item(0, 0).text() == f"✓ {first.obj}"
    assert widget.worklist.index == 1 and "done: 1" in widget.references.value
    assert len(places) >= 3
    widget.worklist.previous_button.native.click()  # Back skips the place marked done
    assert widget.worklist.index == len(places) - 1


def test_objects_marked_done_stay_out_of_the_next_list(worklist, qtbot):
    _, widget, _, _ = worklist
    widget.worklist.next_button.native.click()
    first = widget.suspicious[0].obj
    widget.worklist.done_button.native.click()
    widget.worklist.find_button.native.click()
    wait_idle(qtbot, widget)
    assert first not in {p.obj for p in widget.suspicious}
