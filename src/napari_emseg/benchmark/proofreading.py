"""Moved to :mod:`napari_emseg.evaluation.proofreading_speed`; ``benchmark/engine.py`` still
imports it from here until the engine benchmark moves into ``evaluation/`` too."""

from napari_emseg.evaluation.proofreading_speed import benchmark_repropagate_one_object

__all__ = ["benchmark_repropagate_one_object"]
