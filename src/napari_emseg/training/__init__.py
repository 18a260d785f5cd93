"""Training of membrane networks (numpy and torch only: no napari, no Qt).

``train_membrane(TrainConfig(...))`` is the Python API; ``napari_emseg.cli.train`` wraps it as
``train membrane``.
"""

from napari_emseg.training.augment import AugmentConfig
from napari_emseg.training.config import TrainConfig
from napari_emseg.training.data import HeldOutError
from napari_emseg.training.loop import train_membrane

__all__ = ["AugmentConfig", "HeldOutError", "TrainConfig", "train_membrane"]
