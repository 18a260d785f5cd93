"""Fixtures of the GUI tests: a tiny stack and a tiny membrane network (helpers: gui_support)."""

import json

import pytest


@pytest.fixture(scope="session")
def small_stack():
    """A synthetic 6x96x96 EM stack with its ground truth (50x4x4 nm)."""
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    return make_synthetic_stack((6, 96, 96), seed=2)


@pytest.fixture(scope="session")
def tiny_card(tmp_path_factory):
    """A tiny randomly initialised U-Net saved as a model card: a network to adapt in
    seconds (the shipped ones take a minute)."""
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
