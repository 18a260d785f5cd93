"""Fixtures of the GUI tests: a tiny stack (the tiny network card: tests/conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def small_stack():
    """A synthetic 6x96x96 EM stack with its ground truth (50x4x4 nm)."""
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    return make_synthetic_stack((6, 96, 96), seed=2)
