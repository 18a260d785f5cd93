"""Propagation of a corrected reference slice through z, both directions.

Every method is a function registered in :data:`PROPAGATORS`; :func:`propagate` validates the
input, computes the membrane map when a method needs one, and enforces the guarantees that do
not depend on the method: the reference slice is returned exactly as the user left it, slices
outside ``z_range`` are untouched, and with ``objects`` only those objects change.
"""

from napari_emseg.propagation.api import PROPAGATORS, list_methods, propagate, window_stride

__all__ = ["PROPAGATORS", "list_methods", "propagate", "window_stride"]
