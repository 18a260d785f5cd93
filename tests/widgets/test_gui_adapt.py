"""Adapt, honestly: the model in use is fine-tuned, scored before and after on corrections it
did not train on, and used only when it does better; the status says which."""

import json

import numpy as np
import pytest
from gui_support import PROOFREAD, SEGMENT, wait_idle

pytestmark = pytest.mark.gui


@pytest.fixture()
def adapting(make_napari_viewer, small_stack, tiny_card, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    membrane = viewer.add_image(
        small_stack.membranes.astype(np.float32), name="em membrane", scale=small_stack.scale
    )
    labels = viewer.add_labels(small_stack.labels.copy(), name="labels", scale=small_stack.scale)
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, widget = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    widget.labels_layer.value, widget.image_layer.value = labels, image
    monkeypatch.setattr(
        "napari_emseg._widgets.proofread_widget.adapted_card_path",
        lambda _layer: tmp_path / "em-adapted.json",
    )
    session = widget.viewer_session
    session.model, session.adapt_steps = str(tiny_card), 3  # the model in use: a tiny network
    viewer.dims.set_current_step(0, 3)
    widget.add_reference()
    return viewer, segment, widget, membrane


def scores(monkeypatch, before: float, after: float) -> None:
    """The held-out errors of the base and of the adapted network, in that order."""
    errors = iter([before, after])
    monkeypatch.setattr("napari_emseg.training.adapt.heldout_error", lambda *a, **k: next(errors))


@pytest.mark.slow
def test_a_better_adapted_model_is_switched_to(adapting, qtbot, monkeypatch, tmp_path):
    viewer, segment, widget, membrane = adapting
    scores(monkeypatch, 0.4, 0.2)
    seen = []
    widget.runner.progressed.connect(lambda done, total, message: seen.append(message))
    old_map = np.array(membrane.data)
    widget.buttons["adapt"].native.click()
    wait_idle(qtbot, widget, 120_000)
    card = tmp_path / "em-adapted.json"
    written = json.loads(card.read_text())
    assert written["base_model"] == "tiny"  # the model in use, not another base
    status = widget.status.value
    assert "adapted tiny" in status and "error 0.400 -> 0.200" in status
    assert "slice 3, x >= " in status and "switched to it" in status
    assert widget.viewer_session.model == str(card) == segment.model.value
    assert not np.array_equal(np.asarray(membrane.data), old_map)  # the map made again
    # Repropagate edited now carries every object of the reference with the new map.
    data = np.asarray(widget.labels_layer.value.data)
    assert widget.session.changed_objects(data) == set(np.unique(data[3]).tolist()) - {0}
    assert any("step" in m and "s left" in m for m in seen)  # from measured step times


def test_a_worse_adapted_model_is_not_used(adapting, qtbot, monkeypatch, tmp_path, tiny_card):
    viewer, segment, widget, membrane = adapting
    scores(monkeypatch, 0.2, 0.3)
    old_map = np.array(membrane.data)
    widget.buttons["adapt"].native.click()
    wait_idle(qtbot, widget, 120_000)
    status = widget.status.value
    assert "error 0.200 -> 0.300" in status and "not switched, tiny stays in use" in status
    assert widget.viewer_session.model == str(tiny_card)
    assert not (tmp_path / "em-adapted.json").exists()  # no worse model left behind
    np.testing.assert_array_equal(np.asarray(membrane.data), old_map)


def test_a_classical_model_cannot_be_adapted(adapting):
    _, _, widget, _ = adapting
    widget.viewer_session.model = "ridge"
    assert not widget.adapt_to_corrections()
    assert "ridge is classical" in widget.status.value and not widget.busy
