"""The ``napari-emseg`` command line: a thin adapter over :mod:`napari_emseg.pipeline`.

Imports stay lazy so that ``napari-emseg --help`` starts without torch.
"""

from napari_emseg.cli.commands import main

__all__ = ["main"]
