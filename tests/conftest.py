import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Property tests explore the same examples on every run, so CI cannot flake; set
# HYPOTHESIS_PROFILE=explore to search new examples locally.
settings.register_profile("emseg", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "emseg"))

REPO = Path(__file__).resolve().parents[1]


def pytest_ignore_collect(collection_path, config):
    """conftest.py files hold fixtures, not doctests: --doctest-modules would import each as a
    module named ``conftest`` (tests/ has no packages), and pytest refuses the second one."""
    return True if collection_path.name == "conftest.py" else None


def shared_data_dir() -> Path | None:
    """../shared/data beside the checkout (CI), or EMSEG_SHARED_DATA."""
    candidates = [
        os.environ.get("EMSEG_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    found = shared_data_dir()
    if found is None:
        pytest.skip("../shared/data is not beside this checkout (set EMSEG_SHARED_DATA)")
    return found


@pytest.fixture(scope="session")
def isbi_crop(shared_data, tmp_path_factory) -> Path:
    """A 4-slice 160x192 crop of the ISBI 2012 training volume, with its ImageJ voxel size."""
    import tifffile

    source = shared_data / "isbi2012" / "train-volume.tif"
    crop = tifffile.imread(source)[10:14, 100:260, 50:242]
    path = tmp_path_factory.mktemp("isbi") / "isbi-crop.tif"
    tifffile.imwrite(
        path,
        crop,
        imagej=True,
        resolution=(1 / 4.0, 1 / 4.0),
        metadata={"spacing": 50.0, "unit": "nm", "axes": "ZYX"},
    )
    return path


@pytest.fixture(scope="session")
def tiny_stack():
    """A small synthetic stack with ground truth (fast enough for every engine test)."""
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    return make_synthetic_stack((6, 96, 96), seed=3)


@pytest.fixture(autouse=True)
def _private_autosave_dir(tmp_path, monkeypatch):
    """Keep autosave journals of each test to itself (never in the user's home)."""
    monkeypatch.setenv("EMSEG_AUTOSAVE_DIR", str(tmp_path / "autosave"))


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_card(tmp_path_factory):
    """A tiny randomly initialised U-Net saved as a model card: a network to adapt in
    seconds (the shipped ones take a minute)."""
    import json

    import torch

    from napari_emseg.models import build_network
    from napari_emseg.models.cards import sha256_of
    from napari_emseg.training.checkpoint import half_state_dict

    torch.manual_seed(0)
    net = build_network("unet", width=0.0625, depth=2)
    folder = tmp_path_factory.mktemp("tiny")
    weights = folder / "tiny.pt"
    torch.save(half_state_dict(net.state_dict()), weights)
    card = folder / "tiny.json"
    fields = {"name": "tiny", "architecture": "unet", "description": "test", "width": 0.0625}
    fields.update(depth=2, weights=weights.name, sha256=sha256_of(weights))
    card.write_text(json.dumps(fields))
    return card


def _three_cells(depth: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, ground truth and membrane of three cells side by side, 2 px membranes between."""
    gt = np.zeros((depth, 12, 30), np.uint16)
    gt[:, :, 0:8], gt[:, :, 10:18], gt[:, :, 20:30] = 1, 2, 3
    membrane = (gt == 0).astype(np.float32)
    image = (200 - 150 * membrane).astype(np.uint8)
    return image, gt, membrane


@pytest.fixture()
def three_cells():
    """A maker of :func:`_three_cells` stacks (``three_cells(depth)``)."""
    return _three_cells
