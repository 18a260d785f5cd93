"""What the screenshot scripts share: waiting for a widget's job and painting as a person does
(brush strokes inside a neuron). What to correct: :mod:`napari_emseg.evaluation.corrections`."""

import time

import numpy as np
from qtpy.QtWidgets import QApplication
from scipy import ndimage as ndi


def open_viewer(title: str, image=None):
    """A 1600 x 1000 napari window (a laptop's) with ``image`` opened by the plugin (default:
    the synthetic sample) and both widgets docked: ``(viewer, image layer, segment widget,
    proofread widget)``."""
    import napari

    viewer = napari.Viewer(title=title)
    viewer.window._qt_window.resize(1600, 1000)
    if image is None:
        viewer.open_sample("napari-emseg", "synthetic_em")
    else:
        viewer.open(str(image), plugin="napari-emseg")
    layer = next(layer for layer in viewer.layers if layer.visible)
    _, segmenter = viewer.window.add_plugin_dock_widget("napari-emseg", "Segment and propagate")
    _, proofread = viewer.window.add_plugin_dock_widget("napari-emseg", "Proofread")
    segmenter.image_layer.value = layer
    return viewer, layer, segmenter, proofread


def isbi(name: str = "train-volume.tif"):
    """A file of ISBI 2012 in the shared data (:func:`napari_emseg.evaluation.data_dir`)."""
    from napari_emseg.evaluation import data_dir

    return data_dir() / "isbi2012" / name


def settle(widget=None, timeout: float = 1800.0) -> None:
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


def clicked(widget, button) -> float:
    """Click ``button`` and wait for ``widget``'s job: the seconds it took."""
    start = time.monotonic()
    button.native.click()
    settle(widget)
    return time.monotonic() - start


def paint_inside(layer, z: int, mask: np.ndarray, label: int, *, brush: int = 14) -> None:
    """Brush strokes over a neuron, kept a brush away from its membrane (as a person paints)."""
    layer.brush_size = brush
    inside = np.argwhere(ndi.binary_erosion(mask, iterations=brush // 2))
    for y, x in inside[:: max(len(inside) // 60, 1)]:
        layer.paint((z, int(y), int(x)), label)
