"""Trained propagation networks: cards (``weights/*.propagation.json``) and checked loading.

A card names the network's settings, the pixel size it works at, the sha256 of its float16
weights and the command that trained it. Weights load only after the hash check, as membrane
models do (:func:`napari_emseg.models.cards.load_checked_state_dict`).
"""

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

CARD_SUFFIX = ".propagation.json"


@dataclass(frozen=True)
class PropagationCard:
    """A trained consistent ConvLSTM: its settings, weights, provenance and scores."""

    name: str
    variant: str
    network: dict[str, Any]
    pixel_nm: float
    weights: str
    sha256: str
    membrane_model: str | None = None
    description: str = ""
    training_command: str | None = None
    sources: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def _read_card(path: Path) -> PropagationCard:
    fields = json.loads(Path(path).read_text())
    known = PropagationCard.__dataclass_fields__
    return PropagationCard(**{k: v for k, v in fields.items() if k in known})


def packaged_propagation_cards() -> dict[str, PropagationCard]:
    """Shipped propagation networks by name."""
    folder = resources.files("napari_emseg") / "weights"
    cards = [
        _read_card(Path(str(entry)))
        for entry in folder.iterdir()
        if entry.name.endswith(CARD_SUFFIX)
    ]
    return {card.name: card for card in sorted(cards, key=lambda c: c.name)}


def get_propagation_card(name: str) -> PropagationCard:
    """A card by model name, by variant (``"stc"`` -> ``cconvlstm-stc``), or a card file path."""
    cards = packaged_propagation_cards()
    for candidate in (name, f"cconvlstm-{name}"):
        if candidate in cards:
            return cards[candidate]
    path = Path(name)
    if path.name.endswith(CARD_SUFFIX) and path.is_file():
        card = _read_card(path)
        weights = Path(card.weights)
        if not weights.is_absolute():
            weights = path.parent / weights
        return PropagationCard(**{**card.__dict__, "weights": str(weights.resolve())})
    known = ", ".join(cards) or "none shipped"
    raise FileNotFoundError(
        f"no trained propagation weights for {name!r} (known: {known}); train them with "
        "`napari-emseg train propagation` or pass a .propagation.json card"
    )


def load_propagation_network(card: PropagationCard, device: str):
    """The card's network in eval mode on ``device`` (cached: repropagation reuses it)."""
    return _load(card.weights, card.sha256, json.dumps(card.network, sort_keys=True), device)


@lru_cache(maxsize=4)
def _load(weights: str, sha256: str, network: str, device: str):
    from napari_emseg.inference.devices import resolve_device
    from napari_emseg.models.cards import load_checked_state_dict
    from napari_emseg.models.cconvlstm import CConvLSTMNet

    path = Path(weights)
    if not path.is_absolute():
        path = Path(str(resources.files("napari_emseg") / "weights" / weights))
    state = load_checked_state_dict(path, sha256)
    net = CConvLSTMNet(**json.loads(network))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().to(resolve_device(device))
