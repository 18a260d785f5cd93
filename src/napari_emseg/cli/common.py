"""What every command shares: the one-line error, the help formatter, the progress printer and
the options several commands take (--device, --voxel-size, -o/--overwrite/--quiet).

Nothing here imports torch or the engine at import time: ``--help`` must answer at once.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

EXIT_USAGE = 2
# Without a terminal (a Slurm log, a pipe) a progress line at most this often from the engine,
# and at least this often from the heartbeat while the engine is silent.
LOG_EVERY_S = 5.0
# The heartbeat thread wakes this often and speaks one wake early, so that however its wake-up
# falls (a busy CPU delays it) a silent stage still shows a line within LOG_EVERY_S.
HEARTBEAT_WAKE_S = 1.0
INPUT_FORMS = "a TIFF stack, a folder of slices, file.h5[:dataset] or a Zarr array"


class UsageError(Exception):
    """A problem the user can fix; its message is one line."""


def one_line(text: object) -> str:
    """``text`` with its whitespace folded: error messages are one line."""
    return " ".join(str(text).split())


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless it has none or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not has_default(action):
            return text
        return f"{text} (default: %(default)s)"


def has_default(action: argparse.Action) -> bool:
    """An option whose default is worth showing (not None, False or suppressed)."""
    quiet = action.default is None or action.default is False
    return bool(action.option_strings) and not quiet and action.default != argparse.SUPPRESS


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's conventions: a bad command line is one line on stderr, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see --help)\n")


# -- options several commands share --------------------------------------------------------------
def add_run_options(
    p: argparse.ArgumentParser, *, output_help: str | None, output_required: bool = True
) -> None:
    """``-o/--output`` (unless ``output_help`` is None), ``--overwrite`` and ``--quiet``."""
    if output_help is not None:
        p.add_argument("-o", "--output", required=output_required, help=output_help)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_device_option(p: argparse.ArgumentParser, *, what: str = "networks run") -> None:
    """``--device``: checked once by the facade before any input is read."""
    from napari_emseg.pipeline import DEVICE_CHOICES

    names = ", ".join(c for c in DEVICE_CHOICES if c != "auto")
    p.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help=f"where {what}: auto (cuda > mps > cpu), {names} or cuda:N (default: auto)",
    )


class VoxelSizeAction(argparse.Action):
    """Three numbers in nm, checked by the facade's one rule (:func:`checked_voxel_size`)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from napari_emseg.pipeline import checked_voxel_size

        try:
            numbers = [float(v) for v in values]
        except ValueError as err:
            raise argparse.ArgumentError(
                self, f"takes three numbers in nm (z, y, x), got {' '.join(values)}"
            ) from err
        try:
            size = checked_voxel_size(numbers)
        except ValueError as err:
            raise argparse.ArgumentError(self, one_line(err)) from err
        setattr(namespace, self.dest, size)


def add_voxel_size_option(p: argparse.ArgumentParser, *, use: str = "") -> None:
    """``--voxel-size Z Y X`` in nm; wins over the file's metadata."""
    p.add_argument(
        "--voxel-size",
        action=VoxelSizeAction,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help=f"voxel size in nm{use} (default: from the file's metadata)",
    )


def add_model_option(p: argparse.ArgumentParser, *, metavar: str = "NAME") -> None:
    """``--model``: a registered membrane model or a model card .json."""
    from napari_emseg.pipeline import list_models

    models = list_models()
    p.add_argument(
        "--model",
        default=None,
        metavar=metavar,
        help=f"membrane model: {', '.join(models)} (default {models[0]}) or a card .json",
    )


def recorded_command() -> str:
    """The command line as a user would retype it, for a model card."""
    program = Path(sys.argv[0]).name
    if program in ("__main__.py", "-c", ""):
        program = "napari-emseg"
    return f"{program} {shlex.join(sys.argv[1:])}"


# -- progress and results -------------------------------------------------------------------------
class ProgressPrinter:
    """Progress on stderr: ``printer(done, total, message)``, the engine's callback.

    On a terminal one live line is redrawn; else (a Slurm log, a pipe) a plain time-stamped line
    at most every ``every_s`` seconds, the last one always. A heartbeat thread repeats the
    current stage with the seconds spent in it whenever nothing was printed for ``every_s``, so
    a silent stage (reading, a long tile, writing; see :meth:`stage`) still shows a line at
    least that often.
    :meth:`close` ends the live line (a result or an error then starts on a line of its own)
    and stops the heartbeat. Messages ``"stage: detail"`` name their stage before the colon.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> show = ProgressPrinter(stream=out, heartbeat=False, clock=lambda: 0.0)
    >>> show(1, 2, "membrane: tile 1/2")
    >>> out.getvalue()[8:]
    '  50% (1/2) membrane: tile 1/2\\n'
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        stage: str = "starting",
        stream: TextIO | None = None,
        every_s: float = LOG_EVERY_S,
        heartbeat: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.every_s = every_s
        self._wake_s = min(HEARTBEAT_WAKE_S, every_s / 2)
        self.clock = clock
        self.live = not quiet and self.stream.isatty()
        self._lock = threading.Lock()
        self._state = (0, 0, stage)
        self._stage = stage
        self._stage_since = self._started = clock()
        self._last_write: float | None = None  # the engine's first line is always printed
        self._line_open = False
        self._stop = threading.Event()
        self._thread = None
        if heartbeat and not quiet:
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.quiet:
            return
        with self._lock:
            now = self.clock()
            stage = message.split(":", 1)[0]
            if stage != self._stage:
                self._stage, self._stage_since = stage, now
            self._state = (done, total, message)
            due = self._last_write is None or now - self._last_write >= self.every_s
            if self.live or due or done >= total:
                self._write(self._line(done, total, message), now)

    def stage(self, message: str) -> None:
        """Name work that reports no progress of its own (reading, writing): the heartbeat
        shows it once it has gone on for a while, so quick work (or a quick error) adds no
        line."""
        with self._lock:
            self._state = (0, 0, message)
            self._stage, self._stage_since = message.split(":", 1)[0], self.clock()

    def tick(self) -> None:
        """One heartbeat: repeat the current stage if nothing was printed for ``every_s``."""
        with self._lock:
            now = self.clock()
            last = self._started if self._last_write is None else self._last_write
            if self.quiet or now - last < self.every_s - self._wake_s:
                return
            done, total, message = self._state
            elapsed = f"{now - self._stage_since:.0f} s in {self._stage}"
            self._write(f"{self._line(done, total, message)} ({elapsed})", now)

    def end_line(self) -> None:
        """End the live line, so that what comes next starts a line of its own."""
        with self._lock:
            if self._line_open:
                self.stream.write("\n")
                self.stream.flush()
                self._line_open = False

    def close(self) -> None:
        """Stop the heartbeat and end the live line (safe to call twice)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.end_line()

    def _line(self, done: int, total: int, message: str) -> str:
        return f"{100 * done // total:3d}% ({done}/{total}) {message}" if total else message

    def _write(self, text: str, now: float) -> None:
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write(f"\r{text[:width]:<{width}}")
            self._line_open = True
        else:
            self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.stream.flush()
        self._last_write = now

    def _beat(self) -> None:
        while not self._stop.wait(self._wake_s):
            self.tick()


def emit(args: argparse.Namespace, result: Any) -> None:
    """Print a command's result as one JSON line on stdout, after ending the progress line."""
    progress = getattr(args, "progress", None)
    if progress is not None:
        progress.end_line()
    print(json.dumps(result), flush=True)
