"""Deciding whether a volume on disk is a segmentation (labels) or an intensity image."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_emseg.io.volume import InputError

#: Value of the TIFF Software tag that :func:`write_labels_tiff` writes and :func:`read_volume`
#: trusts as "this file holds labels". Fiji ignores the tag, so it costs nothing there.
LABELS_MARKER = "napari-emseg labels"
#: Software tag of :func:`write_image_tiff`; marks the file as an image whatever its dtype or name.
IMAGE_MARKER = "napari-emseg image"

# Label-ish words in a file stem or dataset path (rule 3 of the labels guess).
_LABEL_WORDS = frozenset(
    {
        "label",
        "labels",
        "seg",
        "segs",
        "segmentation",
        "segmentations",
        "gt",
        "groundtruth",
        "instance",
        "instances",
        "id",
        "ids",
        "mask",
        "masks",
    }
)
_ID_DTYPES = (np.uint32, np.int32, np.uint64, np.int64)


def guess_is_labels(dtype: np.dtype[Any], names: Sequence[str], marker: str | None) -> bool:
    """The labels rule documented in :func:`read_volume`.

    Examples
    --------
    >>> guess_is_labels(np.dtype(np.uint8), ["train-labels"], None)
    True
    >>> guess_is_labels(np.dtype(np.uint8), ["train-volume"], None)
    False
    >>> guess_is_labels(np.dtype(np.uint8), ["result"], LABELS_MARKER)
    True
    """
    if marker == LABELS_MARKER:
        return True
    if marker == IMAGE_MARKER or dtype.kind == "f":
        return False
    if dtype.kind not in "iub":
        return False
    if any(_has_label_word(n) for n in names):
        return True
    return any(dtype == np.dtype(t) for t in _ID_DTYPES)


def _has_label_word(name: str) -> bool:
    # camelCase -> words ("segGT" -> "seg GT"), then split on anything not a letter or digit and
    # strip digits at the ends of words ("labels01", "3d").
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()
    words = {w.strip("0123456789") for w in re.split(r"[^a-z0-9]+", spaced)}
    compact = re.sub(r"[^a-z]", "", spaced)
    return bool(words & _LABEL_WORDS) or "groundtruth" in compact


def float_to_ids(data: np.ndarray, path: Path) -> np.ndarray:
    """Float data asked for as labels: accept whole numbers >= 0 (some tools store ids as float)."""
    whole = np.isfinite(data).all() and np.array_equal(data, np.round(data))
    if not whole or data.min() < 0 or data.max() > np.iinfo(np.uint32).max:
        raise InputError(
            f"{path} holds fractional or negative float values, which cannot be label ids: open "
            "it as an image"
        )
    return data.astype(np.uint16 if data.max() <= np.iinfo(np.uint16).max else np.uint32)
