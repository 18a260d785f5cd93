"""Membrane prediction over a stack with any registered model (classical or network)."""

import numpy as np

from napari_emseg._progress import CancelCheck, ProgressCallback
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
    stack = normalize_intensity(image[None] if squeeze else image, value_range=value_range)
    grid = stack.shape
    work_nm = work_pixel_nm(pixel_nm, card.pixel_nm, card.pixel_range_nm)
    rescale = resample and card.needs_torch and needs_resampling(pixel_nm, work_nm)
    if rescale:
        stack = to_pixel_size(stack, pixel_nm, work_nm)  # type: ignore[arg-type]
    if not card.needs_torch:
        prob = ridge_membrane(stack, progress=progress, cancel=cancel)
    else:
        from napari_emseg.inference.devices import resolve_device
        from napari_emseg.inference.fallback import run_with_fallback
        from napari_emseg.inference.loading import cached_network
        from napari_emseg.inference.tta import predict_tiled_tta

        torch_device = resolve_device(device)
        net = cached_network(card, str(torch_device))

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

        prob = run_with_fallback(
            predict,
            device=torch_device,
            tile=tile or default_tile(torch_device.type),
            batch_size=batch_size
            or (32 if torch_device.type == "cuda" else 1),  # by docs/performance.md
        )
    if rescale:
        prob = np.clip(back_to_shape(prob, grid), 0.0, 1.0)
    return prob[0] if squeeze else prob
