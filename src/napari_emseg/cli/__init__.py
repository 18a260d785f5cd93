"""The ``napari-emseg`` command line: a thin adapter over :mod:`napari_emseg.pipeline`.

Layout: :mod:`~.common` (errors, help formatter, progress printer, shared options),
:mod:`~.files` (reading the input, writing outputs all or nothing), :mod:`~.program` (the
parser and ``main``), and one module per command group: :mod:`~.segment` (segment,
predict-membrane, propagate), :mod:`~.measure` (evaluate, sample, benchmark), :mod:`~.adapt`,
:mod:`~.simulate` (simulate-proofreading) and :mod:`~.train`. Imports stay lazy so that
``napari-emseg --help`` starts without torch.
"""

from napari_emseg.cli.program import build_parser, main

__all__ = ["build_parser", "main"]
