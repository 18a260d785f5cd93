"""A plain-text progress bar on stderr (no dependency; log files get whole lines)."""

import sys
import time
from typing import TextIO


class TextProgress:
    """``epoch 3/20 [#######...] 120/200 loss 0.31 0.52 s/step``.

    On a terminal the line is redrawn at most twice a second; when stderr is a file (a ``nohup``
    log), a full line is printed every ``line_every`` (a fraction) of the steps instead.
    """

    def __init__(
        self, total: int, prefix: str, *, stream: TextIO | None = None, line_every: float = 0.25
    ):
        self.total = max(1, total)
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = max(1, int(self.total * line_every))
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, done: int, message: str = "") -> None:
        now = time.perf_counter()
        finished = done >= self.total
        if self.tty and not finished and now - self._last_draw < 0.5:
            return
        if not self.tty and not finished and done % self.every:
            return
        self._last_draw = now
        filled = 20 * done // self.total
        rate = (now - self.start) / max(done, 1)
        line = (
            f"{self.prefix} [{'#' * filled}{'.' * (20 - filled)}] {done}/{self.total} "
            f"{message} {rate:.2f} s/step"
        )
        end = "\n" if finished or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
