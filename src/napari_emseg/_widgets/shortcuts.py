"""Keyboard shortcuts of the proofreading widget (listed in docs/proofreading.md).

Shift combinations avoid napari's own single-key label shortcuts (P paint, E erase, F fill, M
new label, ...), which stay as they are.
"""

SHORTCUTS = {
    "Shift-M": ("merge the object under the cursor into the selected object", "merge_under_cursor"),
    "Shift-S": ("split the selected object at the seed points", "split"),
    "Shift-D": ("delete the selected object", "delete"),
    "Shift-N": ("select a new, unused id", "new_id"),
    "Shift-L": ("lock / unlock the selected object", "toggle_lock"),
    "Shift-J": ("jump to the selected object", "jump_to_object"),
    "Shift-X": ("show the selected object alone with its 3D extent", "show_extent"),
    "Shift-R": ("repropagate the objects edited on the reference slices", "repropagate_edited"),
    "Shift-F": ("go to the next suspicious place", "next_suspicious"),
}


def bind_shortcuts(viewer, widget) -> None:
    """Bind the shortcuts on this viewer to this widget's actions (no global state)."""
    for key, (_, method) in SHORTCUTS.items():
        action = getattr(widget, method)

        def callback(_viewer, run=action):
            run()

        viewer.bind_key(key, callback, overwrite=True)
