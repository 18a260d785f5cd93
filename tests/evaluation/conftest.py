"""A fake shared-data folder: the real layout filled with tiny synthetic stacks."""

from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from napari_emseg.evaluation.data import SPLITS


def fake_stack(shape: tuple[int, int, int], seed: int):
    """Image, ids (0 on a one-pixel grid of boundaries) and membrane mask of a tiny stack."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    ids = (1 + y // 4 * 10 + x // 4 + z // 5 * 100).astype(np.uint32)
    ids[(y % 4 == 3) | (x % 4 == 3)] = 0
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    return SimpleNamespace(image=image, labels=ids, membranes=ids == 0)


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """The shared-data layout filled with tiny stacks (ids, boundaries, masks)."""
    root = tmp_path_factory.mktemp("shared-data")
    isbi = fake_stack((30, 12, 8), seed=0)
    gala = {part: fake_stack((30, 8, 12), seed=i + 1) for i, part in enumerate(SPLITS)}
    gerhard = fake_stack((20, 8, 8), seed=4)
    (root / "isbi2012").mkdir()
    tifffile.imwrite(root / "isbi2012/train-volume.tif", isbi.image)
    tifffile.imwrite(root / "isbi2012/train-instances-3d.tif", isbi.labels.astype(np.uint16))
    labels = np.where(isbi.membranes, 0, 255).astype(np.uint8)
    tifffile.imwrite(root / "isbi2012/train-labels.tif", labels)
    (root / "gala_fibsem_medulla").mkdir()
    for part, stack in gala.items():
        tifffile.imwrite(root / f"gala_fibsem_medulla/{part}-image.tif", stack.image)
        tifffile.imwrite(root / f"gala_fibsem_medulla/{part}-gt.tif", stack.labels)
    (root / "drosophila_vnc_gerhard_sstem").mkdir()
    folder = root / "drosophila_vnc_gerhard_sstem"
    tifffile.imwrite(folder / "stack1-raw.tif", gerhard.image)
    tifffile.imwrite(folder / "stack1-membranes.tif", gerhard.membranes.astype(np.uint8) * 255)
    return root, isbi, gala, gerhard


@pytest.fixture
def make_stack():
    """:func:`fake_stack`, for tests that make their own."""
    return fake_stack
