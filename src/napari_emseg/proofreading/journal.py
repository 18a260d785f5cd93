"""A crash-safe journal of a labels volume: a base snapshot plus one small diff per change.

The proofreading widget records into a journal shortly after every edit and propagation, so a
crash loses at most the last edit; on the next start the journal is offered back, and replaying
its diffs one by one rebuilds both the labels and their undo history. Diffs hold only the
changed voxels, so a journal stays small next to the volume. numpy only (no Qt).
"""

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from napari_emseg.io.atomic import atomic_write

META = "meta.json"
BASE = "base.npy"


def autosave_root() -> Path:
    """Where journals live: ``$EMSEG_AUTOSAVE_DIR`` or ``~/.cache/napari-emseg/sessions``."""
    override = os.environ.get("EMSEG_AUTOSAVE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "napari-emseg" / "sessions"


def _save_atomic(path: Path, writer) -> None:
    """``writer(handle)`` into ``path`` atomically and durably (journals must survive a crash)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            writer(handle)

    atomic_write(path, write, durable=True)


class SessionJournal:
    """Record successive states of one labels volume as diffs against the previous state.

    Examples
    --------
    >>> import tempfile
    >>> labels = np.zeros((2, 4, 4), np.uint32)
    >>> journal = SessionJournal.create(Path(tempfile.mkdtemp()), labels, name="demo")
    >>> labels[0, 1, 1] = 7
    >>> journal.record(labels)
    True
    >>> bool((SessionJournal.open(journal.folder).final_state() == labels).all())
    True
    """

    def __init__(self, folder: Path, meta: dict, last: np.ndarray):
        self.folder = folder
        self.meta = meta
        self._last = last

    @classmethod
    def create(
        cls,
        root: Path,
        labels: np.ndarray,
        *,
        name: str,
        scale: tuple[float, ...] = (1.0, 1.0, 1.0),
        unit: str = "nm",
    ) -> "SessionJournal":
        labels = np.asarray(labels)
        folder = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        (folder / "edits").mkdir(parents=True)
        meta = {
            "name": name,
            "scale": [float(s) for s in scale],
            "unit": unit,
            "shape": list(labels.shape),
            "dtype": labels.dtype.str,
            "created": time.time(),
        }
        _save_atomic(folder / BASE, lambda handle: np.save(handle, labels))
        _save_atomic(folder / META, lambda handle: handle.write(json.dumps(meta).encode()))
        return cls(folder, meta, labels.copy())

    @classmethod
    def open(cls, folder: Path) -> "SessionJournal":
        folder = Path(folder)
        meta = json.loads((folder / META).read_text())
        journal = cls(folder, meta, np.empty(0))
        journal._last = journal.final_state()
        return journal

    @property
    def edits(self) -> list[Path]:
        return sorted((self.folder / "edits").glob("*.npz"))

    def record(self, labels: np.ndarray, region: tuple[slice, ...] | None = None) -> bool:
        """Save the change since the last record (if any); returns True when one was saved.

        ``region`` (a box of slices) limits the comparison to where an edit is known to have
        happened, so a paint stroke costs its box, not the whole volume.

        Examples
        --------
        >>> import tempfile
        >>> labels = np.zeros((2, 4, 4), np.uint8)
        >>> journal = SessionJournal.create(Path(tempfile.mkdtemp()), labels, name="demo")
        >>> labels[1, 2, 2] = 5
        >>> journal.record(labels, (slice(0, 1),)), journal.record(labels, (slice(1, 2),))
        (False, True)
        """
        labels = np.asarray(labels)
        if labels.shape != self._last.shape:
            raise ValueError(f"journal of shape {self._last.shape} got labels {labels.shape}")
        box = tuple(region) if region is not None else (slice(None),) * labels.ndim
        now, before = np.asarray(labels[box]), self._last[box]
        where = np.nonzero(now != before)
        if where[0].size == 0:
            return False
        starts = [s.indices(n)[0] for s, n in zip(box, labels.shape, strict=False)]
        starts += [0] * (labels.ndim - len(starts))
        coords = tuple(w + s for w, s in zip(where, starts, strict=True))
        changed = np.ravel_multi_index(coords, labels.shape)
        old, new = before[where], now[where]
        path = self.folder / "edits" / f"{len(self.edits) + 1:06d}.npz"
        _save_atomic(path, lambda handle: np.savez(handle, index=changed, old=old, new=new))
        self._last[coords] = new
        return True

    def base(self) -> np.ndarray:
        return np.load(self.folder / BASE)

    def diffs(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(flat indices, old values, new values) of every recorded change, oldest first."""
        for path in self.edits:
            with np.load(path) as diff:
                yield diff["index"], diff["old"], diff["new"]

    def final_state(self) -> np.ndarray:
        labels = self.base()
        flat = labels.reshape(-1)
        for index, _, new in self.diffs():
            flat[index] = new
        return labels

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def pending_journals(root: Path | None = None) -> list[SessionJournal]:
    """Journals left behind by sessions that did not end cleanly, newest first."""
    root = autosave_root() if root is None else Path(root)
    found = []
    for folder in sorted(root.glob("*/"), reverse=True):
        try:
            found.append(SessionJournal.open(folder))
        except (OSError, ValueError, KeyError):
            continue  # a journal broken mid-creation holds nothing worth offering
    return found
