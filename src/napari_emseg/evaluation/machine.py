"""The machine a measurement ran on, the commit it measured, and what a call cost (seconds,
memory, FLOPs: the last three shared with the engine benchmark)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_emseg.evaluation.speed import (
    cpu_name,
    median_seconds,
    network_flops_per_slice,
    peak_rss_mb,
)

__all__ = [
    "cpu_name",
    "describe_machine",
    "git_commit",
    "load_average",
    "median_seconds",
    "network_flops_per_slice",
    "peak_rss_mb",
    "timed",
]


def describe_machine(device: str = "cpu") -> str:
    """One line for a report: system, CPU, cores, and the GPU when ``device`` is CUDA.

    Examples
    --------
    >>> "CPU cores" in describe_machine()
    True
    """
    parts = [
        f"{platform.system()} {platform.machine()}",
        cpu_name(),
        f"{os.cpu_count()} CPU cores",
        _gpu_name() if str(device).startswith("cuda") else "no GPU used",
    ]
    return ", ".join(part for part in parts if part)


def _gpu_name() -> str:
    try:
        import torch

        return f"GPU {torch.cuda.get_device_name()}"
    except Exception:  # no torch, no CUDA: the report says so rather than failing at its end
        return "GPU unknown"


def load_average() -> float:
    """The 1-minute load average (0.0 where the system has none): were the cores shared?"""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def git_commit(repo: str | Path | None = None) -> str:
    """The short commit of the checkout ``repo`` (default: this package's), or ``unknown``.

    Examples
    --------
    >>> len(git_commit()) > 0
    True
    """
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``function(*args, **kwargs)`` and the wall seconds it took.

    Examples
    --------
    >>> value, seconds = timed(sum, [1, 2, 3])
    >>> value, seconds >= 0
    (6, True)
    """
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start
