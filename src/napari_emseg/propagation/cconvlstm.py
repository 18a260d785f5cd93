"""The learned propagator: the consistent ConvLSTM in overlapping xy patches and z windows.

Moving away from the reference slice in each direction, the stack is cut into z windows of
``window`` slices that share one slice: the first slice of a window is its reference (the
stitched result of the window before, or the user's slice). Each window is cut into
overlapping xy patches; the network propagates the masks of the objects of each patch's
reference through the window; every pixel takes the object with the highest probability
(above 0.5) from the patch whose core (the part nearest its centre) holds it, so patches
stitch without seams and an id can only come from the reference objects of that patch.

The network works at about twice its card's pixel size, never coarser than
:data:`NETWORK_MAX_PIXEL_NM` or the card's own pixel, whichever is larger (the stack's
``pixel_nm`` is binned to it: stacks of 6.3 nm and more take the STC card trained at 20 nm,
which runs 10 nm stacks binned 2x; finer ones the 8 nm card, which bins 4 nm 4x), in
bfloat16 where the device has it (:func:`~napari_emseg.inference.devices.autocast_dtype`).
Its masks, eroded, are markers of a watershed of the full-resolution membrane map: the network
decides which object is where, the membrane map places the outlines. Pixels that no marker
reaches are flooded by their neighbours; cells of the slice's own watershed that no object
covers enter as new ids (objects entering the volume), as in the classical propagator.
"""

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg._timing import parallel_stages, timed
from napari_emseg.inference.cpu_threads import machine_cores
from napari_emseg.inference.devices import autocast_dtype
from napari_emseg.inference.loading import cached_network
from napari_emseg.models.cards import (
    CCONVLSTM_WINDOW,
    get_propagation_card,
    propagation_card_for,
)
from napari_emseg.propagation.watershed import eroded_seeds, newcomer_markers, step_sizes
from napari_emseg.segmentation.binning import bin_ids, bin_mean
from napari_emseg.segmentation.normalization import normalize_intensity
from napari_emseg.segmentation.watershed import watershed_slice

DEFAULT_IMAGE_PIXEL_NM = 4.0  # the shipped membrane model's (ISBI 2012) pixel size
# Newcomer cells smaller than this are left to their neighbours: 200 px at 4 nm, chosen on
# ISBI slices 8-17 (smaller newcomers did not lower the error there, and each one costs time).
NEWCOMER_MIN_AREA_NM2 = 3200.0
# The coarsest pixel the network runs at. ISBI's 4 nm binned to 16 nm instead of the card's
# 8 nm halved the time and lowered the error on ISBI slices 0-19 (ARE 0.241 -> 0.228); gala's
# 10 nm at 16 or 20 nm raised it (0.044 -> 0.052, 0.058): binning is by whole pixels, to
# about this size (docs/performance.md).
NETWORK_MAX_PIXEL_NM = 16.0
# How far above that size the nearest whole binning may land (4.2 nm x 4 = 16.8 nm is kept;
# 10 nm x 2 = 20 nm is not). Nearest, not floor: an over-estimated pixel then loses one step
# of binning, not two. On ISBI slices 0-9 / 10-19 (4 nm known), binning by 4 scored 0.099 /
# 0.074, by 3 0.097 / 0.086, by 2 0.109 / 0.095.
BINNING_SLACK = 1.1
# Patch edges (network pixels) near the training crops' 64 px: each window takes the one that
# costs the least network work (:func:`cheapest_patch`), patches sharing at least
# PATCH_OVERLAP px. Chosen on ISBI slices 0-19 and gala train from 17 reference slices
# (docs/results/patch-choice.md): 48-64 px sharing 8 px scored as 56-72 px sharing 16 (mean
# ARE 0.0959 against 0.0975) with 28-38 % less network time; fixed 40 px patches scored worse.
PATCH_CHOICES = (48, 56, 64)
PATCH_OVERLAP = 8


def network_factor(pixel_nm: float, card_pixel_nm: float) -> int:
    """The in-plane binning of a ``pixel_nm`` stack for the network: the whole factor nearest
    to twice the card's pixel size, never more than :data:`BINNING_SLACK` above
    :data:`NETWORK_MAX_PIXEL_NM`.

    Nearest, not the largest below: an estimated pixel size a little too large (5.5 nm for
    ISBI's 4 nm) would otherwise halve the binning.

    Examples
    --------
    >>> [network_factor(p, 8.0) for p in (4.0, 4.2, 5.0, 5.5, 8.0, 10.0, 20.0)]
    [4, 4, 3, 3, 2, 1, 1]
    >>> [network_factor(p, 20.0) for p in (4.0, 5.0, 8.0, 10.0, 12.0, 20.0)]
    [5, 4, 2, 2, 1, 1]
    """
    target = min(2 * card_pixel_nm, max(NETWORK_MAX_PIXEL_NM, card_pixel_nm))
    factor = max(1, round(target / pixel_nm))
    while factor > 1 and factor * pixel_nm > BINNING_SLACK * target:
        factor -= 1
    return factor


def patch_starts(size: int, patch: int, overlap: int) -> list[int]:
    """Starts of patches of edge ``patch`` covering ``size`` with at least ``overlap`` shared.

    Examples
    --------
    >>> patch_starts(300, 128, 32), patch_starts(100, 128, 32)
    ([0, 86, 172], [0])
    """
    if size <= patch:
        return [0]
    count = int(np.ceil((size - overlap) / (patch - overlap)))
    return [int(round(s)) for s in np.linspace(0, size - patch, count)]


def core_bounds(starts: list[int], patch: int, size: int) -> list[tuple[int, int]]:
    """The part of each patch nearer its centre than any other patch's centre.

    Examples
    --------
    >>> core_bounds([0, 86, 172], 128, 300)
    [(0, 107), (107, 193), (193, 300)]
    """
    centres = [s + min(patch, size) / 2 for s in starts]
    cuts = [0, *(int((a + b) // 2) for a, b in zip(centres, centres[1:], strict=False)), size]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _patch_objects(reference: np.ndarray, min_area: int) -> np.ndarray:
    ids, counts = np.unique(reference, return_counts=True)
    return ids[(ids != 0) & (counts >= min_area)]


def patch_jobs(reference: np.ndarray, patch: int, overlap: int, min_area: int = 4) -> list:
    """One ``(y, x, core rows, core columns, object ids)`` per patch that holds objects."""
    height, width = reference.shape
    ys, xs = patch_starts(height, patch, overlap), patch_starts(width, patch, overlap)
    y_cores, x_cores = core_bounds(ys, patch, height), core_bounds(xs, patch, width)
    ph, pw = min(patch, height), min(patch, width)
    jobs = []
    for y, (cy0, cy1) in zip(ys, y_cores, strict=True):
        for x, (cx0, cx1) in zip(xs, x_cores, strict=True):
            ids = _patch_objects(reference[y : y + ph, x : x + pw], min_area)
            if ids.size:
                jobs.append((y, x, (cy0 - y, cy1 - y), (cx0 - x, cx1 - x), ids))
    return jobs


def cheapest_patch(
    reference: np.ndarray, overlap: int, min_area: int = 4, choices=PATCH_CHOICES
) -> tuple[int, list]:
    """The edge of ``choices`` with the least network work for ``reference``, and its
    :func:`patch_jobs`.

    The network's work is one patch area per object per patch, so it depends on how the
    layout fits the slice (with 8 px shared, a 250 px slice takes 7x7 patches of 48 but 5x5 of
    64) and on how many objects straddle patches.

    Examples
    --------
    >>> cells = (np.arange(128)[:, None] // 16) * 8 + np.arange(128) // 16 + 1  # 16 px cells
    >>> cheapest_patch(cells, 8)[0]  # 3x3 patches of 48 px hold fewer cells than 3x3 of 56
    48
    """
    choices = tuple(int(edge) for edge in choices)
    layouts = {patch: patch_jobs(reference, patch, overlap, min_area) for patch in choices}

    def work(patch: int) -> int:
        side = min(patch, reference.shape[0]) * min(patch, reference.shape[1])
        return side * sum(ids.size for *_, ids in layouts[patch])

    middle = sorted(choices)[len(choices) // 2]  # ties go to the edge nearest the middle one
    best = min(choices, key=lambda patch: (work(patch), abs(patch - middle)))
    return best, layouts[best]


def predict_window(
    net,
    frames: np.ndarray,
    reference: np.ndarray,
    *,
    patch: int | tuple[int, ...] | None,
    overlap: int,
    batch: int,
    device: torch.device,
    min_area: int = 4,
    padded: bool = False,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Labels of frames 1.. of ``frames`` (T, C, H, W) from the ids of frame 0, ``reference``.

    Returns (T - 1, H, W) ids: each pixel has the reference object with the highest
    probability above 0.5 in the patch whose core holds it, else 0. ``dtype`` (e.g.
    ``torch.bfloat16``) runs the network under autocast; None keeps float32.
    """
    t_len, _, height, width = frames.shape
    if isinstance(patch, (int, np.integer)):
        jobs = patch_jobs(reference, patch, overlap, min_area)
    else:
        patch, jobs = cheapest_patch(reference, overlap, min_area, patch or PATCH_CHOICES)
    ph, pw = min(patch, height), min(patch, width)
    out = np.zeros((t_len - 1, height, width), reference.dtype)
    for group in _batches(jobs, batch, padded):
        clip = np.stack([frames[:, :, y : y + ph, x : x + pw] for y, x, *_ in group])
        counts = torch.tensor([ids.size for *_, ids in group])
        masks = np.zeros((len(group), int(counts.max()), ph, pw), np.float32)
        for b, (y, x, *_, ids) in enumerate(group):
            masks[b, : ids.size] = reference[y : y + ph, x : x + pw][None] == ids[:, None, None]
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
        ):
            logits = net(
                torch.from_numpy(clip).to(device),
                torch.from_numpy(masks).to(device),
                object_counts=counts.to(device),
            )
        real = torch.arange(masks.shape[1], device=device)[None] < counts.to(device)[:, None]
        logits = logits[:, 1:].float().masked_fill(~real[:, None, :, None, None], -torch.inf)
        best = logits.max(dim=2)
        winner, confident = best.indices.cpu().numpy(), (best.values > 0).cpu().numpy()
        for b, (y, x, (ry0, ry1), (rx0, rx1), ids) in enumerate(group):
            labels = np.where(confident[b], ids[winner[b]], 0)
            out[:, y + ry0 : y + ry1, x + rx0 : x + rx1] = labels[:, ry0:ry1, rx0:rx1]
    return out


def _batches(jobs: list, batch: int, padded: bool) -> list[list]:
    """Patches ``batch`` at a time: in order of their object count (``padded``), or only
    patches of equal counts together.

    A batch pads its patches' objects to its largest count; the network masks the padding out
    of its sweeps over objects (``object_counts``), so a patch's result never depends on its
    batch. Padding buys fewer, fuller batches with compute on empty objects; equal counts waste
    nothing but make many small batches. On the CPU with torch on one thread per direction,
    padded batches of 4 were the fastest: 9.8 s against 11.5 s (equal counts, 8) for the
    60x250x250 benchmark stack at 10 nm, 10.8 against 11.5 s at 4 nm (16 at 10 nm: 11.4 s).
    With torch on two threads for one direction, equal counts had won (7.7 s against 9.5 s of
    network time for 12 ISBI slices).
    """
    ordered = sorted(jobs, key=lambda job: job[-1].size)
    if padded:
        return [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    by_count: dict[int, list] = {}
    for job in ordered:
        by_count.setdefault(job[-1].size, []).append(job)
    return [same[i : i + batch] for same in by_count.values() for i in range(0, len(same), batch)]


def _upsample(labels: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling to ``shape`` (edges past the binned size repeat)."""
    up = np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)
    pad = ((0, shape[0] - up.shape[0]), (0, shape[1] - up.shape[1]))
    return np.pad(up, pad, mode="edge")


def outline_slice(
    coarse: np.ndarray,
    membrane_2d: np.ndarray,
    *,
    factor: int,
    next_id: int,
    fixed: np.ndarray | None = None,
    newcomers: bool = True,
    cell_min_size: int = 50,
    newcomer_core: float = 3.0,
    smoothing: float = 1.0,
) -> np.ndarray:
    """Full-resolution labels of one slice from the network's (binned) labels.

    The network's objects, eroded, are markers; ``fixed`` objects keep exactly their voxels;
    with ``newcomers``, uncovered cells of the slice's own watershed enter with ids from
    ``next_id``; a watershed of the smoothed membrane map grows the markers.
    """
    up = _upsample(coarse, factor, membrane_2d.shape)
    markers = eroded_seeds(up, float(factor + 1)).astype(np.int64)
    if fixed is not None:
        markers = np.where(fixed != 0, fixed, np.where(up != 0, markers, 0))
    if newcomers:
        cells = watershed_slice(membrane_2d, min_size=cell_min_size)
        new = newcomer_markers(cells, markers, next_id, 0.05, newcomer_core)
        markers = np.where((markers == 0) & (new != 0), new, markers)
    if not markers.any():
        return np.zeros(membrane_2d.shape, np.int64)
    relief = ndi.gaussian_filter(membrane_2d.astype(np.float32), smoothing)
    return watershed(relief, markers)


def outline_window(
    coarse: np.ndarray,
    membrane: np.ndarray,
    *,
    factor: int,
    next_id: int,
    fixed: list[np.ndarray] | None,
    targets: np.ndarray | None,
    threads: int | None = None,
    **options,
) -> tuple[list[np.ndarray], int]:
    """:func:`outline_slice` of every slice of a window, in parallel threads (the watershed
    releases the GIL); the result and the next free id are those of a loop over the slices.

    Each slice takes newcomer ids from its own range; they are renumbered in slice order.
    """
    stride = int(np.prod(membrane.shape[1:])) + 1
    first = next_id

    def outline(k: int) -> np.ndarray:
        new = outline_slice(
            coarse[k],
            membrane[k],
            factor=factor,
            next_id=first + k * stride,
            fixed=None if fixed is None else fixed[k],
            **options,
        )
        if fixed is not None:
            new = np.where(fixed[k] != 0, fixed[k], np.where(np.isin(new, targets), new, 0))
        return new

    workers = min(len(coarse), threads or os.cpu_count() or 1)
    if workers <= 1:
        outlined = [outline(k) for k in range(len(coarse))]
    else:
        with ThreadPoolExecutor(workers) as pool:
            outlined = list(pool.map(outline, range(len(coarse))))
    result = []
    for k, new in enumerate(outlined):
        new, next_id = _renumber_newcomers(new, first + k * stride, next_id)
        result.append(new)
    return result, next_id


def _renumber_newcomers(labels: np.ndarray, first: int, next_id: int) -> tuple[np.ndarray, int]:
    """Ids from ``first`` on become ``next_id, next_id + 1, ...`` in their order; the next free id.

    Examples
    --------
    >>> _renumber_newcomers(np.array([3, 1000, 1002, 1000]), 1000, 7)
    (array([3, 7, 8, 7]), 9)
    """
    new = labels >= first
    if not new.any():
        return labels, max(next_id, int(labels.max(initial=0)) + 1)
    ids, inverse = np.unique(labels[new], return_inverse=True)
    labels = labels.copy()
    labels[new] = next_id + inverse
    return labels, max(next_id + ids.size, int(labels.max()) + 1)


class _SliceCounter:
    """Progress over the slices, reported from either direction's thread."""

    def __init__(self, total: int, progress: ProgressCallback | None):
        self.total, self.done, self.progress = total, 0, progress
        self.lock = threading.Lock()

    def slice_done(self, z: int) -> None:
        with self.lock:
            self.done += 1
            report(self.progress, self.done, self.total, f"propagating (slice {z})")


def _concurrent_directions(
    device: torch.device, threads: int | None, largest_id: int, dtype: np.dtype
) -> bool:
    """Sweep up and down at once on a CPU of several cores (unless ``threads`` says one)?

    Each direction then runs torch on one thread: two independent streams keep both cores
    busy, where one stream on two threads leaves them idle during its GIL-bound steps
    (docs/performance.md). Ids must fit the labels' type with the second range.
    """
    if device.type != "cpu" or (threads is not None and threads < 2):
        return False
    if torch.get_num_threads() < 2 or machine_cores() < 2:
        return False
    return largest_id < np.iinfo(dtype).max


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread per caller for the block (each direction is one caller)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def propagate_cconvlstm(
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
    variant: str = "stc",
    weights: str | None = None,
    device: str = "auto",
    pixel_nm: float | None = None,
    patch: int | tuple[int, ...] | None = None,
    overlap: int = PATCH_OVERLAP,
    window: int | None = None,
    batch: int | None = None,
    padded: bool | None = None,
    newcomers: bool | None = None,
    newcomer_min_size: int | None = None,
    threads: int | None = None,
    network_pixel_nm: float | None = None,
    patch_min_area: int = 4,
) -> np.ndarray:
    """Propagate with the consistent ConvLSTM (see the module doc).

    ``weights`` names a trained network (default ``cconvlstm-<variant>``, or its coarse card
    for coarse pixels: :func:`~napari_emseg.models.cards.propagation_card_for`) or a
    ``.propagation.json`` card; ``pixel_nm`` is the stack's in-plane pixel size (default
    4 nm, as ISBI 2012). ``patch`` and ``overlap`` are in the network's binned pixels; the
    patch is fixed by an int, else the cheapest of these edges for each window's reference
    (default: the card's ``patch_px``, near its training crops, else :data:`PATCH_CHOICES`).
    Newcomer cells smaller than ``newcomer_min_size`` full-resolution pixels (default
    :data:`NEWCOMER_MIN_AREA_NM2` at the pixel size) are left to their neighbours. An object
    enters a patch with at least ``patch_min_area`` of its network pixels inside it.
    ``batch`` patches go through the network at once (default: 64 on a GPU, 4 on the CPU),
    ``padded`` (default: yes) mixes patches of different object counts in a batch;
    ``threads`` outline the slices of a window in parallel (default: one per CPU core; on a
    CPU of several cores the two directions from the reference run at once unless it is 1).
    None of them changes the result. ``window`` slices per z window (default: the card's, else
    :data:`~napari_emseg.models.cards.CCONVLSTM_WINDOW`). ``network_pixel_nm`` sets the pixel
    the network runs at (default: :func:`network_factor`; before, the card's own).
    """
    pixel = float(pixel_nm or DEFAULT_IMAGE_PIXEL_NM)
    card = get_propagation_card(weights or propagation_card_for(variant, pixel))
    patch = patch or card.patch_px
    window = window or card.window or CCONVLSTM_WINDOW
    net = cached_network(card, device)
    torch_device = next(net.parameters()).device
    batch = batch or (64 if torch_device.type == "cuda" else 4)
    padded = True if padded is None else padded
    if network_pixel_nm is None:
        factor = network_factor(pixel, card.pixel_nm)
    else:
        factor = max(1, int(round(network_pixel_nm / pixel)))
    precision = autocast_dtype(torch_device)
    sizes = step_sizes(pixel)
    if newcomer_min_size is None:
        newcomer_min_size = int(round(NEWCOMER_MIN_AREA_NM2 / pixel**2))
    binned_image = normalize_intensity(bin_mean(image, factor))
    frames = np.stack([binned_image, bin_mean(membrane, factor)], axis=1).astype(np.float32)

    dtype = np.uint32 if labels.dtype.itemsize <= 4 else labels.dtype
    out = labels.astype(dtype, copy=True)
    targets = None if objects is None else np.array(sorted(objects), dtype)
    newcomers = objects is None if newcomers is None else newcomers
    first_id = int(labels.max()) + 1
    counter = _SliceCounter(max(z_hi - z_lo, 1), progress)

    def sweep(step: int, end: int, next_id: int, outline_threads: int | None) -> int:
        """Propagate from the reference to ``end`` (one direction); the next free id."""
        current = ref_slice
        while current != end:
            check_cancel(cancel)
            zs = list(range(current, end + step, step))[:window]
            reference = out[current]
            if targets is not None:
                reference = np.where(np.isin(reference, targets), reference, 0)
            with timed("propagation"):
                coarse = predict_window(
                    net,
                    frames[zs],
                    bin_ids(reference[None], factor)[0],
                    patch=patch,
                    overlap=overlap,
                    batch=batch,
                    device=torch_device,
                    padded=padded,
                    dtype=precision,
                    min_area=patch_min_area,
                )
            fixed = None
            if targets is not None:  # the other objects keep exactly their voxels
                fixed = [np.where(np.isin(out[z], targets), 0, out[z]) for z in zs[1:]]
            with timed("outline"):
                outlined, next_id = outline_window(
                    coarse,
                    membrane[zs[1:]],
                    factor=factor,
                    next_id=next_id,
                    fixed=fixed,
                    targets=targets,
                    newcomers=newcomers,
                    cell_min_size=newcomer_min_size,
                    threads=outline_threads,
                    newcomer_core=sizes["newcomer_core"],
                    smoothing=sizes["smoothing"],
                )
            for z, new in zip(zs[1:], outlined, strict=True):
                out[z] = new
                counter.slice_done(z)
            current = zs[-1]
        return next_id

    up, down = ref_slice != z_hi, ref_slice != z_lo
    # Newcomers below the reference first take ids from a range of their own, far above any
    # the upward sweep can reach (each newcomer has a voxel), then follow the upward ones.
    down_first = first_id + out.size
    if up and down and _concurrent_directions(torch_device, threads, down_first + out.size, dtype):
        with _one_torch_thread(), parallel_stages() as run, ThreadPoolExecutor(2) as pool:
            runs = [
                pool.submit(run, sweep, 1, z_hi, first_id, 1),
                pool.submit(run, sweep, -1, z_lo, down_first, 1),
            ]
            after_up = runs[0].result()
            runs[1].result()
        below = out[z_lo:ref_slice]
        below[below >= down_first] -= np.asarray(down_first - after_up, dtype)
    else:
        next_id = sweep(1, z_hi, first_id, threads)
        sweep(-1, z_lo, next_id, threads)
    return out
