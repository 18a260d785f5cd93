"""Run the Segment -> correct -> Propagate loop in a real napari window and save a screenshot.

Used for the README (real EM: ISBI 2012 from ../shared/data) and by `make run` without a
display (the synthetic sample). Both widgets are docked, as at 1600 x 1000 on a laptop. Run
under a virtual X server:

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py -o shot.png
"""

import argparse
from pathlib import Path

import napari
import numpy as np
from gui_helpers import largest_touching_pair, settle

REPO = Path(__file__).resolve().parents[1]
ISBI = REPO.parent / "shared" / "data" / "isbi2012" / "train-volume.tif"


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
    viewer.window.add_plugin_dock_widget("napari-emseg", "Proofread")
    widget.image_layer.value = image_layer
    widget.segment_button.native.click()
    settle(widget)

    labels_layer = widget.labels_layer.value
    ref = int(widget.ref_slice.value)
    viewer.dims.set_current_step(0, ref)
    keep, other = largest_touching_pair(np.asarray(labels_layer.data[ref]))
    labels_layer.fill((ref, *np.argwhere(np.asarray(labels_layer.data[ref]) == other)[0]), keep)
    widget.propagate_button.native.click()  # the reference is the slice just corrected
    settle(widget)
    labels_layer.selected_label = keep
    viewer.dims.set_current_step(0, min(ref + 1, labels_layer.data.shape[0] - 1))
    settle()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.output, canvas_only=False)
    print(f"wrote {args.output}: {widget.status.value}")
    viewer.close()


if __name__ == "__main__":
    main()
