"""Choosing a torch device: ``auto`` prefers CUDA, then Apple MPS, then the CPU.

torch is imported inside the functions, so that the device names are known without it.
"""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # and "cuda:N" for the N-th GPU


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> list[str]:
    """Devices usable on this machine, in order of preference."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(name: str = "auto"):
    """Turn a user's device choice into a ``torch.device``.

    Raises ``ValueError`` with a one-line message when the device is unknown or absent.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    base, _, index = name.partition(":")
    if base not in DEVICE_CHOICES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(
            f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)} or cuda:N"
        )
    if base not in available_devices():
        raise ValueError(f"device {name!r} is not available on this machine; choose the CPU")
    if index and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {name!r} does not exist: this machine has {count} CUDA GPU(s)")
    return torch.device(name)


def autocast_dtype(device) -> "object | None":
    """The reduced precision a network runs in on ``device``, or None for float32.

    bfloat16 on CUDA, and on CPUs with native bfloat16 (AMX or AVX-512 BF16), where it was
    2.5x faster than float32 for the same V_rand (docs/performance.md); float32 elsewhere.
    ``EMSEG_PRECISION=float32`` in the environment turns it off.

    Examples
    --------
    >>> import os, torch
    >>> os.environ["EMSEG_PRECISION"] = "float32"
    >>> autocast_dtype(torch.device("cpu")) is None
    True
    >>> del os.environ["EMSEG_PRECISION"]
    """
    import os

    import torch

    if os.environ.get("EMSEG_PRECISION", "").lower() in ("float32", "fp32"):
        return None
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None
