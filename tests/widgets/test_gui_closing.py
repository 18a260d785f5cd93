"""Closing the viewer or a widget while a job runs: the job is cancelled and joined, nothing
is applied to layers that are gone, and Python never crashes (issue: exit 139 on close)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gui_support import PROOFREAD, SEGMENT, wait_idle

pytestmark = pytest.mark.gui


def start(job: str, viewer, small_stack, tiny_card):
    """Start one of the long jobs through its button; returns the widget that runs it."""
    image = viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    labels = viewer.add_labels(small_stack.labels.copy(), name="labels", scale=small_stack.scale)
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    segment.session.model = str(tiny_card)  # a network: every job runs torch
    segment.image_layer.value, segment.labels_layer.value = image, labels
    segment.method.value = "watershed"
    segment.ref_slice.value = 2
    widget, button = {
        "segment": (segment, segment.segment_button),
        "propagate": (segment, segment.propagate_button),
        "adapt": (proofread, proofread.buttons["adapt"]),
    }[job]
    button.native.click()
    assert widget.busy, widget.status.value
    return widget


@pytest.mark.parametrize("job", ["segment", "propagate", "adapt"])
def test_closing_the_viewer_mid_job_cancels_and_joins_it(
    make_napari_viewer, small_stack, tiny_card, job
):
    viewer = make_napari_viewer()
    widget = start(job, viewer, small_stack, tiny_card)
    runner = widget.runner
    thread = runner._job.thread
    added = []
    viewer.layers.events.inserted.connect(lambda event: added.append(event.value))
    viewer.close()
    assert not runner.busy and not thread.is_alive()  # cancelled and joined
    assert runner._cancel.is_set()
    assert added == []  # no result applied to the closed viewer


def test_closing_the_proofread_dock_mid_job_stops_it_and_its_keys(
    make_napari_viewer, small_stack, tiny_card, qtbot
):
    viewer = make_napari_viewer()
    widget = start("adapt", viewer, small_stack, tiny_card)
    thread = widget.runner._job.thread
    viewer.window.remove_dock_widget(widget)
    assert not widget.runner.busy and not thread.is_alive()
    assert widget.viewer_session.proofread_widget is None
    from napari.utils.key_bindings import coerce_keybinding

    viewer.keymap[coerce_keybinding("Shift-F")](viewer)  # the key does nothing now
    qtbot.wait(250)  # no late callback reaches the closed widget


SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    image = viewer.add_image(np.random.default_rng(0).random((8, 256, 256)), scale=(50, 4, 4))
    _, widget = viewer.window.add_plugin_dock_widget("napari-emseg", "Segment and propagate")
    widget.image_layer.value = image
    widget.session.model = "ridge"
    widget.segment_button.native.click()
    while widget.busy and not widget.runner._job.progress:
        QApplication.processEvents()
    viewer.close()
    print("closed", widget.busy)
    """
)


@pytest.mark.slow
def test_closing_mid_segment_ends_python_cleanly(tmp_path):
    """The crash of the issue was a segmentation fault at exit: run it in a fresh process."""
    script = tmp_path / "close.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "closed False" in done.stdout


def test_a_job_that_ends_after_its_widget_closed_changes_nothing(
    make_napari_viewer, small_stack, qtbot
):
    viewer = make_napari_viewer()
    viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    labels = viewer.add_labels(small_stack.labels.copy(), name="labels", scale=small_stack.scale)
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    proofread.labels_layer.value = labels
    before = np.array(labels.data)
    proofread.worklist.find_button.native.click()
    viewer.window.remove_dock_widget(proofread)
    wait_idle(qtbot, segment)
    assert "em labels suspicion" not in viewer.layers and "labels suspicion" not in viewer.layers
    np.testing.assert_array_equal(np.asarray(labels.data), before)
    assert segment.segment_button.enabled  # the other widget is free again
