"""Proofreading state of one labels layer: reference slices, locked objects, hand-edited slices.

Pure Python and numpy: the widget keeps one session per labels layer (no global state) and
passes its sets to :func:`~napari_emseg.proofreading.repropagate.repropagate`. Undo itself is
napari's (every edit is applied with ``data_setitem``); the session only remembers what the
reference slices looked like after the last propagation, to find which objects were corrected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ProofreadingSession:
    """What the user has decided so far about one segmentation.

    Attributes
    ----------
    reference_slices : set of int
        Slices the user corrects and propagates from.
    locked : set of int
        Objects that no edit or propagation may change.
    hand_edited : set of int
        Slices painted by hand; a propagation never overwrites them.

    Examples
    --------
    >>> labels = np.zeros((3, 4, 4), np.uint16); labels[:, :2] = 1; labels[:, 2:] = 2
    >>> session = ProofreadingSession()
    >>> session.add_reference(1); session.snapshot_reference(labels)
    >>> labels[1, 2, :] = 1  # the user moves a row from object 2 to object 1
    >>> sorted(session.changed_objects(labels))
    [1, 2]
    >>> session.mark_edited([0, 1]); session.frozen_slices()
    {0}
    """

    reference_slices: set[int] = field(default_factory=set)
    locked: set[int] = field(default_factory=set)
    hand_edited: set[int] = field(default_factory=set)
    _snapshots: dict[int, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def lock(self, obj: int) -> None:
        """Protect ``obj`` from edits and propagations."""
        self.locked.add(int(obj))

    def unlock(self, obj: int) -> None:
        self.locked.discard(int(obj))

    def toggle_lock(self, obj: int) -> bool:
        """Lock ``obj`` if it is unlocked and vice versa; returns whether it is now locked."""
        obj = int(obj)
        if obj in self.locked:
            self.locked.discard(obj)
            return False
        self.locked.add(obj)
        return True

    def mark_edited(self, slices: int | Iterable[int]) -> None:
        """Record slices the user painted by hand."""
        self.hand_edited.update([int(slices)] if np.isscalar(slices) else map(int, slices))

    def add_reference(self, z: int) -> None:
        self.reference_slices.add(int(z))

    def remove_reference(self, z: int) -> None:
        self.reference_slices.discard(int(z))
        self._snapshots.pop(int(z), None)

    def frozen_slices(self) -> set[int]:
        """Hand-edited slices that are not references: a propagation must leave them alone."""
        return self.hand_edited - self.reference_slices

    def snapshot_reference(self, labels: np.ndarray) -> None:
        """Remember the reference slices as they are now (call after every propagation)."""
        self._snapshots = {z: np.array(labels[_check_z(z, labels)]) for z in self.reference_slices}

    def has_snapshot(self, z: int) -> bool:
        """Whether slice ``z`` was recorded after a propagation (so its changes are known)."""
        return int(z) in self._snapshots

    def changed_objects(self, labels: np.ndarray) -> set[int]:
        """Ids whose 2D mask in a reference slice differs from the last snapshot.

        This includes ids that disappeared (merged into another or erased) and ids that
        appeared. A reference slice without a snapshot (added since) counts all its ids.
        """
        changed: set[int] = set()
        for z in self.reference_slices:
            plane = labels[_check_z(z, labels)]
            before = self._snapshots.get(z)
            if before is None or before.shape != plane.shape:
                changed.update(int(i) for i in np.unique(plane))
                continue
            differ = before != plane
            if differ.any():
                changed.update(int(i) for i in np.unique(before[differ]))
                changed.update(int(i) for i in np.unique(plane[differ]))
        changed.discard(0)
        return changed


def _check_z(z: int, labels: np.ndarray) -> int:
    if not 0 <= z < labels.shape[0]:
        raise ValueError(f"reference slice {z} is outside 0..{labels.shape[0] - 1}")
    return z
