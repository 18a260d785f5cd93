"""`napari-emseg simulate-proofreading`: the labels it writes score what it prints, bad input is
one line and exit 2, and the plot needs matplotlib (the oracle itself: tests/evaluation)."""

import builtins
import json

import numpy as np
import pytest

from napari_emseg.cli import main
from napari_emseg.io import read_volume, write_image_tiff, write_labels_tiff
from napari_emseg.metrics import adapted_rand_error


@pytest.fixture
def files(tmp_path, three_cells):
    image, gt, membrane = three_cells()
    start = gt.copy()
    start[2:][start[2:] == 3] = 7
    start[:, :, 8:10] = 1
    start[1][np.isin(start[1], [1, 2])] = 1
    paths = {name: tmp_path / f"{name}.tif" for name in ("image", "gt", "start", "membrane")}
    write_image_tiff(paths["image"], image)
    write_image_tiff(paths["membrane"], membrane)
    write_labels_tiff(paths["gt"], gt)
    write_labels_tiff(paths["start"], start)
    return {k: str(v) for k, v in paths.items()}, gt


def cli(files, *extra):
    paths = files[0]
    return main(
        [
            "simulate-proofreading",
            paths["image"],
            "--gt",
            paths["gt"],
            "--labels",
            paths["start"],
            "--membrane",
            paths["membrane"],
            "--quiet",
            *extra,
        ]
    )


def test_cli_writes_labels_whose_are_is_the_printed_one(files, tmp_path, capsys):
    out = tmp_path / "final.tif"
    assert cli(files, "--json", "--target-are", "0", "-o", str(out)) == 0
    report = json.loads(capsys.readouterr().out)
    written = read_volume(out, as_labels=True).data
    assert report["final_are"] == adapted_rand_error(written, files[1]) == 0.0
    assert report["initial_are"] > 0 and report["reached"]
    assert report["total_actions"] == sum(report["actions"].values()) >= 2
    assert len(report["are_after_action"]) == report["total_actions"]
    assert report["are_after_action"][-1] == report["final_are"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--target-are", "1.5"], "--target-are"),
        (["--max-actions", "-1"], "--max-actions"),
        (["--ref-slice", "9"], "--ref-slice"),
        (["-o", "EXISTING"], "exists"),
        (["--plot", "curve.jpg"], ".png"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(files, capsys, extra, needle):
    extra = [files[0]["gt"] if e == "EXISTING" else e for e in extra]
    assert cli(files, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-emseg simulate-proofreading: error:") and "\n" not in err
    assert needle in err


def test_cli_refuses_ground_truth_of_another_shape(files, tmp_path, capsys):
    other = tmp_path / "other.tif"
    write_labels_tiff(other, np.ones((2, 5, 5), np.uint16))
    paths = dict(files[0], gt=str(other))
    assert cli((paths, None)) == 2
    err = capsys.readouterr().err.strip()
    assert "shape" in err and "\n" not in err


def test_cli_plot_without_matplotlib_names_the_install(files, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert cli(files, "--plot", str(tmp_path / "curve.png")) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install matplotlib" in err and "\n" not in err
    assert not (tmp_path / "curve.png").exists()


def test_cli_plot_draws_the_curve(files, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curve.png"
    assert cli(files, "--plot", str(plot)) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
