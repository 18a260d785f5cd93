"""The classical propagator: each slice seeded from its neighbour's eroded masks.

This is the baseline the learned propagators must beat. Moving away from the reference slice:

1. the masks of the previous slice are eroded into seeds;
2. the new slice gets its own fine 2D watershed ("cells"); each cell votes for the previous
   object that covered most of it, and seed pixels in a cell voted to another object, or on a
   membrane, are dropped (otherwise a seed that drifted across a membrane drags its object into
   the neighbour's cell);
3. cells that no seed reaches become newcomers (objects entering the volume, new ids);
4. a watershed of the slice's membrane map grows all seeds;
5. an object whose region shrank below ``min_area_ratio`` of its previous area, or that left
   its previous footprint, ends there.

An object with no membrane evidence at all (a uniform region) is carried on: the classical
method has no other cue. Measured in docs/baselines.md.

Sizes are defined in nm (chosen on ISBI 2012, 4 nm pixels, as 4 px of erosion, 50 px cells,
3 px newcomer cores, 1 px smoothing and a 32 px window) and converted with the stack's pixel
size, so 4 nm ssTEM and 10 nm FIB-SEM get the same physical behaviour.
"""

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries, watershed

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg._timing import timed
from napari_emseg.segmentation.supervoxels import dense_ids
from napari_emseg.segmentation.watershed import DEFAULT_PIXEL_NM, watershed_slice

EROSION_NM = 16.0
CELL_MIN_AREA_NM2 = 800.0
NEWCOMER_CORE_NM = 12.0
RELIEF_SMOOTHING_NM = 4.0
WINDOW_NM = 128.0


def step_sizes(pixel_nm: float | None) -> dict[str, float]:
    """The step's size-like parameters in pixels of ``pixel_nm`` (default 4 nm).

    Examples
    --------
    >>> step_sizes(4.0)
    {'erosion': 4.0, 'cell_min_size': 50, 'newcomer_core': 3.0, 'smoothing': 1.0}
    >>> step_sizes(10.0)
    {'erosion': 1.6, 'cell_min_size': 8, 'newcomer_core': 1.2, 'smoothing': 0.4}
    """
    pixel = float(pixel_nm or DEFAULT_PIXEL_NM)
    return {
        "erosion": EROSION_NM / pixel,
        "cell_min_size": int(round(CELL_MIN_AREA_NM2 / pixel**2)),
        "newcomer_core": NEWCOMER_CORE_NM / pixel,
        "smoothing": RELIEF_SMOOTHING_NM / pixel,
    }


def eroded_seeds(labels_2d: np.ndarray, erosion: float) -> np.ndarray:
    """Shrink every object by ``erosion`` px, keeping at least the core of thin objects."""
    ids, index = dense_ids(labels_2d)
    if not ids[-1]:
        return np.zeros_like(labels_2d)
    inside = ~find_boundaries(labels_2d, mode="inner") & (labels_2d != 0)
    distance = ndi.distance_transform_edt(inside)
    # Each object's deepest point; ufunc.at on dense indices, 20x faster than ndi.maximum.
    core = np.zeros(ids.size)
    np.maximum.at(core, index.ravel(), distance.ravel())
    radius = np.minimum(erosion, 0.5 * core.astype(np.float32))
    keep = (labels_2d != 0) & (distance >= radius[index])
    return np.where(keep, labels_2d, 0)


def _main_occupant(cells: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Lookup table: for each cell id, the label covering most of that cell."""
    base = int(labels.max()) + 1
    keys = cells.astype(np.int64).ravel() * base + labels.ravel()
    pairs, counts = np.unique(keys, return_counts=True)
    cell, label = pairs // base, pairs % base
    order = np.lexsort((counts, cell))  # by cell, then by overlap
    last = np.r_[cell[order][1:] != cell[order][:-1], True]
    owner = np.zeros(int(cells.max()) + 1, labels.dtype)
    owner[cell[order][last]] = label[order][last]
    return owner


def newcomer_markers(
    cells: np.ndarray, seeds: np.ndarray, first_id: int, cover: float, core: float = 3.0
) -> np.ndarray:
    """Cells that no propagated seed reaches, as markers with ids from ``first_id``."""
    n = int(cells.max())
    area = np.bincount(cells.ravel(), minlength=n + 1)
    seeded = np.bincount(cells.ravel(), weights=(seeds > 0).ravel(), minlength=n + 1)
    new = np.flatnonzero((seeded < cover * np.maximum(area, 1)) & (np.arange(n + 1) > 0))
    lut = np.zeros(n + 1, np.int64)
    lut[new] = first_id + np.arange(new.size)
    # Only the core of a newcomer is a marker so that the watershed still places its outline.
    return eroded_seeds(lut[cells], core)


def propagation_step(
    previous: np.ndarray,
    membrane_2d: np.ndarray,
    *,
    next_id: int,
    fixed: np.ndarray | None = None,
    erosion: float = 4.0,
    threshold: float = 0.6,
    min_area_ratio: float = 0.2,
    newcomers: bool = True,
    newcomer_cover: float = 0.05,
    cell_min_size: int = 50,
    newcomer_core: float = 3.0,
    smoothing: float = 1.0,
) -> np.ndarray:
    """Labels of one slice from the previous slice's labels and this slice's membrane map.

    ``fixed`` holds objects that must keep exactly their voxels in this slice (0 elsewhere);
    they still take part in the flooding so that moving objects respect them. Newcomer ids
    start at ``next_id``. Sizes are in pixels (:func:`step_sizes` converts the nm defaults).
    """
    relief = ndi.gaussian_filter(membrane_2d.astype(np.float32), smoothing)
    seeds = eroded_seeds(previous, erosion)
    # The slice's own cells, kept fine (small min_size): they only vote, they never become labels.
    cells = watershed_slice(membrane_2d, min_size=cell_min_size)
    # A seed only counts inside cells of this slice that its object mostly filled before:
    # seed pixels that spill into a neighbour's cell would drag the object across a membrane.
    owner = _main_occupant(cells, previous)
    displaced = owner[cells] != seeds
    kept = np.where((relief >= threshold) | displaced, 0, seeds)
    # An object whose every seed pixel was dropped keeps its seeds rather than vanish.
    lost = np.setdiff1d(np.unique(seeds), np.unique(kept))
    if lost.size:
        kept = np.where(np.isin(seeds, lost), seeds, kept)
    markers = kept.astype(np.int64)
    if fixed is not None:
        markers = np.where(fixed != 0, fixed, markers)
    if newcomers:
        new = newcomer_markers(cells, markers, next_id, newcomer_cover, newcomer_core)
        markers = np.where((markers == 0) & (new != 0), new, markers)
    flooded = watershed(relief, markers)
    return _end_vanishing(flooded, previous, relief, min_area_ratio, fixed)


def _end_vanishing(
    flooded: np.ndarray,
    previous: np.ndarray,
    relief: np.ndarray,
    min_area_ratio: float,
    fixed: np.ndarray | None,
) -> np.ndarray:
    """Drop objects that shrank too much or left their previous footprint; refill their area."""
    size = int(max(flooded.max(), previous.max())) + 1
    now = np.bincount(flooded.ravel(), minlength=size)
    before = np.bincount(previous.ravel(), minlength=size)
    overlap = np.bincount(flooded.ravel(), weights=(flooded == previous).ravel(), minlength=size)
    carried = before > 0
    carried[0] = False
    ended = carried & ((now < min_area_ratio * before) | (overlap < 0.25 * now))
    if fixed is not None:
        ended[np.unique(fixed)] = False
    if not ended.any():
        return flooded
    keep = np.where(ended[flooded], 0, flooded)
    return watershed(relief, keep) if keep.any() else keep


def _window(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of ``mask`` grown by ``margin`` (clipped), or None if it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    ny, nx = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, ny)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, nx)),
    )


def _step_targets(
    previous: np.ndarray,
    current: np.ndarray,
    membrane_2d: np.ndarray,
    targets: np.ndarray,
    *,
    next_id: int,
    first_new: int,
    newcomers: bool,
    window: int,
    options: dict,
) -> np.ndarray:
    """One step that moves only the ``targets`` (and newcomers): all other objects are fixed.

    The step runs in a window around the targets of the previous and of this slice: objects
    move a few pixels per slice, so the rest of the slice cannot change and costs nothing.
    """
    moving = np.isin(current, targets)
    fixed = np.where(moving | (current == 0), 0, current)
    box = _window((previous != 0) | moving, window)
    if box is None:
        return current  # no target here nor in the previous slice: nothing to do
    new = propagation_step(
        previous[box],
        membrane_2d[box],
        next_id=next_id,
        fixed=fixed[box],
        newcomers=newcomers,
        **options,
    )
    # Voxels the fixed objects flooded are not theirs to take: they become 0.
    kept = np.isin(new, targets) | (new >= first_new)
    out = fixed.copy()
    out[box] = np.where(fixed[box] != 0, fixed[box], np.where(kept, new, 0))
    return out


@timed("propagation")
def propagate_watershed(
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
    window: int | None = None,
    pixel_nm: float | None = None,
    device: str = "cpu",  # accepted like every method; this one runs on the CPU
    **options,
) -> np.ndarray:
    """Classical propagation from ``ref_slice`` to ``z_lo`` and ``z_hi`` (see module doc).

    With ``objects`` only those move and every other object is fixed; each step then works in
    a window ``window`` px (default :data:`WINDOW_NM`) around the moving objects. ``newcomers``
    (default: only without ``objects``) lets cells that no object reaches enter as new ids.
    ``pixel_nm`` (default 4 nm) converts the nm sizes; ``options`` (in px) override them.
    """
    options = {**step_sizes(pixel_nm), **options}
    if window is None:
        window = int(round(WINDOW_NM / float(pixel_nm or DEFAULT_PIXEL_NM)))
    dtype = np.uint32 if labels.dtype.itemsize <= 4 else labels.dtype
    out = labels.astype(dtype, copy=True)
    reference = out[ref_slice]
    targets = None
    if objects is not None:  # ids beyond the dtype cannot be in the labels
        targets = np.array(sorted(o for o in objects if o <= np.iinfo(dtype).max), dtype)
    if targets is not None:
        reference = np.where(np.isin(reference, targets), reference, 0)
    newcomers = objects is None if newcomers is None else newcomers
    next_id = int(labels.max()) + 1
    first_new = next_id  # ids from here on are newcomers
    sequences = [range(ref_slice + 1, z_hi + 1), range(ref_slice - 1, z_lo - 1, -1)]
    total = (z_hi - z_lo) or 1
    done = 0
    for sequence in sequences:
        previous = reference
        for z in sequence:
            check_cancel(cancel)
            if targets is None:
                new = propagation_step(
                    previous, membrane[z], next_id=next_id, newcomers=newcomers, **options
                )
                previous = new
            else:
                new = _step_targets(
                    previous,
                    out[z],
                    membrane[z],
                    targets,
                    next_id=next_id,
                    first_new=first_new,
                    newcomers=newcomers,
                    window=window,
                    options=options,
                )
                # Only the moving objects carry on to the next slice.
                previous = np.where(np.isin(new, targets) | (new >= first_new), new, 0)
            next_id = max(next_id, int(new.max()) + 1)
            out[z] = new
            done += 1
            report(progress, done, total, f"propagating (slice {z})")
    return out
