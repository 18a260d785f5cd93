"""``napari-emseg train membrane`` and ``train propagation``: the training loops from the CLI.

For example::

    napari-emseg train membrane --data ../shared/data/isbi2012 \\
        --model fusionnet --width 0.125 --epochs 20 --out runs/fusionnet

The handlers are ``args.run(args)`` like the other subcommands.
"""

import argparse
import sys

from napari_emseg.cli.common import add_device_option, emit, recorded_command


def _cmd_train_membrane(args: argparse.Namespace) -> int:
    from napari_emseg.training import AugmentConfig, TrainConfig, train_membrane

    augment = (
        AugmentConfig.off()
        if args.no_augment
        else AugmentConfig(artefact_prob=args.artefacts, scale_jitter=args.scale_jitter)
    )
    config = TrainConfig(
        data=args.data,
        out=args.out,
        extra_data=list(args.extra_data or []),
        extra_fraction=args.extra_fraction,
        extra_val=list(args.extra_val or []),
        pixel_range_nm=tuple(args.pixel_range_nm) if args.pixel_range_nm else None,
        val_pixel_nm=list(args.val_pixel_nm or []),
        train_slices=args.train_slices,
        val_slices=args.val_slices,
        allow_held_out=args.allow_held_out,
        model=args.model,
        width=args.width,
        depth=args.depth,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        time_budget_min=args.time_budget_min,
        pos_weight=args.pos_weight,
        dice_weight=args.dice_weight,
        augment=augment,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        init_from=args.init_from,
        val_tile=args.val_tile,
        threads=args.threads,
        workers=args.workers,
        name=args.name,
        description=args.description or "",
        command=recorded_command(),
    )
    result = train_membrane(config)
    emit(args, {k: v for k, v in result.items() if k != "history"})
    return 0


def _cmd_train_propagation(args: argparse.Namespace) -> int:
    from napari_emseg.training.sequence_data import SEQUENCE_SOURCES
    from napari_emseg.training.sequence_loop import PropagationTrainConfig, train_propagation

    data = {}
    for entry in args.data:
        name, _, folder = entry.partition("=")
        if not name or not folder:
            known = ", ".join(f"{n}=FOLDER" for n in SEQUENCE_SOURCES)
            raise ValueError(f"--data takes {known} or NAME=IMAGE,IDS,PIXEL_NM; got {entry!r}")
        data[name] = folder
    config = PropagationTrainConfig(
        data=data,
        out=args.out,
        variant=args.variant,
        width=args.width,
        levels=args.levels,
        hidden=args.hidden,
        mask_prior=args.mask_prior,
        refine_full_res=not args.recurrent_full_res,
        pixel_nm=args.pixel_nm,
        membrane_model=args.membrane_model,
        length=args.length,
        crop=args.crop,
        max_objects=args.max_objects,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        teacher_fraction=args.teacher_fraction,
        bce_weight=args.bce_weight,
        artefact_prob=args.artefacts,
        val_every=args.val_every,
        time_budget_min=args.time_budget_min,
        schedule=args.schedule,
        pretrain_fraction=args.pretrain_fraction,
        synthetic_mix=args.synthetic_mix,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        resume=args.resume,
        init_from=args.init_from,
        name=args.name,
        command=recorded_command(),
    )
    if args.time_budget_min:  # a long budget with the default steps ends early, unannounced
        print(
            f"train propagation: stops after {args.steps} steps or {args.time_budget_min:g} min, "
            "whichever comes first (--steps)",
            file=sys.stderr,
        )
    result = train_propagation(config)
    emit(args, result)
    return 0


def _add_propagation_parser(kinds: "argparse._SubParsersAction") -> None:
    from napari_emseg.models.cards import PROPAGATION_VARIANTS

    p = kinds.add_parser(
        "propagation",
        help="train the consistent ConvLSTM propagation network",
        description=(
            "Train the consistent ConvLSTM on sequences cut from 3D ground truth "
            "(isbi2012: slices 0-19 only; gala-train). Exports float16 weights and a card."
        ),
    )
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="NAME=FOLDER",
        help="sources, e.g. isbi2012=../shared/data/isbi2012 "
        "gala-train=../shared/data/gala_fibsem_medulla synthetic=4 (N fresh generated "
        "stacks), or NAME=IMAGE.tif,IDS.tif,PIXEL_NM",
    )
    p.add_argument("--variant", default="stc", choices=PROPAGATION_VARIANTS)
    p.add_argument("--width", type=int, default=8, help="channels of the finest encoder level")
    p.add_argument("--levels", type=int, default=3, help="encoder/decoder resolutions")
    p.add_argument("--hidden", type=int, default=12, help="ConvLSTM hidden channels")
    p.add_argument("--mask-prior", type=float, default=3.0, help="0 = the paper's plain head")
    p.add_argument(
        "--recurrent-full-res",
        action="store_true",
        help="a CConvLSTM at full resolution too (about 4x the compute of the refinement)",
    )
    p.add_argument("--pixel-nm", type=float, default=8.0, help="pixel size the net works at")
    p.add_argument("--membrane-model", default=None, help="membrane model for the input map")
    p.add_argument("--length", type=int, default=5, help="frames per training sequence")
    p.add_argument("--crop", type=int, default=64, help="xy crop edge (binned px)")
    p.add_argument("--max-objects", type=int, default=6, help="objects per sequence")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument(
        "--steps",
        type=int,
        default=3000,
        help="stop after this many steps; with --time-budget-min, whichever comes first",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate")
    p.add_argument(
        "--teacher-fraction",
        type=float,
        default=0.3,
        help="share of steps fed the ground-truth previous masks",
    )
    p.add_argument("--bce-weight", type=float, default=1.0, help="pixel BCE added to soft IoU")
    p.add_argument(
        "--artefacts",
        type=float,
        default=0.05,
        help="chance per frame of a missing or shifted section",
    )
    p.add_argument("--val-every", type=int, default=250, help="steps between validations")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop after N minutes")
    p.add_argument(
        "--schedule",
        choices=("time", "steps"),
        default="time",
        help="learning-rate decay over the time budget, or over --steps (a resumable campaign "
        "of short runs: the budget then only stops each run)",
    )
    p.add_argument(
        "--pretrain-fraction",
        type=float,
        default=0.2,
        help="share of the steps on synthetic sequences only (with synthetic=N in --data)",
    )
    p.add_argument(
        "--synthetic-mix",
        type=float,
        default=0.2,
        help="share of synthetic batches after pretraining",
    )
    add_device_option(p, what="the network trains")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", required=True, help="folder for checkpoints, log and export")
    p.add_argument("--resume", help="checkpoint (last.pt) to continue from")
    p.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from these trained weights (stc, cconvlstm-stc or a .propagation.json; "
        "hash-checked, same architecture); they are the first validation's score to beat",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="model name (default cconvlstm-<variant>-w<width>)")
    p.set_defaults(run=_cmd_train_propagation)


def add_train_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``train membrane`` and ``train propagation``; returns the ``train`` parser."""
    from napari_emseg.models import ARCHITECTURE_CLASSES

    train = subparsers.add_parser("train", help="train a network (membrane, propagation)")
    kinds = train.add_subparsers(dest="train_command", required=True, metavar="WHAT")
    p = kinds.add_parser(
        "membrane",
        help="train a membrane network; exports float16 weights and a model card",
        description=(
            "Train a membrane network on EM stacks with membrane labels. ISBI 2012 slices 20-29 "
            "are held out: they are refused for training and validation."
        ),
    )
    p.add_argument(
        "--data",
        required=True,
        help="dataset folder (isbi2012, Gerhard stack1, gala train block) or IMAGE,LABELS[,KIND] "
        "with KIND auto|membrane-low|membrane-high|instances",
    )
    p.add_argument(
        "--extra-data",
        nargs="+",
        help="more sources for training only, resampled to --data's pixel size; SOURCE@SLICES "
        "uses only those slices (e.g. ../shared/data/gala_fibsem_medulla@0-39)",
    )
    p.add_argument("--extra-fraction", type=float, default=0.25, help="share of extra crops")
    p.add_argument(
        "--extra-val",
        nargs="+",
        metavar="SOURCE@SLICES",
        help="more validation sets (e.g. ../shared/data/gala_fibsem_medulla@40-49); the best "
        "epoch then has the highest mean V_rand over all validation sets",
    )
    p.add_argument("--train-slices", default="0-17", help="training slices of --data (0-17)")
    p.add_argument("--val-slices", default="18,19", help="model-selection slices (18,19)")
    p.add_argument(
        "--allow-held-out",
        action="store_true",
        help="allow ISBI 2012 slices 20-29 (the held-out test set) in training or validation",
    )
    p.add_argument("--model", default="fusionnet", choices=sorted(ARCHITECTURE_CLASSES))
    p.add_argument("--width", type=float, default=0.125, help="channel multiplier")
    p.add_argument("--depth", type=int, default=4, help="pooling levels")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps-per-epoch", type=int, default=200)
    p.add_argument("--crop", type=int, default=256, help="training crop edge (px)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument(
        "--time-budget-min",
        type=float,
        default=None,
        help="stop after this many minutes, with the cosine schedule annealed by time",
    )
    p.add_argument("--pos-weight", type=float, default=1.0, help="BCE weight of membrane pixels")
    p.add_argument("--dice-weight", type=float, default=1.0, help="weight of the Dice term")
    p.add_argument("--artefacts", type=float, default=0.0, help="probability of section artefacts")
    p.add_argument(
        "--scale-jitter",
        type=float,
        default=1.0,
        help="zoom each crop by a factor drawn log-uniformly from [1/J, J] (e.g. 1.25; 1 = off)",
    )
    p.add_argument(
        "--pixel-range-nm",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="show each crop at a pixel size drawn from LOW..HIGH nm, every source at its own "
        "resolution: one network for stacks anywhere in the range (replaces --scale-jitter)",
    )
    p.add_argument(
        "--val-pixel-nm",
        nargs="+",
        type=float,
        metavar="NM",
        help="also score every validation set at these coarser pixel sizes",
    )
    p.add_argument("--no-augment", action="store_true", help="no augmentation at all")
    add_device_option(p, what="the network trains")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--workers", type=int, default=0, help="processes that augment batches (use 2+ on a GPU)"
    )
    p.add_argument("--val-tile", type=int, default=256, help="tile edge for validation")
    p.add_argument("--out", required=True, help="folder for checkpoints, log and export")
    p.add_argument("--resume", help="checkpoint (last.pt) to continue from")
    p.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from this membrane model's weights (a registered name such as "
        "fusionnet-w0.375-isbi, or a card .json; hash-checked); --model, --width and --depth "
        "must match it",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="model name (default <model>-w<width>)")
    p.add_argument("--description", help="description written into the exported model card")
    p.set_defaults(run=_cmd_train_membrane)
    _add_propagation_parser(kinds)
    return train
