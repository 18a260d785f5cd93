"""Evaluate membrane models on the held-out ISBI 2012 slices 20-29; write a table and a figure.

    .venv/bin/python scripts/evaluate_membrane.py runs/fusionnet/fusionnet-w0.125.json \\
        [more cards or training checkpoints] -o runs/membrane_eval.md [--figure runs/eval.png]

Every model (exported card JSON, or a training checkpoint such as ``best.pt``) and the classical
``ridge`` map are scored against ``train-labels.tif``, with and without 8-fold test-time
augmentation, at the best threshold and at the one chosen on the validation slices 18-19; also
parameters, GFLOPs per 512x512 slice and CPU seconds per slice (median of repeats). The rows and
how they are scored: :mod:`napari_emseg.evaluation.membrane`.
"""

import datetime
from pathlib import Path

import torch

from napari_emseg.evaluation import describe_machine, gala_block, isbi_block, write_report
from napari_emseg.evaluation import membrane as study
from napari_emseg.evaluation.arguments import script_parser
from napari_emseg.segmentation.normalization import normalize_intensity


def main() -> None:
    parser = script_parser(__doc__, data=True)
    parser.add_argument("models", nargs="*", type=Path, help="card JSON files or checkpoints")
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
        nets = [study.load_model(path)[:2] for path in args.models] + [("ridge", None)]
        gala = gala_block("test", data=args.data)
        write_report(args.output, study.fibsem_markdown(nets, gala, args.fibsem_nm).lstrip())
        print(f"wrote {args.output}")
        return
    isbi = isbi_block(0, 30, data=args.data)
    volume, labels = isbi.image, isbi.membrane_labels()
    stack = normalize_intensity(volume)
    rows, predictions, loaded = [], [], []
    for path in args.models:
        name, net, info = study.load_model(path)
        loaded.append((name, net, info))
        model_rows, prob = study.network_rows(name, net, info, stack, labels, args.repeats, device)
        rows += model_rows
        predictions.append((name, model_rows[0]["vrand"], prob))
    ridge_prob = None
    if not args.no_ridge:
        row, ridge_prob = study.ridge_row(volume, labels, args.repeats)
        rows.append(row)

    header = [
        "# Membrane models on the held-out ISBI 2012 slices 20-29",
        "",
        f"Written by `scripts/evaluate_membrane.py` on {datetime.date.today()}: "
        f"{describe_machine(args.device)}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}. Scores: `metrics.isbi2012_scores` against `train-labels.tif` "
        "(V_rand / V_info at the best threshold, pixel error at 0.5). Seconds: wall time for one "
        f"512x512 slice, median of {args.repeats} (TTA: of {max(1, args.repeats // 3)}), CPU, "
        "tiles as `predict_membrane` uses on a CPU; other jobs shared this machine, so timings "
        "are indicative. GFLOPs: one 512x512 forward pass, 2 FLOPs per multiply-add.",
    ]
    text = "\n".join([*header, "", *study.table(rows)]) + "\n"
    if args.fibsem_nm:
        nets = [(name, net) for name, net, _ in loaded] + [("ridge", None)]
        text += study.fibsem_markdown(nets, gala_block("test", data=args.data), args.fibsem_nm)
    write_report(args.output, text)
    panels = study.figure_panels(volume, labels, args.slice, ridge_prob, predictions)
    study.figure(args.figure or args.output.with_suffix(".png"), panels)
    print(f"wrote {args.output} and {args.figure or args.output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
