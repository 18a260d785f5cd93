"""Judging an adapted membrane network on corrected pixels it did not train on.

Adapting on a user's corrections can make the map worse (docs/adapt.md: 7 of 8 held-out
comparisons were). So part of the corrections is held out of training and both networks, the
one in use and the adapted one, segment it: the adapted network is kept only when its
segmentation of the held-out part agrees better with the user's labels. With several
corrected slices the last one is held out; with one, the part of it right of the median
column of its labelled pixels (so both parts hold about half of what the user labelled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Holdout:
    """Which corrected pixels are kept out of training to score on.

    Attributes
    ----------
    z : int
        The held-out slice.
    x0 : int
        Columns ``x0`` and beyond of slice ``z`` are held out (0: the whole slice).
    trained : tuple of int
        The slices trained on (``z`` among them when only its left part is held out).
    """

    z: int
    x0: int
    trained: tuple[int, ...]

    @property
    def whole_slice(self) -> bool:
        return self.x0 == 0

    def describe(self) -> str:
        """A line for the user, e.g. ``"slice 12, x >= 240 (held out; trained on x < 240)"``.

        Examples
        --------
        >>> Holdout(25, 0, (10, 40)).describe()
        'slice 25 (held out; trained on slices 10, 40)'
        >>> Holdout(3, 240, (3,)).describe()
        'slice 3, x >= 240 (held out; trained on its x < 240)'
        """
        if self.whole_slice:
            plural = "s" * (len(self.trained) > 1)
            trained = ", ".join(map(str, self.trained))
            return f"slice {self.z} (held out; trained on slice{plural} {trained})"
        return f"slice {self.z}, x >= {self.x0} (held out; trained on its x < {self.x0})"

    def train_mask(self, z: int, shape: tuple[int, int]) -> np.ndarray:
        """Pixels of slice ``z`` that training may learn from."""
        mask = np.ones(shape, bool)
        if z == self.z:
            mask[:, self.x0 :] = False
        return mask

    def scored(self, plane: np.ndarray) -> np.ndarray:
        """The held-out part of a 2D plane of slice ``z``."""
        return plane[:, self.x0 :]


def choose_holdout(labels: np.ndarray, refs: list[int]) -> Holdout:
    """Hold out the last corrected slice, or the right part of the only one.

    Examples
    --------
    >>> labels = np.zeros((2, 4, 10), int); labels[0, :, 2:8] = 1
    >>> choose_holdout(labels, [0])
    Holdout(z=0, x0=5, trained=(0,))
    >>> choose_holdout(labels, [0, 1])
    Holdout(z=1, x0=0, trained=(0,))
    """
    refs = sorted(int(z) for z in refs)
    if len(refs) > 1:
        return Holdout(refs[-1], 0, tuple(refs[:-1]))
    z = refs[0]
    xs = np.nonzero(labels[z])[1]
    width = labels.shape[-1]
    cut = int(np.median(xs)) + 1 if xs.size else width // 2
    return Holdout(z, min(max(cut, 1), width - 1), (z,))


def heldout_error(
    membrane: np.ndarray, labels: np.ndarray, holdout: Holdout, *, pixel_nm: float | None
) -> float | None:
    """Adapted Rand error of the watershed of one slice's membrane map on its held-out part.

    Unlabelled pixels (0) are ignored, so a partly labelled slice is scored on what the user
    labelled. None when the held-out part holds no labels.

    Examples
    --------
    >>> membrane = np.zeros((40, 40), np.float32); membrane[:, 19:21] = 1
    >>> labels = np.zeros((40, 40), int); labels[:, :19], labels[:, 21:] = 1, 2
    >>> heldout_error(membrane, labels, Holdout(0, 0, ()), pixel_nm=10.0)
    0.0
    >>> round(heldout_error(np.zeros_like(membrane), labels, Holdout(0, 0, ()), pixel_nm=10.0), 3)
    0.333
    """
    from napari_emseg.metrics import adapted_rand_error
    from napari_emseg.segmentation.watershed import watershed_slice

    truth = holdout.scored(np.asarray(labels))
    if not truth.any():
        return None
    segmentation = watershed_slice(np.asarray(membrane, np.float32), pixel_nm=pixel_nm)
    return float(adapted_rand_error(holdout.scored(segmentation), truth))
