"""Speed measurements: the engine (``napari-emseg benchmark``) and the proofreading tools."""
