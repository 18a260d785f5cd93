"""Training checkpoints and the exported model (float16 weights + a JSON model card).

Checkpoints hold only tensors and plain data so that they load with ``weights_only=True``, like
the exported weights. Files are written to a temporary name and renamed, so a run killed mid-save
never leaves a truncated checkpoint behind.
"""

import json
from pathlib import Path
from typing import Any

import torch

from napari_emseg.io.atomic import atomic_write
from napari_emseg.models.cards import ModelCard, sha256_of

NORMALIZATION = "percentile-0.5-99.5"  # normalize_intensity's defaults, as the registry names them


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(path: Path, **content: Any) -> None:
    """Save ``model``, ``optimizer``, ``scheduler`` state dicts, ``epoch``, ``config``, ...."""
    _atomic_save(content, Path(path))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


def half_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors as contiguous float16 (half the file); integer buffers as they are."""
    return {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in state.items()
    }


def export_model(
    state: dict[str, torch.Tensor],
    out: Path,
    *,
    name: str,
    architecture: str,
    width: float,
    depth: int,
    description: str,
    voxel_size_nm: tuple[float, float] | None,
    training_command: str | None,
    metrics: dict[str, float],
    pixel_range_nm: tuple[float, float] | None = None,
) -> tuple[Path, Path]:
    """Write ``<name>.pt`` (float16 state dict) and ``<name>.json`` (a :class:`ModelCard`).

    The JSON holds exactly the card's fields, so ``ModelCard(**json.load(f))`` rebuilds it;
    ``weights`` is the file name and ``sha256`` the hash of the ``.pt`` as written.

    Returns
    -------
    weights, card : Path
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.pt"
    _atomic_save(half_state_dict(state), weights)
    card = ModelCard(
        name=name,
        architecture=architecture,
        description=description,
        width=float(width),
        depth=int(depth),
        normalization=NORMALIZATION,
        voxel_size_nm=voxel_size_nm,
        weights=weights.name,
        sha256=sha256_of(weights),
        training_command=training_command,
        metrics={k: float(v) for k, v in metrics.items()},
        pixel_range_nm=tuple(pixel_range_nm) if pixel_range_nm else None,
    )
    card_path = out / f"{name}.json"
    fields = {k: getattr(card, k) for k in card.__dataclass_fields__}
    card_path.write_text(json.dumps(fields, indent=2) + "\n")
    return weights, card_path


def export_checkpoint(
    path: str | Path,
    *,
    out: str | Path | None = None,
    name: str | None = None,
    description: str | None = None,
    training_command: str | None = None,
    metrics: dict[str, float] | None = None,
    pixel_nm: float | None = None,
) -> tuple[Path, Path]:
    """Export the weights of a training checkpoint with :func:`export_model`.

    Architecture, size, voxel size and command come from the checkpoint's config; ``metrics``
    default to the validation scores of the checkpoint's own epoch. Any argument overrides.

    Examples
    --------
    >>> export_checkpoint("runs/fusionnet/best.pt")  # doctest: +SKIP
    """
    ckpt = load_checkpoint(path)
    config = ckpt["config"]
    epoch = int(ckpt["epoch"])
    record = next((r for r in ckpt.get("history", []) if r["epoch"] == epoch), {})
    if metrics is None:
        metrics = {k: v for k, v in record.items() if k.startswith("val_")}
    pixel_nm = pixel_nm or ckpt.get("pixel_nm")
    default_description = (
        f"{config['model']} (width {config['width']:g}) trained on {config['data']} slices "
        f"{config['train_slices']}; epoch {epoch}, selected on slices {config['val_slices']}"
    )
    return export_model(
        ckpt["model"],
        Path(out) if out is not None else Path(path).parent,
        name=name or config.get("name") or f"{config['model']}-w{config['width']:g}",
        architecture=config["model"],
        width=config["width"],
        depth=config["depth"],
        description=description or config.get("description") or default_description,
        voxel_size_nm=(pixel_nm, pixel_nm) if pixel_nm else None,
        training_command=training_command or config.get("command"),
        metrics=metrics,
        pixel_range_nm=ckpt.get("pixel_range_nm"),
    )
