"""Training stacks: images with binary membrane masks, held-out checks, random crops.

A source is a known dataset folder (ISBI 2012, Gerhard et al. stack 1, gala's FIB-SEM block) or an
explicit ``IMAGE,LABELS[,KIND[,PIXEL_NM]]`` entry, optionally followed by ``@SLICES`` (e.g.
``gala_fibsem_medulla@0-39``) to use only those slices. Labels become a boolean membrane mask
according to their kind; images are normalised over the whole stack with
:func:`napari_emseg.segmentation.normalization.normalize_intensity`, exactly as inference does.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_emseg.segmentation.normalization import normalize_intensity

LABEL_KINDS = ("auto", "membrane-low", "membrane-high", "instances")

# Folder layouts recognised by name: (image file, labels file, label kind, in-plane pixel size in
# nm). The pixel size is used when the file itself does not state one (gala's TIFFs carry none; its
# FIB-SEM block is 10 nm isotropic); a size stated by the file wins.
DATASET_LAYOUTS: dict[str, tuple[str, str, str, float | None]] = {
    "isbi2012": ("train-volume.tif", "train-labels.tif", "membrane-low", 4.0),
    "gerhard-stack1": ("stack1-raw.tif", "stack1-membranes.tif", "membrane-high", 4.6),
    "gala-train": ("train-image.tif", "train-gt.tif", "instances", 10.0),
}

# The ISBI 2012 protocol of this project: slices 20-29 are the held-out test set.
ISBI2012_HELD_OUT = tuple(range(20, 30))
ISBI2012_TRAIN = tuple(range(0, 18))
ISBI2012_VAL = (18, 19)
# sha256 of slice 0 of the ISBI 2012 train volume: recognises the data even when renamed.
_ISBI2012_SLICE0_SHA256 = "e235f967447919aab272b85e9ab400b726ba7fdd91cca9f649224c7023d4149d"


class HeldOutError(ValueError):
    """Training or model selection would touch the held-out ISBI 2012 slices."""


@dataclass(frozen=True)
class SourceSpec:
    """Where a training stack lives and how its labels mark membranes."""

    name: str
    image: Path
    labels: Path
    kind: str = "auto"
    pixel_nm: float | None = None  # used when the image file states no pixel size


@dataclass
class MembraneStack:
    """A normalised image stack and its membrane mask (True = membrane).

    Attributes
    ----------
    image : ndarray of float32, shape (Z, Y, X)
        Intensities after :func:`normalize_intensity` over the whole stack.
    membrane : ndarray of bool, shape (Z, Y, X)
    pixel_nm : float or None
        In-plane pixel size after any resampling, when known.
    is_isbi2012 : bool
        True when the image is the ISBI 2012 training volume (held-out slices apply).
    """

    name: str
    image: np.ndarray
    membrane: np.ndarray
    pixel_nm: float | None = None
    is_isbi2012: bool = False

    @property
    def depth(self) -> int:
        return int(self.image.shape[0])


def boundaries_from_instances(labels: np.ndarray) -> np.ndarray:
    """Membrane mask of an instance label stack: 0, or a 4-neighbour with another id.

    Only in-plane neighbours count, so each slice's boundaries are its own.

    Examples
    --------
    >>> lab = np.array([[[1, 1, 2, 2], [1, 1, 2, 2], [0, 3, 3, 3]]])
    >>> boundaries_from_instances(lab).astype(int)[0]
    array([[0, 1, 1, 0],
           [1, 1, 1, 1],
           [1, 1, 1, 1]])
    """
    labels = np.asarray(labels)
    edge = labels == 0
    dy = labels[..., 1:, :] != labels[..., :-1, :]
    dx = labels[..., :, 1:] != labels[..., :, :-1]
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    return edge


def membrane_from_labels(labels: np.ndarray, kind: str = "auto") -> np.ndarray:
    """Boolean membrane mask from binary or instance labels.

    Parameters
    ----------
    labels : ndarray
        Label stack.
    kind : {"auto", "membrane-low", "membrane-high", "instances"}
        ``membrane-low``: the lower of two values is membrane (ISBI 2012: 0). ``membrane-high``:
        the higher is (Gerhard: 255). ``instances``: ids with 0 = boundary, see
        :func:`boundaries_from_instances`. ``auto``: two values -> the rarer one is membrane
        (membranes are about 20 % of EM pixels), more values -> instances.

    Examples
    --------
    >>> membrane_from_labels(np.array([[0, 255, 255]]), "membrane-low").tolist()
    [[True, False, False]]
    """
    if kind not in LABEL_KINDS:
        raise ValueError(f"unknown label kind {kind!r}; choose one of: {', '.join(LABEL_KINDS)}")
    labels = np.asarray(labels)
    if kind == "instances":
        return boundaries_from_instances(labels)
    values, counts = np.unique(labels, return_counts=True)
    if kind == "auto":
        if values.size > 2:
            return boundaries_from_instances(labels)
        kind = "membrane-low" if counts[0] <= counts[-1] else "membrane-high"
    if values.size > 2:
        raise ValueError(f"{kind} labels must hold two values, found {values.size}")
    return labels == (values[0] if kind == "membrane-low" else values[-1])


def is_isbi2012(image: np.ndarray) -> bool:
    """Whether a stack is the ISBI 2012 training volume (checked by content, not by name)."""
    if image.ndim != 3 or image.shape[1:] != (512, 512) or image.dtype != np.uint8:
        return False
    digest = hashlib.sha256(np.ascontiguousarray(image[0]).tobytes()).hexdigest()
    return digest == _ISBI2012_SLICE0_SHA256


def split_slices(entry: str) -> tuple[str, tuple[int, ...] | None]:
    """Split ``SOURCE@SLICES`` into the source and its slices (None: all of them).

    Examples
    --------
    >>> split_slices("data/gala_fibsem_medulla@40-49")
    ('data/gala_fibsem_medulla', (40, 41, 42, 43, 44, 45, 46, 47, 48, 49))
    >>> split_slices("raw.tif,gt.tif")
    ('raw.tif,gt.tif', None)
    """
    source, sep, slices = str(entry).rpartition("@")
    if not sep:
        return str(entry), None
    try:
        return source, parse_slices(slices)
    except ValueError:  # an "@" that is part of a path
        return str(entry), None


def resolve_source(entry: str) -> SourceSpec:
    """A :class:`SourceSpec` from a dataset folder or an ``IMAGE,LABELS[,KIND[,PIXEL_NM]]`` string.

    Examples
    --------
    >>> resolve_source("raw.tif,gt.tif,instances").kind
    'instances'
    >>> resolve_source("raw.tif,gt.tif,instances,10").pixel_nm
    10.0
    """
    parts = [p.strip() for p in str(entry).split(",")]
    if len(parts) in (2, 3, 4):
        kind = parts[2] if len(parts) >= 3 and parts[2] else "auto"
        if kind not in LABEL_KINDS:
            raise ValueError(f"unknown label kind {kind!r} in {entry!r}")
        pixel_nm = float(parts[3]) if len(parts) == 4 else None
        return SourceSpec(Path(parts[0]).stem, Path(parts[0]), Path(parts[1]), kind, pixel_nm)
    folder = Path(entry)
    if folder.is_dir():
        for name, (image, labels, kind, pixel_nm) in DATASET_LAYOUTS.items():
            if (folder / image).is_file() and (folder / labels).is_file():
                return SourceSpec(name, folder / image, folder / labels, kind, pixel_nm)
        known = "; ".join(f"{i} + {lab}" for i, lab, *_ in DATASET_LAYOUTS.values())
        raise ValueError(f"{folder} holds no known training pair ({known})")
    raise ValueError(f"{entry!r} is neither a dataset folder nor IMAGE,LABELS[,KIND[,PIXEL_NM]]")


def _resample(stack: np.ndarray, factor: float, *, mask: bool) -> np.ndarray:
    # Linear for both; masks are thresholded at 0.5 so they stay binary and aligned.
    out = ndi.zoom(stack.astype(np.float32), (1.0, factor, factor), order=1)
    return out >= 0.5 if mask else out


def load_stack(spec: SourceSpec, *, pixel_nm: float | None = None) -> MembraneStack:
    """Read, normalise and (optionally) resample one training stack.

    Parameters
    ----------
    spec : SourceSpec
    pixel_nm : float, optional
        Resample in-plane to this pixel size when the stack's own size is known and differs by
        more than 2 %. The own size is the file's (when it states one in nm), else
        ``spec.pixel_nm`` (the dataset layout's known size, e.g. 10 nm for gala's FIB-SEM block).
    """
    from napari_emseg.io import read_volume

    image_volume = read_volume(spec.image, as_labels=False)
    labels = read_volume(spec.labels, as_labels=True).data
    raw = image_volume.data
    if raw.shape != labels.shape:
        raise ValueError(f"{spec.image} {raw.shape} and {spec.labels} {labels.shape} differ")
    isbi = is_isbi2012(raw)
    image = normalize_intensity(raw)
    membrane = membrane_from_labels(labels, spec.kind)
    own_nm = float(image_volume.scale[-1]) if image_volume.unit == "nm" else spec.pixel_nm
    if pixel_nm and own_nm and abs(own_nm / pixel_nm - 1.0) > 0.02:
        factor = own_nm / pixel_nm
        image = _resample(image, factor, mask=False)
        membrane = _resample(membrane, factor, mask=True)
        own_nm = pixel_nm
    return MembraneStack(spec.name, image, membrane, own_nm, isbi)


def parse_slices(text: str) -> tuple[int, ...]:
    """Slice indices from ``"0-17"``, ``"18,19"`` or ``"0-3,8"`` (ranges are inclusive).

    Examples
    --------
    >>> parse_slices("0-2,5")
    (0, 1, 2, 5)
    """
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        start, stop = int(lo), int(hi or lo)
        if stop < start:
            raise ValueError(f"slice range {part!r} runs backwards")
        out.extend(range(start, stop + 1))
    return tuple(dict.fromkeys(out))


def check_slices(
    stack: MembraneStack, slices: tuple[int, ...], *, purpose: str, allow_held_out: bool
) -> None:
    """Refuse slices outside the stack, and the ISBI 2012 held-out slices 20-29.

    Raises
    ------
    HeldOutError
        When ``stack`` is the ISBI 2012 volume, ``slices`` include 20-29 and
        ``allow_held_out`` is False.
    """
    bad = [z for z in slices if not 0 <= z < stack.depth]
    if bad:
        raise ValueError(f"{purpose} slices {bad} are outside 0..{stack.depth - 1} of {stack.name}")
    if not slices:
        raise ValueError(f"no {purpose} slices given for {stack.name}")
    held = sorted(set(slices) & set(ISBI2012_HELD_OUT))
    if stack.is_isbi2012 and held and not allow_held_out:
        raise HeldOutError(
            f"{purpose} slices {held} of ISBI 2012 are the held-out test slices (20-29); they are "
            "never used for training or model selection (pass allow_held_out to override)"
        )


@dataclass
class CropSampler:
    """Random crops from the chosen slices of several stacks.

    Parameters
    ----------
    stacks : list of (MembraneStack, slice indices, weight)
        A stack is drawn with probability proportional to its weight, then a slice and a
        position uniformly.
    size : int
        Crop edge in pixels (slices smaller than that are mirror-padded).
    scale_jitter : float
        With a value ``j`` > 1, each crop is zoomed by a factor drawn log-uniformly from
        ``[1/j, j]`` (see :func:`napari_emseg.training.augment.zoomed_crop`): a window of
        ``size / factor`` source pixels becomes the ``size`` x ``size`` crop. 1 = off.
    pixel_range : (float, float), optional
        Instead of ``scale_jitter``: each crop is shown at a pixel size (nm) drawn
        log-uniformly from this range, whatever its stack's own size (which must be known), so
        that one network learns every stack in the range at its own resolution.
    """

    stacks: list[tuple[MembraneStack, tuple[int, ...], float]]
    size: int
    scale_jitter: float = 1.0
    pixel_range: tuple[float, float] | None = None

    def _zoom(self, stack: MembraneStack, rng: np.random.Generator) -> float:
        if self.pixel_range is not None:
            if not stack.pixel_nm:
                raise ValueError(f"{stack.name} has no known pixel size for a pixel range")
            low, high = np.log(self.pixel_range[0]), np.log(self.pixel_range[1])
            return float(stack.pixel_nm / np.exp(rng.uniform(low, high)))
        span = np.log(self.scale_jitter)
        return float(np.exp(rng.uniform(-span, span)))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One ``(image, membrane)`` crop: float32 and float32 (0/1) arrays of ``size``^2."""
        weights = np.array([w for _, _, w in self.stacks], np.float64)
        index = int(rng.choice(len(self.stacks), p=weights / weights.sum()))
        stack, slices, _ = self.stacks[index]
        z = int(slices[rng.integers(len(slices))])
        image, membrane = stack.image[z], stack.membrane[z]
        if self.scale_jitter > 1.0 or self.pixel_range is not None:
            from napari_emseg.training.augment import zoomed_crop

            factor = self._zoom(stack, rng)
            extent = self.size / factor  # source pixels the crop covers
            y = float(rng.uniform(0.0, max(0.0, image.shape[0] - extent)))
            x = float(rng.uniform(0.0, max(0.0, image.shape[1] - extent)))
            return zoomed_crop(image, membrane, factor=factor, origin=(y, x), size=self.size)
        pad_y = max(0, self.size - image.shape[0])
        pad_x = max(0, self.size - image.shape[1])
        if pad_y or pad_x:
            widths = ((0, pad_y), (0, pad_x))
            image = np.pad(image, widths, mode="symmetric")
            membrane = np.pad(membrane, widths, mode="symmetric")
        y = int(rng.integers(image.shape[0] - self.size + 1))
        x = int(rng.integers(image.shape[1] - self.size + 1))
        window = (slice(y, y + self.size), slice(x, x + self.size))
        return image[window].astype(np.float32), membrane[window].astype(np.float32)
