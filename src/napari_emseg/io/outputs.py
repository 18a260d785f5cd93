"""Several outputs written all or nothing: each built beside its target, all moved in at the end.

A command that writes labels and a membrane map must not leave the labels behind when the
second write fails (a full disk): a rerun would then find an output that "exists". Each output
is written under a hidden temporary name in its target's folder (so the final move is a rename,
never a copy), and :meth:`OutputSet.commit` renames them all into place once every one of them
was written; an old target is set aside first and put back if a later rename fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from napari_emseg.io.volume import InputError, short_error


def _remove(path: Path) -> None:
    """Delete a file or a folder, ignoring what is already gone."""
    with suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


class OutputSet:
    """Outputs that appear together or not at all.

    Write each output to the temporary path :meth:`writing` gives (any writer; the path keeps
    the target's suffix), then :meth:`commit`. Leaving the ``with`` block without a commit (an
    error, Ctrl-C) removes every temporary; targets are untouched.

    Examples
    --------
    >>> with OutputSet() as outputs:  # doctest: +SKIP
    ...     with outputs.writing("labels.tif") as tmp:
    ...         write_labels_tiff(tmp, labels)
    ...     with outputs.writing("membrane.tif") as tmp:
    ...         write_image_tiff(tmp, membrane)
    ...     written = outputs.commit()
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []
        self._committed = False

    def stage(self, target: str | os.PathLike[str]) -> Path:
        """A fresh hidden path beside ``target``, with its suffix, to write ``target`` to."""
        out = Path(target)
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.staged{out.suffix}")
        self._staged.append((tmp, out))
        return tmp

    @contextmanager
    def writing(self, target: str | os.PathLike[str]) -> Iterator[Path]:
        """The temporary path to write ``target`` to; a failed write names ``target``, not it."""
        tmp = self.stage(target)
        try:
            yield tmp
        except (InputError, OSError) as err:
            cause = err if isinstance(err, OSError) else err.__cause__
            if not isinstance(cause, OSError):
                raise  # a problem with the data, whose message names no temporary
            reason = cause.strerror or short_error(cause)
            raise InputError(
                f"cannot write {target} ({reason}): check free space and permissions"
            ) from cause

    def commit(self) -> list[Path]:
        """Move every staged output into place; on failure put the old targets back."""
        missing = [str(t) for tmp, t in self._staged if not os.path.lexists(tmp)]
        if missing:
            raise RuntimeError(f"outputs staged but never written: {', '.join(missing)}")
        done: list[tuple[Path, Path | None]] = []  # (target, old target set aside)
        try:
            for tmp, target in self._staged:
                old = None
                if os.path.lexists(target):
                    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
                    os.replace(target, old)
                done.append((target, old))
                os.replace(tmp, target)
        except OSError as exc:
            for target, old in reversed(done):  # undo: the new ones out, the old ones back
                _remove(target)
                if old is not None:
                    with suppress(OSError):
                        os.replace(old, target)
            raise InputError(
                f"cannot move the outputs into place ({short_error(exc)}): nothing was replaced"
            ) from exc
        finally:
            self._committed = True
            self.discard()
        for _, old in done:
            if old is not None:
                _remove(old)
        return [target for _, target in self._staged]

    def discard(self) -> None:
        """Remove every temporary (written or half-written); targets are left as they are."""
        for tmp, _ in self._staged:
            _remove(tmp)

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            self.discard()
