"""The one registry of model cards: membrane networks and propagation networks.

A card says what a model is, the pixel size it was trained at, its weights file and their
sha256, the command that trained it and what it scored. Shipped cards lie beside their weights
in the package's ``weights`` folder (``NAME.json`` for membrane models, ``NAME.propagation.json``
for propagation networks); a user's card is any such file, with weights relative to it.
The GUI and the CLI list models from here, never from a hard-coded list. This module needs no
torch: weights are read by :mod:`napari_emseg.inference.loading`, after the hash check.
"""

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

CLASSICAL = "classical"
PROPAGATION_SUFFIX = ".propagation.json"
PROPAGATION_VARIANTS = ("st", "stl", "stn", "stc")
# The default membrane model: one network for 4-12 nm pixels at the stack's own resolution
# (docs/results/membrane-native.md); "ridge" needs no weights. Stacks finer than
# FINE_PIXEL_LIMIT_NM get the 4 nm network instead, which scored higher on 4 nm validation
# slices: the nearest card by pixel size (default_model).
DEFAULT_MEMBRANE_MODEL = "fusionnet-w0.375-native"
FINE_PIXEL_MODEL = "fusionnet-w0.375-multimodal"
FINE_PIXEL_LIMIT_NM = 5.0


@dataclass(frozen=True)
class ModelCard:
    """A membrane model: how it was made and what it scored.

    ``architecture`` is ``"classical"`` for filter-based models (no weights) or a name in
    :data:`napari_emseg.models.ARCHITECTURE_CLASSES`. ``weights`` is a file name inside the
    package's ``weights`` folder, or an absolute path for a user's card.
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
    base_model: str | None = None  # for a model adapted from another one
    # Pixel sizes (nm) the network was trained to see as they are (wide scale jitter); stacks
    # inside run at their own resolution, see napari_emseg.inference.resampling.work_pixel_nm.
    pixel_range_nm: tuple[float, float] | None = None

    @property
    def needs_torch(self) -> bool:
        return self.architecture != CLASSICAL

    @property
    def pixel_nm(self) -> float | None:
        """The in-plane pixel size the model was trained at, when recorded."""
        return float(self.voxel_size_nm[-1]) if self.voxel_size_nm else None


@dataclass(frozen=True)
class PropagationCard:
    """A trained consistent ConvLSTM: its settings, pixel size, weights, provenance, scores."""

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
    # Patch edges (network pixels) to choose from at inference, near the training crops;
    # None: the propagator's default.
    patch_px: tuple[int, ...] | None = None
    # Slices per z window at inference, chosen on training blocks; None: CCONVLSTM_WINDOW.
    window: int | None = None


RIDGE = ModelCard(
    name="ridge",
    architecture=CLASSICAL,
    description=(
        "Classical boundary map: multi-scale dark-ridge (Sato) filter blended with smoothed "
        "darkness. No training; works on any EM contrast where membranes are dark."
    ),
)


def _card(kind: type, fields: dict, *, folder: Path | None = None):
    """A card of ``kind`` from a JSON dict; a user card's weights become an absolute path."""
    known = {f.name for f in dataclasses.fields(kind)}
    values = {k: v for k, v in fields.items() if k in known}
    for key in ("voxel_size_nm", "pixel_range_nm", "patch_px"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    if folder is not None and values.get("weights"):
        values["weights"] = str((folder / values["weights"]).resolve())
    return kind(**values)


@lru_cache(maxsize=1)
def _packaged() -> tuple[dict[str, ModelCard], dict[str, PropagationCard]]:
    """Shipped cards by name, read once per process."""
    membrane: dict[str, ModelCard] = {}
    propagation: dict[str, PropagationCard] = {}
    folder = resources.files("napari_emseg") / "weights"
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(PROPAGATION_SUFFIX):
            card = _card(PropagationCard, json.loads(entry.read_text()))
            propagation[card.name] = card
        elif entry.name.endswith(".json"):
            card = _card(ModelCard, json.loads(entry.read_text()))
            membrane[card.name] = card
    membrane[RIDGE.name] = RIDGE
    return membrane, propagation


def packaged_cards() -> list[ModelCard]:
    """The membrane models shipped in the package (the classical ``ridge`` included)."""
    return list(_packaged()[0].values())


def packaged_propagation_cards() -> dict[str, PropagationCard]:
    """Shipped propagation networks by name."""
    return dict(_packaged()[1])


def list_models() -> list[str]:
    """Names of the registered membrane models, the default first."""
    others = sorted(name for name in _packaged()[0] if name != DEFAULT_MEMBRANE_MODEL)
    return [DEFAULT_MEMBRANE_MODEL, *others]


# The learned propagator works in z windows of this many slices that share one slice, unless
# its card says otherwise (:func:`propagation_window`).
CCONVLSTM_WINDOW = 5
# From this stack pixel size on, the STC variant takes the card fine-tuned at 20 nm: on gala
# (10 nm) it beat the 8 nm card with about half its network work, on ISBI (4 nm, which the 8 nm
# card runs binned to 16 nm) it lost (docs/results/propagation-20nm.md). The switch sits at the
# geometric mean of the two sizes; no stack between them was measured.
COARSE_PROPAGATION_FROM_NM = 6.3
COARSE_PROPAGATION_CARDS = {"stc": "cconvlstm-stc-20nm"}


def propagation_card_for(variant: str, pixel_nm: float) -> str:
    """The card name a variant runs with on a stack of ``pixel_nm`` in-plane pixels.

    Examples
    --------
    >>> propagation_card_for("stc", 4.0), propagation_card_for("stc", 10.0)
    ('stc', 'cconvlstm-stc-20nm')
    >>> propagation_card_for("st", 10.0)
    'st'
    """
    if pixel_nm >= COARSE_PROPAGATION_FROM_NM:
        return COARSE_PROPAGATION_CARDS.get(variant, variant)
    return variant


def propagation_window(options: dict | None = None) -> int:
    """Slices per z window of the consistent ConvLSTM run with these method ``options``: the
    ``window`` option, else that of the card the options select (``weights``, else ``variant``
    and ``pixel_nm``), else :data:`CCONVLSTM_WINDOW`.

    Examples
    --------
    >>> propagation_window(), propagation_window({"pixel_nm": 10.0})
    (5, 13)
    >>> propagation_window({"pixel_nm": 10.0, "window": 3})
    3
    """
    options = options or {}
    if options.get("window"):
        return int(options["window"])
    name = options.get("weights") or propagation_card_for(
        options.get("variant", "stc"), float(options.get("pixel_nm") or 4.0)
    )
    return get_propagation_card(name).window or CCONVLSTM_WINDOW


def default_model(pixel_nm: float | None = None) -> str:
    """The default membrane model for a stack of this in-plane pixel size (nm).

    Examples
    --------
    >>> default_model(10.0), default_model(4.0), default_model(None)
    ('fusionnet-w0.375-native', 'fusionnet-w0.375-multimodal', 'fusionnet-w0.375-native')
    """
    if pixel_nm is not None and float(pixel_nm) < FINE_PIXEL_LIMIT_NM:
        return FINE_PIXEL_MODEL
    return DEFAULT_MEMBRANE_MODEL


def get_card(name: str | os.PathLike | None) -> ModelCard:
    """The card of a registered membrane model, or of a model card file the user names.

    ``None`` or ``"default"`` gives the default. A path to a card ``.json`` (or to a ``.pt`` with
    a ``.json`` card beside it) is the only other way in: weights never load without a card
    that names their sha256.
    """
    if name in (None, "", "default"):
        name = DEFAULT_MEMBRANE_MODEL
    registered = _packaged()[0]
    if str(name) in registered:
        return registered[str(name)]
    path = Path(name)
    if path.suffix.lower() in (".json", ".pt", ".pth") or path.exists():
        return card_from_file(path)
    known = ", ".join(list_models())
    raise ValueError(f"unknown model {str(name)!r}; choose one of: {known}, or a model card .json")


def card_from_file(path: Path) -> ModelCard:
    """Read a user's membrane model card (ModelCard fields; ``weights`` relative to it)."""
    card_path = path if path.suffix.lower() == ".json" else path.with_suffix(".json")
    if not card_path.is_file():
        raise ValueError(
            f"model card {card_path} not found; a model file needs a card .json beside it "
            "naming its architecture, width and sha256"
        )
    try:
        fields = json.loads(card_path.read_text())
        fields.setdefault("weights", path.with_suffix(".pt").name)
        fields.setdefault("name", card_path.stem)
        fields.setdefault("description", f"user model from {card_path}")
        card = _card(ModelCard, fields, folder=card_path.parent)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"model card {card_path} is not valid: {err}") from None
    if not card.sha256:
        raise ValueError(f"model card {card_path} has no sha256; add the weights' hash")
    return card


def get_propagation_card(name: str) -> PropagationCard:
    """A propagation card by name, by variant (``"stc"`` -> ``cconvlstm-stc``), or a card path."""
    cards = _packaged()[1]
    for candidate in (name, f"cconvlstm-{name}"):
        if candidate in cards:
            return cards[candidate]
    path = Path(name)
    if path.name.endswith(PROPAGATION_SUFFIX) and path.is_file():
        return _card(PropagationCard, json.loads(path.read_text()), folder=path.parent)
    known = ", ".join(cards) or "none shipped"
    raise FileNotFoundError(
        f"no trained propagation weights for {name!r} (known: {known}); train them with "
        "the train propagation command or give a .propagation.json card"
    )


def weights_path(card: ModelCard | PropagationCard) -> Path:
    """Where a card's weights are: inside the package, or the path a user card gave."""
    if card.weights is None:
        raise ValueError(f"model {card.name!r} has no trained weights registered")
    path = Path(card.weights)
    if path.is_absolute():
        return path
    return Path(str(resources.files("napari_emseg") / "weights" / card.weights))


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
