"""Nothing reaches the network at run time (no model or data downloads)."""

import socket

import numpy as np
import pytest

from napari_emseg.cli import main
from napari_emseg.pipeline import segment


@pytest.fixture()
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.mark.slow
def test_the_pipeline_and_cli_run_without_touching_the_network(no_network, tiny_stack, tmp_path):
    result = segment(tiny_stack.image, model="ridge", device="cpu")
    assert result.labels.max() > 0
    sample, labels = tmp_path / "s.tif", tmp_path / "l.tif"
    assert main(["sample", "-o", str(sample), "--shape", "3", "64", "64"]) == 0
    assert main(["segment", str(sample), "-o", str(labels), "--device", "cpu"]) == 0
    assert no_network == []


def test_network_models_load_local_weights_only(no_network, tmp_path):
    import json

    import torch

    from napari_emseg.inference.membrane import predict_membrane
    from napari_emseg.models import build_network
    from napari_emseg.models.cards import sha256_of

    weights = tmp_path / "m.pt"
    torch.save(build_network("unet", width=0.0625, depth=2).state_dict(), weights)
    card = {"architecture": "unet", "width": 0.0625, "depth": 2, "sha256": sha256_of(weights)}
    (tmp_path / "m.json").write_text(json.dumps(card))
    prob = predict_membrane(np.zeros((1, 32, 32), np.uint8), model=str(weights), device="cpu")
    assert prob.shape == (1, 32, 32) and no_network == []
