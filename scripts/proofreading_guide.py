"""Screenshots for docs/proofreading.md and docs/gui.md: proofreading on real EM (ISBI 2012).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/proofreading_guide.py

Drives both widgets by their buttons and keys, as a person would, at 1600 x 1000: Segment;
in the Proofread widget a reference slice, a merge there, Repropagate, the worklist (Find,
Next) and one object alone; then sparse tracing on an empty labels layer (two neurons painted
on one slice, Propagate) and, with --adapt, Adapt. One screenshot per step goes to
docs/images/proofreading-*.png; each step's status line is printed.
"""

from pathlib import Path

import numpy as np
import tifffile
from gui_helpers import clicked, isbi, open_viewer, paint_inside, settle
from napari.utils.key_bindings import coerce_keybinding

from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.evaluation.corrections import largest_touching_pair, neurons_to_trace

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--image", help="EM stack to open (default ISBI)")
    parser.add_argument(
        "--first-slice", type=int, default=0, help="where --image starts in the ISBI volume"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--adapt", action="store_true", help="also run Adapt (a minute or more)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    viewer, image, segmenter, proofread = open_viewer(
        "napari-emseg proofreading", args.image or isbi()
    )
    buttons = proofread.buttons

    def shot(name: str, widget=proofread) -> None:
        settle()
        viewer.screenshot(str(args.out / f"proofreading-{name}.png"), canvas_only=False)
        print(f"{name}: {widget.status.value}", flush=True)

    seconds = clicked(segmenter, segmenter.segment_button)
    print(f"segment: {seconds:.0f} s: {segmenter.status.value}", flush=True)
    labels = segmenter.labels_layer.value
    assert proofread.labels_layer.value is labels  # one labels layer for both widgets
    ref = int(segmenter.ref_slice.value)

    viewer.dims.set_current_step(0, ref)
    buttons["reference"].native.click()
    shot("1-reference")

    keep, other = largest_touching_pair(np.asarray(labels.data[ref]))
    proofread.object.value, proofread.other.value = keep, other
    proofread.this_slice_only.value = True
    buttons["merge"].native.click()
    shot("2-merged-on-reference")

    seconds = clicked(proofread, buttons["repropagate"])
    viewer.dims.set_current_step(0, min(ref + 2, labels.data.shape[0] - 1))
    shot("3-repropagated")
    print(f"  repropagate: {seconds:.0f} s")

    seconds = clicked(proofread, proofread.worklist.find_button)
    print(f"  find places: {seconds:.0f} s: {proofread.status.value}")
    for place in proofread.suspicious[:5]:
        print(f"    object {place.obj} z {place.z} worth {place.gain:.0f}: {place.reason}")
    viewer.keymap[coerce_keybinding("Shift-F")](viewer)  # Next, by its key
    shot("4-next-suspicious")

    viewer.layers.remove(viewer.layers["worklist place"])
    viewer.reset_view()
    proofread.object.value = keep
    buttons["extent"].native.click()
    shot("5-object-extent")
    buttons["extent"].native.click()

    trace_sparse(viewer, segmenter, image, args, shot)

    if args.adapt:
        proofread.labels_layer.value = labels
        seconds = clicked(proofread, buttons["adapt"])
        print(f"adapt: {seconds:.0f} s: {proofread.status.value}", flush=True)
    viewer.close()


def trace_sparse(viewer, segmenter, image, args, shot) -> None:
    """Two neurons painted on napari's empty "new labels" layer, carried alone."""
    depth = image.data.shape[0]
    truth = tifffile.imread(isbi("train-instances-3d.tif"))[
        args.first_slice : args.first_slice + depth
    ]
    traced = viewer.add_labels(  # as napari's "new labels" button makes it
        np.zeros(image.data.shape, np.uint32),
        name="traced",
        scale=image.scale,
        units=image.units,
        axis_labels=image.axis_labels,
    )
    for layer in viewer.layers:
        if layer.name.endswith(("labels", "suspicion")):
            layer.visible = False
    viewer.reset_view()
    z = depth // 2
    viewer.dims.set_current_step(0, z)
    for label, neuron in enumerate(neurons_to_trace(truth, z), start=1):
        paint_inside(traced, z, truth[z] == neuron, label)
    segmenter.method.value = "watershed"
    print(f"  sparse propagate: {clicked(segmenter, segmenter.propagate_button):.0f} s")
    viewer.dims.set_current_step(0, min(z + 3, depth - 1))
    shot("6-sparse-tracing", segmenter)


if __name__ == "__main__":
    main()
