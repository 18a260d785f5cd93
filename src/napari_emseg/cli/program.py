"""The ``napari-emseg`` program: its parser (every command group adds its own) and ``main``.

Errors a user can fix print one line on stderr and exit with status 2; no traceback unless
``--debug`` is given. An existing output is never overwritten without ``--overwrite``, and
outputs are checked before any long computation starts. Everything heavy (torch, the engine)
is imported inside the handlers, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from collections.abc import Sequence

from napari_emseg.cli.common import (
    EXIT_USAGE,
    Parser,
    ProgressPrinter,
    UsageError,
    has_default,
    one_line,
)

MODEL_COMMANDS = ("segment", "predict-membrane", "propagate", "benchmark")  # --model is a card
# What an operating-system error asks of the user; others are reported as they are.
OS_HINTS = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some disk space (over quota)",
    errno.EACCES: "check the permissions",
    errno.EPERM: "check the permissions",
    errno.EROFS: "the file system is read-only",
    errno.EIO: "check the disk",
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (imports no torch)."""
    from napari_emseg import __version__
    from napari_emseg.cli.adapt import add_adapt_parser
    from napari_emseg.cli.measure import add_measure_parsers
    from napari_emseg.cli.segment import add_segment_parsers
    from napari_emseg.cli.simulate import add_simulate_parser
    from napari_emseg.cli.train import add_train_parser

    parser = Parser(
        prog="napari-emseg",
        description="Segment neurons in EM stacks: membrane prediction, watershed, z-propagation.",
    )
    parser.add_argument("--version", action="version", version=f"napari-emseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_segment_parsers(sub)
    add_measure_parsers(sub)
    add_train_parser(sub)
    add_adapt_parser(sub)
    add_simulate_parser(sub)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's --help lists the defaults, also of options without a help text."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)
        elif action.help is None and has_default(action):
            action.help = "(default: %(default)s)"  # argparse shows no line without help


def _os_message(err: BaseException) -> str:
    """One line for an operating-system error, with what to do when that is known."""
    if isinstance(err, MemoryError):
        return "out of memory: segment block by block (-o LABELS.zarr --block Z Y X)"
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    where = getattr(err, "filename", None)
    text = f"{where}: {reason}" if where else reason
    hint = OS_HINTS.get(getattr(err, "errno", None))
    return f"{text} ({hint})" if hint else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 a problem the user can fix, 130 Ctrl-C)."""
    args = build_parser().parse_args(argv)
    from napari_emseg import pipeline
    from napari_emseg._progress import Cancelled
    from napari_emseg.blockwise.cluster import ClusterError
    from napari_emseg.io import InputError, OutputExistsError

    quiet = getattr(args, "quiet", False)
    progress = args.progress = ProgressPrinter(quiet=quiet, stage=args.command)
    name = f"napari-emseg {args.command}"

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        progress.end_line()
        print(f"napari-emseg: warning: {one_line(message)}", file=sys.stderr)

    shown = warnings.showwarning
    warnings.showwarning = one_line_warning
    try:
        if hasattr(args, "device"):
            pipeline.resolve_device(args.device)  # refuse an absent GPU before reading anything
        if args.command in MODEL_COMMANDS and args.model is not None:
            pipeline.check_model(args.model)  # refuse an unknown model before reading anything
        return args.run(args)
    except (UsageError, InputError, ValueError, Cancelled, ClusterError) as err:
        if args.debug:
            raise
        message = one_line(err) or type(err).__name__
        if isinstance(err, OutputExistsError):
            message = f"{err.path} exists and was left as it is; pass --overwrite to replace it"
        progress.close()
        print(f"{name}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, MemoryError) as err:
        if args.debug:
            raise
        progress.close()
        print(f"{name}: error: {_os_message(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        progress.close()
        print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        progress.close()
        warnings.showwarning = shown
