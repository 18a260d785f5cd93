"""The one loading path for trained networks: hash check, safe load, device placement, cache.

Membrane and propagation networks both come through here, so a weights file is never
unpickled before its sha256 matches its card, and ``weights_only=True`` refuses pickled code.
"""

import json
from pathlib import Path

from napari_emseg.models.cards import ModelCard, PropagationCard, sha256_of, weights_path


class WeightsError(ValueError):
    """Weights that are missing, altered, or not plain tensors."""


def load_checked_state_dict(path: Path, sha256: str) -> dict:
    """Read a state dict after verifying its hash, refusing anything but tensors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing; reinstall napari-emseg")
    actual = sha256_of(path)
    if actual != sha256:
        raise WeightsError(
            f"weights file {path} has sha256 {actual[:12]}..., expected {sha256[:12]}...; "
            "the file was altered or corrupted: reinstall napari-emseg"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError and others for unsafe content
        raise WeightsError(f"weights file {path} is not a plain tensor file: {err}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def load_network(card: ModelCard | PropagationCard):
    """A fresh network of a card with its checked weights, on the CPU in eval mode.

    Fresh, so a caller may train it (adaptation) without touching the inference cache.
    """
    if card.sha256 is None:
        raise WeightsError(f"model {card.name!r} has no sha256: its weights will not be loaded")
    if isinstance(card, PropagationCard):
        from napari_emseg.models.cconvlstm import CConvLSTMNet

        net = CConvLSTMNet(**card.network)
    else:
        from napari_emseg.models import build_network

        net = build_network(card.architecture, width=card.width, depth=card.depth)
    state = load_checked_state_dict(weights_path(card), card.sha256)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval()


def cached_network(card: ModelCard | PropagationCard, device: str):
    """The card's network in eval mode on ``device``, shared between calls (repropagation and
    repeated predictions reuse it). Never train what this returns: use :func:`load_network`."""
    from napari_emseg.inference.devices import resolve_device

    fields = {k: v for k, v in card.__dict__.items() if k not in ("metrics", "description")}
    path = weights_path(card)
    if not path.is_file():
        return load_network(card)  # says the file is missing
    stat = path.stat()  # a file replaced since it was cached is checked again
    fields["file"] = (stat.st_mtime_ns, stat.st_size)
    key = (type(card).__name__, json.dumps(fields, sort_keys=True, default=str), str(device))
    if key not in _CACHE:
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))  # the oldest
        _CACHE[key] = load_network(card).to(resolve_device(device))
    return _CACHE[key]


_CACHE_SIZE = 4
_CACHE: dict[tuple[str, str, str], object] = {}
