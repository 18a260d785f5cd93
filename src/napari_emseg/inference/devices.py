"""Choosing a torch device: ``auto`` prefers CUDA, then Apple MPS, then the CPU."""

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> list[str]:
    """Devices usable on this machine, in order of preference."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's device choice into a ``torch.device``.

    Raises ``ValueError`` with a one-line message when the device is unknown or absent.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
    if base not in available_devices():
        raise ValueError(f"device {name!r} is not available on this machine; use --device cpu")
    return torch.device(name)
