"""Adapt a membrane network to a user's data by fine-tuning it on corrected reference slices.

The corrected instance labels of one or more slices become membrane targets (1 = membrane: label
changes and label 0, widened to the membrane thickness the network was trained to output). The
network is fine-tuned on heavily augmented crops of those slices for a few hundred steps or a
time budget, whichever ends first, and saved as a user model card (float16 weights + sha256)
that ``--model CARD.json`` and :func:`napari_emseg.models.cards.get_card` accept.

Unlabelled pixels: label 0 within ``boundary_px`` of an object is a gap between objects, so it is
membrane; label 0 farther from every object is ignored by the loss, so a partly labelled slice
teaches only where the user labelled (docs/adapt.md).

With ``holdout`` part of the corrections is kept out of training and both networks segment it
(:mod:`~napari_emseg.training.holdout`); the card records both errors and whether the adapted
network won, which is when a caller should switch to it.
"""

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL, ModelCard, get_card, sha256_of
from napari_emseg.segmentation.normalization import normalize_intensity
from napari_emseg.training.augment import AugmentConfig, augment_pair, elastic_field
from napari_emseg.training.checkpoint import NORMALIZATION, half_state_dict
from napari_emseg.training.holdout import Holdout, choose_holdout, heldout_error

# Defaults chosen on training data only (gala train block, ISBI slices 0-19): docs/adapt.md.
DEFAULT_STEPS = 300
DEFAULT_TIME_BUDGET_S = 60.0
DEFAULT_LR = 1e-3
DEFAULT_BATCH = 4
DEFAULT_CROP = 128
DEFAULT_BOUNDARY_PX = 5.0  # ISBI 2012 membranes are ~5 px thick at the networks' 4 nm
# The network adapted when none is named: the one every command uses by default (a user
# adapts the model in use; the U-Net took 4-5x the FusionNet's steps in 60 s, docs/adapt.md).
DEFAULT_BASE_MODEL = DEFAULT_MEMBRANE_MODEL
WARMUP_STEPS = 10
# Crops are drawn zoomed by a factor in [1 / SCALE, SCALE], rotated by any angle and mirrored.
SCALE = 1.25
PHOTOMETRIC = AugmentConfig(flips=False, elastic_prob=0.0, margin=0)
ELASTIC = AugmentConfig()


def boundary_targets(
    labels: np.ndarray, *, boundary_px: float = DEFAULT_BOUNDARY_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Membrane target and loss mask of one corrected label slice.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        Instance ids, 0 = boundary or unlabelled.
    boundary_px : float
        Membrane thickness in pixels: pixels closer than ``(boundary_px - 2) / 2`` to a label
        change (or to a 0 pixel) are membrane. 2 keeps only the two pixels of each change.

    Returns
    -------
    target, known : ndarray of float32, shape (Y, X)
        ``target`` is 1 on membrane; ``known`` is 0 where the loss ignores the pixel (label 0
        farther than ``boundary_px`` from every object).

    Examples
    --------
    >>> lab = np.zeros((1, 12), np.int32); lab[0, 1:6], lab[0, 6:9] = 1, 2
    >>> target, known = boundary_targets(lab, boundary_px=2)
    >>> target.astype(int)[0].tolist()
    [1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1]
    >>> known.astype(int)[0].tolist()  # the last 0 is 3 px from an object: ignored
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    """
    labels = np.asarray(labels)
    edge = labels == 0
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    radius = max(0.0, (boundary_px - 2.0) / 2.0)
    target = edge if radius == 0 else ndi.distance_transform_edt(~edge) <= radius
    objects = labels != 0
    if objects.any():
        known = ndi.distance_transform_edt(~objects) <= boundary_px
    else:
        known = np.zeros(labels.shape, bool)
    return target.astype(np.float32), known.astype(np.float32)


def _augmented_crop(
    image: np.ndarray, target: np.ndarray, known: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    """(3, size, size): image, target and mask of one crop, rotated, mirrored, zoomed, warped."""
    h, w = image.shape
    known_yx = np.flatnonzero(known)  # centre crops on labelled pixels, not on ignored ones
    centre = np.unravel_index(known_yx[rng.integers(known_yx.size)], (h, w))
    zoom = math.exp(rng.uniform(-math.log(SCALE), math.log(SCALE)))
    angle = rng.uniform(0.0, 2 * math.pi)
    mirror = 1.0 if rng.random() < 0.5 else -1.0
    grid = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    gy, gx = grid[0] * zoom, grid[1] * zoom * mirror
    cos, sin = math.cos(angle), math.sin(angle)
    coords = np.stack([centre[0] + cos * gy - sin * gx, centre[1] + sin * gy + cos * gx])
    if rng.random() < ELASTIC.elastic_prob:
        dy, dx = elastic_field(
            (size, size), rng, sigma=ELASTIC.elastic_sigma, spacing=ELASTIC.elastic_spacing
        )
        coords += np.stack([dy, dx])
    out = np.empty((3, size, size), np.float32)
    out[0] = ndi.map_coordinates(image, coords, order=1, mode="mirror")
    # Nearest neighbour keeps the masks binary and the thickness the zoom gives them.
    out[1] = ndi.map_coordinates(target, coords, order=0, mode="mirror")
    out[2] = ndi.map_coordinates(known, coords, order=0, mode="mirror")
    out[0], _ = augment_pair(out[0], out[1], rng, PHOTOMETRIC, size=size)
    return out


def masked_loss(logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (as in training, see :func:`~.losses.bce_dice_loss`) over known pixels.

    Examples
    --------
    >>> t, k = torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    >>> bool(masked_loss(torch.tensor([[-9.0, 9.0, -9.0]]), t, k) < 0.01)
    True
    """
    logits, target, known = logits.float(), target.float(), known.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * known).sum() / known.sum().clamp_min(1.0)
    prob = torch.sigmoid(logits) * known
    target = target * known
    dice = (2 * (prob * target).sum() + 1.0) / (prob.sum() + target.sum() + 1.0)
    return bce + (1 - dice)


def _slice_loss(net, images, targets, knowns, device) -> float:
    """The masked loss of whole reference slices, un-augmented, in eval mode."""
    from napari_emseg.inference.tiled import predict_tiled

    prob = predict_tiled(net, images, device=device, tile=256 if device.type == "cpu" else 512)
    logits = torch.logit(torch.from_numpy(prob).clamp(1e-6, 1 - 1e-6))
    return float(masked_loss(logits, torch.from_numpy(targets), torch.from_numpy(knowns)))


def _lr_factor(step: int, steps: int, time_fraction: float) -> float:
    """Linear warm-up, then cosine to 0 over the steps or the time budget (whichever is ahead)."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    done = max(step / max(steps, 1), time_fraction)
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def _check_inputs(image, labels, ref_slices) -> tuple[np.ndarray, np.ndarray, list[int]]:
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim == 2:
        image, labels = image[None], labels[None] if labels.ndim == 2 else labels
    if image.ndim != 3 or labels.shape != image.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must be one (Z, Y, X)")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer ids, got {labels.dtype}")
    refs = sorted({int(z) for z in ([ref_slices] if np.isscalar(ref_slices) else ref_slices)})
    if not refs:
        raise ValueError("give at least one reference slice to adapt on")
    bad = [z for z in refs if not 0 <= z < image.shape[0]]
    if bad:
        raise ValueError(f"reference slices {bad} are outside 0..{image.shape[0] - 1}")
    empty = [z for z in refs if not labels[z].any()]
    if empty:
        raise ValueError(f"reference slices {empty} hold no labels: correct them first")
    return image, labels, refs


def _check_out(out: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    """The card and its weights beside it, refused before any work if either may not be written."""
    from napari_emseg.io.write_checks import check_output_path

    card = check_output_path(out, overwrite, suffixes=(".json",))
    return card, check_output_path(card.with_suffix(".pt"), overwrite, suffixes=(".pt",))


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def default_boundary_px(base: ModelCard, pixel_nm: float | None) -> float:
    """The targets' thickness: the base's membranes (5 px) at the image's pixel size.

    Examples
    --------
    >>> from napari_emseg.models.cards import get_card
    >>> card = get_card("unet-w0.1875-isbi")  # trained at 4 nm
    >>> [default_boundary_px(card, nm) for nm in (4.0, 10.0, None)]
    [5.0, 2.0, 5.0]
    """
    if not pixel_nm or not base.pixel_nm:
        return DEFAULT_BOUNDARY_PX
    return max(2.0, DEFAULT_BOUNDARY_PX * base.pixel_nm / pixel_nm)


def _fine_tune(
    net,
    images: np.ndarray,
    targets: np.ndarray,
    knowns: np.ndarray,
    *,
    steps: int,
    train_until: float,
    started: float,
    lr: float,
    batch_size: int,
    crop: int,
    decoder_only: bool,
    device,
    rng: np.random.Generator,
    name: str,
    after_s: float,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> int:
    """Train ``net`` in place until ``steps`` or ``train_until`` s after ``started``; the steps.

    Progress says the steps expected to fit, from the measured step time, and the seconds
    left including ``after_s`` (the work after training).
    """
    frozen = [*net.encoders, net.bridge] if decoder_only else []
    for part in frozen:
        part.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    use_cuda = device.type == "cuda"
    net.train()
    for part in frozen:
        part.eval()  # a frozen encoder keeps its batch-norm statistics too
    losses: list[float] = []
    step_seconds = 0.0
    first_step = time.perf_counter()
    while len(losses) < steps:
        elapsed = time.perf_counter() - started
        if elapsed + step_seconds > train_until:
            break
        check_cancel(cancel)
        tick = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr * _lr_factor(len(losses), steps, elapsed / train_until)
        index = rng.integers(len(images), size=batch_size)
        batch = np.stack(
            [_augmented_crop(images[i], targets[i], knowns[i], rng, crop) for i in index]
        )
        batch = torch.from_numpy(batch).to(device)
        x = batch[:, :1].contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_cuda):
            logits = net(x)
        loss = masked_loss(logits, batch[:, 1:2], batch[:, 2:3])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {len(losses) + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        now = time.perf_counter()
        step_seconds = now - tick
        done = len(losses)
        # How many steps fit, from the steps measured so far (the first is the slowest).
        pace = (now - first_step) / done
        expected = min(steps, done + max(int((train_until - (now - started)) / pace), 0))
        left = (expected - done) * pace + after_s
        report(
            progress,
            done,
            expected,
            f"adapting {name}: step {done} of {'~' * (expected < steps)}{expected}, "
            f"loss {np.mean(losses[-20:]):.3f}, ~{left:.0f} s left",
        )
    check_cancel(cancel)
    net.eval()
    return len(losses)


def adapt(
    image: np.ndarray,
    labels: np.ndarray,
    ref_slices: int | Sequence[int],
    *,
    out: str | os.PathLike,
    model: str | ModelCard | None = None,
    steps: int = DEFAULT_STEPS,
    time_budget_s: float | None = DEFAULT_TIME_BUDGET_S,
    device: str = "auto",
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH,
    crop: int = DEFAULT_CROP,
    boundary_px: float | None = None,
    decoder_only: bool = False,
    pixel_nm: float | None = None,
    holdout: bool = False,
    source: str | None = None,
    command: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Fine-tune a membrane network on corrected reference slices and save it as a model card.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X) or (Y, X)
        The raw EM stack (normalised here exactly as :func:`predict_membrane` does).
    labels : ndarray of int, same shape
        Labels; slices ``ref_slices`` are the corrected ones (0 = boundary or unlabelled).
    ref_slices : int or sequence of int
        The corrected slices to learn from.
    out : path
        The card ``.json`` to write; the float16 weights go beside it as ``.pt``.
    model : str or ModelCard, optional
        Base network: a registered name or a card path (default :data:`DEFAULT_BASE_MODEL`,
        the default membrane model).
    steps : int
        Most optimiser steps.
    time_budget_s : float or None
        Wall-clock limit of the whole call (loading, training, scoring, saving); training
        stops early so that it is kept. None: no limit.
    device : {"auto", "cpu", "cuda", "mps"}
    lr, batch_size, crop : float, int, int
        Peak AdamW learning rate (warm-up, then cosine to 0 over the steps or the time
        budget), crops per step, crop edge (px).
    boundary_px : float, optional
        Membrane thickness of the targets (see :func:`boundary_targets`); by default
        :func:`default_boundary_px`.
    decoder_only : bool
        Train only the decoder and head (the encoder and bridge stay as trained).
    pixel_nm : float, optional
        The image's in-plane pixel size: sets the default ``boundary_px``; written into the card.
    holdout : bool
        Keep part of the corrections out of training (the last reference slice, or the right
        part of the only one, :func:`~napari_emseg.training.holdout.choose_holdout`) and
        segment it with the base and with the adapted network. The card's ``validation``
        records both errors and ``kept``: whether the adapted network did better.
    source, command : str, optional
        The image file and the command, written into the card.
    seed : int
        Seeds the crops and the augmentation.
    overwrite : bool
        Replace an existing card and weights.
    progress, cancel : callable, optional
        ``progress(step, expected_steps, message)`` after every step (the steps expected to
        fit the budget, from the measured step time; the message says the seconds left);
        ``cancel()`` polled every step raises :class:`~napari_emseg._progress.Cancelled`
        (nothing is written).

    Returns
    -------
    Path
        The card, loadable with ``get_card(path)`` and usable as ``model=`` anywhere.

    Raises
    ------
    ValueError
        Bad inputs, a classical base model, or reference slices without labels.
    napari_emseg.io.InputError
        ``out`` is not a ``.json`` path, or it or its ``.pt`` exists without ``overwrite``.

    Examples
    --------
    >>> card = adapt(image, labels, [25], out="my-model.json", pixel_nm=10)  # doctest: +SKIP
    >>> predict_membrane(image, model=card)  # doctest: +SKIP
    """
    from napari_emseg.inference.devices import resolve_device
    from napari_emseg.inference.loading import load_network
    from napari_emseg.segmentation.normalization import intensity_range

    started = time.perf_counter()
    budget = math.inf if time_budget_s is None else float(time_budget_s)
    image, labels, refs = _check_inputs(image, labels, ref_slices)
    card_path, weights_path = _check_out(out, overwrite)
    base = model if isinstance(model, ModelCard) else get_card(model or DEFAULT_BASE_MODEL)
    if not base.needs_torch:
        raise ValueError(f"model {base.name!r} is classical: only a network can be adapted")
    torch_device = resolve_device(device)
    torch.manual_seed(seed)
    if boundary_px is None:
        boundary_px = default_boundary_px(base, pixel_nm)

    held = choose_holdout(labels, refs) if holdout else None
    trained = list(held.trained) if held else refs
    value_range = intensity_range(image)  # the whole stack's, as predict_membrane uses it
    stack = normalize_intensity(image, value_range=value_range)
    images = np.ascontiguousarray(stack[trained], np.float32)
    pairs = [boundary_targets(labels[z], boundary_px=boundary_px) for z in trained]
    targets = np.stack([t for t, _ in pairs])
    knowns = np.stack([k for _, k in pairs])
    if held is not None:
        knowns *= np.stack([held.train_mask(z, labels.shape[1:]) for z in trained])

    def score(card) -> float | None:
        """The held-out error of a card's map, predicted as every command predicts it."""
        from napari_emseg.inference.membrane import predict_membrane

        assert held is not None
        membrane = predict_membrane(
            image[held.z][None],
            model=card,
            device=str(torch_device),
            value_range=value_range,
            pixel_nm=pixel_nm,
            cancel=cancel,
        )[0]
        return heldout_error(membrane, labels[held.z], held, pixel_nm=pixel_nm)

    net = load_network(base).to(torch_device, memory_format=torch.channels_last)
    tick = time.perf_counter()
    before = score(base) if held is not None else None
    loss_before = _slice_loss(net, images, targets, knowns, torch_device)
    # Time kept after training: the final loss and score (the same passes again), the files.
    after_s = 1.5 * (time.perf_counter() - tick) + 0.5
    done = _fine_tune(
        net,
        images,
        targets,
        knowns,
        steps=steps,
        train_until=budget - after_s if math.isfinite(budget) else math.inf,
        started=started,
        lr=lr,
        batch_size=batch_size,
        crop=crop,
        decoder_only=decoder_only,
        device=torch_device,
        rng=np.random.default_rng(seed),
        name=base.name,
        after_s=after_s,
        progress=progress,
        cancel=cancel,
    )
    loss_after = _slice_loss(net, images, targets, knowns, torch_device)

    state = half_state_dict(net.state_dict())
    _atomic_write(weights_path, lambda tmp: torch.save(state, tmp))
    card = _card_fields(
        base,
        card_path,
        weights_path,
        trained=trained,
        source=source,
        command=command or f"napari_emseg.training.adapt.adapt(ref_slices={refs})",
        image=image,
        pixel_nm=pixel_nm,
        losses=(loss_before, loss_after),
        steps_done=done,
        seconds=time.perf_counter() - started,
        settings={
            "steps": steps,
            "time_budget_s": time_budget_s,
            "lr": lr,
            "batch_size": batch_size,
            "crop": crop,
            "boundary_px": boundary_px,
            "decoder_only": decoder_only,
            "holdout": holdout,
            "seed": seed,
            "device": torch_device.type,
        },
    )
    _write_card(card_path, card)
    if held is not None:
        check_cancel(cancel)
        after = score(get_card(card_path))  # the saved float16 weights, as they will run
        card["validation"] = _validation(held, before, after, trained_steps=done)
        card["metrics"]["adapt_seconds"] = round(time.perf_counter() - started, 2)
        _write_card(card_path, card)
    return card_path


def _write_card(path: Path, card: dict) -> None:
    text = json.dumps(card, indent=2) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def _validation(
    held: Holdout, before: float | None, after: float | None, *, trained_steps: int
) -> dict:
    """The card's record of the held-out comparison (lower error is better); an untrained
    copy of the base is never kept, whatever float16 rounding does to its score."""
    kept = trained_steps > 0 and before is not None and after is not None and after < before
    return {
        "scored_on": held.describe(),
        "metric": "adapted Rand error of the map's 2D watershed (labelled pixels)",
        "error_before": None if before is None else round(before, 5),
        "error_after": None if after is None else round(after, 5),
        "kept": kept,
    }


def _card_fields(
    base: ModelCard,
    card_path: Path,
    weights_path: Path,
    *,
    trained: list[int],
    source: str | None,
    command: str,
    image: np.ndarray,
    pixel_nm: float | None,
    losses: tuple[float, float],
    steps_done: int,
    seconds: float,
    settings: dict,
) -> dict:
    """The card of an adapted network: what it is, where it came from, what it scored."""
    where = f" of {source}" if source else ""
    return {
        "name": card_path.stem,
        "architecture": base.architecture,
        "description": (
            f"{base.name} adapted on slice{'s' * (len(trained) > 1)} "
            f"{', '.join(map(str, trained))}{where} ({steps_done} steps, {seconds:.0f} s)"
        ),
        "width": float(base.width),
        "depth": int(base.depth),
        "normalization": NORMALIZATION,
        "voxel_size_nm": [pixel_nm, pixel_nm] if pixel_nm else base.voxel_size_nm,
        "weights": weights_path.name,
        "sha256": sha256_of(weights_path),
        "base_model": base.name,
        "training_command": command,
        "metrics": {
            "adapt_loss_before": round(losses[0], 5),
            "adapt_loss_after": round(losses[1], 5),
            "adapt_steps": steps_done,
            "adapt_seconds": round(seconds, 2),
        },
        # Provenance; card readers ignore keys that are not ModelCard fields.
        "adapted_from": {
            "base_sha256": base.sha256,
            "image": source,
            "image_shape": list(image.shape),
            "ref_slices": trained,
            "ref_slices_sha256": hashlib.sha256(image[trained].tobytes()).hexdigest(),
            "settings": settings,
        },
    }
