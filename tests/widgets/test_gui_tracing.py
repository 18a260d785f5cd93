"""Sparse tracing through the Segment widget, as a new user does it: on napari's empty "new
labels" layer, paint a few neurons (or just dot them) on one slice and press Propagate."""

import numpy as np
import pytest
from gui_support import SEGMENT, interior, two_large_objects, wait_idle

pytestmark = pytest.mark.gui
REF = 3


@pytest.fixture()
def tracing(make_napari_viewer, small_stack):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    _, widget = viewer.window.add_plugin_dock_widget(*SEGMENT)
    labels = viewer.add_labels(  # what napari's "new labels" button makes
        np.zeros(small_stack.image.shape, np.uint32), name="Labels", scale=small_stack.scale
    )
    widget.session.model = "ridge"  # a fast membrane map
    widget.method.value = "watershed"  # the fast propagator
    assert widget.labels_layer.value is labels and widget.image_layer.value is image
    return viewer, widget, labels, small_stack.labels


def paint_neurons(labels, truth, *, dot: bool) -> list[int]:
    """Brush strokes over two neurons of slice REF (or one small dot in each)."""
    neurons = two_large_objects(truth, REF)
    labels.brush_size = 3 if dot else 7
    for painted, neuron in enumerate(neurons, start=1):
        inside = interior(truth[REF] == neuron)
        points = inside[len(inside) // 2 : len(inside) // 2 + 1] if dot else inside[::6]
        for y, x in points:
            labels.paint((REF, y, x), painted)
    return neurons


@pytest.mark.parametrize("dot", [False, True], ids=["painted", "dotted"])
@pytest.mark.slow
def test_a_few_neurons_on_an_empty_layer_are_carried_alone(tracing, qtbot, dot):
    viewer, widget, labels, truth = tracing
    neurons = paint_neurons(labels, truth, dot=dot)
    assert widget.ref_slice.value == REF  # the reference follows the slice painted
    painted = np.array(labels.data[REF])
    widget.propagate_button.native.click()
    wait_idle(qtbot, widget)
    out = np.asarray(labels.data)
    assert set(np.unique(out).tolist()) == {0, 1, 2}  # nothing invented
    assert "sparse tracing" in widget.status.value
    np.testing.assert_array_equal(out[REF][painted > 0], painted[painted > 0])  # kept
    for obj, neuron in enumerate(neurons, start=1):
        mine = out == obj
        assert mine.any(axis=(1, 2)).sum() >= 4  # carried through z
        # ... within its own neuron, not bleeding into the neighbours
        assert np.count_nonzero(mine & (truth == neuron)) >= 0.8 * np.count_nonzero(mine)
        if dot:  # a dot grows to its cell on the reference slice
            assert np.count_nonzero(out[REF] == obj) >= 20 * np.count_nonzero(painted == obj)


@pytest.mark.slow
def test_dense_mode_fills_the_rest_and_both_widgets_show_the_mode(tracing, qtbot):
    viewer, widget, labels, truth = tracing
    _, proofread = viewer.window.add_plugin_dock_widget("napari-emseg", "Proofread")
    paint_neurons(labels, truth, dot=False)
    widget.tracing.value = "dense"
    assert proofread.tracing.value == "dense" == widget.session.tracing
    widget.propagate_button.native.click()
    wait_idle(qtbot, widget)
    assert len(np.unique(np.asarray(labels.data))) > 3  # new objects fill the rest
    assert "dense" in widget.status.value


def test_the_reference_follows_the_last_edit_and_an_empty_one_is_refused(tracing, qtbot):
    viewer, widget, labels, truth = tracing
    labels.paint((4, 40, 40), 5)
    assert widget.ref_slice.value == 4
    widget.ref_slice.value = 0  # a slice with nothing on it
    widget.propagate_button.native.click()
    assert not widget.busy  # refused before any job starts
    assert "slice 0 holds no object" in widget.status.value
    assert "you painted slice 4 last" in widget.status.value
    assert not np.asarray(labels.data)[[0, 1, 2, 3, 5]].any()  # nothing invented
