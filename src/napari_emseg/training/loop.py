"""The membrane training loop: data, AdamW + warm-up/cosine, validation, checkpoints, export."""

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_emseg._progress import CancelCheck, ProgressCallback, check_cancel, report
from napari_emseg.training.augment import augment_pair
from napari_emseg.training.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint
from napari_emseg.training.config import TrainConfig
from napari_emseg.training.data import (
    CropSampler,
    MembraneStack,
    check_slices,
    load_stack,
    parse_slices,
    resolve_source,
    split_slices,
)
from napari_emseg.training.losses import bce_dice_loss
from napari_emseg.training.progress import TextProgress
from napari_emseg.training.validate import validate


@dataclass
class _ValSet:
    """Validation slices scored at ``work_nm`` (None: as they are); ``name`` prefixes scores."""

    name: str
    image: np.ndarray
    membrane: np.ndarray
    pixel_nm: float | None = None
    work_nm: float | None = None


@dataclass
class _Data:
    sampler: CropSampler
    val_image: np.ndarray
    val_membrane: np.ndarray
    pixel_nm: float | None
    # More validation sets (TrainConfig.extra_val, and every set at TrainConfig.val_pixel_nm).
    extra_val: list[_ValSet] = dataclasses.field(default_factory=list)


def _coarser_views(name: str, image, membrane, pixel_nm, sizes) -> list[_ValSet]:
    """The set seen at each size of ``sizes`` more than 10 % coarser than its own."""
    if not pixel_nm:
        return []
    return [
        _ValSet(f"{name}@{nm:g}nm", image, membrane, pixel_nm, float(nm))
        for nm in sizes
        if nm > 1.1 * pixel_nm
    ]


def _prepare_data(config: TrainConfig) -> _Data:
    main = load_stack(resolve_source(config.data))
    # With a pixel range every source stays at its own resolution; else all match the main one.
    common_nm = None if config.pixel_range_nm else main.pixel_nm
    train = parse_slices(config.train_slices)
    val = parse_slices(config.val_slices)
    check_slices(main, train, purpose="training", allow_held_out=config.allow_held_out)
    check_slices(main, val, purpose="validation", allow_held_out=config.allow_held_out)
    if set(train) & set(val):
        raise ValueError(f"training and validation slices overlap: {sorted(set(train) & set(val))}")
    loaded: dict[str, MembraneStack] = {}
    trained: dict[str, set[int]] = {}

    def stack_of(source: str) -> MembraneStack:
        if source not in loaded:
            loaded[source] = load_stack(resolve_source(source), pixel_nm=common_nm)
        return loaded[source]

    sources = [(main, train, 1.0)]
    if config.extra_data:
        share = min(max(config.extra_fraction, 0.0), 1.0)
        sources = [(main, train, 1.0 - share)]
        for entry in config.extra_data:
            source, slices = split_slices(entry)
            extra = stack_of(source)
            slices = tuple(range(extra.depth)) if slices is None else slices
            check_slices(
                extra, slices, purpose="extra training", allow_held_out=config.allow_held_out
            )
            trained.setdefault(source, set()).update(slices)
            sources.append((extra, slices, share / len(config.extra_data)))
    extra_val = []
    for entry in config.extra_val:
        source, slices = split_slices(entry)
        if slices is None:
            raise ValueError(f"extra validation set {entry!r} needs its slices: SOURCE@SLICES")
        stack = stack_of(source)
        check_slices(stack, slices, purpose="validation", allow_held_out=config.allow_held_out)
        overlap = sorted(trained.get(source, set()) & set(slices))
        if overlap:
            raise ValueError(f"validation slices {overlap} of {source} are also trained on")
        name = stack.name
        while name in {v.name for v in extra_val}:
            name += "+"
        index = list(slices)
        extra_val.append(_ValSet(name, stack.image[index], stack.membrane[index], stack.pixel_nm))
    index = list(val)
    coarser = _coarser_views(
        main.name, main.image[index], main.membrane[index], main.pixel_nm, config.val_pixel_nm
    )
    for v in list(extra_val):
        coarser += _coarser_views(v.name, v.image, v.membrane, v.pixel_nm, config.val_pixel_nm)
    sampler = CropSampler(
        sources,
        config.crop + 2 * config.augment.margin,
        config.augment.scale_jitter,
        config.pixel_range_nm,
    )
    return _Data(
        sampler, main.image[index], main.membrane[index], main.pixel_nm, extra_val + coarser
    )


def initial_network(config: TrainConfig) -> torch.nn.Module:
    """The network a run starts from: fresh, or ``config.init_from``'s hash-checked weights.

    Raises
    ------
    ValueError
        When the ``init_from`` card's architecture, width or depth differ from the config's.
    """
    from napari_emseg.models import build_network

    if not config.init_from:
        return build_network(config.model, width=config.width, depth=config.depth)
    from napari_emseg.inference.loading import load_network
    from napari_emseg.models.cards import get_card

    card = get_card(config.init_from)
    wanted = (config.model, float(config.width), int(config.depth))
    found = (card.architecture, float(card.width), int(card.depth))
    if wanted != found:
        raise ValueError(
            f"--init-from {config.init_from!r} is {found[0]} width {found[1]:g} depth {found[2]}; "
            f"the run asks for {wanted[0]} width {wanted[1]:g} depth {wanted[2]}"
        )
    return load_network(card).train()


def _warmup_cosine(total: int, warmup: int, clock: dict[str, float]):
    """LR factor: linear warm-up, then cosine to 0 over the steps or the time budget.

    ``clock["fraction"]`` is the share of the time budget used (0 without a budget); the cosine
    follows whichever of steps and time is further along, so a run on a busy machine still ends
    annealed when its budget runs out.
    """

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, warmup))
        progress = max((step - warmup) / max(1, total - warmup), clock["fraction"], 0.0)
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _cpu_batch(
    data: _Data, config: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [
        augment_pair(*data.sampler.sample(rng), rng, config.augment, size=config.crop)
        for _ in range(config.batch_size)
    ]
    x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
    y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
    return x, y


class _BatchStream(torch.utils.data.IterableDataset):
    """Augmented batches of epochs ``first..last-1``, ``config.steps_per_epoch`` each.

    Without loader workers epoch ``e`` draws from ``(seed, e)``. With ``n`` workers, worker ``w``
    makes steps ``w, w + n, ...`` of each epoch from ``(seed, e, w)`` and the loader interleaves
    them in order, so a run is reproducible for a given worker count and a resumed run sees the
    same batches as an uninterrupted one.
    """

    def __init__(self, data: _Data, config: TrainConfig, first: int, last: int):
        self.data, self.config, self.first, self.last = data, config, first, last

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for epoch in range(self.first, self.last):
            seed = [self.config.seed, epoch] + ([worker] if info is not None else [])
            rng = np.random.default_rng(seed)
            for _ in range(worker, self.config.steps_per_epoch, workers):
                yield _cpu_batch(self.data, self.config, rng)


def _batches(data: _Data, config: TrainConfig, first_epoch: int, device: torch.device):
    """Iterator of ``(x, y)`` batches on ``device`` for all remaining epochs.

    ``config.workers`` > 0 augments in that many processes: on a GPU the numpy augmentation of
    one process cannot keep up with the network.
    """
    stream = _BatchStream(data, config, first_epoch, config.epochs)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if config.workers else None,
    )
    for x, y in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        yield x, y.to(device, non_blocking=True)


def _is_better(new: dict[str, float], best: dict[str, Any] | None) -> bool:
    """Higher V_rand wins, then lower pixel cross-entropy (also the fallback when V_rand is NaN).

    With several validation sets, ``select_vrand`` / ``select_bce`` (their means) decide.
    """
    if best is None:
        return True
    new_vrand, old_vrand = (r.get("select_vrand", r["vrand"]) for r in (new, best))
    if math.isfinite(new_vrand) and math.isfinite(old_vrand) and new_vrand != old_vrand:
        return new_vrand > old_vrand
    return new.get("select_bce", new["bce"]) < best.get("select_bce", best["bce"])


def _default_command(config: TrainConfig) -> str:
    return f"napari_emseg.training.train_membrane(TrainConfig(**{json.dumps(config.to_dict())}))"


def train_membrane(
    config: TrainConfig,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> dict[str, Any]:
    """Train a membrane network, validating every epoch, and export the best weights.

    Writes to ``config.out``: ``last.pt`` and ``best.pt`` (model, optimizer and scheduler state,
    epoch, config, best metrics), ``metrics.jsonl`` (one JSON line per epoch) and the exported
    model ``<name>.pt`` (float16 state dict) with its card ``<name>.json``.

    Parameters
    ----------
    config : TrainConfig
        See :class:`napari_emseg.training.config.TrainConfig`.
    progress : callable, optional
        Called as ``progress(step, total_steps, message)`` after every step; without it a
        plain-text bar is drawn on stderr.
    cancel : callable, optional
        Polled between steps; when it returns True, :class:`napari_emseg._progress.Cancelled`
        is raised (the checkpoints of finished epochs stay).

    Returns
    -------
    dict
        ``best`` and ``last`` epoch records, ``history`` (all records), ``weights``, ``card``
        and ``sha256`` of the export, ``checkpoints`` and ``seconds``.

    Raises
    ------
    HeldOutError
        If the ISBI 2012 held-out slices 20-29 would be used (see ``allow_held_out``).

    Examples
    --------
    >>> cfg = TrainConfig(data="isbi2012/", out="runs/fusionnet", epochs=20)  # doctest: +SKIP
    >>> train_membrane(cfg)["best"]["vrand"]  # doctest: +SKIP
    """
    from napari_emseg.inference.devices import resolve_device

    if config.command is None:
        config = dataclasses.replace(config, command=_default_command(config))

    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    data = _prepare_data(config)

    net = initial_network(config).to(device)
    # Channels-last: about 1.5x faster convolutions on the CPU, and the layout of the bf16
    # tensor-core kernels on CUDA.
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * config.steps_per_epoch
    clock = {"fraction": 0.0, "elapsed": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(total_steps, config.warmup_steps, clock)
    )
    start_epoch, best, history = 0, None, []
    if config.resume:
        ckpt = load_checkpoint(config.resume)
        saved = ckpt["config"]
        for key in ("model", "width", "depth"):
            if saved[key] != getattr(config, key):
                raise ValueError(f"checkpoint {config.resume} has {key}={saved[key]!r}")
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best, history = int(ckpt["epoch"]), ckpt["best"], list(ckpt["history"])
        clock["elapsed"] = float(ckpt.get("elapsed_seconds", 0.0))
    budget = 60.0 * config.time_budget_min if config.time_budget_min else math.inf
    resumed_at = time.perf_counter() - clock["elapsed"]
    out_of_time = False

    use_cuda = device.type == "cuda"
    log_path = out / "metrics.jsonl"
    batches = _batches(data, config, start_epoch, device)
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed * 100_003 + epoch)
        net.train()
        bar = None if progress else TextProgress(config.steps_per_epoch, f"epoch {epoch + 1}")
        losses = []
        epoch_start = time.perf_counter()
        for step in range(config.steps_per_epoch):
            check_cancel(cancel)
            x, y = next(batches)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_cuda):
                logits = net(x)
            loss = bce_dice_loss(
                logits, y, pos_weight=config.pos_weight, dice_weight=config.dice_weight
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock["elapsed"] = time.perf_counter() - resumed_at
            clock["fraction"] = min(clock["elapsed"] / budget, 1.0)
            scheduler.step()
            losses.append(loss.item())
            message = f"loss {np.mean(losses[-50:]):.4f}"
            if bar is None:
                report(progress, int(scheduler.last_epoch), total_steps, f"training: {message}")
            else:
                bar.update(step + 1, message)
            if clock["fraction"] >= 1.0:
                out_of_time = True
                sys.stderr.write(f"\ntime budget of {config.time_budget_min:g} min used up\n")
                break
        train_seconds = time.perf_counter() - epoch_start
        scores = validate(
            net, data.val_image, data.val_membrane, device=device, tile=config.val_tile
        )
        candidate = dict(scores)
        if data.extra_val:
            vrands, bces = [scores["vrand"]], [scores["bce"]]
            for view in data.extra_val:
                more = validate(
                    net,
                    view.image,
                    view.membrane,
                    device=device,
                    tile=config.val_tile,
                    pixel_nm=view.pixel_nm,
                    work_nm=view.work_nm,
                )
                candidate.update({f"{view.name}_{k}": v for k, v in more.items()})
                vrands.append(more["vrand"])
                bces.append(more["bce"])
            candidate["select_vrand"] = float(np.mean(vrands))
            candidate["select_bce"] = float(np.mean(bces))
        record = {
            "epoch": epoch + 1,
            "step": int(scheduler.last_epoch),
            "train_loss": float(np.mean(losses)),
            "lr": float(scheduler.get_last_lr()[0]),
            **{f"val_{k}": v for k, v in candidate.items()},
            "train_seconds": round(train_seconds, 2),
            "val_seconds": round(time.perf_counter() - epoch_start - train_seconds, 2),
        }
        history.append(record)
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        sys.stderr.write(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, val V_rand "
            f"{scores['vrand']:.4f}, V_info {scores['vinfo']:.4f}, "
            f"pixel error {scores['pixel_error']:.4f}"
            + "".join(
                f", {v.name} V_rand {candidate[f'{v.name}_vrand']:.4f}" for v in data.extra_val
            )
            + (f", selection V_rand {candidate['select_vrand']:.4f}" if data.extra_val else "")
            + "\n"
        )
        improved = _is_better(candidate, best)
        if improved:
            best = {"epoch": epoch + 1, **candidate}
        content = {
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1,
            "config": config.to_dict(),
            "best": best,
            "history": history,
            "elapsed_seconds": time.perf_counter() - resumed_at,
            "pixel_nm": data.pixel_nm,
            "pixel_range_nm": list(config.pixel_range_nm) if config.pixel_range_nm else None,
        }
        save_checkpoint(out / "last.pt", **content)
        if improved:
            save_checkpoint(out / "best.pt", **content)
        if out_of_time:
            break
    batches.close()  # ends the loader's worker processes now, not at garbage collection

    best_path = out / "best.pt"
    if not best_path.is_file():
        raise RuntimeError(f"no epoch was run (epochs={config.epochs}); nothing to export")
    best_ckpt = load_checkpoint(best_path)
    weights, card = export_checkpoint(best_path)
    from napari_emseg.models.cards import sha256_of

    return {
        "best": best_ckpt["best"],
        "last": history[-1] if history else None,
        "history": history,
        "weights": str(weights),
        "card": str(card),
        "sha256": sha256_of(weights),
        "checkpoints": {"best": str(best_path), "last": str(out / "last.pt")},
        "seconds": time.perf_counter() - started,
    }
