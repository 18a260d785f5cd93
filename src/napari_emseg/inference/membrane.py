"""Membrane prediction over a stack with any registered model (classical or network)."""

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback, stage_progress
from napari_emseg.inference.loading import load_network
from napari_emseg.inference.resampling import (
    back_to_shape,
    needs_resampling,
    to_pixel_size,
    work_pixel_nm,
)
from napari_emseg.models.cards import ModelCard, default_model, get_card
from napari_emseg.segmentation.normalization import normalize_intensity
from napari_emseg.segmentation.ridge import ridge_membrane

# Thinner stacks make the xz and yz planes a few pixels tall, mostly mirrored padding.
MIN_PLANE_DEPTH = 16


def build_model(card: ModelCard):
    """A fresh network of a membrane card with its checked weights (see ``load_network``)."""
    return load_network(card)


def default_tile(device_type: str) -> int:
    # The largest tile edge: tiles are then sized to the slice (TileGrid.plan), so a small slice
    # is one tile. Speed per pixel on the CPU was flat from 128 to 512 px (docs/performance.md).
    return 512


def predict_membrane(
    image: np.ndarray,
    *,
    model: str | ModelCard | None = None,
    device: str = "auto",
    tile: int | None = None,
    overlap: int = 32,
    batch_size: int | None = None,
    value_range: tuple[float, float] | None = None,
    pixel_nm: float | None = None,
    resample: bool = True,
    views: int = 1,
    planes: int = 1,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Membrane probability (float32, [0, 1], 1 = membrane) of a (Z, Y, X) EM stack.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X) or (Y, X)
        Raw intensities, any numeric dtype.
    model : str or ModelCard, optional
        A registered model name (see :func:`napari_emseg.models.cards.list_models`) or the path of
        a model card ``.json``; when omitted, the default for the pixel size
        (:func:`~napari_emseg.models.cards.default_model`).
    device : {"auto", "cpu", "cuda", "mps"}
        Where a network runs; ``auto`` prefers CUDA, then MPS, then the CPU.
    value_range : (float, float), optional
        Raw intensities mapped to 0 and 1 before prediction; by default the 0.5 and 99.5
        percentiles of ``image`` (see :func:`~.normalization.normalize_intensity`).
        Blockwise processing passes the whole volume's range so that every block matches.
    pixel_nm : float, optional
        The stack's in-plane pixel size. With ``resample`` (the default), slices the model does
        not cover are resampled for the network and the map back to the input grid: a model
        trained over a range of pixel sizes runs stacks inside it at their own resolution,
        finer stacks are shrunk to it, coarser ones enlarged by at most 1.25x
        (:func:`~napari_emseg.inference.resampling.work_pixel_nm`); unknown sizes are used
        as they are.
    views : int
        The network's map is the mean over the first ``views`` of the 8 flips and rotations of
        the slices (test-time augmentation; each costs one prediction).
    planes : {1, 3}
        3: the mean of the maps of the sections and of the stack's xz and yz planes, for
        near-isotropic voxels (FIB-SEM), where a membrane lying nearly flat in a section is a
        blur there and a line across the other planes. Each plane costs one prediction.
        Stacks of fewer than ``MIN_PLANE_DEPTH`` slices and single slices use the sections only.

    Examples
    --------
    >>> stack = np.full((1, 32, 32), 200, np.uint8); stack[:, 16] = 40
    >>> prob = predict_membrane(stack, model="ridge")
    >>> prob.shape, bool(prob[0, 16, 8] > 0.5)
    ((1, 32, 32), True)
    """
    if model is None:  # the nearest shipped card for this pixel size
        model = default_model(pixel_nm)
    card = model if isinstance(model, ModelCard) else get_card(model)
    image = np.asarray(image)
    squeeze = image.ndim == 2
    if planes not in (1, 3):
        raise ValueError(f"planes must be 1 or 3, got {planes}")
    if squeeze or image.shape[0] < MIN_PLANE_DEPTH:  # too few slices for a plane across them
        planes = 1
    stack = normalize_intensity(image[None] if squeeze else image, value_range=value_range)
    work_nm = work_pixel_nm(pixel_nm, card.pixel_nm, card.pixel_range_nm)
    rescale = resample and card.needs_torch and needs_resampling(pixel_nm, work_nm)
    net = device_type = None
    if card.needs_torch:
        from napari_emseg.inference.devices import resolve_device
        from napari_emseg.inference.loading import cached_network

        device_type = resolve_device(device)
        net = cached_network(card, str(device_type))

    def sections(planes_stack: np.ndarray, report_to, *, across: bool = False) -> np.ndarray:
        """The map of one orientation's slices (``across``: planes across the sections),
        predicted at the work pixel size."""
        grid = planes_stack.shape
        if rescale:
            planes_stack = to_pixel_size(planes_stack, pixel_nm, work_nm)  # type: ignore[arg-type]
        if net is None:
            prob = ridge_membrane(planes_stack, progress=report_to, cancel=cancel)
        else:
            cpu = device_type.type == "cpu"
            prob = _network_map(
                net, planes_stack, device_type, views=views, tile=tile,
                overlap=min(overlap, ACROSS_OVERLAP) if across else overlap,
                batch_size=batch_size or (ACROSS_CPU_BATCH if across and cpu else None),
                progress=report_to, cancel=cancel,
            )  # fmt: skip
        return np.clip(back_to_shape(prob, grid), 0.0, 1.0) if rescale else prob

    if planes == 1:
        prob = sections(stack, progress)
    else:  # each transposition is its own inverse
        prob = np.zeros(stack.shape, np.float32)
        for k, axes in enumerate(PLANE_AXES):
            part = stage_progress(progress, k / 3, (k + 1) / 3, PLANE_NAMES[k])
            turned = np.ascontiguousarray(stack.transpose(axes))
            prob += sections(turned, part, across=k > 0).transpose(axes)
        prob /= 3
    return prob[0] if squeeze else prob


# The sections (z, y, x), the xz planes (y, z, x) and the yz planes (x, y, z).
PLANE_AXES = ((0, 1, 2), (1, 0, 2), (2, 1, 0))
PLANE_NAMES = ("sections", "xz planes", "yz planes")
# Planes across the sections are as short as the stack is deep, so the mirrored halo is a large
# share of each tile and each call is small. A 16 px overlap and batches of 4 (the same values as
# one by one) took an xz pass of a 60x250x250 stack from 11.5 to 7.8 s on 2 CPU cores, and on
# gala train slices 40-49 left `propagate` from four slices at 0.0155 (0.0163 with 32 px).
ACROSS_OVERLAP = 16
ACROSS_CPU_BATCH = 4


def _network_map(
    net, stack: np.ndarray, device, *, views: int, tile, overlap: int, batch_size, progress, cancel
) -> np.ndarray:
    """A network's map of a normalised stack, tiled, over ``views`` flips and rotations, with
    smaller tiles or the CPU when the device runs out of memory."""
    from napari_emseg.inference.fallback import run_with_fallback
    from napari_emseg.inference.tta import predict_tiled_tta

    def predict(where, size: int, batch: int) -> np.ndarray:
        return predict_tiled_tta(
            net,
            stack,
            transforms=views,
            device=where,
            tile=size,
            overlap=overlap,
            batch_size=batch,
            progress=progress,
            cancel=cancel,
        )

    return run_with_fallback(
        predict,
        device=device,
        tile=tile or default_tile(device.type),
        batch_size=batch_size or (32 if device.type == "cuda" else 1),  # by docs/performance.md
    )
