"""Membrane models on held-out ISBI 2012 slices (and gala FIB-SEM): scores, cost, a figure.

Scores are :func:`napari_emseg.metrics.isbi2012_scores` of the probability map against the
official membrane labels: V_rand and V_info at the best threshold of the metric's default grid
on slices 20-29, and at the one threshold chosen on the validation slices 18-19 (the honest
figure: the best threshold on the test slices is optimistic, and confident networks want
thresholds below 0.05, so the validation grid adds 0.001..0.04); pixel error at 0.5. Cost:
parameters, GFLOPs per 512x512 slice (counted by ``torch.utils.flop_counter``; one multiply-add
= 2 FLOPs) and wall seconds per slice on the CPU (median of repeats, the same tiling as
``predict_membrane`` on the CPU). The network input is normalised over the whole 30-slice
volume, as ``predict_membrane`` does. Torch is imported lazily.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_emseg.evaluation.machine import median_seconds
from napari_emseg.evaluation.report import markdown_table
from napari_emseg.metrics import isbi2012_scores

HELD_OUT = slice(20, 30)
VAL = slice(18, 20)
SCORED = slice(18, 30)  # predicted once: 18-19 pick the threshold, 20-29 are scored


def load_model(path: str | Path):
    """(name, network, info) from an exported card (hash-checked) or a training checkpoint;
    ``info`` holds its architecture, width and depth."""
    import torch

    from napari_emseg.inference.loading import load_network
    from napari_emseg.models import build_network
    from napari_emseg.models.cards import get_card

    path = Path(path)
    if path.suffix == ".json":  # the package's one loading path: hash check, safe load
        card = get_card(path)
        info = {"architecture": card.architecture, "width": card.width, "depth": card.depth}
        return card.name, load_network(card), info
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state, config = ckpt["model"], ckpt["config"]
    info = {k: config[k] for k in ("model", "width", "depth")}
    info["architecture"] = info.pop("model")
    name = f"{path.parent.name}/{path.name}"
    net = build_network(info["architecture"], width=info["width"], depth=info["depth"])
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return name, net.eval(), info


def warm_median_seconds(function, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call (allocation, kernel choice)."""
    function()
    return median_seconds(function, repeats)


def scores_with_validation_threshold(prob: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Default-grid scores on slices 20-29 and scores at the threshold chosen on 18-19.

    ``prob`` covers slices 18-29 (12 slices); ``labels`` is the 30-slice label stack
    (0 = membrane).
    """
    from napari_emseg.training.validate import VALIDATION_THRESHOLDS

    if prob.shape[0] != SCORED.stop - SCORED.start:
        raise ValueError(f"prob must cover slices 18-29 (12 slices), got {prob.shape[0]}")
    prob = np.clip(prob, 0.0, 1.0)
    held, val = prob[2:], prob[:2]
    scores = isbi2012_scores(held, labels[HELD_OUT])
    chosen = isbi2012_scores(val, labels[VAL], thresholds=VALIDATION_THRESHOLDS)["vrand_threshold"]
    fixed = isbi2012_scores(held, labels[HELD_OUT], thresholds=[chosen])
    return {
        **scores,
        "val_threshold": chosen,
        "vrand_at_val": fixed["vrand"],
        "vinfo_at_val": fixed["vinfo"],
    }


def network_rows(name, net, info, stack, labels, repeats, device):
    """Rows (TTA off, on) and the plain prediction of slices 20-29 of one network.

    ``stack`` is the normalised 30-slice volume. Seconds per slice: one slice on a CPU; on a
    GPU the 10 held-out slices in one call divided by 10 (a GPU is only busy with several
    slices' tiles in flight).
    """
    from napari_emseg.evaluation.machine import network_flops_per_slice
    from napari_emseg.inference.membrane import default_tile
    from napari_emseg.inference.tiled import predict_tiled
    from napari_emseg.inference.tta import predict_tiled_tta

    gpu = device.type == "cuda"
    kwargs = {
        "device": device,
        "tile": default_tile(device.type),
        "overlap": 32,
        "batch_size": 16 if gpu else 2,
    }
    params = sum(p.numel() for p in net.parameters())
    gflops = network_flops_per_slice(net.cpu(), 512, 512) / 1e9
    net.to(device)
    timed = stack[HELD_OUT] if gpu else stack[HELD_OUT][:1]
    rows, plain = [], None
    for tta in (False, True):
        if tta:
            prob = predict_tiled_tta(net, stack[SCORED], **kwargs)
            seconds = warm_median_seconds(
                lambda: predict_tiled_tta(net, timed, **kwargs), max(1, repeats // 3)
            )
        else:
            prob = predict_tiled(net, stack[SCORED], **kwargs)
            plain = prob[2:]
            seconds = warm_median_seconds(lambda: predict_tiled(net, timed, **kwargs), repeats)
        rows.append(
            {
                "model": name,
                "architecture": info["architecture"],
                "width": info["width"],
                "params": params,
                "gflops": gflops,
                "tta": tta,
                "seconds": seconds / len(timed),
                "device": device.type,
                **scores_with_validation_threshold(prob, labels),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows, plain


def ridge_row(volume: np.ndarray, labels: np.ndarray, repeats: int):
    """The classical ``ridge`` map's row and its prediction of slices 20-29."""
    from napari_emseg.inference.membrane import predict_membrane

    prob = predict_membrane(volume, model="ridge")[SCORED]
    seconds = warm_median_seconds(lambda: predict_membrane(volume[20], model="ridge"), repeats)
    row = {
        "model": "ridge",
        "architecture": "classical",
        "width": None,
        "params": 0,
        "gflops": None,
        "tta": False,
        "seconds": seconds,
        "device": "cpu",
        **scores_with_validation_threshold(prob, labels),
    }
    print(json.dumps(row), flush=True)
    return row, prob[2:]


def fibsem_rows(models, volume: np.ndarray, gt: np.ndarray, pixel_nm: float) -> list[dict]:
    """V_rand / V_info on a FIB-SEM block (boundaries from its instance labels).

    ``models`` are (name, network) pairs, a network of None meaning ``ridge``. The block is
    resampled from ``pixel_nm`` to the 4 nm the ISBI-trained networks saw, predicted and
    resampled back.
    """
    import torch
    from scipy import ndimage as ndi

    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.inference.tiled import predict_tiled
    from napari_emseg.segmentation.normalization import normalize_intensity

    factor = pixel_nm / 4.0
    image = normalize_intensity(ndi.zoom(volume.astype(np.float32), (1, factor, factor), order=1))
    back = (1, volume.shape[1] / image.shape[1], volume.shape[2] / image.shape[2])
    rows = []
    for name, net in models:
        if net is None:
            prob = predict_membrane(volume, model="ridge")
        else:
            prob = predict_tiled(net, image, device=torch.device("cpu"), tile=256, batch_size=2)
            prob = ndi.zoom(prob, back, order=1)[:, : volume.shape[1], : volume.shape[2]]
        rows.append({"model": name, **isbi2012_scores(np.clip(prob, 0, 1), gt)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def resampling_row(block, model: str, *, propagate: bool = True) -> dict:
    """V_rand, V_info and best threshold of ``model``'s map of ``block`` at its own pixel size
    (``native_10nm``) and resampled from 10 nm to the model's (``resampled_4nm``); with
    ``propagate``, the ARE and seconds of ``propagate`` from the block's ground-truth slice
    (as it is, boundaries 0) through the resampled map."""
    import time

    from napari_emseg import pipeline
    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.metrics import adapted_rand_error

    row: dict = {"model": model}
    maps = {}
    for label, pixel_nm in (("native_10nm", None), ("resampled_4nm", 10.0)):
        prob = predict_membrane(block.image, model=model, device="cpu", pixel_nm=pixel_nm)
        maps[label] = prob
        s = isbi2012_scores(np.clip(prob, 0, 1), block.gt)
        row[label] = {k: float(s[k]) for k in ("vrand", "vinfo", "vrand_threshold")}
        print(model, label, row[label], flush=True)
    if propagate:
        start = time.perf_counter()
        seg = pipeline.propagate(
            block.image, block.reference(grow=0), block.ref, membrane=maps["resampled_4nm"],
            voxel_size=block.voxel_size, device="cpu",
        ).labels  # fmt: skip
        row["propagate_are"] = float(adapted_rand_error(seg, block.gt))
        row["propagate_seconds"] = time.perf_counter() - start  # the scoring included
        print(model, "propagate ARE", row["propagate_are"], flush=True)
    return row


def fibsem_table(rows: list[dict]) -> list[str]:
    """The FIB-SEM rows as markdown lines."""
    cells = [
        [r["model"], f"{r['vrand']:.4f}", f"{r['vinfo']:.4f}", f"{r['vrand_threshold']:.2f}"]
        for r in rows
    ]
    return markdown_table(["model", "V_rand", "V_info", "best threshold"], cells)


def table(rows: list[dict]) -> list[str]:
    """The ISBI rows as markdown lines.

    Examples
    --------
    >>> row = {"model": "ridge", "architecture": "classical", "width": None, "params": 0,
    ...        "gflops": None, "tta": False, "seconds": 0.5, "device": "cpu", "vrand": 0.8,
    ...        "vinfo": 0.9, "pixel_error": 0.1, "vrand_threshold": 0.5, "vrand_at_val": 0.79,
    ...        "vinfo_at_val": 0.88, "val_threshold": 0.45}
    >>> table([row])[2]
    '| ridge | classical | - | 0 | - | 0.500 | cpu | off | 0.8000 | 0.9000 | 0.1000 | 0.50 | \
0.7900 | 0.8800 | 0.450 |'
    """
    header = [
        "model", "architecture", "width", "parameters", "GFLOPs / slice", "s / slice", "device",
        "TTA", "V_rand", "V_info", "pixel error", "best threshold", "V_rand @ val thr",
        "V_info @ val thr", "val thr",
    ]  # fmt: skip
    cells = []
    for r in rows:
        cells.append(
            [
                r["model"],
                r["architecture"],
                "-" if r["width"] is None else f"{r['width']:g}",
                f"{r['params']:,}",
                "-" if r["gflops"] is None else f"{r['gflops']:.1f}",
                f"{r['seconds']:.3f}",
                r["device"],
                "8-fold" if r["tta"] else "off",
            ]
            + [f"{r[k]:.4f}" for k in ("vrand", "vinfo", "pixel_error")]
            + [f"{r['vrand_threshold']:.2f}", f"{r['vrand_at_val']:.4f}"]
            + [f"{r['vinfo_at_val']:.4f}", f"{r['val_threshold']:.3f}"]
        )
    return markdown_table(header, cells)


def figure(path: str | Path, panels: list[tuple[str, np.ndarray]]) -> None:
    """Panels side by side (grey, 0..1 or uint8) with a title above each, as a PNG."""
    from PIL import Image, ImageDraw

    tiles = []
    for title, array in panels:
        array = np.asarray(array, np.float32)
        if array.max() > 1.0:
            array = array / 255.0
        grey = Image.fromarray(np.clip(array * 255, 0, 255).astype(np.uint8)).convert("RGB")
        canvas = Image.new("RGB", (grey.width, grey.height + 24), "white")
        canvas.paste(grey, (0, 24))
        ImageDraw.Draw(canvas).text((6, 6), title, fill="black")
        tiles.append(canvas)
    gap = 8
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    out = Image.new("RGB", (width, max(t.height for t in tiles)), "white")
    x = 0
    for tile in tiles:
        out.paste(tile, (x, 0))
        x += tile.width + gap
    out.save(path)


def fibsem_markdown(nets, block, pixel_nm: float) -> str:
    """The FIB-SEM section of the report: :func:`fibsem_rows` of ``block`` under a title."""
    rows = fibsem_rows(nets, block.image, block.gt, pixel_nm)
    title = (
        "\n## FIB-SEM generalisation: gala medulla test block (50x100x200, "
        f"{pixel_nm:g} nm assumed, resampled to 4 nm), boundaries from its instance "
        "labels, best threshold\n\n"
    )
    return title + "\n".join(fibsem_table(rows)) + "\n"


def figure_panels(volume, labels, z: int, ridge=None, predictions=()) -> list:
    """Raw slice ``z`` of ISBI, the ridge map and the best network's (shown as
    1 - P(membrane), so membranes are dark as in the raw and the labels), and the labels.
    ``predictions`` are (name, V_rand, map of slices 20-29).

    Examples
    --------
    >>> raw = np.zeros((30, 2, 2)); maps = [("a", 0.5, np.zeros((10, 2, 2))), ("b", 0.9, None)]
    >>> [title for title, _ in figure_panels(raw, raw, 25, predictions=maps[:1])]
    ['raw (slice 25)', 'a', 'labels (black = membrane)']
    """
    panels = [(f"raw (slice {z})", volume[z])]
    if ridge is not None:
        panels.append(("ridge", 1 - ridge[z - HELD_OUT.start]))
    if predictions:
        name, _, prob = max(predictions, key=lambda p: p[1])
        panels.append((name, 1 - prob[z - HELD_OUT.start]))
    panels.append(("labels (black = membrane)", labels[z]))
    return panels
