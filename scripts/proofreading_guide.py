"""Screenshots for docs/proofreading.md: the proofreading loop on real EM (ISBI 2012).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/proofreading_guide.py

Segments the ISBI training volume, then, in the Proofread widget: sets a reference slice, merges
two objects there, repropagates them, finds suspicious places and walks to the first one, and
shows one object alone. One screenshot per step goes to docs/images/proofreading-*.png.
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
    parser.add_argument("--image", default=str(ISBI))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-emseg proofreading")
    viewer.window._qt_window.resize(1600, 1000)
    (image,) = viewer.open(args.image, plugin="napari-emseg")
    _, segmenter = viewer.window.add_plugin_dock_widget("napari-emseg", "Segment and propagate")
    segmenter.image_layer.value = image
    segmenter.segment()
    settle(segmenter)
    labels = segmenter.labels_layer.value
    ref = int(segmenter.ref_slice.value)
    _, proofread = viewer.window.add_plugin_dock_widget("napari-emseg", "Proofread")
    proofread.labels_layer.value = labels
    proofread.image_layer.value = image

    def shot(name: str) -> None:
        settle()
        viewer.screenshot(str(args.out / f"proofreading-{name}.png"), canvas_only=False)
        print(f"{name}: {proofread.status.value}")

    viewer.dims.set_current_step(0, ref)
    proofread.add_reference()
    shot("1-reference")

    keep, other = largest_touching_pair(np.asarray(labels.data[ref]))
    proofread.object.value, proofread.other.value = keep, other
    proofread.this_slice_only.value = True
    proofread.merge()
    shot("2-merged-on-reference")

    proofread.repropagate_edited()
    settle(proofread)
    viewer.dims.set_current_step(0, min(ref + 2, labels.data.shape[0] - 1))
    shot("3-repropagated")

    proofread.find_suspicious()
    settle(proofread)
    proofread.next_suspicious()
    shot("4-next-suspicious")

    proofread.object.value = keep
    proofread.show_extent()
    shot("5-object-extent")
    viewer.close()


if __name__ == "__main__":
    main()
