import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_emseg.cli import main as train_main
from napari_emseg.inference.loading import load_checked_state_dict
from napari_emseg.models import ARCHITECTURE_CLASSES as ARCHITECTURES
from napari_emseg.models import build_network
from napari_emseg.models.cards import ModelCard, sha256_of
from napari_emseg.segmentation.dihedral import dihedral, inverse_dihedral
from napari_emseg.training import AugmentConfig, HeldOutError, train_membrane
from napari_emseg.training.augment import augment_pair
from napari_emseg.training.data import (
    MembraneStack,
    boundaries_from_instances,
    check_slices,
    membrane_from_labels,
    parse_slices,
)
from napari_emseg.training.losses import bce_dice_loss

GEOMETRY_ONLY = AugmentConfig(intensity_prob=0.0, noise_prob=0.0, elastic_prob=1.0, margin=8)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [(19, 45), (33, 20)])
def test_every_architecture_keeps_odd_sizes(architecture, size):
    net = build_network(architecture, width=0.0625, depth=3).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, *size))
    assert out.shape == (1, 1, *size)


def test_fakhry_is_registered_and_documented_as_a_reconstruction():
    from napari_emseg.models import fakhry

    assert isinstance(build_network("fakhry", width=0.125), fakhry.FakhryNet)
    assert "reconstruction" in fakhry.__doc__
    assert build_network("fakhry", width=0.125).size_divisor == 16


def _smooth_image(rng, shape=(80, 80)):
    return ndi.gaussian_filter(rng.random(shape), 4).astype(np.float32)


def test_dihedral_transforms_invert():
    a = np.arange(12).reshape(3, 4)
    outs = {dihedral(a, k).tobytes() + bytes(dihedral(a, k).shape) for k in range(8)}
    assert len(outs) == 8  # all 8 distinct
    for k in range(8):
        assert (inverse_dihedral(dihedral(a, k), k) == a).all()


def test_augmentation_keeps_image_and_label_aligned(rng):
    image = _smooth_image(rng)
    level = float(np.median(image))
    label = image > level  # a label drawn from the image itself
    for _ in range(5):
        out, lab = augment_pair(image, label, rng, GEOMETRY_ONLY, size=64)
        assert out.shape == lab.shape == (64, 64)
        assert set(np.unique(lab)) <= {0.0, 1.0}
        # Warped together, the label still marks where the warped image is above the level.
        assert np.mean((out > level) == (lab > 0.5)) > 0.97


def test_photometric_augmentation_leaves_the_label_alone(rng):
    image = _smooth_image(rng, (48, 48))
    label = (image > np.median(image)).astype(np.float32)
    config = AugmentConfig(flips=False, elastic_prob=0.0, artefact_prob=1.0, margin=0)
    out, lab = augment_pair(image, label, rng, config, size=48)
    assert (lab == label).all()
    assert not np.allclose(out, image)


def test_label_kinds():
    isbi = np.array([[0, 255, 255, 255]], np.uint8)
    gerhard = np.array([[255, 0, 0, 0]], np.uint8)
    assert membrane_from_labels(isbi, "membrane-low").tolist() == [[True, False, False, False]]
    assert membrane_from_labels(gerhard, "membrane-high").tolist() == [[True, False, False, False]]
    assert (membrane_from_labels(isbi) == membrane_from_labels(gerhard)).all()  # rarer = membrane
    ids = np.array([[[1, 1, 2], [1, 1, 2], [0, 3, 3]]])
    expected = boundaries_from_instances(ids)
    assert expected[0, 2, 0] and expected[0, 0, 1] and not expected[0, 0, 0]
    assert (membrane_from_labels(ids) == expected).all()


def test_loss_prefers_the_right_answer():
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    good = bce_dice_loss(torch.tensor([[-5.0, 5.0, -5.0, -5.0]]), target, pos_weight=2.0)
    bad = bce_dice_loss(torch.tensor([[5.0, -5.0, 5.0, 5.0]]), target, pos_weight=2.0)
    assert good < 0.1 < bad


def test_held_out_isbi_slices_are_refused():
    stack = MembraneStack("isbi", np.zeros((30, 8, 8), np.float32), np.zeros((30, 8, 8), bool))
    stack.is_isbi2012 = True
    check_slices(stack, parse_slices("0-17"), purpose="training", allow_held_out=False)
    with pytest.raises(HeldOutError, match="held-out"):
        check_slices(stack, parse_slices("0-20"), purpose="training", allow_held_out=False)
    with pytest.raises(HeldOutError):
        check_slices(stack, (25,), purpose="validation", allow_held_out=False)
    check_slices(stack, parse_slices("0-29"), purpose="training", allow_held_out=True)


def test_cli_refuses_held_out_slices_of_the_real_isbi_volume(shared_data, tmp_path, capsys):
    code = train_main(
        [
            "train", "membrane", "--data", str(shared_data / "isbi2012"),
            "--train-slices", "0-21", "--epochs", "1", "--out", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert code == 2
    assert "held-out" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.fixture(scope="module")
def tiny_run(synthetic_source, make_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, train_membrane(make_config(synthetic_source, out, epochs=3))


@pytest.mark.slow
def test_tiny_training_lowers_the_loss(tiny_run):
    out, result = tiny_run
    losses = [record["train_loss"] for record in result["history"]]
    assert losses[-1] < losses[0]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert 0.0 <= result["best"]["vrand"] <= 1.0


@pytest.mark.slow
def test_export_is_a_checked_float16_state_dict_with_a_card(tiny_run):
    out, result = tiny_run
    card = json.loads((out / "unet-w0.0625.json").read_text())
    weights = out / card["weights"]
    assert card["sha256"] == sha256_of(weights) == result["sha256"]
    assert card["architecture"] == "unet" and card["normalization"] == "percentile-0.5-99.5"
    assert "train membrane" in card["training_command"] or "TrainConfig" in card["training_command"]
    ModelCard(**card)  # the JSON holds exactly the registry's fields
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    # As membrane.build_model loads a registered card:
    checked = load_checked_state_dict(weights, card["sha256"])
    net = build_network(card["architecture"], width=card["width"], depth=card["depth"])
    net.load_state_dict({k: v.float() for k, v in checked.items()})


@pytest.mark.slow
def test_resume_continues_from_the_saved_epoch(synthetic_source, tmp_path, make_config):
    first = train_membrane(make_config(synthetic_source, tmp_path, epochs=1))
    saved = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1 and set(saved) >= {"model", "optimizer", "config", "scheduler"}
    resumed = train_membrane(
        make_config(synthetic_source, tmp_path, epochs=2, resume=str(tmp_path / "last.pt"))
    )
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == first["history"][0]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2


def test_time_budget_stops_early_and_anneals(synthetic_source, tmp_path, make_config):
    config = make_config(synthetic_source, tmp_path, epochs=5, time_budget_min=1e-4)
    result = train_membrane(config)
    assert len(result["history"]) == 1  # stopped inside the first epoch
    assert result["history"][0]["step"] < config.steps_per_epoch
    assert result["history"][0]["lr"] == 0.0  # the cosine ran out with the time


@pytest.mark.slow
def test_progress_callback_and_cancel(synthetic_source, tmp_path, make_config):
    from napari_emseg._progress import Cancelled

    seen = []
    config = make_config(synthetic_source, tmp_path, epochs=1, steps_per_epoch=3)
    train_membrane(config, progress=lambda done, total, message: seen.append((done, total)))
    assert seen[-1] == (3, 3)
    with pytest.raises(Cancelled):
        train_membrane(config, cancel=lambda: True)


def _stream_batches(source, tmp_path, make_config, workers, epochs=2):
    from napari_emseg.training.loop import _batches, _prepare_data

    config = make_config(source, tmp_path, epochs=epochs, steps_per_epoch=5, workers=workers)
    return [x for x, _ in _batches(_prepare_data(config), config, 0, torch.device("cpu"))]


def test_augmenting_workers_give_every_step_reproducibly(synthetic_source, tmp_path, make_config):
    batches = _stream_batches(synthetic_source, tmp_path, make_config, workers=2)
    assert len(batches) == 2 * 5  # steps_per_epoch batches for each epoch, none lost or doubled
    assert batches[0].shape == (4, 1, 32, 32)
    assert not torch.equal(batches[0], batches[1])  # the two workers draw different crops
    again = _stream_batches(synthetic_source, tmp_path, make_config, workers=2)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


@pytest.mark.slow
def test_training_with_workers_runs_and_exports(synthetic_source, tmp_path, make_config):
    result = train_membrane(make_config(synthetic_source, tmp_path, epochs=1, workers=2))
    assert result["history"][0]["step"] == 12 and (tmp_path / "best.pt").is_file()
