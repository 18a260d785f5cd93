"""What the screenshot scripts share: waiting for a widget's job, and picking a correction."""

import time

import numpy as np
from qtpy.QtWidgets import QApplication


def settle(widget=None, timeout: float = 900.0) -> None:
    """Process Qt events until ``widget`` (if given) is idle, then let the canvas redraw."""
    start = time.monotonic()
    while widget is not None and widget.busy:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the widget's job did not finish")
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)


def largest_touching_pair(plane: np.ndarray) -> tuple[int, int]:
    """The two largest objects of a slice that share a boundary: a typical merge to correct."""
    ids, counts = np.unique(plane[plane > 0], return_counts=True)
    size = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    pairs = set()
    for a, b in ((plane[:, :-1], plane[:, 1:]), (plane[:-1], plane[1:])):
        touching = (a != b) & (a > 0) & (b > 0)
        pairs.update(zip(a[touching].tolist(), b[touching].tolist(), strict=True))
    if not pairs:
        raise RuntimeError("no touching objects to merge")
    return max(pairs, key=lambda pair: min(size[pair[0]], size[pair[1]]))
