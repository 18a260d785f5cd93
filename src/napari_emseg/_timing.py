"""Seconds per stage of a run, for the benchmark, at no cost when nobody records.

The engine marks its stages with ``with timed("membrane"): ...``; a caller that wants the
split wraps a run in ``with record_stages() as seconds: ...`` and reads ``seconds``, a dict of
stage name to seconds summed over the run. The recorder lives in a context variable, so
concurrent runs in other threads or tasks do not mix.

Examples
--------
>>> with record_stages() as seconds:
...     with timed("membrane"):
...         pass
>>> list(seconds)
['membrane']
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_recorder: ContextVar[dict[str, float] | None] = ContextVar("emseg_stage_seconds", default=None)


@contextmanager
def record_stages() -> Iterator[dict[str, float]]:
    seconds: dict[str, float] = {}
    token = _recorder.set(seconds)
    try:
        yield seconds
    finally:
        _recorder.reset(token)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    seconds = _recorder.get()
    if seconds is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


@contextmanager
def parallel_stages() -> Iterator[Callable[..., Any]]:
    """Stages timed in several threads at once: ``run(function, *args)`` calls ``function`` with
    a recorder of its own (call it in each thread); the block's wall time is added to the
    caller's stages in proportion to the threads' seconds per stage, so that stages still sum
    to the wall time.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> def work():
    ...     with timed("outline"):
    ...         time.sleep(0.01)
    >>> with record_stages() as seconds, parallel_stages() as run:
    ...     with ThreadPoolExecutor(2) as pool:
    ...         _ = list(pool.map(lambda _: run(work), range(2)))
    >>> 0.01 <= seconds["outline"] < 0.02  # the wall time, not the threads' sum
    True
    """
    outer = _recorder.get()
    threads: list[dict[str, float]] = []

    def run(function: Callable[..., Any], *args: Any) -> Any:
        seconds: dict[str, float] = {}
        threads.append(seconds)
        token = _recorder.set(seconds)
        try:
            return function(*args)
        finally:
            _recorder.reset(token)

    start = time.perf_counter()
    try:
        yield run
    finally:
        if outer is not None:
            wall = time.perf_counter() - start
            totals: dict[str, float] = {}
            for seconds in threads:
                for stage, value in seconds.items():
                    totals[stage] = totals.get(stage, 0.0) + value
            whole = sum(totals.values())
            for stage, value in totals.items():
                outer[stage] = outer.get(stage, 0.0) + (wall * value / whole if whole else 0.0)
