"""Training sequences for the propagation network, cut from stacks with 3D ground truth.

A sample is a short run of consecutive slices (in either z direction) cropped in xy: the frames
(EM image and membrane map), and the masks of up to ``max_objects`` ground-truth objects of the
first frame (the reference) in every frame; an object that ends gets empty masks.

Known sources: ``isbi2012`` (``train-instances-3d.tif``, slices 0-19 only: 20-29 are held out)
and ``gala-train`` (the gala FIB-SEM training block). Stacks are resampled to one pixel size
(``pixel_nm``), so ISBI's 4 nm and gala's 10 nm look alike to the network.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_emseg.segmentation.binning import bin_ids, bin_mean, downsample_factor
from napari_emseg.segmentation.dihedral import dihedral
from napari_emseg.segmentation.normalization import normalize_intensity
from napari_emseg.training.data import ISBI2012_HELD_OUT

# name -> (image, 3D ids, pixel size in nm, slices usable for training)
SEQUENCE_SOURCES: dict[str, tuple[str, str, float, tuple[int, ...] | None]] = {
    "isbi2012": ("train-volume.tif", "train-instances-3d.tif", 4.0, tuple(range(0, 20))),
    "gala-train": ("train-image.tif", "train-gt.tif", 10.0, None),
}


@dataclass
class SequenceStack:
    """A stack ready for sampling: normalised image, membrane map and 3D ids, one pixel size."""

    name: str
    image: np.ndarray  # float32 (Z, Y, X)
    membrane: np.ndarray  # float32 (Z, Y, X) in [0, 1]
    ids: np.ndarray  # uint32 (Z, Y, X), 0 = boundary / unlabelled


def _source_files(name: str, where: str) -> tuple[str, str, float, tuple[int, ...] | None]:
    """A known source's files, or ``IMAGE,IDS,PIXEL_NM`` given as ``where`` for any other name."""
    if name in SEQUENCE_SOURCES:
        return SEQUENCE_SOURCES[name]
    parts = where.split(",")
    if len(parts) != 3:
        known = ", ".join(SEQUENCE_SOURCES)
        raise ValueError(
            f"source {name!r}: give a known name ({known}) with its folder, or IMAGE,IDS,PIXEL_NM"
        )
    try:
        pixel_nm = float(parts[2])
    except ValueError:
        raise ValueError(f"source {name!r}: pixel size {parts[2]!r} is not a number") from None
    return str(Path(parts[0]).resolve()), str(Path(parts[1]).resolve()), pixel_nm, None


SYNTHETIC = "synthetic"  # ``synthetic=N``: N fresh stacks of the project's own generator


def synthetic_stacks(
    count: int, *, seed: int, membrane_model: str | None, pixel_nm: float
) -> list[SequenceStack]:
    """``count`` new synthetic neuropil stacks (24 x 256 x 256 at 4 nm) as training sources.

    Every seed gives other stacks, so a campaign that draws new seeds at every call sees new
    data without end; the membrane map is the membrane model's, as on real data.
    """
    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.inference.membrane import predict_membrane

    factor = downsample_factor(4.0, pixel_nm)
    stacks = []
    for k in range(count):
        stack = make_synthetic_stack((24, 256, 256), seed=seed * 1000 + k)
        membrane = predict_membrane(stack.image, model=membrane_model, device="auto", pixel_nm=4.0)
        stacks.append(
            SequenceStack(
                name=f"{SYNTHETIC}-{seed}-{k}",
                image=normalize_intensity(bin_mean(stack.image, factor)),
                membrane=bin_mean(membrane, factor),
                ids=bin_ids(stack.labels.astype(np.uint32), factor),
            )
        )
    return stacks


def load_sequence_stack(
    name: str, folder: Path, *, membrane_model: str | None, pixel_nm: float
) -> SequenceStack:
    """Load a source, predict its membrane map and bin it to ``pixel_nm``.

    ``folder`` is a known source's folder, or ``IMAGE,IDS,PIXEL_NM`` (two TIFF stacks of one
    shape and their pixel size) for any other ``name``.
    """
    import tifffile

    from napari_emseg.inference.membrane import predict_membrane

    image_file, ids_file, native_nm, usable = _source_files(name, str(folder))
    for file in (image_file, ids_file):
        if not (Path(folder) / file).is_file():
            raise FileNotFoundError(f"{Path(folder) / file} not found (source {name})")
    image = tifffile.imread(Path(folder) / image_file)
    ids = tifffile.imread(Path(folder) / ids_file).astype(np.uint32)
    if image.ndim != 3 or image.shape != ids.shape:
        raise ValueError(
            f"source {name}: image {image.shape} and ids {ids.shape} must be one 3D shape"
        )
    if usable is not None:
        if name == "isbi2012" and set(usable) & set(ISBI2012_HELD_OUT):
            raise ValueError("ISBI 2012 slices 20-29 are held out")
        image, ids = image[list(usable)], ids[list(usable)]
    # At the native pixel size, so the map is resampled to the membrane model's as at inference.
    membrane = predict_membrane(image, model=membrane_model, device="auto", pixel_nm=native_nm)
    factor = downsample_factor(native_nm, pixel_nm)
    return SequenceStack(
        name=name,
        image=normalize_intensity(bin_mean(image, factor)),
        membrane=bin_mean(membrane, factor),
        ids=bin_ids(ids, factor),
    )


@dataclass
class SequenceSample:
    """One training sequence (frame 0 is the reference)."""

    frames: np.ndarray  # float32 (T, 2, S, S): image, membrane
    masks: np.ndarray  # float32 (T, M, S, S): object m in every frame


def _shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate the last two axes, filling with edge values (a misaligned section)."""
    pad = [(0, 0)] * (array.ndim - 2) + [(abs(dy), abs(dy)), (abs(dx), abs(dx))]
    padded = np.pad(array, pad, mode="edge")
    h, w = array.shape[-2:]
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return padded[..., y0 : y0 + h, x0 : x0 + w]


class SequenceSampler:
    """Random training sequences from several stacks.

    Parameters
    ----------
    stacks : list of SequenceStack
    length : int
        Frames per sequence (the reference and ``length - 1`` propagated ones).
    crop : int
        Edge of the xy crop, in binned pixels.
    max_objects : int
        Objects tracked per sequence (chosen at random among those of the reference crop with at
        least ``min_area`` pixels; slots left over stay empty).
    artefact_prob : float
        Chance per non-reference frame of a simulated missing (blank) or shifted section.
    """

    def __init__(
        self,
        stacks: list[SequenceStack],
        *,
        length: int = 5,
        crop: int = 64,
        max_objects: int = 8,
        min_area: int = 16,
        artefact_prob: float = 0.05,
        weights: list[float] | None = None,
    ):
        usable = [s for s in stacks if s.ids.shape[0] >= length and min(s.ids.shape[1:]) >= crop]
        if not usable:
            raise ValueError(f"no stack is at least {length} slices and {crop} px wide")
        self.stacks = usable
        self.length, self.crop, self.max_objects = length, crop, max_objects
        self.min_area, self.artefact_prob = min_area, artefact_prob
        sizes = np.array([s.ids.size for s in usable], float) if weights is None else weights
        self.p = np.asarray(sizes, float) / np.sum(sizes)

    def sample(self, rng: np.random.Generator) -> SequenceSample:
        for _ in range(50):  # a crop of only boundary pixels is rare; draw again
            sample = self._draw(rng)
            if sample is not None:
                return sample
        raise RuntimeError("could not find a crop with objects in 50 draws")

    def _draw(self, rng: np.random.Generator) -> SequenceSample | None:
        stack = self.stacks[rng.choice(len(self.stacks), p=self.p)]
        z_len, h, w = stack.ids.shape
        z0 = int(rng.integers(0, z_len - self.length + 1))
        y0 = int(rng.integers(0, h - self.crop + 1))
        x0 = int(rng.integers(0, w - self.crop + 1))
        where = (slice(z0, z0 + self.length), slice(y0, y0 + self.crop), slice(x0, x0 + self.crop))
        ids, image, membrane = stack.ids[where], stack.image[where], stack.membrane[where]
        if rng.random() < 0.5:  # propagate downwards as often as upwards
            ids, image, membrane = ids[::-1], image[::-1], membrane[::-1]
        present, counts = np.unique(ids[0], return_counts=True)
        keep = present[(present != 0) & (counts >= self.min_area)]
        if keep.size == 0:
            return None
        chosen = rng.permutation(keep)[: self.max_objects]
        masks = np.zeros((self.length, self.max_objects, self.crop, self.crop), np.float32)
        for m, object_id in enumerate(chosen):
            masks[:, m] = ids == object_id
        frames = np.stack([image, membrane], axis=1).astype(np.float32)
        frames, masks = self._augment(frames, masks, rng)
        return SequenceSample(frames=frames, masks=masks)

    def _augment(
        self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        k = int(rng.integers(8))
        frames = np.ascontiguousarray(dihedral(frames, k))
        masks = np.ascontiguousarray(dihedral(masks, k))
        gain, bias = rng.uniform(0.8, 1.25), rng.uniform(-0.1, 0.1)
        frames[:, 0] = frames[:, 0] * gain + bias
        frames[:, 0] += rng.normal(0, rng.uniform(0, 0.05), frames[:, 0].shape).astype(np.float32)
        frames[:, 1] = np.clip(frames[:, 1] ** rng.uniform(0.7, 1.4), 0, 1)  # map confidence
        for t in range(1, self.length):
            if rng.random() >= self.artefact_prob:
                continue
            if rng.random() < 0.5:  # a missing section: no image, an uninformative map
                frames[t, 0] = frames[t, 0].mean()
                frames[t, 1] = 0.5
            else:  # a misaligned section: the frame and its objects move together
                dy, dx = (int(v) for v in rng.integers(-4, 5, size=2))
                frames[t], masks[t] = _shift(frames[t], dy, dx), _shift(masks[t], dy, dx)
        return np.ascontiguousarray(frames), np.ascontiguousarray(masks)
