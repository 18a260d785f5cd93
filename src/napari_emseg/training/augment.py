"""Data augmentation of (image, membrane) crops, numpy only.

Geometric transforms (a random zoom, the 8 flips/rotations and a smooth elastic deformation) move
image and label together; the label is interpolated linearly and thresholded at 0.5 so it stays
binary and aligned.
Photometric transforms (contrast, brightness, noise and simulated section artefacts) touch the
image only: the membranes under a fold or a blurred patch are still where they were.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_emseg.segmentation.dihedral import dihedral


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and strengths of the augmentations (intensities are normalised, ~[0, 1]).

    ``margin`` extra pixels are sampled around each crop so that the elastic deformation pulls in
    real image rather than padding. ``scale_jitter`` ``j`` > 1 zooms every crop by a factor drawn
    log-uniformly from ``[1/j, j]`` as it is cut (:func:`zoomed_crop`, done by the crop sampler),
    so the network sees each source around its own pixel size; 1 = off.
    """

    flips: bool = True
    elastic_prob: float = 0.5
    elastic_sigma: float = 4.0  # px, std of the control-point displacements
    elastic_spacing: int = 48  # px between control points: coarse, so the field is smooth
    intensity_prob: float = 0.8
    contrast: float = 0.25  # contrast factor drawn from [1 - c, 1 + c]
    brightness: float = 0.1
    noise_prob: float = 0.5
    noise_sigma: float = 0.05
    artefact_prob: float = 0.0
    margin: int = 16
    scale_jitter: float = 1.0

    @classmethod
    def off(cls) -> "AugmentConfig":
        """No augmentation at all (validation, tests)."""
        return cls(False, 0.0, 0.0, 48, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)


def zoomed_crop(
    image: np.ndarray,
    label: np.ndarray,
    *,
    factor: float,
    origin: tuple[float, float],
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop of a slice magnified by ``factor``, image and label together.

    The crop covers ``size / factor`` source pixels from ``origin`` (y, x; fractional allowed);
    beyond the slice the image is mirrored. The image is interpolated linearly, the label
    linearly and thresholded at 0.5, so it stays binary and aligned with the image. When
    shrinking, the image is anti-aliased first and the label max-filtered over the larger pixel,
    so a crop looks like a coarser acquisition and its membranes stay closed.

    Parameters
    ----------
    image, label : ndarray, shape (Y, X)
        A normalised slice and its 0/1 membrane label.
    factor : float
        Zoom: > 1 magnifies (structures get bigger), < 1 shrinks.
    origin : (float, float)
        Source coordinate of the crop's top-left corner (pixel edge, not centre).
    size : int
        Edge of the returned crop.

    Returns
    -------
    image, label : ndarray of float32, shape (size, size)

    Examples
    --------
    >>> img = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> out, lab = zoomed_crop(img, img > 7, factor=2.0, origin=(1.0, 0.0), size=4)
    >>> out.shape, lab[:, 0].tolist()
    ((4, 4), [0.0, 0.0, 1.0, 1.0])
    """
    image = np.asarray(image, np.float32)
    label = np.asarray(label, np.float32)
    if factor < 1.0:
        # Filter only the window the crop reads (plus the filters' reach), not the whole slice.
        reach = int(np.ceil(2.0 / factor)) + 2
        extent = size / float(factor)
        y0 = max(0, int(np.floor(origin[0])) - reach)
        x0 = max(0, int(np.floor(origin[1])) - reach)
        y1 = min(image.shape[0], int(np.ceil(origin[0] + extent)) + reach)
        x1 = min(image.shape[1], int(np.ceil(origin[1] + extent)) + reach)
        image, label = image[y0:y1, x0:x1], label[y0:y1, x0:x1]
        origin = (origin[0] - y0, origin[1] - x0)
        # Shrinking mimics a coarser acquisition: anti-alias the image as a larger pixel would
        # (skimage's sigma), and keep every membrane the larger pixel touches so that thin
        # membranes stay closed lines instead of aliasing into gaps (which would merge cells).
        image = ndi.gaussian_filter(image, 0.5 * (1.0 / factor - 1.0))
        label = ndi.maximum_filter(label, size=max(1, int(round(1.0 / factor))))
    centres = (np.arange(size, dtype=np.float64) + 0.5) / float(factor) - 0.5
    yy = (origin[0] + centres)[:, None]
    xx = (origin[1] + centres)[None, :]
    coords = np.stack(np.broadcast_arrays(yy, xx)).astype(np.float32)
    out = ndi.map_coordinates(image, coords, order=1, mode="reflect")
    lab = ndi.map_coordinates(label, coords, order=1, mode="reflect")
    return out.astype(np.float32), (lab >= 0.5).astype(np.float32)


def elastic_field(
    shape: tuple[int, int], rng: np.random.Generator, *, sigma: float, spacing: int
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth displacement fields (dy, dx): random control points upsampled with cubic splines."""
    coarse = (max(2, -(-shape[0] // spacing) + 1), max(2, -(-shape[1] // spacing) + 1))
    fields = []
    for _ in range(2):
        grid = rng.normal(0.0, sigma, coarse).astype(np.float32)
        zoom = (shape[0] / coarse[0], shape[1] / coarse[1])
        fields.append(
            ndi.zoom(grid, zoom, order=3, mode="nearest", grid_mode=True)[: shape[0], : shape[1]]
        )
    return fields[0], fields[1]


def _warp(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    return ndi.map_coordinates(image, coords, order=1, mode="reflect").astype(np.float32)


def _simulate_artefact(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One section artefact: a dark fold line, a blurred patch or a low-contrast patch."""
    h, w = image.shape
    kind = rng.integers(3)
    if kind == 0:  # fold: a dark band across the crop with soft edges
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        offset = rng.uniform(-0.3, 0.3) * min(h, w)
        dist = np.abs((yy - h / 2) * np.cos(angle) - (xx - w / 2) * np.sin(angle) - offset)
        half = rng.uniform(1.5, 4.0)
        band = np.clip(half + 1.0 - dist, 0.0, 1.0)
        return image * (1 - band) + band * rng.uniform(-0.2, 0.1)
    ph, pw = int(rng.integers(h // 4, h // 2 + 1)), int(rng.integers(w // 4, w // 2 + 1))
    y, x = int(rng.integers(h - ph + 1)), int(rng.integers(w - pw + 1))
    patch = image[y : y + ph, x : x + pw]
    out = image.copy()
    if kind == 1:
        out[y : y + ph, x : x + pw] = ndi.gaussian_filter(patch, rng.uniform(1.5, 4.0))
    else:
        keep = rng.uniform(0.2, 0.5)
        out[y : y + ph, x : x + pw] = patch.mean() + keep * (patch - patch.mean())
    return out


def augment_pair(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig,
    *,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Augment a crop and its label consistently and cut the central ``size`` x ``size``.

    Parameters
    ----------
    image, label : ndarray, shape (size + 2 * margin,) * 2
        Normalised image and 0/1 membrane label.
    rng : numpy.random.Generator
    config : AugmentConfig
    size : int
        Edge of the returned crop.

    Returns
    -------
    image, label : ndarray of float32, shape (size, size)
        The label is exactly 0 or 1.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.random((40, 40)).astype(np.float32)
    >>> out, lab = augment_pair(img, img > 0.5, rng, AugmentConfig(margin=4), size=32)
    >>> out.shape, sorted(np.unique(lab).tolist())
    ((32, 32), [0.0, 1.0])
    """
    image = np.asarray(image, np.float32)
    label = np.asarray(label, np.float32)
    if config.flips:
        k = int(rng.integers(8))
        image, label = dihedral(image, k), dihedral(label, k)
    if config.elastic_prob > 0 and rng.random() < config.elastic_prob:
        dy, dx = elastic_field(
            image.shape, rng, sigma=config.elastic_sigma, spacing=config.elastic_spacing
        )
        yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
        coords = np.stack([yy + dy, xx + dx])
        image = _warp(image, coords)
        label = (_warp(label, coords) >= 0.5).astype(np.float32)
    y0 = (image.shape[0] - size) // 2
    x0 = (image.shape[1] - size) // 2
    image = np.ascontiguousarray(image[y0 : y0 + size, x0 : x0 + size], np.float32)
    label = np.ascontiguousarray(label[y0 : y0 + size, x0 : x0 + size], np.float32)
    if config.intensity_prob > 0 and rng.random() < config.intensity_prob:
        mean = float(image.mean())
        factor = rng.uniform(1 - config.contrast, 1 + config.contrast)
        shift = rng.uniform(-config.brightness, config.brightness)
        image = (image - mean) * np.float32(factor) + np.float32(mean + shift)
    if config.artefact_prob > 0 and rng.random() < config.artefact_prob:
        image = _simulate_artefact(image, rng)
    if config.noise_prob > 0 and rng.random() < config.noise_prob:
        sigma = rng.uniform(0, config.noise_sigma)
        image = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return image.astype(np.float32, copy=False), label
