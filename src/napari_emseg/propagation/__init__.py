"""Propagation of a corrected reference slice through z, both directions.

Every method is a record in :data:`PROPAGATORS` (:mod:`~.registry`); :func:`propagate` validates the
input, computes the membrane map when a method needs one, and enforces the guarantees that do
not depend on the method: the reference slice is returned exactly as the user left it, slices
outside ``z_range`` are untouched, and with ``objects`` only those objects change.
"""

from napari_emseg.propagation.api import list_methods, propagate, window_stride
from napari_emseg.propagation.registry import PROPAGATORS, Propagator, get_propagator

__all__ = [
    "PROPAGATORS",
    "Propagator",
    "get_propagator",
    "list_methods",
    "propagate",
    "window_stride",
]
