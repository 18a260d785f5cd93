"""evaluate, sample and benchmark."""

import json

import numpy as np
import pytest
import tifffile

from napari_emseg.cli import main
from napari_emseg.io import read_volume


@pytest.mark.slow
def test_evaluate_prints_json_scores(segmented, tmp_path, capsys, shared_data):
    labels_path, membrane_path = segmented
    gt = tifffile.imread(shared_data / "isbi2012" / "train-instances-3d.tif")[
        10:14, 100:260, 50:242
    ]
    gt_path = tmp_path / "gt.tif"
    tifffile.imwrite(gt_path, gt.astype(np.uint32), photometric="minisblack")
    assert main(["evaluate", "--pred", str(labels_path), "--gt", str(gt_path), "--quiet"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"are", "voi_split", "voi_merge"}
    assert 0 <= scores["are"] < 0.9
    assert main(["evaluate", "--pred", str(membrane_path), "--gt", str(gt_path)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"vrand", "vinfo"} <= set(scores) and 0.3 < scores["vrand"] <= 1


def test_evaluate_of_ground_truth_against_itself_is_perfect(tmp_path, capsys):
    gt = np.zeros((2, 20, 20), np.uint32)
    gt[:, :10], gt[:, 10:] = 1, 2
    path = tmp_path / "gt.tif"
    tifffile.imwrite(path, gt)
    assert main(["evaluate", "--pred", str(path), "--gt", str(path), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == {"are": 0.0, "voi_split": 0.0, "voi_merge": 0.0}


def test_sample_writes_the_stack_and_its_ground_truth_together(tmp_path, capsys):
    image, labels = tmp_path / "sample.tif", tmp_path / "gt.tif"
    argv = ["sample", "-o", str(image), "--labels-out", str(labels), "--shape", "3", "48", "48"]
    assert main([*argv, "--quiet"]) == 0
    stack, truth = read_volume(image), read_volume(labels)
    assert stack.data.shape == truth.data.shape == (3, 48, 48) and truth.is_labels
    labels.unlink()
    image.write_bytes(b"kept")
    assert main([*argv, "--quiet"]) == 2  # the image exists: neither is written
    assert "pass --overwrite" in capsys.readouterr().err
    assert image.read_bytes() == b"kept" and not labels.exists()


@pytest.mark.parametrize("flag", ["--quick"])
def test_benchmark_json_is_one_line(flag, capsys, monkeypatch):
    from napari_emseg.evaluation import speed as engine

    def fake(*, progress, **kwargs):
        progress(1, 2, "benchmark: membrane")  # the CLI's progress line takes it
        return {"seconds": 1.5, **kwargs}

    monkeypatch.setattr(engine, "run_benchmark", fake)
    assert main(["benchmark", flag, "--json", "--quiet", "--model", "ridge"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) == {"seconds": 1.5, "quick": True, "device": "auto", "model": "ridge"}
