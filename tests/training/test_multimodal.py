"""Training on several modalities: scale jitter, known pixel sizes, extra validation, init-from."""

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage as ndi

from napari_emseg.inference.loading import WeightsError, load_network
from napari_emseg.models import build_network
from napari_emseg.models.cards import get_card
from napari_emseg.training import AugmentConfig, train_membrane
from napari_emseg.training.augment import zoomed_crop
from napari_emseg.training.checkpoint import export_model
from napari_emseg.training.data import (
    CropSampler,
    MembraneStack,
    load_stack,
    resolve_source,
    split_slices,
)
from napari_emseg.training.loop import _prepare_data, initial_network


def _smooth(rng, shape=(96, 96), sigma=4.0):
    image = ndi.gaussian_filter(rng.random(shape), sigma).astype(np.float32)
    return image, image > np.median(image)


@pytest.mark.parametrize("factor", [0.8, 1.0, 1.25, 2.0])
def test_zoomed_crop_keeps_shape_and_alignment(rng, factor):
    image, label = _smooth(rng)
    level = float(np.median(image))
    out, lab = zoomed_crop(image, label, factor=factor, origin=(7.3, 11.6), size=40)
    assert out.shape == lab.shape == (40, 40)
    assert out.dtype == lab.dtype == np.float32
    assert set(np.unique(lab)) <= {0.0, 1.0}
    # The label, zoomed with the image, still marks where the image is above the level.
    assert np.mean((out > level) == (lab > 0.5)) > 0.97


def test_zoomed_crop_without_zoom_is_a_plain_crop(rng):
    image, label = _smooth(rng, (50, 60))
    out, lab = zoomed_crop(image, label, factor=1.0, origin=(5.0, 9.0), size=32)
    assert np.allclose(out, image[5:37, 9:41], atol=1e-6)
    assert (lab == label[5:37, 9:41]).all()


def test_zoomed_crop_magnifies_by_the_factor():
    # A vertical membrane line 2 px wide becomes 2 * factor px wide.
    image = np.ones((64, 64), np.float32)
    image[:, 30:32] = 0.0
    out, lab = zoomed_crop(image, image < 0.5, factor=2.0, origin=(16.0, 16.0), size=32)
    assert lab.sum(axis=1).tolist() == [4.0] * 32


def test_sampler_with_scale_jitter_keeps_crop_size(rng):
    image, label = _smooth(rng, (2, 70, 90))
    small, small_label = _smooth(rng, (1, 30, 20))  # smaller than the crop: mirrored
    stacks = [
        (MembraneStack("a", image, label), (0, 1), 1.0),
        (MembraneStack("b", small, small_label), (0,), 1.0),
    ]
    sampler = CropSampler(stacks, 48, scale_jitter=1.25)
    level = float(np.median(image))
    for _ in range(20):
        out, lab = sampler.sample(rng)
        assert out.shape == lab.shape == (48, 48)
        assert set(np.unique(lab)) <= {0.0, 1.0}
    plain = CropSampler(stacks[:1], 48)
    out, lab = plain.sample(np.random.default_rng(3))
    assert np.mean((out > level) == (lab > 0.5)) == 1.0


def test_split_slices():
    assert split_slices("data/gala@40-42") == ("data/gala", (40, 41, 42))
    assert split_slices("a.tif,b.tif,instances@0,2") == ("a.tif,b.tif,instances", (0, 2))
    assert split_slices("data/user@host") == ("data/user@host", None)
    assert split_slices("data/isbi2012") == ("data/isbi2012", None)


def test_layout_pixel_size_is_used_when_the_file_has_none(tmp_path):
    """gala's TIFFs carry no voxel size; its layout's 10 nm resamples it to 4 nm (2.5x)."""
    rng = np.random.default_rng(0)
    image = (rng.random((2, 8, 12)) * 255).astype(np.uint8)
    ids = np.repeat(np.arange(1, 4), 4)[None, None, :].repeat(8, axis=1).repeat(2, axis=0)
    tifffile.imwrite(tmp_path / "train-image.tif", image)
    tifffile.imwrite(tmp_path / "train-gt.tif", ids.astype(np.int32))
    spec = resolve_source(str(tmp_path))
    assert (spec.name, spec.kind, spec.pixel_nm) == ("gala-train", "instances", 10.0)
    stack = load_stack(spec, pixel_nm=4.0)
    assert stack.image.shape == stack.membrane.shape == (2, 20, 30)
    assert stack.pixel_nm == 4.0
    assert load_stack(spec).image.shape == (2, 8, 12)  # no target size: left alone
    explicit = resolve_source(f"{tmp_path / 'train-image.tif'},{tmp_path / 'train-gt.tif'},,5")
    assert (explicit.kind, explicit.pixel_nm) == ("auto", 5.0)


@pytest.fixture()
def source(synthetic_source):
    return synthetic_source


def _config(source, out, make_config, **overrides):
    quick = {"epochs": 1, "steps_per_epoch": 3, "batch_size": 2, "warmup_steps": 1}
    jitter = AugmentConfig(margin=4, scale_jitter=1.25)
    return make_config(source, out, **{**quick, "augment": jitter, **overrides})


@pytest.mark.slow
def test_extra_validation_set_is_logged_and_selects(source, tmp_path, make_config):
    config = _config(
        source,
        tmp_path,
        make_config,
        epochs=2,
        extra_data=[f"{source}@0-1"],
        extra_val=[f"{source}@2-3"],
    )
    result = train_membrane(config)
    record = result["history"][-1]
    assert {"val_vrand", "val_image_vrand", "val_select_vrand", "val_select_bce"} <= set(record)
    best = result["best"]
    assert "select_vrand" in best and "image_vrand" in best
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert "val_image_bce" in json.loads(lines[0])


def test_extra_validation_may_not_overlap_extra_training(source, tmp_path, make_config):
    config = _config(
        source, tmp_path, make_config, extra_data=[f"{source}@0-2"], extra_val=[f"{source}@2-3"]
    )
    with pytest.raises(ValueError, match="also trained on"):
        _prepare_data(config)
    with pytest.raises(ValueError, match="SOURCE@SLICES"):
        _prepare_data(_config(source, tmp_path, make_config, extra_val=[source]))


@pytest.fixture
def card_file(tmp_path):
    torch.manual_seed(1)
    net = build_network("unet", width=0.0625, depth=2)
    _, card = export_model(
        net.state_dict(),
        tmp_path / "card",
        name="tiny-unet",
        architecture="unet",
        width=0.0625,
        depth=2,
        description="test",
        voxel_size_nm=(4.0, 4.0),
        training_command=None,
        metrics={},
    )
    return card


@pytest.mark.slow
def test_init_from_loads_the_card_weights(source, tmp_path, card_file, make_config):
    config = _config(source, tmp_path, make_config, init_from=str(card_file))
    net = initial_network(config).eval()
    reference = load_network(get_card(card_file))
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))  # same weights before any step
        fresh = build_network("unet", width=0.0625, depth=2).eval()
        assert not torch.allclose(fresh(x), reference(x))
    result = train_membrane(config)  # and a run starts from them
    assert result["history"][0]["step"] == 3


def test_init_from_refuses_another_size_and_altered_weights(
    source, tmp_path, card_file, make_config
):
    with pytest.raises(ValueError, match="width"):
        initial_network(
            _config(source, tmp_path, make_config, init_from=str(card_file), width=0.125)
        )
    weights = card_file.with_suffix(".pt")
    weights.write_bytes(weights.read_bytes() + b"x")
    with pytest.raises(WeightsError, match="sha256"):
        initial_network(_config(source, tmp_path, make_config, init_from=str(card_file)))


@pytest.mark.slow
def test_cli_passes_the_new_options(source, tmp_path, card_file):
    from napari_emseg.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "train", "membrane", "--data", source, "--train-slices", "0-1", "--val-slices", "3",
            "--extra-data", f"{source}@0-1", "--extra-val", f"{source}@2",
            "--init-from", str(card_file), "--model", "unet", "--width", "0.0625",
            "--depth", "2", "--scale-jitter", "1.25", "--epochs", "1", "--steps-per-epoch", "2",
            "--batch-size", "2", "--crop", "32", "--device", "cpu", "--val-tile", "64",
            "--description", "a test", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    saved = torch.load(out / "last.pt", weights_only=True)["config"]
    assert saved["init_from"] == str(card_file)
    assert saved["augment"]["scale_jitter"] == 1.25
    assert saved["extra_val"] == [f"{source}@2"]
    card = json.loads((out / "unet-w0.0625.json").read_text())
    assert card["description"] == "a test"


def test_shrinking_keeps_a_thin_membrane_closed():
    # A 1 px membrane line at 4 nm seen at 12 nm: plain sampling of every third pixel would
    # miss it in two of three positions; the shrunk label still marks it in every row.
    image = np.ones((96, 96), np.float32)
    image[:, 40] = 0.0
    for offset in (0.0, 1.0, 2.0):
        out, lab = zoomed_crop(image, image < 0.5, factor=1 / 3, origin=(0.0, offset), size=32)
        assert (lab.sum(axis=1) >= 1).all()
        assert out.min() < 0.9  # anti-aliased, not vanished


def test_pixel_range_shows_each_stack_at_a_size_in_the_range(rng, monkeypatch):
    from napari_emseg.training import augment

    image, label = _smooth(rng, (1, 200, 200))
    stacks = [
        (MembraneStack("fine", image, label, pixel_nm=4.0), (0,), 1.0),
        (MembraneStack("coarse", image, label, pixel_nm=10.0), (0,), 1.0),
    ]
    sampler = CropSampler(stacks, 32, pixel_range=(4.0, 12.0))
    seen: list[float] = []
    original = augment.zoomed_crop
    monkeypatch.setattr(
        augment, "zoomed_crop", lambda *a, **k: seen.append(k["factor"]) or original(*a, **k)
    )
    for _ in range(200):
        out, lab = sampler.sample(rng)
        assert out.shape == lab.shape == (32, 32)
    # A 4 nm stack is shrunk by 1..3 (to 4..12 nm), a 10 nm stack zoomed by 0.83..2.5.
    factors = np.array(seen)
    assert factors.min() >= 1 / 3 - 1e-6 and factors.max() <= 2.5 + 1e-6
    assert (factors < 0.5).any() and (factors > 1.5).any()
    unknown = CropSampler([(MembraneStack("x", image, label), (0,), 1.0)], 32, pixel_range=(4, 12))
    with pytest.raises(ValueError, match="no known pixel size"):
        unknown.sample(rng)


def test_pixel_range_run_validates_coarser_views_and_records_the_range(
    tmp_path, make_config, monkeypatch
):
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((4, 64, 64), seed=5)
    tifffile.imwrite(tmp_path / "image.tif", stack.image, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "labels.tif", stack.labels, metadata={"axes": "ZYX"})
    source = f"{tmp_path / 'image.tif'},{tmp_path / 'labels.tif'},instances,4"
    config = _config(
        source,
        tmp_path / "run",
        make_config,
        pixel_range_nm=(4.0, 8.0),
        val_pixel_nm=[8.0, 3.0],  # 3 nm is finer than the set's own 4 nm: not a view
    )
    result = train_membrane(config)
    record = result["history"][-1]
    assert "val_image@8nm_vrand" in record and "val_image@3nm_vrand" not in record
    card = json.loads(Path(result["card"]).read_text())
    assert card["pixel_range_nm"] == [4.0, 8.0]
    assert get_card(result["card"]).pixel_range_nm == (4.0, 8.0)
