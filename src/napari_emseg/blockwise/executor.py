"""Run one function over many work items, here or as dask.distributed tasks, with progress.

Blockwise segmentation maps its block, overlap and relabel steps through :func:`map_tasks`, so
the same code runs in this process (one item after the other, cancellable between items) or on
a cluster (one task per item, cancelled there when ``cancel`` says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from napari_emseg._progress import CancelCheck, Cancelled, ProgressCallback, check_cancel, report

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_tasks(
    func: Callable[..., Result],
    items: Sequence[Item],
    *,
    client: Any = None,
    shared: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    message: str = "tasks",
) -> list[Result]:
    """``[func(item, **shared) for item in items]``, here or on a dask.distributed cluster.

    Parameters
    ----------
    func : callable
        A module-level function (workers import it by name), picklable arguments and result.
    items : sequence
        One task per item.
    client : distributed.Client, optional
        Run the tasks on its cluster; without it they run here, in order.
    shared : dict, optional
        Keyword arguments passed to every call (futures among them, e.g. from
        ``client.scatter``, are resolved on the workers).
    progress : callable, optional
        ``progress(done, total, message)`` after each finished item.
    cancel : callable, optional
        Checked before each item here, or after each finished task on a cluster (the
        remaining tasks are then cancelled); raises :class:`~napari_emseg._progress.Cancelled`.

    Returns
    -------
    list
        The results in the order of ``items``.

    Examples
    --------
    >>> map_tasks(pow, [1, 2, 3], shared={"exp": 2})
    [1, 4, 9]
    """
    shared = shared or {}
    total = len(items)
    if client is None:
        results = []
        for done, item in enumerate(items, 1):
            check_cancel(cancel)
            results.append(func(item, **shared))
            report(progress, done, total, f"{message} {done}/{total}")
        return results
    from distributed import as_completed

    futures = client.map(func, items, pure=False, **shared)
    position = {future.key: i for i, future in enumerate(futures)}
    results_by_index: dict[int, Result] = {}
    try:
        for done, future in enumerate(as_completed(futures), 1):
            results_by_index[position[future.key]] = future.result()  # re-raises a task's error
            report(progress, done, total, f"{message} {done}/{total}")
            if cancel is not None and cancel() and done < total:
                raise Cancelled("cancelled by the user")
    except BaseException:
        client.cancel(futures)
        raise
    return [results_by_index[i] for i in range(total)]
