"""Progress and cancellation plumbing shared by the engine (no Qt).

Long work reports through a plain callable ``progress(done, total, message)`` and polls a
``cancel`` callable between tiles or slices; the widget layer adapts both to napari.
"""

from collections.abc import Callable

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]


class Cancelled(Exception):
    """Raised inside the engine when the caller's cancel check returns True."""


def report(progress: ProgressCallback | None, done: int, total: int, message: str) -> None:
    if progress is not None:
        progress(done, total, message)


def check_cancel(cancel: CancelCheck | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the user")
