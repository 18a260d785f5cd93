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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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
