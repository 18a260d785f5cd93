"""Write a file so that readers see either the old file or the complete new one, never half."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from napari_emseg.io.volume import InputError, short_error


def atomic_write(out: Path, write: Callable[[Path], None], *, durable: bool = False) -> None:
    """Run ``write`` on a temporary file beside ``out``, then move it into place.

    ``durable`` also flushes the file to disk before the move, for what must survive a crash
    of the machine (autosave journals), at the price of a slower write.
    """
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        # O_EXCL: never clobber someone else's file; mode 0o666 & ~umask like a normal file.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException as exc:
        with suppress(OSError):  # best effort; the original error matters more
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(
                f"cannot write {out} ({short_error(exc)}): check free space and permissions"
            ) from exc
        raise
