"""The model registry: typed model cards, and weights that load only after a sha256 check.

The GUI and the CLI list models from here, never from a hard-coded list.
"""

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

CLASSICAL = "classical"


@dataclass(frozen=True)
class ModelCard:
    """What a membrane model is, how it was made and what it scored.

    ``architecture`` is ``"classical"`` for filter-based models (no weights) or a name in
    :data:`napari_emseg.models.ARCHITECTURES`. ``weights`` is a file name inside the package's
    ``weights`` folder, checked against ``sha256`` before torch ever reads it.
    """

    name: str
    architecture: str
    description: str
    width: float = 1.0
    depth: int = 4
    normalization: str = "percentile-0.5-99.5"
    voxel_size_nm: tuple[float, float] | None = None
    weights: str | None = None
    sha256: str | None = None
    training_command: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def needs_torch(self) -> bool:
        return self.architecture != CLASSICAL


def packaged_cards() -> list[ModelCard]:
    """The trained models shipped in the package: one card ``.json`` beside each weights file."""
    folder = resources.files("napari_emseg") / "weights"
    known = {f.name for f in dataclasses.fields(ModelCard)}
    cards = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        # ``*.propagation.json`` cards belong to propagation networks (propagation/models.py).
        if entry.name.endswith(".json") and not entry.name.endswith(".propagation.json"):
            fields = json.loads(entry.read_text())
            fields["voxel_size_nm"] = tuple(fields.get("voxel_size_nm") or ()) or None
            cards.append(ModelCard(**{k: v for k, v in fields.items() if k in known}))
    return cards


MEMBRANE_MODELS: dict[str, ModelCard] = {
    card.name: card
    for card in (
        *packaged_cards(),
        ModelCard(
            name="ridge",
            architecture=CLASSICAL,
            description=(
                "Classical boundary map: multi-scale dark-ridge (Sato) filter blended with "
                "smoothed darkness. No training; works on any EM contrast where membranes are dark."
            ),
        ),
    )
}

# The best held-out score measured so far (docs/membrane.md); "ridge" needs no weights.
DEFAULT_MEMBRANE_MODEL = "fusionnet-w0.375-isbi"


def list_models() -> list[str]:
    """Names of the registered membrane models, the default first."""
    others = sorted(name for name in MEMBRANE_MODELS if name != DEFAULT_MEMBRANE_MODEL)
    return [DEFAULT_MEMBRANE_MODEL, *others]


def get_card(name: str | os.PathLike | None) -> ModelCard:
    """The card of a registered model, or of a model card file the user names.

    ``None`` or ``"default"`` gives the default. A path to a card ``.json`` (or to a ``.pt`` with
    a ``.json`` card beside it) is the only other way in: weights never load without a card
    that names their sha256.
    """
    if name in (None, "", "default"):
        name = DEFAULT_MEMBRANE_MODEL
    if str(name) in MEMBRANE_MODELS:
        return MEMBRANE_MODELS[str(name)]
    path = Path(name)
    if path.suffix.lower() in (".json", ".pt", ".pth") or path.exists():
        return card_from_file(path)
    known = ", ".join(list_models())
    raise ValueError(f"unknown model {str(name)!r}; choose one of: {known}, or a model card .json")


def card_from_file(path: Path) -> ModelCard:
    """Read a user's model card (JSON with ModelCard fields; ``weights`` relative to it)."""
    card_path = path if path.suffix.lower() == ".json" else path.with_suffix(".json")
    if not card_path.is_file():
        raise ValueError(
            f"model card {card_path} not found; a model file needs a card .json beside it "
            "naming its architecture, width and sha256"
        )
    try:
        fields = json.loads(card_path.read_text())
        weights = Path(fields.get("weights") or path.with_suffix(".pt").name)
        if not weights.is_absolute():
            weights = (card_path.parent / weights).resolve()
        fields["weights"] = str(weights)
        fields.setdefault("name", card_path.stem)
        fields.setdefault("description", f"user model from {card_path}")
        if "voxel_size_nm" in fields and fields["voxel_size_nm"] is not None:
            fields["voxel_size_nm"] = tuple(fields["voxel_size_nm"])
        known = {f.name for f in dataclasses.fields(ModelCard)}
        card = ModelCard(**{k: v for k, v in fields.items() if k in known})
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"model card {card_path} is not valid: {err}") from None
    if not card.sha256:
        raise ValueError(f"model card {card_path} has no sha256; add the weights' hash")
    return card


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class WeightsError(ValueError):
    """Weights that are missing, altered, or not plain tensors."""


def load_checked_state_dict(path: Path, sha256: str) -> dict:
    """Read a state dict after verifying its hash, refusing anything but tensors.

    ``weights_only=True`` makes torch refuse pickled code, and the hash check means a file
    that was swapped or corrupted is never unpickled at all.
    """
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


def weights_path(card: ModelCard) -> Path:
    """Where a card's weights are: inside the package, or the path a user card gave."""
    if card.weights is None:
        raise ValueError(f"model {card.name!r} has no trained weights registered")
    path = Path(card.weights)
    if path.is_absolute():
        return path
    return Path(str(resources.files("napari_emseg") / "weights" / card.weights))
