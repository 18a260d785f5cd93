"""The engine's top-level operations, shared by the CLI, the widgets and the Python API.

Each takes and returns ndarrays; progress is a plain callback and ``cancel`` a plain callable.
"""

from dataclasses import dataclass

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.propagation import propagate
from napari_emseg.propagation.api import AUTOMATIC_METHOD
from napari_emseg.segmentation.watershed import watershed_slice, watershed_stack

NO_PROPAGATION = "none"


@dataclass
class Segmentation:
    """Result of :func:`segment`: the membrane map and the instance labels."""

    membrane: np.ndarray
    labels: np.ndarray
    ref_slice: int | None


def _stage(progress: ProgressCallback | None, name: str, weight: tuple[float, float]):
    """Map a sub-task's progress into a share ``weight`` = (start, end) of the whole."""
    if progress is None:
        return None
    start, end = weight

    def report(done: int, total: int, message: str) -> None:
        fraction = start + (end - start) * done / max(total, 1)
        progress(int(round(1000 * fraction)), 1000, f"{name}: {message}")

    return report


def segment(
    image: np.ndarray,
    *,
    model: str | None = None,
    device: str = "auto",
    ref_slice: int | None = None,
    propagation: str | None = None,
    value_range: tuple[float, float] | None = None,
    propagation_options: dict | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Segmentation:
    """Membrane map and 3D instance labels of an EM stack.

    A 2D watershed labels the reference slice (the middle slice by default) and the chosen
    propagator carries its objects through z, so ids are consistent in 3D. With
    ``propagation="none"`` every slice is segmented on its own (ids unique, not linked in z).
    The default propagator is the consistent ConvLSTM (``AUTOMATIC_METHOD``), the better one
    from a watershed-made reference on held-out data (docs/propagation.md).
    ``value_range`` fixes the intensities mapped to 0 and 1 (default: the stack's 0.5 and 99.5
    percentiles; :mod:`napari_emseg.blockwise.run` passes the whole volume's).
    ``propagation_options`` go to the propagator (e.g. ``{"image_pixel_nm": 8.0}`` for
    ``cconvlstm``).

    Examples
    --------
    >>> from napari_emseg.datasets.synthetic import make_synthetic_stack
    >>> stack = make_synthetic_stack((4, 96, 96))
    >>> result = segment(stack.image, model="ridge")
    >>> result.labels.shape, result.labels.dtype
    ((4, 96, 96), dtype('uint32'))
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or 0 in image.shape:
        raise ValueError(f"expected a non-empty (Z, Y, X) stack, got shape {image.shape}")
    membrane = predict_membrane(
        image,
        model=model,
        device=device,
        value_range=value_range,
        progress=_stage(progress, "membrane", (0.0, 0.5)),
        cancel=cancel,
    )
    if propagation == NO_PROPAGATION:
        labels = watershed_stack(
            membrane, progress=_stage(progress, "watershed", (0.5, 1.0)), cancel=cancel
        )
        return Segmentation(membrane, labels, None)
    propagation = propagation or AUTOMATIC_METHOD
    depth = image.shape[0]
    ref = depth // 2 if ref_slice is None else int(ref_slice)
    if not 0 <= ref < depth:
        raise ValueError(f"reference slice {ref} is outside 0..{depth - 1}")
    labels = np.zeros(image.shape, np.uint32)
    labels[ref] = watershed_slice(membrane[ref])
    labels = propagate(
        image,
        labels,
        ref,
        membrane=membrane,
        method=propagation,
        device=device,
        progress=_stage(progress, "propagation", (0.5, 1.0)),
        cancel=cancel,
        **(propagation_options or {}),
    )
    return Segmentation(membrane, labels, ref)


def evaluate(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Scores of a segmentation, or of a membrane map, against ground truth.

    Instance labels (integers) give the SNEMI3D adapted Rand error and VOI split/merge; a float
    map in [0, 1] (1 = membrane) is also scored with ISBI 2012 V_rand/V_info (best threshold),
    and its adapted Rand error and VOI are those of its 2D watershed segmentation.
    """
    from napari_emseg import metrics

    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} and ground truth shape {gt.shape} differ")
    if gt.dtype.kind not in "biu":
        raise ValueError(f"ground truth must be integer labels, got {gt.dtype}")
    scores: dict[str, float] = {}
    if pred.dtype.kind == "f":
        scores.update(metrics.isbi2012_scores(pred, gt))
        pred = watershed_stack(pred if pred.ndim == 3 else pred[None]).reshape(gt.shape)
    values = np.unique(gt)
    is_boundary_map = values.size == 2 and values[0] == 0  # e.g. ISBI's 0 / 255 labels
    instance_gt = _components(gt) if is_boundary_map else gt
    split, merge = metrics.variation_of_information(pred, instance_gt)
    scores["are"] = metrics.adapted_rand_error(pred, instance_gt)
    scores["voi_split"], scores["voi_merge"] = split, merge
    return scores


def _components(binary_gt: np.ndarray) -> np.ndarray:
    """Per-slice 2D objects of a binary boundary map (lower value = membrane)."""
    from scipy import ndimage as ndi

    foreground = binary_gt > binary_gt.min()
    stack = foreground if foreground.ndim == 3 else foreground[None]
    out = np.zeros(stack.shape, np.uint32)
    offset = 0
    for z, plane in enumerate(stack):
        labels, n = ndi.label(plane)
        out[z] = np.where(labels > 0, labels + offset, 0)
        offset += n
    return out.reshape(binary_gt.shape)
