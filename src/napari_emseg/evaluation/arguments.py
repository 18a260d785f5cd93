"""What every measurement script's command line shares: its description and ``--data``."""

from __future__ import annotations

import argparse
from pathlib import Path


def script_parser(doc: str, *, data: bool = False) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc`` (the script's docstring), the rest of it
    shown after the options; ``data`` adds ``--data`` (default: the shared data,
    :func:`~napari_emseg.evaluation.data.data_dir`).

    Examples
    --------
    >>> parser = script_parser("Measure things.\\n\\n    python scripts/x.py", data=True)
    >>> parser.description, parser.parse_args([]).data
    ('Measure things.', None)
    >>> parser.parse_args(["--data", "d"]).data
    PosixPath('d')
    """
    first, _, rest = doc.strip().partition("\n")
    parser = argparse.ArgumentParser(
        description=first,
        epilog=rest.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if data:
        parser.add_argument("--data", type=Path, default=None, help="default: the shared data")
    return parser
