"""Networks (torch ``nn.Module`` only: no I/O, no Qt) and the typed registry of model cards.

``cards`` needs no torch, so listing models stays fast; the network classes load on first use.
"""

ARCHITECTURE_CLASSES = {
    "fakhry": "napari_emseg.models.fakhry:FakhryNet",
    "fusionnet": "napari_emseg.models.fusionnet:FusionNet",
    "unet": "napari_emseg.models.unet:UNet",
}

__all__ = ["ARCHITECTURE_CLASSES", "build_network"]


def build_network(architecture: str, *, width: float = 1.0, **kwargs):
    """Instantiate a registered membrane architecture by name.

    Examples
    --------
    >>> net = build_network("fusionnet", width=0.125)
    >>> net.depth
    4
    """
    from importlib import import_module

    try:
        module, name = ARCHITECTURE_CLASSES[architecture].split(":")
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURE_CLASSES))
        raise ValueError(f"unknown architecture {architecture!r}; choose one of: {known}") from None
    return getattr(import_module(module), name)(width=width, **kwargs)
