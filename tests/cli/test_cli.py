"""The CLI end to end on a 4-slice crop of ISBI 2012 (from ../shared/data)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_emseg.cli import main
from napari_emseg.io import read_volume


@pytest.fixture(scope="module")
def segmented(isbi_crop, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    labels, membrane = out / "labels.tif", out / "membrane.tif"
    assert (
        main(["segment", str(isbi_crop), "-o", str(labels), "--membrane-out", str(membrane)]) == 0
    )
    return labels, membrane


def test_segment_writes_plausible_3d_labels_with_the_input_scale(segmented):
    labels_path, membrane_path = segmented
    labels = read_volume(labels_path)
    assert labels.is_labels and labels.data.shape == (4, 160, 192)
    assert labels.scale == pytest.approx((50.0, 4.0, 4.0)) and labels.unit == "nm"
    per_slice = [len(np.unique(plane)) for plane in labels.data]
    assert all(5 <= n <= 100 for n in per_slice)  # tens of neurites per slice
    # Ids are linked through z: most objects of the reference slice continue into the next.
    ref_ids = set(np.unique(labels.data[2]))
    assert len(ref_ids & set(np.unique(labels.data[3]))) > 0.5 * len(ref_ids)
    membrane = tifffile.imread(membrane_path)
    assert membrane.dtype == np.float32 and 0 <= membrane.min() and membrane.max() <= 1


def test_predict_membrane_writes_float32_probabilities(isbi_crop, tmp_path):
    out = tmp_path / "prob.tif"
    assert main(["predict-membrane", str(isbi_crop), "-o", str(out), "--device", "cpu"]) == 0
    prob = tifffile.imread(out)
    raw = tifffile.imread(isbi_crop)
    assert prob.shape == raw.shape and prob.dtype == np.float32
    dark = raw < np.percentile(raw, 10)
    assert prob[dark].mean() > prob[~dark].mean()  # membranes are the dark pixels


def test_propagate_from_a_2d_reference_keeps_it_and_fills_the_stack(isbi_crop, segmented, tmp_path):
    labels_path, membrane_path = segmented
    reference = read_volume(labels_path).data[1]
    ref_file = tmp_path / "ref-labels.tif"
    tifffile.imwrite(ref_file, reference.astype(np.uint16))
    out = tmp_path / "propagated.tif"
    code = main(
        [
            "propagate",
            str(isbi_crop),
            "--labels",
            str(ref_file),
            "--ref-slice",
            "1",
            "-o",
            str(out),
            "--membrane",
            str(membrane_path),
        ]
    )
    assert code == 0
    result = read_volume(out).data
    np.testing.assert_array_equal(result[1], reference)
    for z in (0, 2, 3):
        assert len(set(np.unique(result[z])) & set(np.unique(reference))) > 5


def test_evaluate_prints_json_scores(segmented, isbi_crop, tmp_path, capsys, shared_data):
    labels_path, membrane_path = segmented
    gt = tifffile.imread(shared_data / "isbi2012" / "train-instances-3d.tif")[
        10:14, 100:260, 50:242
    ]
    gt_path = tmp_path / "gt.tif"
    tifffile.imwrite(gt_path, gt.astype(np.uint32), photometric="minisblack")
    assert main(["evaluate", "--pred", str(labels_path), "--gt", str(gt_path)]) == 0
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
    assert main(["evaluate", "--pred", str(path), "--gt", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"are": 0.0, "voi_split": 0.0, "voi_merge": 0.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segment", "{missing}", "-o", "{out}"], "does not exist"),
        (["segment", "{text}", "-o", "{out}"], "not a readable TIFF"),
        (["segment", "{crop}", "-o", "{tmp}/no/such/dir/x.tif"], "does not exist: create it"),
        (
            ["segment", "{crop}", "-o", "{existing}"],
            "exists and was left as it is; pass --overwrite to replace it",
        ),
        (["segment", "{crop}", "-o", "{tmp}/x.png"], "must end in .tif"),
        (
            ["propagate", "{crop}", "--labels", "{existing}", "--ref-slice", "7", "-o", "{out}"],
            "outside 0..3",
        ),
        (
            ["propagate", "{crop}", "--labels", "{small}", "--ref-slice", "1", "-o", "{out}"],
            "fits neither the image",
        ),
    ],
)
def test_bad_input_gets_one_line_and_exit_2_and_writes_nothing(
    args, message, isbi_crop, tmp_path, capsys
):
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    existing = tmp_path / "existing.tif"
    tifffile.imwrite(existing, np.ones((4, 160, 192), np.uint16), photometric="minisblack")
    before = existing.read_bytes()
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((10, 10), np.uint16))
    values = {
        "missing": tmp_path / "missing.tif",
        "out": tmp_path / "out.tif",
        "text": text,
        "crop": isbi_crop,
        "tmp": tmp_path,
        "existing": existing,
        "small": small,
    }
    argv = [a.format(**values) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out.tif").exists()
    assert existing.read_bytes() == before  # never overwritten


def test_overwrite_replaces_an_existing_output(isbi_crop, tmp_path):
    out = tmp_path / "labels.tif"
    out.write_bytes(b"old")
    assert (
        main(["segment", str(isbi_crop), "-o", str(out), "--overwrite", "--propagation", "none"])
        == 0
    )
    assert read_volume(out).data.shape == (4, 160, 192)


def test_console_script_exit_code_and_message(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_emseg",
            "segment",
            str(tmp_path / "nope.tif"),
            "-o",
            str(tmp_path / "x.tif"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def test_unknown_model_and_absent_device_are_refused(isbi_crop, tmp_path, capsys):
    code = main(["segment", str(isbi_crop), "-o", str(tmp_path / "x.tif"), "--model", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown model 'nope'; choose one of: fusionnet-w0.375-multimodal" in err
    import torch

    if not torch.cuda.is_available():
        code = main(
            ["predict-membrane", str(isbi_crop), "-o", str(tmp_path / "p.tif"), "--device", "cuda"]
        )
        assert code == 2 and "not available" in capsys.readouterr().err


def test_train_is_a_subcommand_of_the_main_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "membrane", "--help"])
    assert exit_info.value.code == 0 and "--model" in capsys.readouterr().out
    code = main(["train", "membrane", "--data", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert code == 2 and "neither a dataset folder" in capsys.readouterr().err


def test_propagate_with_the_shipped_consistent_convlstm(isbi_crop, segmented, tmp_path):
    labels_path, membrane_path = segmented
    reference = read_volume(labels_path).data[1]
    out = tmp_path / "learned.tif"
    args = ["propagate", str(isbi_crop), "--labels", str(labels_path), "--ref-slice", "1"]
    args += ["-o", str(out), "--membrane", str(membrane_path), "--method", "cconvlstm"]
    assert main(args) == 0
    result = read_volume(out).data
    np.testing.assert_array_equal(result[1], reference)
    for z in (0, 2, 3):  # most objects carried on, with the reference's ids
        assert len(set(np.unique(result[z])) & set(np.unique(reference))) > 0.5 * len(
            np.unique(reference)
        )


def test_learned_propagator_options_need_the_learned_method(isbi_crop, segmented, tmp_path):
    labels_path, _ = segmented
    args = ["propagate", str(isbi_crop), "--labels", str(labels_path), "--ref-slice", "1"]
    args += ["-o", str(tmp_path / "x.tif"), "--method", "watershed", "--variant", "st"]
    assert main(args) == 2
    assert not (tmp_path / "x.tif").exists()


def test_version_and_defaults_in_every_help(capsys):
    from napari_emseg import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and __version__ in capsys.readouterr().out
    for command in ("segment", "predict-membrane", "propagate", "sample"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: auto" in text or "(default auto" in text or command == "sample"
        assert "--voxel-size" in text or command in ("sample",)
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "(default: 0)" in " ".join(capsys.readouterr().out.split())  # --seed


@pytest.mark.parametrize(("values", "message"), [(np.nan, "no finite values"), (7.0, "constant")])
def test_an_image_with_nothing_to_segment_is_refused(tmp_path, capsys, values, message):
    path, out = tmp_path / "blank.tif", tmp_path / "labels.tif"
    tifffile.imwrite(path, np.full((3, 32, 32), values, np.float32), metadata={"axes": "ZYX"})
    assert main(["segment", str(path), "-o", str(out), "--model", "ridge"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_a_given_voxel_size_reaches_the_output_and_the_engine(isbi_crop, tmp_path):
    out = tmp_path / "labels.tif"
    args = ["segment", str(isbi_crop), "-o", str(out), "--model", "ridge", "--quiet"]
    assert main([*args, "--voxel-size", "40", "8", "8", "--propagation", "watershed"]) == 0
    assert read_volume(out).scale == pytest.approx((40.0, 8.0, 8.0))
    assert main([*args, "--voxel-size", "40", "0", "8", "--overwrite"]) == 2


def test_progress_without_a_terminal_is_one_line_every_few_seconds(monkeypatch, capsys):
    from napari_emseg.cli import commands

    clock = iter([100.0, 101.0, 106.0, 107.0, 108.0])
    monkeypatch.setattr(commands.time, "monotonic", lambda: next(clock))
    show = commands._progress_printer(quiet=False)  # stderr is captured: not a terminal
    for done in range(5):
        show(done, 4, f"slice {done}")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "  0% (0/4) slice 0",
        " 50% (2/4) slice 2",
        "100% (4/4) slice 4",  # the last line always
    ]
