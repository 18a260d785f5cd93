import pickle

import numpy as np
import pytest
import torch

from napari_emseg.inference.devices import resolve_device
from napari_emseg.inference.loading import WeightsError, load_checked_state_dict
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.models.cards import DEFAULT_MEMBRANE_MODEL, get_card, list_models, sha256_of


def test_default_model_is_listed_first_and_resolves():
    assert list_models()[0] == DEFAULT_MEMBRANE_MODEL
    assert get_card(None).name == DEFAULT_MEMBRANE_MODEL
    assert get_card("default") is get_card(DEFAULT_MEMBRANE_MODEL)


def test_unknown_model_names_the_choices():
    with pytest.raises(
        ValueError, match="unknown model 'nope'; choose one of: fusionnet-w0.375-native"
    ):
        get_card("nope")


def test_weights_load_only_when_the_hash_matches(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"weight": torch.ones(2)}, path)
    state = load_checked_state_dict(path, sha256_of(path))
    assert torch.equal(state["weight"], torch.ones(2))
    with pytest.raises(WeightsError, match="altered or corrupted"):
        load_checked_state_dict(path, "0" * 64)


class Payload:
    """Unpickling this would run code: weights_only must refuse it."""

    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_carrying_code_is_refused_even_with_the_right_hash(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"weight": Payload()}, handle)
    with pytest.raises(WeightsError, match="not a plain tensor file"):
        load_checked_state_dict(path, sha256_of(path))
    assert "code ran" not in capsys.readouterr().out


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available on this machine"):
            resolve_device("cuda")


def test_ridge_membrane_finds_dark_lines_in_the_sample(tiny_stack):
    prob = predict_membrane(tiny_stack.image, model="ridge")
    assert prob.dtype == np.float32 and prob.shape == tiny_stack.image.shape
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    # Membrane pixels get clearly higher probability than cell interiors.
    assert prob[tiny_stack.membranes].mean() > prob[~tiny_stack.membranes].mean() + 0.2


def test_a_user_model_card_loads_checked_weights_and_predicts(tmp_path, tiny_stack):
    import json

    from napari_emseg.models import build_network

    net = build_network("fusionnet", width=0.0625, depth=2)
    weights = tmp_path / "mine.pt"
    torch.save({k: v.half() for k, v in net.state_dict().items()}, weights)
    card = {
        "architecture": "fusionnet",
        "width": 0.0625,
        "depth": 2,
        "weights": "mine.pt",
        "sha256": sha256_of(weights),
    }
    (tmp_path / "mine.json").write_text(json.dumps(card))
    assert get_card(tmp_path / "mine.json").weights == str(weights)
    assert get_card(str(weights)).name == "mine"  # the .pt finds its card beside it
    prob = predict_membrane(tiny_stack.image[:1], model=str(tmp_path / "mine.json"), device="cpu")
    assert prob.shape == tiny_stack.image[:1].shape and 0 <= prob.min() and prob.max() <= 1

    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")  # tampered
    with pytest.raises(WeightsError, match="altered or corrupted"):
        predict_membrane(tiny_stack.image[:1], model=str(tmp_path / "mine.json"), device="cpu")


def test_model_files_without_a_card_or_hash_are_refused(tmp_path):
    import json

    weights = tmp_path / "bare.pt"
    torch.save({}, weights)
    with pytest.raises(ValueError, match="needs a card .json beside it"):
        get_card(weights)
    (tmp_path / "bare.json").write_text(json.dumps({"architecture": "unet"}))
    with pytest.raises(ValueError, match="has no sha256"):
        get_card(weights)


def test_cli_default_model_is_the_shipped_fusionnet():
    from napari_emseg.cli.program import build_parser
    from napari_emseg.inference.membrane import build_model
    from napari_emseg.models.fusionnet import FusionNet

    args = build_parser().parse_args(["segment", "in.tif", "-o", "out.tif"])
    card = get_card(args.model)
    assert card.name == DEFAULT_MEMBRANE_MODEL and card.architecture == "fusionnet"
    assert isinstance(build_model(card), FusionNet)  # packaged weights, hash checked on load
    assert card.metrics["val_select_vrand"] > 0.9  # the card records the score it reached
    assert card.pixel_range_nm == (4.0, 12.0)


def test_the_nearest_card_by_pixel_size_is_the_default():
    from napari_emseg.models.cards import FINE_PIXEL_MODEL, default_model

    assert default_model(4.0) == FINE_PIXEL_MODEL == "fusionnet-w0.375-multimodal"
    assert default_model(10.0) == default_model(None) == DEFAULT_MEMBRANE_MODEL
    assert get_card(FINE_PIXEL_MODEL).pixel_nm == 4.0
