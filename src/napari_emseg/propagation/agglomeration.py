"""Propagation by 3D agglomeration: the reference names the segments of the membrane map.

For near-isotropic voxels (FIB-SEM) a 3D agglomeration of the membrane map already links each
neurite through z; what it cannot know is which segment is which of the user's objects. Here
every segment that the reference slice labels takes the id most of its reference voxels have;
the other segments are objects entering the volume (new ids). The threshold is the one that
best reproduces the corrected reference slice (:mod:`napari_emseg.calibration`), or the start
rule's default without a calibration. On the gala FIB-SEM blocks this beat the consistent
ConvLSTM and its supervoxel vote from the same ground-truth slice (docs/results/calibration.md).
"""

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg._timing import timed
from napari_emseg.segmentation.supervoxels import (
    Hierarchy,
    majority_vote,
    supervoxel_hierarchy,
)

# The start rule (docs/results/start-rule.md): fragments of the map smoothed by 5 nm, merged
# across faces whose mean membrane value is below 0.8 of the map's confident membrane value.
DEFAULT_SIGMA_NM = 5.0
DEFAULT_THRESHOLD = 0.8
# The same rule on a map averaged over three planes (isotropic stacks, `pipeline.membrane_views`):
# a membrane one plane misses is fainter in the mean, so the cut sits lower. On gala train slices
# 40-49 (validation) the start scored 0.036 at 0.6, 0.020 at 0.65, 0.023 at 0.7, 0.048 at 0.75 and
# 0.125 at 0.8; on the whole train block 0.014 at 0.65, 0.017 at 0.6 and 0.7, 0.035 at 0.8
# (docs/results/membrane-planes.md).
PLANES_THRESHOLD = 0.65


def threshold_for_planes(planes: int) -> float:
    """The start rule's threshold for a map made from ``planes`` orientations (1 or 3)."""
    return PLANES_THRESHOLD if planes == 3 else DEFAULT_THRESHOLD


# An option, off by default: after the calibrated cut, segments may merge on up to this much
# higher a threshold, but never two that the reference names differently (a neurite's pieces
# join its named part; the named objects stay apart). On the gala train block from 5 reference
# slices (mean ARE) a margin of 0 scored 0.0199, 0.05 0.0192, 0.1 0.0191, 0.2 0.0355: a gain
# within one slice's noise, and with 0.05 the held-out gala test block went 0.105 -> 0.118 from
# slice 25 (0.098 -> 0.099 from slices 10, 25, 40), so the default stays 0
# (docs/performance.md, "rejected"). Naming fragments instead of segments scored 0.0587.
MERGE_FURTHER = 0.0


def reference_ids(reference: np.ndarray, segments: np.ndarray, size: int = 0) -> np.ndarray:
    """Lookup table segment -> the reference id most of its reference voxels have (0: none),
    at least ``size`` long.

    Examples
    --------
    >>> ref = np.array([[1, 1, 2, 0]]); seg = np.array([[5, 5, 5, 7]])
    >>> reference_ids(ref, seg)[[5, 7]].tolist()
    [1, 0]
    """
    voted = majority_vote(reference, segments)
    table = np.zeros(max(int(segments.max()) + 1, size), np.int64)
    labelled = reference != 0
    table[segments[labelled]] = voted[labelled]
    return table


def label_segments(
    segments: np.ndarray,
    reference: np.ndarray,
    ref_index: int,
    *,
    next_id: int,
    newcomers: bool,
) -> np.ndarray:
    """Ids of a stack of 3D segments: reference ids where the reference names a segment, new
    ids (from ``next_id``) for the others when ``newcomers``, else 0."""
    table = reference_ids(reference, segments[ref_index], int(segments.max()) + 1)
    named = table > 0
    if newcomers:
        present = np.unique(segments)
        others = present[(present > 0) & ~named[present]]
        table[others] = next_id + np.arange(others.size)
    return table[segments]


@timed("propagation")
def propagate_agglomeration(
    image: np.ndarray,
    labels: np.ndarray,
    ref_slice: int,
    *,
    membrane: np.ndarray,
    z_lo: int,
    z_hi: int,
    objects: set[int] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    newcomers: bool | None = None,
    threshold: float | None = None,
    sigma_nm: float | None = None,
    hierarchy: Hierarchy | None = None,
    pixel_nm: float | None = None,
    voxel_size: tuple[float, float, float] | None = None,
    merge_further: float = MERGE_FURTHER,
    device: str = "cpu",  # accepted like every method; this one runs on the CPU
) -> np.ndarray:
    """Propagate ``labels[ref_slice]`` through ``z_lo..z_hi`` by 3D agglomeration (module doc).

    ``threshold`` and ``sigma_nm`` default to the start rule; ``hierarchy`` (of
    ``membrane[z_lo:z_hi + 1]``, e.g. from the calibration) saves computing it again. With
    ``objects`` only those move: segments named by another id, or by none, keep the voxels
    they had. ``newcomers`` (default: without ``objects``) gives unnamed segments new ids.
    ``merge_further`` > 0 merges segments on up to that much above ``threshold``, never two
    that the reference names differently
    (:meth:`~napari_emseg.segmentation.supervoxels.Hierarchy.table_keeping_apart`).
    """
    check_cancel(cancel)
    span = slice(z_lo, z_hi + 1)
    pixel = float(pixel_nm or (voxel_size[-1] if voxel_size else 4.0))
    if hierarchy is None or hierarchy.fragments.shape != membrane[span].shape:
        sigma = (DEFAULT_SIGMA_NM if sigma_nm is None else sigma_nm) / pixel
        hierarchy = supervoxel_hierarchy(
            membrane[span], voxel_size=voxel_size, per_slice=False, sigma=sigma
        )
    report(progress, 1, 2, "agglomerating")
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    dtype = np.uint32 if labels.dtype.itemsize <= 4 else labels.dtype
    out = labels.astype(dtype, copy=True)
    reference = labels[ref_slice]
    targets = None if objects is None else np.array(sorted(objects), np.int64)
    if targets is not None:
        reference = np.where(np.isin(reference, targets), reference, 0)
    segments = hierarchy.labels(threshold)
    if merge_further > 0 and hierarchy.faces is not None:
        named = reference_ids(reference.astype(np.int64), segments[ref_slice - z_lo])
        names = np.pad(named, (0, max(0, int(segments.max()) + 1 - named.size)))
        fragment_names = names[hierarchy.table(threshold)]
        table = hierarchy.table_keeping_apart(threshold + merge_further, fragment_names)
        segments = table[hierarchy.fragments]
    newcomers = objects is None if newcomers is None else newcomers
    new = label_segments(
        segments,
        reference.astype(np.int64),
        ref_slice - z_lo,
        next_id=int(labels.max()) + 1,
        newcomers=newcomers,
    )
    region = out[span]
    if targets is None:
        region[:] = new
    else:  # other objects keep their voxels; targets (and newcomers) take the rest they claim
        moving = np.isin(region, targets)
        free = moving | (region == 0)
        claimed = np.isin(new, targets) | (newcomers & (new > int(labels.max())))
        region[:] = np.where(free, np.where(claimed, new, 0), region)
    out[ref_slice] = labels[ref_slice]
    report(progress, 2, 2, "agglomerating")
    return out


def agglomerate(
    membrane: np.ndarray,
    *,
    voxel_size: tuple[float, float, float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    sigma_nm: float = DEFAULT_SIGMA_NM,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """3D labels from a membrane map alone (``segment``'s start for near-isotropic voxels):
    the start rule's agglomeration, consecutive uint32 ids.

    Examples
    --------
    >>> membrane = np.zeros((3, 12, 12), np.float32); membrane[:, :, 6] = 1
    >>> np.unique(agglomerate(membrane, voxel_size=(4, 4, 4))).tolist()
    [1, 2]
    """
    from skimage.segmentation import relabel_sequential

    check_cancel(cancel)
    report(progress, 0, 2, "agglomerating")
    pixel = float(voxel_size[-1]) if voxel_size else 4.0
    hierarchy = supervoxel_hierarchy(
        membrane, voxel_size=voxel_size, per_slice=False, sigma=sigma_nm / pixel
    )
    report(progress, 1, 2, "agglomerating")
    labels = relabel_sequential(hierarchy.labels(threshold))[0].astype(np.uint32)
    report(progress, 2, 2, "agglomerating")
    return labels
