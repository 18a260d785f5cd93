"""Run the Segment -> correct -> Propagate loop in a real napari window and save a screenshot.

Used for the README (real EM: ISBI 2012 from ../shared/data) and by `make run` without a
display (the synthetic sample). Run under a virtual X server:

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py -o shot.png
"""

import argparse
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

REPO = Path(__file__).resolve().parents[1]
ISBI = REPO.parent / "shared" / "data" / "isbi2012" / "train-volume.tif"


def wait_until_idle(widget, timeout: float = 600.0) -> None:
    start = time.monotonic()
    while widget.busy:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the widget's job did not finish")
    QApplication.processEvents()


def merge_largest_neighbours(labels: np.ndarray) -> tuple[int, int]:
    """A typical correction on the reference slice: merge the two largest touching objects."""
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    order = ids[np.argsort(counts)[::-1]]
    for keep in order[:10]:
        grown = np.zeros(labels.shape, bool)
        mask = labels == keep
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        neighbours = set(np.unique(labels[grown & ~mask])) - {0}
        if neighbours:
            other = max(neighbours, key=lambda n: counts[ids == n][0])
            return int(keep), int(other)
    raise RuntimeError("no touching objects to merge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--sample", action="store_true", help="use the synthetic sample")
    parser.add_argument("--image", default=str(ISBI), help="EM stack to open (default ISBI)")
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari-emseg")
    viewer.window._qt_window.resize(1600, 1000)
    if args.sample:
        viewer.open_sample("napari-emseg", "synthetic_em")
    else:
        viewer.open(args.image, plugin="napari-emseg")
    image_layer = next(layer for layer in viewer.layers if layer.visible)
    _, widget = viewer.window.add_plugin_dock_widget("napari-emseg", "Segment and propagate")
    widget.image_layer.value = image_layer
    widget.segment()
    wait_until_idle(widget)

    labels_layer = widget.labels_layer.value
    ref = int(widget.ref_slice.value)
    viewer.dims.set_current_step(0, ref)
    keep, other = merge_largest_neighbours(np.asarray(labels_layer.data[ref]))
    plane = np.asarray(labels_layer.data)
    edited = np.where(plane[ref] == other, keep, plane[ref])
    indices = np.nonzero(plane[ref] != edited)
    labels_layer.data_setitem((np.full(indices[0].size, ref), *indices), edited[indices])
    widget.set_reference_slice()
    widget.propagate()
    wait_until_idle(widget)
    labels_layer.selected_label = keep
    viewer.dims.set_current_step(0, min(ref + 1, plane.shape[0] - 1))
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.output, canvas_only=False)
    print(f"wrote {args.output}: {widget.status.value}")
    viewer.close()


if __name__ == "__main__":
    main()
