"""The labelled EM blocks the project measures on, each with its voxel size and reference slice.

One place says where the shared data lie and how each block is read: the gala FIB-SEM *train*
and *test* blocks (50 x 100 x 200, 10 nm isotropic, dense 3D ids), ISBI 2012's 30 training
slices (4 x 4 x 50 nm; the rMiW 3D ids and the official membrane labels; slices 0-19 train and
select models, 20-29 are held out) and the Gerhard et al. VNC stack (4.6 x 4.6 x 50 nm, membrane
masks, no ids). The data are never copied into the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.reference import GROW_REFERENCE_PX, reference_from_truth

DATA_ENV = "EMSEG_SHARED_DATA"
GALA = "gala_fibsem_medulla"
ISBI = "isbi2012"
GERHARD = "drosophila_vnc_gerhard_sstem"
GALA_VOXEL_NM = (10.0, 10.0, 10.0)  # FlyEM medulla FIB-SEM: 10 nm isotropic (SOURCE.md: likely)
ISBI_VOXEL_NM = (50.0, 4.0, 4.0)
GERHARD_VOXEL_NM = (50.0, 4.6, 4.6)  # sections 45-50 nm (SOURCE.md)
ISBI_TRAIN = (0, 20)  # slices that trained (0-17) and selected (18-19) the membrane networks
ISBI_HELD_OUT = (20, 30)
# The reference slice of each block, as a slice of its source stack: the middle of the block.
GALA_REFERENCE = 25
ISBI_REFERENCE = {ISBI_TRAIN: 10, ISBI_HELD_OUT: 25}
SPLITS = ("train", "test")
FALLBACK_DATA = Path("/work/shared/data")  # where the project's machines keep it


@dataclass
class Block:
    """A labelled EM block and what an evaluation needs to know about it.

    Attributes
    ----------
    name : str
        How reports name it.
    image : ndarray, shape (Z, Y, X)
    gt : ndarray of uint32 or None
        Dense 3D ids (0 = boundary, ignored by the metrics); None where the data have none.
    ref : int
        The reference slice, as an index of this block.
    voxel_size : tuple of float
        (z, y, x) in nm.
    first : int
        Index of the block's first slice in its source stack (reports quote source slices).
    membrane_mask : ndarray of bool or None
        The data's own membrane annotation (True = membrane), where it has one.
    membrane : ndarray or None
        A predicted membrane map, set by the evaluation that computes it.
    """

    name: str
    image: np.ndarray
    gt: np.ndarray | None
    ref: int
    voxel_size: tuple[float, float, float]
    first: int = 0
    membrane_mask: np.ndarray | None = None
    membrane: np.ndarray | None = None

    @property
    def pixel_nm(self) -> float:
        """In-plane pixel size in nm."""
        return float(self.voxel_size[-1])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)

    def reference(self, *, grow: int = GROW_REFERENCE_PX) -> np.ndarray:
        """Labels holding only the reference slice's ground truth, grown ``grow`` px
        (:func:`~.reference.reference_from_truth`)."""
        if self.gt is None:
            raise ValueError(f"{self.name} has no ground-truth ids to make a reference from")
        return reference_from_truth(self.gt, self.ref, grow=grow)

    def spread(self, fractions) -> list[int]:
        """Reference slices at these fractions of the depth: one slice's result moves by up to
        0.02 with rounding alone, so settings are compared from several.

        Examples
        --------
        >>> Block("b", np.zeros((50, 1, 1)), None, 25, (10.0, 10.0, 10.0)).spread((0.2, 0.5, 0.8))
        [10, 25, 40]
        """
        depth = self.image.shape[0]
        return [min(depth - 1, int(round(float(f) * depth))) for f in fractions]

    def membrane_labels(self) -> np.ndarray:
        """The membrane annotation as ISBI 2012's labels (uint8, 0 = membrane, 255 = cell),
        the ground truth :func:`napari_emseg.metrics.isbi2012_scores` takes.

        Examples
        --------
        >>> mask = np.array([[[True, False]]])
        >>> Block("b", mask, None, 0, (1.0, 1.0, 1.0), membrane_mask=mask).membrane_labels()
        array([[[  0, 255]]], dtype=uint8)
        """
        if self.membrane_mask is None:
            raise ValueError(f"{self.name} has no membrane annotation")
        return np.where(self.membrane_mask, 0, 255).astype(np.uint8)

    def crop(self, window: slice | tuple[slice, ...], *, ref: int | None = None) -> Block:
        """The block inside ``window`` (slices with steps of 1, z first); the reference moves
        with it unless ``ref`` (an index of the crop) is given.

        Examples
        --------
        >>> block = Block("b", np.zeros((10, 8, 8), np.uint8), np.zeros((10, 8, 8), np.uint32),
        ...               5, (50.0, 4.0, 4.0))
        >>> small = block.crop(np.s_[3:9, :4, 2:6])
        >>> small.shape, small.ref, small.first
        ((6, 4, 4), 2, 3)
        """
        window = (window,) if isinstance(window, slice) else tuple(window)
        z0 = window[0].indices(self.image.shape[0])[0]

        def cut(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[window]

        image = self.image[window]
        new_ref = self.ref - z0 if ref is None else int(ref)
        if not 0 <= new_ref < image.shape[0]:
            raise ValueError(f"the crop of {self.name} leaves out its reference slice {self.ref}")
        return replace(
            self,
            image=image,
            gt=cut(self.gt),
            ref=new_ref,
            first=self.first + z0,
            membrane_mask=cut(self.membrane_mask),
            membrane=cut(self.membrane),
        )

    def centred_crop(self, depth: int, size: int) -> Block:
        """At most ``depth`` slices around the reference and a centred ``size`` x ``size``
        window (for smoke runs).

        Examples
        --------
        >>> block = Block("b", np.zeros((30, 50, 40), np.uint8), None, 25, (50.0, 4.0, 4.0))
        >>> small = block.centred_crop(16, 32)
        >>> small.shape, small.ref, small.first
        ((16, 32, 32), 11, 14)
        """
        n_z, n_y, n_x = self.image.shape
        z0 = int(np.clip(self.ref - depth // 2, 0, max(n_z - depth, 0)))
        y0, x0 = max((n_y - size) // 2, 0), max((n_x - size) // 2, 0)
        return self.crop(np.s_[z0 : z0 + depth, y0 : y0 + size, x0 : x0 + size])


def _package_checkout() -> Path:
    return Path(__file__).resolve().parents[3]  # src/napari_emseg/evaluation -> checkout


def find_data_dir() -> Path | None:
    """The shared data folder: ``$EMSEG_SHARED_DATA``, else ``../shared/data`` beside the
    checkout, else :data:`FALLBACK_DATA`; None when none exists."""
    candidates = [
        os.environ.get(DATA_ENV),
        _package_checkout().parent / "shared" / "data",
        FALLBACK_DATA,
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def data_dir(path: str | Path | None = None) -> Path:
    """``path`` when given, else :func:`find_data_dir`; a clear error when there is none."""
    found = Path(path) if path is not None else find_data_dir()
    if found is None or not found.is_dir():
        where = path if path is not None else f"${DATA_ENV} or ../shared/data"
        raise FileNotFoundError(f"no shared data folder at {where} (set {DATA_ENV})")
    return found


def _read(data: str | Path | None, *parts: str) -> np.ndarray:
    import tifffile

    return tifffile.imread(data_dir(data).joinpath(*parts))


def gala_block(
    part: str = "test",
    *,
    ref: int = GALA_REFERENCE,
    name: str | None = None,
    data: str | Path | None = None,
) -> Block:
    """One of gala's FIB-SEM blocks (``"train"`` or ``"test"``), 10 nm isotropic."""
    if part not in SPLITS:
        raise ValueError(f"gala block {part!r}: choose from {', '.join(SPLITS)}")
    return Block(
        name or f"gala FIB-SEM {part} block",
        _read(data, GALA, f"{part}-image.tif"),
        _read(data, GALA, f"{part}-gt.tif").astype(np.uint32),
        ref,
        GALA_VOXEL_NM,
    )


def isbi_block(
    first: int = ISBI_HELD_OUT[0],
    stop: int = ISBI_HELD_OUT[1],
    *,
    ref: int | None = None,
    name: str | None = None,
    data: str | Path | None = None,
) -> Block:
    """ISBI 2012 training slices ``first`` to ``stop - 1`` with the rMiW 3D ids and the official
    membrane labels. ``ref`` is a slice of the 30-slice stack (default: 10 for slices 0-19, 25
    for 20-29, else the middle slice)."""
    if not 0 <= first < stop <= 30:
        raise ValueError(f"ISBI 2012 slices {first}-{stop - 1}: the stack has slices 0-29")
    if ref is None:
        ref = ISBI_REFERENCE.get((first, stop), (first + stop) // 2)
    if not first <= ref < stop:
        raise ValueError(f"reference slice {ref} is outside ISBI 2012 slices {first}-{stop - 1}")
    window = slice(first, stop)
    return Block(
        name or f"ISBI 2012 slices {first}-{stop - 1}",
        _read(data, ISBI, "train-volume.tif")[window],
        _read(data, ISBI, "train-instances-3d.tif")[window].astype(np.uint32),
        ref - first,
        ISBI_VOXEL_NM,
        first=first,
        membrane_mask=_read(data, ISBI, "train-labels.tif")[window] == 0,
    )


def gerhard_stack(*, data: str | Path | None = None) -> Block:
    """Gerhard et al.'s Drosophila VNC ssTEM stack 1 (20 x 1024 x 1024) with its membrane masks;
    it has no neuron ids (``gt`` is None)."""
    return Block(
        "Gerhard VNC stack 1",
        _read(data, GERHARD, "stack1-raw.tif"),
        None,
        10,
        GERHARD_VOXEL_NM,
        membrane_mask=_read(data, GERHARD, "stack1-membranes.tif") == 255,
    )


def blocks(split: str, *, data: str | Path | None = None) -> list[Block]:
    """The gala block and the ISBI slices of one split: ``"train"`` (gala train, ISBI 0-19,
    for choices) or ``"test"`` (gala test, ISBI 20-29, held out: for reports only)."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: choose from {', '.join(SPLITS)}")
    isbi = ISBI_TRAIN if split == "train" else ISBI_HELD_OUT
    return [gala_block(split, data=data), isbi_block(*isbi, data=data)]


def held_out_blocks(*, data: str | Path | None = None) -> list[Block]:
    """gala's test block and ISBI 2012 slices 20-29: data no model was trained or chosen on."""
    return blocks("test", data=data)


def training_blocks(*, data: str | Path | None = None) -> list[Block]:
    """gala's train block and ISBI 2012 slices 0-19: where settings may be chosen."""
    return blocks("train", data=data)
