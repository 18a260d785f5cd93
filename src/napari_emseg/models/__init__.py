"""Membrane networks (torch ``nn.Module`` only: no I/O, no Qt)."""

from napari_emseg.models.fakhry import FakhryNet
from napari_emseg.models.fusionnet import FusionNet
from napari_emseg.models.unet import UNet

ARCHITECTURES = {"fakhry": FakhryNet, "fusionnet": FusionNet, "unet": UNet}

__all__ = ["ARCHITECTURES", "FakhryNet", "FusionNet", "UNet", "build_network"]


def build_network(architecture: str, *, width: float = 1.0, **kwargs):
    """Instantiate a registered architecture by name.

    Examples
    --------
    >>> net = build_network("fusionnet", width=0.125)
    >>> net.depth
    4
    """
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {architecture!r}; choose one of: {known}") from None
    return cls(width=width, **kwargs)
