"""The ground-truth reference rule: what a proofread reference slice is in every measurement.

A user's corrected slice is dense: every pixel belongs to an object, boundaries included. The
ground truth leaves its boundary pixels 0, so the reference is the ground truth of one slice with
each object grown ``GROW_REFERENCE_PX`` pixels into the boundary around it
(:func:`skimage.segmentation.expand_labels`); ``grow=0`` keeps the ground truth as it is.
"""

from __future__ import annotations

import numpy as np

GROW_REFERENCE_PX = 10


def reference_slice(gt_slice: np.ndarray, *, grow: int = GROW_REFERENCE_PX) -> np.ndarray:
    """One slice of ground truth as a proofread reference (uint32).

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 0, 2]])
    >>> reference_slice(gt).tolist()
    [[1, 1, 1, 2, 2]]
    >>> reference_slice(gt, grow=0).tolist()
    [[1, 1, 0, 0, 2]]
    """
    gt_slice = np.asarray(gt_slice)
    if gt_slice.ndim != 2:
        raise ValueError(f"a reference slice is 2D, got shape {gt_slice.shape}")
    if grow < 0:
        raise ValueError(f"grow must be >= 0 pixels, got {grow}")
    if grow == 0:
        return gt_slice.astype(np.uint32)
    from skimage.segmentation import expand_labels

    return expand_labels(gt_slice, distance=grow).astype(np.uint32)


def reference_from_truth(gt: np.ndarray, ref: int, *, grow: int = GROW_REFERENCE_PX) -> np.ndarray:
    """Labels that are 0 except on slice ``ref``, which holds :func:`reference_slice` of it:
    the ``labels`` argument of ``propagate`` from a corrected slice.

    Examples
    --------
    >>> gt = np.zeros((3, 1, 5), np.uint16); gt[:, 0, :2], gt[:, 0, 4] = 1, 2
    >>> labels = reference_from_truth(gt, 1, grow=1)
    >>> labels.dtype, labels[1].tolist(), int(labels[0].max()), int(labels[2].max())
    (dtype('uint32'), [[1, 1, 1, 2, 2]], 0, 0)
    """
    gt = np.asarray(gt)
    if gt.ndim != 3:
        raise ValueError(f"ground truth must be a (Z, Y, X) volume, got shape {gt.shape}")
    if not 0 <= ref < gt.shape[0]:
        raise ValueError(f"reference slice {ref} is outside 0..{gt.shape[0] - 1}")
    labels = np.zeros(gt.shape, np.uint32)
    labels[ref] = reference_slice(gt[ref], grow=grow)
    return labels


def errors_from_references(image, gt, refs, *, membrane, voxel_size) -> list[float]:
    """Adapted Rand error of the whole block after ``propagate`` with its defaults from the
    reference (:func:`reference_from_truth`) of each slice of ``refs``, on a given map.

    Examples
    --------
    >>> gt = np.zeros((4, 32, 32), np.uint32); gt[:, :, :15], gt[:, :, 17:] = 1, 2
    >>> image = np.where(gt > 0, 200, 40).astype(np.uint8)
    >>> membrane = (gt == 0).astype(np.float32)
    >>> errors_from_references(image, gt, [1, 2], membrane=membrane, voxel_size=(50, 4, 4))
    [0.0, 0.0]
    """
    from napari_emseg.evaluation.scoring import score
    from napari_emseg.pipeline import propagate

    errors = []
    for z in refs:
        found = propagate(
            image, reference_from_truth(gt, z), z, membrane=membrane, voxel_size=voxel_size
        )
        errors.append(round(float(score(found.labels, gt).are), 6))
    return errors
