"""Connect to a dask.distributed cluster: a LocalCluster here, or an existing scheduler.

``distributed`` is an optional extra (``pip install 'napari-emseg[dask]'``); it is imported only
when a client is asked for, and its absence is a one-line :class:`ClusterError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

INSTALL_HINT = "pip install 'napari-emseg[dask]'"


class ClusterError(RuntimeError):
    """A dask cluster cannot be used; the message is one line that says what to do."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(
            "dask.distributed is not installed, so blocks cannot run on a Dask cluster: "
            f"{INSTALL_HINT}"
        ) from exc
    return distributed


@contextmanager
def dask_client(
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    timeout: float = 30.0,
) -> Iterator[Any]:
    """A ``distributed.Client``: of an existing ``scheduler``, else of a new LocalCluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), e.g. one started by
        ``dask scheduler`` or by dask-jobqueue / dask-kubernetes (see docs/large-volumes.md), or
        the JSON file that ``dask scheduler --scheduler-file FILE`` writes.
    workers : int, optional
        Workers of the LocalCluster (one thread each); default: the CPU count, at most 4.
    processes : bool
        LocalCluster workers as processes (True) or threads of this process (False).
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    ClusterError
        distributed is not installed, or the scheduler cannot be reached.

    Examples
    --------
    >>> with dask_client(workers=2, processes=False) as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    distributed = _distributed()
    with ExitStack() as stack:
        if scheduler:
            try:
                if os.path.isfile(scheduler):  # written by dask scheduler --scheduler-file
                    client = distributed.Client(scheduler_file=scheduler, timeout=timeout)
                else:
                    client = distributed.Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ClusterError(
                    f"cannot reach the dask scheduler at {scheduler} ({first[:120]}): start one "
                    "with 'dask scheduler' and pass the address it prints"
                ) from exc
        else:
            count = workers if workers is not None else min(4, os.cpu_count() or 1)
            if count < 1:
                raise ClusterError(f"a cluster needs at least 1 worker, not {count}")
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=count,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=":0",  # any free port: two clusters never clash
                )
            )
            client = distributed.Client(cluster)
        stack.enter_context(client)
        yield client
