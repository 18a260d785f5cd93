"""The progress printer: rate-limited lines in a log, a heartbeat, results on their own line."""

import argparse
import io
import time

from napari_emseg.cli.common import ProgressPrinter, emit


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def printed(stream: io.StringIO) -> list[str]:
    """The lines written, without their time stamps."""
    return [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]


def test_without_a_terminal_one_line_every_few_seconds_and_the_last_always():
    clock, stream = FakeClock(), io.StringIO()
    show = ProgressPrinter(stream=stream, heartbeat=False, clock=clock)
    for done, now in zip(range(5), [100.0, 101.0, 106.0, 107.0, 108.0], strict=True):
        clock.now = now
        show(done, 4, f"membrane: slice {done}")
    assert printed(stream) == [
        "  0% (0/4) membrane: slice 0",
        " 50% (2/4) membrane: slice 2",
        "100% (4/4) membrane: slice 4",
    ]


def test_the_heartbeat_repeats_a_silent_stage_with_its_time():
    clock, stream = FakeClock(), io.StringIO()
    show = ProgressPrinter(stream=stream, heartbeat=False, clock=clock)
    show(1, 10, "propagation: slice 1")
    clock.now = 103.0
    show.tick()  # printed 3 s ago: nothing yet
    clock.now = 105.5
    show.tick()
    clock.now = 108.0
    show.tick()  # the heartbeat's own line counts: not again within 5 s
    clock.now = 111.0
    show.tick()
    assert printed(stream) == [
        " 10% (1/10) propagation: slice 1",
        " 10% (1/10) propagation: slice 1 (6 s in propagation)",
        " 10% (1/10) propagation: slice 1 (11 s in propagation)",
    ]


def test_the_heartbeat_thread_prints_while_the_engine_is_silent():
    stream = io.StringIO()
    show = ProgressPrinter(stream=stream, every_s=0.05, stage="reading big.zarr")
    time.sleep(0.4)
    show.close()
    lines = printed(stream)
    assert len(lines) >= 3 and all("reading big.zarr (" in line for line in lines)
    after = stream.getvalue()
    time.sleep(0.15)
    assert stream.getvalue() == after  # closed: the heartbeat stopped


def test_quiet_prints_nothing():
    stream = io.StringIO()
    show = ProgressPrinter(quiet=True, stream=stream, every_s=0.01)
    show(1, 2, "x")
    show.tick()
    show.close()
    assert stream.getvalue() == ""


def test_on_a_terminal_the_json_result_starts_a_line_of_its_own(monkeypatch):
    terminal = Terminal()
    show = ProgressPrinter(stream=terminal, heartbeat=False, clock=FakeClock())
    monkeypatch.setattr("sys.stdout", terminal)  # stdout and stderr on one screen
    show(1, 2, "membrane: tile 1/2")
    show(2, 2, "membrane: tile 2/2")
    emit(argparse.Namespace(progress=show), {"objects": 3})
    screen = terminal.getvalue()
    assert screen.startswith("\r") and screen.count("\r") == 2
    first, result, rest = screen.split("\n")
    assert first.split("\r")[-1].startswith("100% (2/2) membrane: tile 2/2")
    assert result == '{"objects": 3}' and rest == ""


def test_the_heartbeat_speaks_a_wake_early_so_no_gap_reaches_the_limit():
    clock, stream = FakeClock(), io.StringIO()
    show = ProgressPrinter(stream=stream, heartbeat=False, clock=clock, every_s=5.0)
    show(1, 10, "propagation: slice 1")
    clock.now = 103.9
    show.tick()  # the next wake-up may come only a second later: too late to wait
    clock.now = 104.1
    show.tick()
    assert len(printed(stream)) == 2
