"""Run the Segment -> correct -> Propagate loop in a real napari window and save a screenshot.

Used for the README (real EM: ISBI 2012 from ../shared/data) and by `make run` without a
display (the synthetic sample). Both widgets are docked, as at 1600 x 1000 on a laptop. Run
under a virtual X server:

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot.py -o shot.png
"""

from pathlib import Path

import numpy as np
from gui_helpers import isbi, open_viewer, settle

from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.corrections import largest_touching_pair


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--sample", action="store_true", help="use the synthetic sample")
    parser.add_argument("--image", help="EM stack to open (default ISBI)")
    args = parser.parse_args()

    image = None if args.sample else args.image or isbi()
    viewer, _, widget, _ = open_viewer("napari-emseg", image)
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
