"""Keyboard shortcuts of the proofreading widget (listed in docs/proofreading.md).

Shift combinations avoid napari's own single-key label shortcuts (P paint, E erase, F fill, M
new label, ...) and its Shift+V, which stay as they are. Each shortcut is also an npe2 command
with a keybinding in the manifest (so it shows in napari's command palette); napari 0.9 does
not bind plugin keybindings yet, so the widget binds the same keys on its own viewer. A key
acts on the viewer's Proofread widget while it is open, and does nothing once it is closed.
"""

from napari.viewer import Viewer

from napari_emseg._widgets.viewer_session import session_of_viewer

SHORTCUTS = {
    "Shift-M": ("merge the object under the cursor into the selected object", "merge_under_cursor"),
    "Shift-S": ("split the selected object at the seed points", "split"),
    "Shift-D": ("delete the selected object", "delete"),
    "Shift-N": ("select a new, unused id", "new_id"),
    "Shift-L": ("lock / unlock the selected object", "toggle_lock"),
    "Shift-J": ("jump to the selected object", "jump_to_object"),
    "Shift-X": ("show the selected object alone with its 3D extent", "show_extent"),
    "Shift-R": ("repropagate the objects edited on the reference slices", "repropagate_edited"),
    "Shift-F": ("go to the next place of the worklist", "next_suspicious"),
    "Shift-B": ("go back to the previous place of the worklist", "previous_suspicious"),
    "Shift-K": ("mark the current place done and go to the next", "mark_done"),
}


def _run(viewer, method: str) -> None:
    widget = session_of_viewer(viewer).proofread_widget
    if widget is not None:
        getattr(widget, method)()


def bind_shortcuts(viewer) -> None:
    """Bind the shortcuts on this viewer (each finds the viewer's Proofread widget when
    pressed; no global state, no reference that outlives the widget)."""
    for key, (_, method) in SHORTCUTS.items():

        def callback(pressed_viewer, name=method):
            _run(pressed_viewer, name)

        viewer.bind_key(key, callback, overwrite=True)


def _on_proofread_widget(method: str):
    """An npe2 command running one action of the viewer's Proofread widget, if it is open."""

    def command(viewer: Viewer) -> None:
        _run(viewer, method)

    command.__name__ = method
    return command


merge_under_cursor = _on_proofread_widget("merge_under_cursor")
split = _on_proofread_widget("split")
delete = _on_proofread_widget("delete")
new_id = _on_proofread_widget("new_id")
toggle_lock = _on_proofread_widget("toggle_lock")
jump_to_object = _on_proofread_widget("jump_to_object")
show_extent = _on_proofread_widget("show_extent")
repropagate_edited = _on_proofread_widget("repropagate_edited")
next_suspicious = _on_proofread_widget("next_suspicious")
previous_suspicious = _on_proofread_widget("previous_suspicious")
mark_done = _on_proofread_widget("mark_done")
