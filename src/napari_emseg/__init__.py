"""Segment and proofread neurons in EM stacks: the public Python API.

Every name here is a function of :mod:`napari_emseg.pipeline`, the one facade that the CLI and
the napari widgets use too. Imports are lazy: ``import napari_emseg`` loads neither torch nor
napari.

Examples
--------
>>> import napari_emseg
>>> "segment" in napari_emseg.__all__
True
"""

__version__ = "0.1.0"

__all__ = [
    "Adaptation",
    "Calibration",
    "Cancelled",
    "Propagation",
    "Segmentation",
    "VoxelSizeWarning",
    "Volume",
    "adapt",
    "calibrate",
    "default_method",
    "estimate_voxel_size",
    "evaluate",
    "list_methods",
    "list_models",
    "predict_membrane",
    "propagate",
    "read_volume",
    "repropagate",
    "resolve_device",
    "segment",
]


def __getattr__(name: str):
    if name == "Volume":
        from napari_emseg.io import Volume

        return Volume
    if name == "Calibration":
        from napari_emseg.calibration import Calibration

        return Calibration
    if name in __all__:
        from napari_emseg import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'napari_emseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
