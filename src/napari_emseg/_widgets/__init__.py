"""napari dock widgets: thin adapters over the engine (the only place importing napari/Qt)."""

from napari_emseg._widgets.proofread_widget import ProofreadWidget
from napari_emseg._widgets.segment_widget import SegmentWidget

__all__ = ["ProofreadWidget", "SegmentWidget"]
