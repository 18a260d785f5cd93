"""The in-plane pixel size of a stack whose file does not say it, estimated from its cells.

Neurites in EM neuropil have a typical cross-section, so the mean distance from a point inside
a cell to the nearest membrane is a physical length (about :data:`MEAN_DISTANCE_NM`, measured on
the training data: docs/results/pixel-size-estimate.md). The membrane network, trained on 4-12 nm
pixels, finds the membranes at the stack's own resolution; the mean distance in pixels then gives
the pixel size, as cellpose estimates a cell diameter. An estimate outside the network's range is
refined once with the stack resampled into it. A map with no cell structure (a blank or noise
image) gives no estimate: :class:`PixelSizeError`.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

# Mean distance to the nearest membrane over the inside of cells, in nm: chosen on the training
# stacks (ISBI 2012, gala train, Gerhard VNC: 43-69 nm; 53 keeps all within 25 %), see
# docs/results/pixel-size-estimate.md.
MEAN_DISTANCE_NM = 53.0
# A usable map: membranes on 5-75 % of the area, mostly confident, and enough cells.
MEMBRANE_SHARE = (0.05, 0.75)
MIN_CONFIDENCE = 0.6
MIN_CELLS = 5
SAMPLE_SLICES = 5
SAMPLE_EDGE = 512


class PixelSizeError(ValueError):
    """The image shows no cell structure to estimate a pixel size from."""


@dataclass(frozen=True)
class PixelSizeEstimate:
    """An estimated in-plane pixel size and how it was found.

    Attributes
    ----------
    pixel_nm : float
    mean_distance_px : float
        Mean distance to the nearest membrane inside cells, in pixels of the stack.
    cells : int
        Cells the estimate rests on.
    how : str
        One line for the user.
    """

    pixel_nm: float
    mean_distance_px: float
    cells: int
    how: str


def cell_statistics(membrane: np.ndarray) -> tuple[float, int, float, float]:
    """(mean distance to membrane inside cells in px, cells, membrane share, confidence).

    Examples
    --------
    >>> membrane = np.zeros((1, 41, 41), np.float32)
    >>> membrane[:, ::10] = 1; membrane[:, :, ::10] = 1  # 16 cells of 9 x 9 px
    >>> distance, cells, share, confidence = cell_statistics(membrane)
    >>> cells, round(distance, 2)
    (16, 2.04)
    """
    membrane = np.asarray(membrane, np.float32)
    inside = membrane < 0.5
    distances, cells = [], 0
    for plane in inside:
        lab, n = ndi.label(plane)
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        cells += int((sizes >= 9).sum())
        distance = ndi.distance_transform_edt(np.pad(plane, 1, constant_values=False))[1:-1, 1:-1]
        distances.append(distance[plane])
    values = np.concatenate(distances) if distances else np.zeros(0)
    share = 1.0 - float(inside.mean())
    confidence = float(np.mean(np.abs(2.0 * membrane - 1.0)))
    return (float(values.mean()) if values.size else 0.0), cells, share, confidence


def _sample(image: np.ndarray) -> np.ndarray:
    """:data:`SAMPLE_SLICES` slices spread through the stack (cell sizes vary along it),
    each cropped to :data:`SAMPLE_EDGE` around the centre."""
    depth, height, width = image.shape
    count = min(SAMPLE_SLICES, depth)
    slices = np.unique(np.linspace(0, depth - 1, count + 2)[1:-1].round().astype(int))
    y0 = max(0, (height - SAMPLE_EDGE) // 2)
    x0 = max(0, (width - SAMPLE_EDGE) // 2)
    # Slice by slice: a lazy array (Zarr, a file on disk) reads only these planes.
    return np.stack(
        [np.asarray(image[int(z), y0 : y0 + SAMPLE_EDGE, x0 : x0 + SAMPLE_EDGE]) for z in slices]
    )


def estimate_pixel_size(
    image: np.ndarray,
    *,
    model: str | None = None,
    device: str = "auto",
) -> PixelSizeEstimate:
    """Estimate the in-plane pixel size (nm) of a (Z, Y, X) or (Y, X) EM image (an array, or a
    lazy one: only the sampled planes are read).

    Raises
    ------
    PixelSizeError
        When the membrane map shows no cells (blank, noise, or not EM of neuropil).
    """
    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.inference.resampling import needs_resampling, work_pixel_nm
    from napari_emseg.models.cards import get_card
    from napari_emseg.segmentation.normalization import check_has_content

    if not hasattr(image, "shape"):
        image = np.asarray(image)
    stack = _sample(image[None] if len(image.shape) == 2 else image)
    check_has_content(stack)
    card = get_card(model)
    if not card.needs_torch:  # a filter knows no scale: the default network finds the cells
        card = get_card(None)
    pixel, seen_at, how = None, None, "at the stack's own resolution"
    for _ in range(2):
        membrane = predict_membrane(stack, model=card, device=device, pixel_nm=seen_at)
        distance, cells, share, confidence = cell_statistics(membrane)
        usable = (
            MEMBRANE_SHARE[0] <= share <= MEMBRANE_SHARE[1]
            and confidence >= MIN_CONFIDENCE
            and cells >= MIN_CELLS
            and distance > 0
        )
        if not usable:
            raise PixelSizeError(
                "the pixel size cannot be estimated: the image shows no cell membranes "
                f"({cells} cells, membranes on {100 * share:.0f} % of it); give the voxel size "
                "(--voxel-size Z Y X)"
            )
        pixel = MEAN_DISTANCE_NM / distance
        work = work_pixel_nm(pixel, card.pixel_nm, card.pixel_range_nm)
        if seen_at is not None or not needs_resampling(pixel, work):
            break
        seen_at = pixel  # the network saw it outside its range: look again inside it
        how = "with the stack resampled into the network's pixel range"
    return PixelSizeEstimate(
        pixel_nm=round(float(pixel), 2),
        mean_distance_px=round(float(distance), 3),
        cells=int(cells),
        how=(
            f"estimated from the size of {cells} cells on the membrane map ({how}): mean "
            f"distance to a membrane {distance:.1f} px against {MEAN_DISTANCE_NM:g} nm in "
            "typical neuropil"
        ),
    )
