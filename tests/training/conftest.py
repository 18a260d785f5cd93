"""What the membrane-training tests share: a tiny synthetic source and a tiny config."""

import pytest
import tifffile

from napari_emseg.training import AugmentConfig, TrainConfig


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory) -> str:
    """``IMAGE,LABELS,instances`` of a 4x64x64 synthetic stack written as TIFF."""
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((4, 64, 64), seed=5)
    folder = tmp_path_factory.mktemp("synthetic")
    tifffile.imwrite(folder / "image.tif", stack.image, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "labels.tif", stack.labels, metadata={"axes": "ZYX"})
    return f"{folder / 'image.tif'},{folder / 'labels.tif'},instances"


def tiny_config(source: str, out, **overrides) -> TrainConfig:
    """A U-Net of width 1/16 trained on 32 px crops of slices 0-2, validated on slice 3."""
    values = dict(
        data=source,
        out=str(out),
        train_slices="0-2",
        val_slices="3",
        model="unet",
        width=0.0625,
        depth=2,
        epochs=2,
        steps_per_epoch=12,
        batch_size=4,
        crop=32,
        lr=1e-2,
        warmup_steps=2,
        augment=AugmentConfig(margin=4),
        device="cpu",
        val_tile=64,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def make_config():
    """:func:`tiny_config`, for tests (conftest functions are not importable by name)."""
    return tiny_config
