"""segment, predict-membrane and propagate end to end on a 4-slice crop of ISBI 2012."""

import errno
import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_emseg.cli import main
from napari_emseg.cli import segment as segment_command
from napari_emseg.io import read_volume

FAST = ["--model", "ridge", "--propagation", "watershed", "--quiet"]  # seconds, not minutes


@pytest.mark.slow
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


def _validate_ngff(path, *, with_image: bool, shape, dtype=np.uint16):
    """Read the store with ome-zarr-models (the NGFF schema) and ome-zarr-py's reader."""
    models = pytest.importorskip("ome_zarr_models.v04")
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    root = zarr.open_group(str(path), mode="r")
    labels = models.ImageLabel.from_zarr(root["labels/labels"])
    models.Labels.from_zarr(root["labels"])
    assert labels.attributes.multiscales[0].axes[0].unit == "nanometer"
    if with_image:
        models.Image.from_zarr(root)
        assert labels.attributes.image_label.source.image == "../../"
    start = path if with_image else path / "labels"
    nodes = list(reader.Reader(parse_url(str(start)))())
    found = {type(spec).__name__ for node in nodes for spec in node.specs}
    assert {"Label", "Multiscales"} <= found and ("Labels" in found)
    label_node = next(n for n in nodes if any(type(s).__name__ == "Label" for s in n.specs))
    assert label_node.data[0].shape == shape and label_node.data[0].dtype == dtype
    return nodes


def test_zarr_output_is_the_same_run_as_tiff_and_an_ngff_image_with_labels(isbi_crop, tmp_path):
    tif = ["-o", str(tmp_path / "a.tif"), "--membrane-out", str(tmp_path / "m.tif")]
    assert main(["segment", str(isbi_crop), *tif, *FAST]) == 0
    store, membrane = tmp_path / "a.zarr", tmp_path / "m.zarr"
    argv = ["segment", str(isbi_crop), "-o", str(store), "--membrane-out", str(membrane)]
    assert main([*argv, "--with-image", *FAST]) == 0
    # The suffix changes the writer, never the algorithm.
    np.testing.assert_array_equal(
        read_volume(f"{store}:labels/labels").data, read_volume(tmp_path / "a.tif").data
    )
    np.testing.assert_array_equal(read_volume(membrane).data, read_volume(tmp_path / "m.tif").data)
    np.testing.assert_array_equal(read_volume(store).data, tifffile.imread(isbi_crop))
    assert read_volume(f"{store}:labels/labels").scale == pytest.approx((50.0, 4.0, 4.0))
    _validate_ngff(store, with_image=True, shape=(4, 160, 192))
    models = pytest.importorskip("ome_zarr_models.v04")
    image = models.Image.from_zarr(zarr.open_group(str(membrane), mode="r"))
    assert image.attributes.multiscales[0].name == "membrane"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "a.zarr", "m.tif", "m.zarr"]


def test_blockwise_only_when_asked_or_too_large_with_the_same_layout(
    isbi_crop, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "one.zarr"
    assert main(["segment", str(isbi_crop), "-o", str(out), *FAST]) == 0
    assert json.loads(capsys.readouterr().out)["blockwise"] is False
    _validate_ngff(out, with_image=False, shape=(4, 160, 192))

    asked = tmp_path / "asked.zarr"
    argv = ["segment", str(isbi_crop), "-o", str(asked), "--block", "2", "160", "192", *FAST]
    assert main([*argv, "--halo", "1", "16", "16", "--with-image"]) == 0
    assert json.loads(capsys.readouterr().out)["blockwise"] is True
    _validate_ngff(asked, with_image=True, shape=(4, 160, 192))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch

    monkeypatch.setattr(segment_command, "available_memory", lambda: 1 << 20)  # 1 MiB free
    big = tmp_path / "big.zarr"
    argv = ["segment", str(isbi_crop), "-o", str(big), "--membrane-out", str(tmp_path / "p.zarr")]
    assert main([*argv, *FAST]) == 0
    assert json.loads(capsys.readouterr().out)["blockwise"] is True
    _validate_ngff(big, with_image=False, shape=(4, 160, 192))
    assert read_volume(tmp_path / "p.zarr").data.dtype == np.float32
    assert main(["segment", str(isbi_crop), "-o", str(tmp_path / "big.tif"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "give -o LABELS.zarr" in err and err.count("\n") == 1


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_a_full_disk_on_the_second_output_leaves_nothing_and_a_rerun_works(
    isbi_crop, tmp_path, capsys, monkeypatch, suffix
):
    from napari_emseg.io import ngff, tiff_writer

    module, name = (tiff_writer, "_write_tiff") if suffix == ".tif" else (ngff, "write_pyramid")
    real = getattr(module, name)
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    labels, membrane = tmp_path / f"labels{suffix}", tmp_path / f"membrane{suffix}"
    argv = ["segment", str(isbi_crop), "-o", str(labels), "--membrane-out", str(membrane), *FAST]
    with monkeypatch.context() as patch:
        patch.setattr(module, name, second_fails)
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cannot write {membrane} (No space left on device)" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # neither output, no temporary
    assert main(argv) == 0  # nothing in the way of a second try
    assert read_volume(labels, as_labels=True).data.shape == (4, 160, 192)
    assert read_volume(membrane).data.dtype == np.float32


def test_a_failed_replacement_keeps_the_old_outputs(isbi_crop, tmp_path, monkeypatch):
    from napari_emseg.io import tiff_writer

    labels, membrane = tmp_path / "labels.tif", tmp_path / "membrane.tif"
    labels.write_bytes(b"old labels")
    membrane.write_bytes(b"old membrane")
    real = tiff_writer._write_tiff
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(tiff_writer, "_write_tiff", second_fails)
    argv = ["segment", str(isbi_crop), "-o", str(labels), "--membrane-out", str(membrane)]
    assert main([*argv, "--overwrite", *FAST]) == 2
    assert labels.read_bytes() == b"old labels" and membrane.read_bytes() == b"old membrane"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif", "membrane.tif"]


@pytest.mark.slow
def test_predict_membrane_writes_float32_probabilities(isbi_crop, tmp_path):
    out = tmp_path / "prob.tif"
    assert main(["predict-membrane", str(isbi_crop), "-o", str(out), "--device", "cpu"]) == 0
    prob = tifffile.imread(out)
    raw = tifffile.imread(isbi_crop)
    assert prob.shape == raw.shape and prob.dtype == np.float32
    dark = raw < np.percentile(raw, 10)
    assert prob[dark].mean() > prob[~dark].mean()  # membranes are the dark pixels


def test_predict_membrane_to_zarr_is_the_tiff_map(isbi_crop, tmp_path):
    for name in ("p.tif", "p.zarr"):
        assert (
            main(
                [
                    "predict-membrane",
                    str(isbi_crop),
                    "-o",
                    str(tmp_path / name),
                    "--model",
                    "ridge",
                    "--quiet",
                ]
            )
            == 0
        )
    np.testing.assert_array_equal(
        read_volume(tmp_path / "p.zarr").data, read_volume(tmp_path / "p.tif").data
    )


@pytest.mark.slow
def test_propagate_from_a_2d_reference_keeps_it_and_fills_the_stack(isbi_crop, segmented, tmp_path):
    labels_path, membrane_path = segmented
    reference = read_volume(labels_path).data[1]
    ref_file = tmp_path / "ref-labels.tif"
    tifffile.imwrite(ref_file, reference.astype(np.uint16))
    out = tmp_path / "propagated.zarr"
    argv = ["propagate", str(isbi_crop), "--labels", str(ref_file), "--ref-slice", "1"]
    assert main([*argv, "-o", str(out), "--membrane", str(membrane_path), "--quiet"]) == 0
    result = read_volume(out, as_labels=True).data
    np.testing.assert_array_equal(result[1], reference)
    for z in (0, 2, 3):
        assert len(set(np.unique(result[z])) & set(np.unique(reference))) > 5


@pytest.mark.slow
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


@pytest.mark.slow
def test_learned_propagator_options_need_the_learned_method(isbi_crop, segmented, tmp_path):
    labels_path, _ = segmented
    args = ["propagate", str(isbi_crop), "--labels", str(labels_path), "--ref-slice", "1"]
    args += ["-o", str(tmp_path / "x.tif"), "--method", "watershed", "--variant", "st"]
    assert main(args) == 2
    assert not (tmp_path / "x.tif").exists()


def test_overwrite_replaces_an_existing_output(isbi_crop, tmp_path):
    out = tmp_path / "labels.tif"
    out.write_bytes(b"old")
    assert main(["segment", str(isbi_crop), "-o", str(out), "--overwrite", *FAST]) == 0
    assert read_volume(out).data.shape == (4, 160, 192)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tif"]


def test_a_given_voxel_size_reaches_the_output_and_the_engine(isbi_crop, tmp_path, capsys):
    out = tmp_path / "labels.tif"
    args = ["segment", str(isbi_crop), "-o", str(out), *FAST]
    assert main([*args, "--voxel-size", "40", "8", "8"]) == 0
    assert read_volume(out).scale == pytest.approx((40.0, 8.0, 8.0))
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["voxel_size"] == [40.0, 8.0, 8.0] and summary["voxel_estimated"] is False
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--voxel-size", "40", "0", "8", "--overwrite"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--voxel-size" in err


def test_a_voxel_size_the_facade_refuses_is_one_line(isbi_crop, tmp_path, capsys, monkeypatch):
    from napari_emseg import pipeline

    def implausible(size):
        raise ValueError("voxel size (40.0, 8000.0, 8000.0) nm is implausible: in µm?")

    monkeypatch.setattr(pipeline, "checked_voxel_size", implausible)
    argv = ["segment", str(isbi_crop), "-o", str(tmp_path / "x.tif"), *FAST]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--voxel-size", "40", "8000", "8000"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "in µm?" in err


def _propagate_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_propagate_reports_method_calibration_and_notes(isbi_crop, segmented, tmp_path, capsys):
    labels_path, membrane_path = segmented
    argv = ["propagate", str(isbi_crop), "--labels", str(labels_path), "--ref-slice", "1"]
    argv += ["--membrane", str(membrane_path), "--method", "watershed", "--quiet"]
    calibrated = _propagate_json([*argv, "-o", str(tmp_path / "a.tif")], capsys)
    assert calibrated["method"] == "watershed" and calibrated["sparse"] is False
    assert calibrated["voxel_size"] == [50.0, 4.0, 4.0]  # the file's, nothing estimated
    assert calibrated["calibration"]["slices"] == [1]
    assert "vote_threshold" in calibrated["calibration"]["choices"]
    assert any(note.startswith("calibrated") for note in calibrated["notes"])
    plain = _propagate_json([*argv, "-o", str(tmp_path / "b.tif"), "--no-calibrate"], capsys)
    assert plain["calibration"] is None and not any("calibrat" in n for n in plain["notes"])


@pytest.mark.slow
def test_propagate_sparse_carries_only_the_painted_objects(isbi_crop, segmented, tmp_path, capsys):
    labels_path, membrane_path = segmented
    dense = read_volume(labels_path).data
    ids = [i for i in np.unique(dense[1]) if i][:2]
    painted = np.where(np.isin(dense, ids), dense, 0).astype(np.uint16)
    painted[[0, 2, 3]] = 0
    ref_file = tmp_path / "two.tif"
    tifffile.imwrite(ref_file, painted, imagej=True, metadata={"axes": "ZYX"})
    argv = ["propagate", str(isbi_crop), "--labels", str(ref_file), "--ref-slice", "1"]
    argv += ["--membrane", str(membrane_path), "--method", "watershed", "--quiet"]
    sparse = _propagate_json([*argv, "-o", str(tmp_path / "s.tif"), "--sparse"], capsys)
    assert sparse["sparse"] is True
    assert set(np.unique(read_volume(tmp_path / "s.tif").data)) <= {0, *ids}
    dense_run = _propagate_json([*argv, "-o", str(tmp_path / "d.tif"), "--dense"], capsys)
    assert dense_run["sparse"] is False
    assert len(np.unique(read_volume(tmp_path / "d.tif").data)) > 3


def test_the_json_says_whether_the_voxel_size_was_estimated(
    isbi_crop, tmp_path, capsys, monkeypatch
):
    from napari_emseg import pipeline

    monkeypatch.setattr(
        pipeline, "estimate_voxel_size", lambda array, **kw: ((50.0, 4.0, 4.0), "a test estimate")
    )
    plain = tmp_path / "plain.tif"
    data = read_volume(isbi_crop).data
    tifffile.imwrite(plain, data, imagej=True, metadata={"axes": "ZYX"})  # no voxel size
    segment = ["segment", str(plain), "-o", str(tmp_path / "labels.tif"), *FAST]
    estimated = _propagate_json(segment, capsys)  # given: see the test of --voxel-size above
    assert estimated["voxel_estimated"] is True and estimated["voxel_size"] == [50.0, 4.0, 4.0]
    argv = ["propagate", str(plain), "--labels", str(tmp_path / "labels.tif"), "--ref-slice", "1"]
    argv += ["--method", "watershed", "--model", "ridge", "--no-calibrate", "--quiet"]
    run = _propagate_json([*argv, "-o", str(tmp_path / "a.tif")], capsys)
    assert run["voxel_estimated"] is True
    given = _propagate_json([*argv, "-o", str(tmp_path / "b.tif"), "--voxel-size", "50", "4", "4"],
                            capsys)  # fmt: skip
    assert given["voxel_estimated"] is False


def test_a_stack_whose_pixel_size_cannot_be_estimated_names_the_flag(tmp_path, capsys):
    noise = np.random.default_rng(0).integers(0, 255, (3, 64, 64), np.uint8)
    path = tmp_path / "noise.tif"
    tifffile.imwrite(path, noise, imagej=True, metadata={"axes": "ZYX"})  # no voxel size
    assert main(["segment", str(path), "-o", str(tmp_path / "x.tif"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be estimated" in err[0] and "--voxel-size Z Y X" in err[0]
    assert not (tmp_path / "x.tif").exists()
