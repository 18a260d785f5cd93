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


def stage_progress(
    progress: ProgressCallback | None, start: float, end: float, name: str | None = None
) -> ProgressCallback | None:
    """Report a stage's progress as the share ``start..end`` of the whole (per mille).

    ``name`` prefixes the stage's messages, so the user sees which stage is running.

    Examples
    --------
    >>> seen = []
    >>> stage = stage_progress(lambda *a: seen.append(a), 0.5, 1.0, "propagation")
    >>> stage(1, 2, "slice 3")
    >>> seen
    [(750, 1000, 'propagation: slice 3')]
    """
    if progress is None:
        return None

    def relay(done: int, total: int, message: str) -> None:
        fraction = start + (end - start) * done / max(total, 1)
        progress(int(round(1000 * fraction)), 1000, f"{name}: {message}" if name else message)

    return relay
