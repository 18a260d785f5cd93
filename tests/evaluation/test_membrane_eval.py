"""Membrane-model evaluation on a tiny stand-in for ISBI's 30 slices: scores at the best and at
the validation threshold, a checkpoint loaded back, rows of a tiny network and of ridge."""

import numpy as np
import pytest
import torch
from PIL import Image

from napari_emseg.evaluation.membrane import (
    fibsem_rows,
    fibsem_table,
    figure,
    load_model,
    network_rows,
    ridge_row,
    scores_with_validation_threshold,
    table,
)
from napari_emseg.models import build_network


def grid_labels(depth: int = 30, size: int = 48) -> np.ndarray:
    """ISBI-style labels (0 = membrane, 255 = cell) of square cells, shifting along z."""
    z, y, x = np.indices((depth, size, size))
    membrane = ((y + z) % 12 == 0) | (x % 12 == 0)
    return np.where(membrane, 0, 255).astype(np.uint8)


def test_a_perfect_map_scores_one_at_both_thresholds():
    labels = grid_labels()
    prob = (labels[18:30] == 0).astype(np.float32)
    scores = scores_with_validation_threshold(prob, labels)
    assert scores["vrand"] == pytest.approx(1.0) and scores["vrand_at_val"] == pytest.approx(1.0)
    assert 0 < scores["val_threshold"] < 1


def test_the_validation_threshold_is_chosen_on_slices_18_and_19_only():
    labels = grid_labels()
    prob = (labels[18:30] == 0).astype(np.float32)
    prob[:2] *= 0.02  # validation slices: membranes only at 0.02, so a low threshold wins
    scores = scores_with_validation_threshold(prob, labels)
    assert scores["val_threshold"] < 0.02 and scores["vrand"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="slices 18-29"):
        scores_with_validation_threshold(prob[:10], labels)


def tiny_net():
    torch.manual_seed(0)
    return build_network("fusionnet", width=0.0625, depth=2).eval()


def test_a_training_checkpoint_loads_as_the_network_it_saved(tmp_path):
    net = tiny_net()
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    config = {"model": "fusionnet", "width": 0.0625, "depth": 2}
    torch.save({"model": net.state_dict(), "config": config}, path)
    name, loaded, info = load_model(path)
    assert name == "run/best.pt" and info == {"architecture": "fusionnet", "width": 0.0625,
                                              "depth": 2}  # fmt: skip
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


@pytest.mark.slow  # FLOPs are counted on a 512x512 slice, and TTA predicts eight times
def test_rows_of_a_network_and_of_ridge(capsys, monkeypatch):
    monkeypatch.setenv("EMSEG_PRECISION", "float32")  # bf16 CPU kernels compile per shape
    labels = grid_labels(size=32)
    volume = np.where(labels == 0, 40, 200).astype(np.uint8)
    stack = volume.astype(np.float32) / 255
    info = {"architecture": "fusionnet", "width": 0.0625}
    rows, plain = network_rows("tiny", tiny_net(), info, stack, labels, 1, torch.device("cpu"))
    assert [r["tta"] for r in rows] == [False, True] and plain.shape == (10, 32, 32)
    assert rows[0]["params"] > 0 and rows[0]["gflops"] > 0 and rows[0]["seconds"] > 0
    ridge, prob = ridge_row(volume, labels, 1)
    assert ridge["model"] == "ridge" and prob.shape == (10, 32, 32)
    assert ridge["vrand"] > 0.5  # dark lines on a bright background are membranes
    lines = table([*rows, ridge])
    assert len(lines) == 5 and lines[4].startswith("| ridge | classical | - | 0 | - |")
    assert capsys.readouterr().out.count("\n") == 3  # each row printed as JSON as it comes


def test_fibsem_rows_resample_to_4_nm_and_back():
    labels = grid_labels(depth=3, size=40)
    volume = np.where(labels == 0, 40, 200).astype(np.uint8)
    gt = (labels > 0).astype(np.uint8)
    rows = fibsem_rows([("tiny", tiny_net()), ("ridge", None)], volume, gt, 10.0)
    assert [r["model"] for r in rows] == ["tiny", "ridge"]
    assert fibsem_table(rows)[3].startswith("| ridge | ")


def test_the_figure_sets_panels_side_by_side_with_titles(tmp_path):
    path = tmp_path / "panels.png"
    figure(path, [("raw", np.full((20, 30), 255, np.uint8)), ("map", np.zeros((20, 10)))])
    image = Image.open(path)
    assert image.size == (30 + 8 + 10, 20 + 24)
    assert image.getpixel((5, 30)) == (255, 255, 255) and image.getpixel((45, 30)) == (0, 0, 0)
