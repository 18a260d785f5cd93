"""Evaluate membrane models on the held-out ISBI 2012 slices 20-29; write a table and a figure.

    .venv/bin/python scripts/evaluate_membrane.py runs/fusionnet/fusionnet-w0.125.json \\
        [more cards or training checkpoints] -o runs/membrane_eval.md [--figure runs/eval.png]

Every model (exported card JSON, or a training checkpoint such as ``best.pt``) and the classical
``ridge`` map are scored with :func:`napari_emseg.metrics.isbi2012_scores` against
``train-labels.tif``: V_rand, V_info (best threshold of the metric's default grid 0.05..0.95, as
the project reports) and pixel error, with and without 8-fold test-time augmentation (TTA). Because
the best threshold on the test slices is optimistic, and confident networks want thresholds below
0.05, the table also gives V_rand / V_info at the one threshold chosen on the validation slices
18-19 (from a grid that adds 0.001..0.04). Also reported: parameters, GFLOPs per 512x512 slice
(counted by ``torch.utils.flop_counter``; one multiply-add = 2 FLOPs) and wall seconds per slice
on this machine's CPU (median of repeats, the same tiling as ``predict_membrane`` on the CPU).
The network input is normalised over the whole 30-slice volume, as ``predict_membrane`` does.
"""

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image, ImageDraw

from napari_emseg.benchmark.engine import median_seconds, network_flops_per_slice
from napari_emseg.inference.loading import load_network
from napari_emseg.inference.membrane import default_tile, predict_membrane
from napari_emseg.inference.tiled import predict_tiled
from napari_emseg.inference.tta import predict_tiled_tta
from napari_emseg.metrics import isbi2012_scores
from napari_emseg.models import build_network
from napari_emseg.models.cards import get_card
from napari_emseg.segmentation.normalization import normalize_intensity
from napari_emseg.training.validate import VALIDATION_THRESHOLDS

REPO = Path(__file__).resolve().parents[1]
HELD_OUT = slice(20, 30)
VAL = slice(18, 20)
SCORED = slice(18, 30)  # predicted once: 18-19 pick the threshold, 20-29 are scored


def load_model(path: Path) -> tuple[str, torch.nn.Module, dict]:
    """A network from an exported card (hash-checked) or a training checkpoint."""
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


def gflops_per_slice(net: torch.nn.Module) -> float:
    return network_flops_per_slice(net.cpu(), 512, 512) / 1e9


def warm_median_seconds(function, repeats: int) -> float:
    function()  # warm-up: first calls allocate and pick kernels
    return median_seconds(function, repeats)


def scores_of(prob: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Default-grid scores on 20-29 and scores at the threshold chosen on 18-19.

    ``prob`` covers slices 18-29.
    """
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
    """Table rows (TTA off, on) and the plain prediction of one network.

    Seconds per slice: one slice on a CPU; on a GPU the 10 held-out slices in one call divided
    by 10 (a GPU is only busy with several slices' tiles in flight).
    """
    gpu = device.type == "cuda"
    kwargs = {
        "device": device,
        "tile": default_tile(device.type),
        "overlap": 32,
        "batch_size": 16 if gpu else 2,
    }
    params = sum(p.numel() for p in net.parameters())
    gflops = gflops_per_slice(net)
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
        scores = scores_of(prob, labels)
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
                **scores,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows, plain


def ridge_row(volume, labels, repeats):
    prob = predict_membrane(volume, model="ridge")[SCORED]
    seconds = warm_median_seconds(lambda: predict_membrane(volume[20], model="ridge"), repeats)
    scores = scores_of(prob, labels)
    row = {
        "model": "ridge",
        "architecture": "classical",
        "width": None,
        "params": 0,
        "gflops": None,
        "tta": False,
        "seconds": seconds,
        "device": "cpu",
        **scores,
    }
    print(json.dumps(row), flush=True)
    return row, prob[2:]


def fibsem_rows(models, data: Path, pixel_nm: float) -> list[dict]:
    """V_rand / V_info on the gala FIB-SEM test block (boundaries from its instance labels).

    The block is resampled from ``pixel_nm`` to the 4 nm the ISBI-trained networks saw, predicted
    and resampled back; a FIB-SEM modality none of them was trained on.
    """
    from scipy import ndimage as ndi

    volume = tifffile.imread(data / "gala_fibsem_medulla" / "test-image.tif")
    gt = tifffile.imread(data / "gala_fibsem_medulla" / "test-gt.tif")
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
        scores = isbi2012_scores(np.clip(prob, 0, 1), gt)
        rows.append({"model": name, **scores})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fibsem_markdown(nets, data: Path, pixel_nm: float) -> str:
    rows = fibsem_rows(nets, data, pixel_nm)
    text = (
        "\n## FIB-SEM generalisation: gala medulla test block (50x100x200, "
        f"{pixel_nm:g} nm assumed, resampled to 4 nm), boundaries from its instance "
        "labels, best threshold\n\n"
        "| model | V_rand | V_info | best threshold |\n|---|---|---|---|\n"
    )
    return text + "".join(
        f"| {r['model']} | {r['vrand']:.4f} | {r['vinfo']:.4f} | {r['vrand_threshold']:.2f} |\n"
        for r in rows
    )


def markdown(rows, header_lines) -> str:
    lines = [*header_lines, ""]
    lines.append(
        "| model | architecture | width | parameters | GFLOPs / slice | s / slice | device | TTA "
        "| V_rand | V_info | pixel error | best threshold | V_rand @ val thr | V_info @ val thr "
        "| val thr |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        width = "-" if r["width"] is None else f"{r['width']:g}"
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
        lines.append(
            f"| {r['model']} | {r['architecture']} | {width} | {r['params']:,} | {gflops} "
            f"| {r['seconds']:.3f} | {r['device']} | {'8-fold' if r['tta'] else 'off'} "
            f"| {r['vrand']:.4f} "
            f"| {r['vinfo']:.4f} | {r['pixel_error']:.4f} | {r['vrand_threshold']:.2f} "
            f"| {r['vrand_at_val']:.4f} | {r['vinfo_at_val']:.4f} | {r['val_threshold']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def figure(path: Path, panels: list[tuple[str, np.ndarray]]) -> None:
    """Panels side by side (grey, 0..1 or uint8) with a title above each."""
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
    out = Image.new(
        "RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white"
    )
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + gap
    out.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="card JSON files or checkpoints")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("-o", "--output", type=Path, required=True, help="markdown table to write")
    parser.add_argument("--figure", type=Path, help="PNG (default: the table's name with .png)")
    parser.add_argument("--slice", type=int, default=25, help="held-out slice in the figure")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (networks only)")
    parser.add_argument("--no-ridge", action="store_true", help="leave out the ridge baseline")
    parser.add_argument(
        "--fibsem-nm",
        type=float,
        default=10.0,
        help="pixel size of the gala FIB-SEM block (0: skip that table)",
    )
    parser.add_argument("--fibsem-only", action="store_true", help="only the FIB-SEM table")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 20 <= args.slice <= 29:
        parser.error("--slice must be a held-out slice, 20..29")

    if args.fibsem_only:
        nets = [load_model(path)[:2] for path in args.models] + [("ridge", None)]
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(fibsem_markdown(nets, args.data, args.fibsem_nm).lstrip())
        print(f"wrote {args.output}")
        return
    volume = tifffile.imread(args.data / "isbi2012" / "train-volume.tif")
    labels = tifffile.imread(args.data / "isbi2012" / "train-labels.tif")
    stack = normalize_intensity(volume)
    rows, predictions, loaded = [], [], []
    for path in args.models:
        name, net, info = load_model(path)
        loaded.append((name, net, info))
        model_rows, prob = network_rows(name, net, info, stack, labels, args.repeats, device)
        rows += model_rows
        predictions.append((name, model_rows[0]["vrand"], prob))
    ridge_prob = None
    if not args.no_ridge:
        row, ridge_prob = ridge_row(volume, labels, args.repeats)
        rows.append(row)

    header = [
        "# Membrane models on the held-out ISBI 2012 slices 20-29",
        "",
        f"Written by `scripts/evaluate_membrane.py` on {datetime.date.today()}: "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}. Scores: `metrics.isbi2012_scores` against `train-labels.tif` "
        "(V_rand / V_info at the best threshold, pixel error at 0.5). Seconds: wall time for one "
        f"512x512 slice, median of {args.repeats} (TTA: of {max(1, args.repeats // 3)}), CPU, "
        "tiles as `predict_membrane` uses on a CPU; other jobs shared this machine, so timings "
        "are indicative. GFLOPs: one 512x512 forward pass, 2 FLOPs per multiply-add.",
    ]
    text = markdown(rows, header)
    if args.fibsem_nm:
        nets = [(name, net) for name, net, _ in loaded] + [("ridge", None)]
        text += fibsem_markdown(nets, args.data, args.fibsem_nm)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    # Predictions shown as 1 - P(membrane), so membranes are dark as in the raw and the labels.
    z = args.slice - 20
    panels = [(f"raw (slice {args.slice})", volume[args.slice])]
    if ridge_prob is not None:
        panels.append(("ridge", 1 - ridge_prob[z]))
    if predictions:
        name, _, prob = max(predictions, key=lambda p: p[1])
        panels.append((name, 1 - prob[z]))
    panels.append(("labels (black = membrane)", labels[args.slice]))
    figure(args.figure or args.output.with_suffix(".png"), panels)
    print(f"wrote {args.output} and {args.figure or args.output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
