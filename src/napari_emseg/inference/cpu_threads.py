"""Torch's CPU threads fitted to the cores that other programs leave idle.

Torch's thread pool waits for its slowest thread. With as many threads as cores and one core
busy with another program, every operation waits for the thread that shares a core: on a
2-core CPU with a training run on one core, ``segment`` of the 60x250x250 benchmark stack at
10 nm took 87 s with two threads and 38 s with one (docs/performance.md). So each job of the
facade counts the busy cores first (a short sample of ``/proc/stat``, Linux only) and gives
torch the rest, at least one. ``OMP_NUM_THREADS`` or ``EMSEG_TORCH_THREADS`` set by the user
wins.
"""

import os
import time

# A core counts as busy when other programs keep it at least this busy during the sample.
BUSY_SHARE = 0.5
SAMPLE_S = 0.1


def machine_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_for(cores: int, busy: float | None) -> int:
    """Threads for torch when ``busy`` cores' worth of CPU is taken by other programs.

    Examples
    --------
    >>> [threads_for(2, b) for b in (None, 0.0, 0.4, 0.6, 1.0, 3.0)]
    [2, 2, 2, 1, 1, 1]
    >>> threads_for(16, 2.7)
    13
    """
    if busy is None:
        return cores
    return max(1, min(cores, cores - int(busy + 1 - BUSY_SHARE)))


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from ``/proc/stat``; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(sample_s: float = SAMPLE_S) -> float | None:
    """Cores' worth of CPU that other programs used over ``sample_s`` (this process's own
    threads excluded); None where ``/proc/stat`` cannot be read."""
    first, own_first, start = _cpu_jiffies(), _own_cpu_s(), time.perf_counter()
    if first is None:
        return None
    time.sleep(sample_s)
    second, own, wall = _cpu_jiffies(), _own_cpu_s() - own_first, time.perf_counter() - start
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return max(0.0, share * machine_cores() - own / wall)


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def fit_torch_threads() -> int:
    """Set torch's CPU threads to the idle cores (see the module doc); the count set."""
    import torch

    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("EMSEG_TORCH_THREADS"):
        threads = int(os.environ.get("EMSEG_TORCH_THREADS") or torch.get_num_threads())
    else:
        threads = threads_for(machine_cores(), busy_cores())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
