"""``train propagation``: the consistent ConvLSTM trained on sequences cut from 3D ground truth.

Loss: Hungarian-matched soft IoU over each object's whole sequence (the paper's), plus
``bce_weight`` times the pixel BCE of the matched slots, which speeds up early training on a CPU
budget. Adam with a cosine decay. For the first ``teacher_fraction`` of the steps every frame
gets the ground-truth masks of the frame before (teacher forcing); afterwards the model's own
predictions, as at inference. Each ``val_every`` steps, a fixed set of sequences is propagated
closed-loop (own predictions) and the mean IoU per object and frame picks the best weights.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_emseg.training.checkpoint import half_state_dict, load_checkpoint, save_checkpoint
from napari_emseg.training.progress import TextProgress
from napari_emseg.training.sequence_data import (
    SYNTHETIC,
    SequenceSampler,
    load_sequence_stack,
    synthetic_stacks,
)
from napari_emseg.training.sequence_loss import matched_sequence_loss


@dataclass
class PropagationTrainConfig:
    """Settings of one propagation training run (JSON-serialisable, saved in checkpoints)."""

    data: dict[str, str]  # source name -> folder
    out: str
    variant: str = "stc"
    width: int = 8
    levels: int = 3
    hidden: int = 12
    mask_prior: float = 3.0
    refine_full_res: bool = True
    pixel_nm: float = 8.0
    membrane_model: str | None = None
    length: int = 5
    crop: int = 64
    max_objects: int = 6
    batch_size: int = 4
    steps: int = 3000
    lr: float = 1e-3
    teacher_fraction: float = 0.3
    bce_weight: float = 1.0
    artefact_prob: float = 0.05
    val_every: int = 250
    val_sequences: int = 24
    time_budget_min: float | None = None
    # "time": the learning rate decays over the time budget (one run); "steps": over ``steps``,
    # for a campaign of many short runs that resume each other (the budget only stops a run).
    schedule: str = "time"
    # Share of the steps that see only synthetic sequences (pretraining) when a ``synthetic``
    # source is given; afterwards synthetic ones keep ``synthetic_mix`` of the batches.
    pretrain_fraction: float = 0.2
    synthetic_mix: float = 0.2
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    resume: str | None = None
    # A trained network (a card name such as ``stc`` or a .propagation.json) to start from; it
    # is validated before the first step, so the export keeps it unless training beats it.
    init_from: str | None = None
    name: str | None = None
    command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PropagationTrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def network_kwargs(self) -> dict[str, Any]:
        return {
            "in_channels": 2,
            "width": self.width,
            "levels": self.levels,
            "hidden": self.hidden,
            "variant": self.variant,
            "mask_prior": self.mask_prior,
            "refine_full_res": self.refine_full_res,
        }


def _batch(samples, device) -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.from_numpy(np.stack([s.frames for s in samples])).to(device)
    masks = torch.from_numpy(np.stack([s.masks for s in samples])).to(device)
    return frames, masks


def sequence_loss(logits: torch.Tensor, masks: torch.Tensor, bce_weight: float) -> torch.Tensor:
    """Matched soft IoU plus ``bce_weight`` x pixel BCE (slots in reference order)."""
    loss = matched_sequence_loss(logits, masks)
    if bce_weight:
        loss = loss + bce_weight * F.binary_cross_entropy_with_logits(logits, masks)
    return loss


@torch.inference_mode()
def closed_loop_iou(net, batches) -> float:
    """Mean IoU of thresholded masks per (object, frame > 0) with a non-empty union."""
    scores = []
    for frames, masks in batches:
        pred = net(frames, masks[:, 0]) > 0
        truth = masks > 0.5
        inter = (pred & truth).flatten(3).sum(-1)[:, 1:]
        union = (pred | truth).flatten(3).sum(-1)[:, 1:]
        valid = union > 0
        scores.append((inter[valid].float() / union[valid].float()).cpu().numpy())
    return float(np.concatenate(scores).mean())


def _progress(step: int, total: int, elapsed: float, budget: float | None) -> float:
    """How far the run is, by steps or by time, whichever is further along (0..1)."""
    progress = step / max(total, 1)
    if budget:
        progress = max(progress, elapsed / budget)
    return min(progress, 1.0)


def initial_propagation_network(config: PropagationTrainConfig) -> torch.nn.Module:
    """A fresh network, or ``config.init_from``'s hash-checked weights (same architecture).

    The pixel size may differ: the network is convolutional, so a card trained at one scale
    is a good start for fine-tuning at another. A resumed run gets a fresh one: the
    checkpoint's weights replace whatever it starts with.
    """
    from napari_emseg.models.cconvlstm import CConvLSTMNet

    if not config.init_from or config.resume:
        return CConvLSTMNet(**config.network_kwargs())
    from napari_emseg.inference.loading import load_network
    from napari_emseg.models.cards import get_propagation_card

    card = get_propagation_card(config.init_from)
    if card.network != config.network_kwargs():
        raise ValueError(
            f"--init-from {config.init_from!r} is {card.network}; the run asks for "
            f"{config.network_kwargs()}"
        )
    return load_network(card).train()


def train_propagation(config: PropagationTrainConfig) -> dict[str, Any]:
    """Train, validate, checkpoint (``last.pt``, ``best.pt``) and export the best weights."""
    from napari_emseg.inference.devices import resolve_device

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    stacks = [
        load_sequence_stack(
            name, Path(folder), membrane_model=config.membrane_model, pixel_nm=config.pixel_nm
        )
        for name, folder in config.data.items()
        if name != SYNTHETIC
    ]
    sampler_kwargs = {
        "length": config.length,
        "crop": config.crop,
        "max_objects": config.max_objects,
        "artefact_prob": config.artefact_prob,
    }
    synthetic = None
    if SYNTHETIC in config.data:
        resumed_step = int(load_checkpoint(config.resume)["step"]) if config.resume else 0
        fresh = synthetic_stacks(
            int(config.data[SYNTHETIC]),
            seed=config.seed * 100_003 + resumed_step,  # new stacks at every resumed call
            membrane_model=config.membrane_model,
            pixel_nm=config.pixel_nm,
        )
        synthetic = SequenceSampler(fresh, **sampler_kwargs)
    if not stacks:  # synthetic only: validate on it too
        stacks = synthetic.stacks
    sampler = SequenceSampler(stacks, **sampler_kwargs)
    val_rng = np.random.default_rng(10_000 + config.seed)
    val_sampler = SequenceSampler(stacks, **{**sampler_kwargs, "artefact_prob": 0.0})
    val_samples = [val_sampler.sample(val_rng) for _ in range(config.val_sequences)]
    val_batches = [
        _batch(val_samples[i : i + config.batch_size], device)
        for i in range(0, len(val_samples), config.batch_size)
    ]

    net = initial_propagation_network(config).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    step, elapsed, best, history = 0, 0.0, None, []
    if config.resume:
        state = load_checkpoint(config.resume)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        best, history = state.get("best"), json.loads(state.get("history", "[]"))

    budget = 60 * config.time_budget_min if config.time_budget_min else None
    log = open(out / "metrics.jsonl", "a")  # noqa: SIM115 - closed in the finally below
    if config.init_from and not config.resume:  # the starting point is the score to beat
        net.eval()
        best = {"step": 0, "val_iou": closed_loop_iou(net, val_batches)}
        history.append({**best, "init_from": config.init_from})
        log.write(json.dumps(history[-1]) + "\n")
        save_checkpoint(out / "best.pt", model=net.state_dict(), **best)
    bar = TextProgress(config.steps, f"train propagation {config.variant}")
    started = time.perf_counter() - elapsed
    call_started = time.perf_counter()
    # bf16 autocast on a GPU: about twice the throughput; the loss stays in float32.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    try:
        while step < config.steps:
            elapsed = time.perf_counter() - started
            this_call = time.perf_counter() - call_started
            if budget and (this_call if config.schedule == "steps" else elapsed) >= budget:
                break
            rng = np.random.default_rng([config.seed, step])
            schedule_budget = budget if config.schedule == "time" else None
            progress = _progress(step, config.steps, elapsed, schedule_budget)
            source = sampler
            if synthetic is not None:
                share = 1.0 if progress < config.pretrain_fraction else config.synthetic_mix
                source = synthetic if rng.random() < share else sampler
            frames, masks = _batch([source.sample(rng) for _ in range(config.batch_size)], device)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * progress))
            teacher = masks if progress < config.teacher_fraction else None
            net.train()
            with autocast:
                logits = net(frames, masks[:, 0], teacher_masks=teacher)
            loss = sequence_loss(logits.float(), masks, config.bce_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            step += 1
            bar.update(step, f"loss {loss.item():.3f}")
            if step % config.val_every == 0 or step == config.steps:
                net.eval()
                iou = closed_loop_iou(net, val_batches)
                record = {"step": step, "loss": loss.item(), "val_iou": iou, "s": elapsed}
                history.append(record)
                log.write(json.dumps(record) + "\n")
                log.flush()
                state = {"model": net.state_dict(), "step": step, "val_iou": iou}
                if best is None or iou > best["val_iou"]:
                    best = {"step": step, "val_iou": iou}
                    save_checkpoint(out / "best.pt", **state)
                save_checkpoint(
                    out / "last.pt",
                    **state,
                    optimizer=optimizer.state_dict(),
                    elapsed=time.perf_counter() - started,
                    best=best,
                    history=json.dumps(history),
                    config=json.dumps(asdict(config)),
                )
    finally:
        log.close()
    if best is None:
        raise RuntimeError("training stopped before the first validation; raise the budget")
    weights, card = export_propagation_model(
        load_checkpoint(out / "best.pt")["model"], out, config, best
    )
    return {"best": best, "weights": str(weights), "card": str(card), "steps": step}


def export_propagation_model(
    state: dict[str, torch.Tensor], out: Path, config: PropagationTrainConfig, best: dict
) -> tuple[Path, Path]:
    """``<name>.pt`` (float16 state dict) and ``<name>.propagation.json`` (its card)."""
    from napari_emseg.models.cards import sha256_of

    name = config.name or f"cconvlstm-{config.variant}-w{config.width}"
    weights = out / f"{name}.pt"
    torch.save(half_state_dict(state), weights)
    card = {
        "name": name,
        "variant": config.variant,
        "network": config.network_kwargs(),
        "pixel_nm": config.pixel_nm,
        "membrane_model": config.membrane_model,
        "weights": weights.name,
        "sha256": sha256_of(weights),
        "training_command": config.command,
        "sources": sorted(config.data),
        "metrics": {"train_closed_loop_iou": round(best["val_iou"], 4), "step": best["step"]},
    }
    card_path = out / f"{name}.propagation.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights, card_path
