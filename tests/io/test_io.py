"""Tests for napari_emseg.io and the npe2 reader/writer adapters: tiny arrays in tmp_path."""

from __future__ import annotations

from pathlib import Path

import h5py
import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

from napari_emseg import _reader, _writer
from napari_emseg.io import (
    LABELS_MARKER,
    InputError,
    is_supported_path,
    parse_input_spec,
    read_volume,
    write_image_tiff,
    write_labels_tiff,
)

ISBI = Path("/work/shared/data/isbi2012")
ZARR_MAJOR = int(zarr.__version__.split(".")[0])


def _ids(shape: tuple[int, ...], high: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.int64)


def _assert_one_line(err: pytest.ExceptionInfo[InputError], *fragments: str) -> None:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def _zarr_group_array(group: zarr.Group, name: str, data: np.ndarray) -> None:
    # zarr 3 has Group.create_array; zarr 2 only create_dataset.
    create = getattr(group, "create_array", None) or group.create_dataset
    arr = create(name, shape=data.shape, dtype=data.dtype)
    arr[...] = data


def _zarr_array(path: Path, data: np.ndarray, **kwargs: object) -> None:
    arr = zarr.open_array(store=str(path), mode="w", shape=data.shape, dtype=data.dtype, **kwargs)
    arr[...] = data


# --- writers and round trips ------------------------------------------------------------------


def test_labels_uint16_round_trip_and_fiji_tags(tmp_path: Path) -> None:
    labels = _ids((3, 20, 24), 500).astype(np.uint16)
    out = write_labels_tiff(tmp_path / "result.tif", labels, scale=(50, 4, 4))

    vol = read_volume(out)  # "result" has no labels hint: the marker must decide
    assert vol.data.dtype == np.uint16
    np.testing.assert_array_equal(vol.data, labels)
    assert (vol.scale, vol.unit, vol.is_labels, vol.name) == (
        (50.0, 4.0, 4.0),
        "nm",
        True,
        "result",
    )

    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        meta = tif.imagej_metadata
        assert (meta["images"], meta["slices"], meta["spacing"], meta["unit"]) == (3, 3, 50.0, "nm")
        assert page.tags["XResolution"].value == (1, 4)  # pixels per nm
        assert page.tags["YResolution"].value == (1, 4)
        assert page.tags["ResolutionUnit"].value == 1  # none
        assert page.compression == 1  # ImageJ's reader needs uncompressed hyperstacks
        assert page.tags["Software"].value == LABELS_MARKER


def test_labels_uint32_round_trip_keeps_imagej_header(tmp_path: Path) -> None:
    labels = _ids((4, 16, 18), 2**31)
    labels[0, 0, 0] = 70_000
    out = write_labels_tiff(tmp_path / "big_ids.tiff", labels, scale=(30, 3.8, 3.8))

    vol = read_volume(out)
    assert vol.data.dtype == np.uint32
    np.testing.assert_array_equal(vol.data, labels)
    assert vol.scale == (30.0, 3.8, 3.8) and vol.is_labels

    with tifffile.TiffFile(out) as tif:
        meta = tif.imagej_metadata
        assert (meta["images"], meta["slices"], meta["spacing"], meta["unit"]) == (4, 4, 30.0, "nm")
        assert tif.series[0].axes == "ZYX" and tif.series[0].dtype == np.uint32
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(3.8)
        # ImageJ reads the stack from the first IFD: pages must be contiguous
        offsets = [p.dataoffsets[0] for p in tif.pages]
        assert np.all(np.diff(offsets) == 16 * 18 * 4)


def test_labels_2d_is_one_slice_and_micron_unit(tmp_path: Path) -> None:
    out = write_labels_tiff(
        tmp_path / "slice.tif", np.eye(6, dtype=bool), scale=(0.004, 0.004), unit="µm"
    )
    with tifffile.TiffFile(out) as tif:
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.series[0].shape == (6, 6)
    vol = read_volume(out)
    assert vol.data.shape == (1, 6, 6) and vol.data.dtype == np.uint16
    assert vol.scale[1:] == (4.0, 4.0) and vol.unit == "nm"


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (np.array([[[-1, 2]]]), "negative"),
        (np.array([[[2**32, 1]]], dtype=np.uint64), "2**32"),
        (np.array([[[0.5, 1.0]]]), "fractional"),
        (np.zeros((2, 2, 3, 4, 5), np.uint8), "shape"),
    ],
)
def test_labels_writer_rejects_bad_ids(tmp_path: Path, labels: np.ndarray, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        write_labels_tiff(tmp_path / "bad.tif", labels)
    _assert_one_line(err, fragment)
    assert list(tmp_path.iterdir()) == []


def test_float32_image_round_trip(tmp_path: Path) -> None:
    prob = np.random.default_rng(1).random((2, 12, 10), dtype=np.float32)
    out = write_image_tiff(tmp_path / "membrane_seg.tif", prob, scale=(40, 5, 5))
    vol = read_volume(out)  # a labels-ish name, but the image marker wins
    assert vol.data.dtype == np.float32 and not vol.is_labels
    np.testing.assert_array_equal(vol.data, prob)
    assert vol.scale == (40.0, 5.0, 5.0)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == 40.0


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "seg.tif"
    target.write_bytes(b"old")
    with pytest.raises(InputError) as err:
        write_labels_tiff(target, np.ones((1, 2, 2), np.uint8))
    _assert_one_line(err, "seg.tif exists", "overwrite=True")
    assert target.read_bytes() == b"old"
    write_labels_tiff(target, np.ones((1, 2, 2), np.uint8), overwrite=True)
    assert read_volume(target).data.shape == (1, 2, 2)


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        write_image_tiff(tmp_path / "nope" / "out.tif", np.zeros((2, 2), np.uint8))
    _assert_one_line(err, "does not exist")


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "seg.tif"
    write_labels_tiff(target, np.full((1, 4, 4), 7, np.uint16))
    before = target.read_bytes()

    def broken_imwrite(file: Path, data: np.ndarray, **kwargs: object) -> None:
        Path(file).write_bytes(b"II*\x00half-written")
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(tifffile, "imwrite", broken_imwrite)
    with pytest.raises(RuntimeError, match="unplugged"):
        write_labels_tiff(target, np.zeros((1, 4, 4), np.uint16), overwrite=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.tif"]  # temp file removed


# --- TIFF reading -----------------------------------------------------------------------------


def test_isbi_real_files() -> None:
    if not ISBI.is_dir():
        pytest.skip("ISBI 2012 data not available")
    raw = read_volume(ISBI / "train-volume.tif")
    assert raw.data.shape == (30, 512, 512) and raw.data.dtype == np.uint8
    assert (raw.scale, raw.unit, raw.is_labels) == ((50.0, 4.0, 4.0), "nm", False)
    gt = read_volume(ISBI / "train-instances-3d.tif")
    assert gt.is_labels and gt.data.dtype == np.uint16


def test_isbi_crop_round_trip(tmp_path: Path) -> None:
    if not ISBI.is_dir():
        pytest.skip("ISBI 2012 data not available")
    crop = read_volume(ISBI / "train-instances-3d.tif").data[:3, 100:164, 200:264]
    out = write_labels_tiff(tmp_path / "crop.tif", crop, scale=(50, 4, 4))
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.data, crop)
    assert vol.scale == (50.0, 4.0, 4.0) and vol.is_labels


def test_2d_tiff_becomes_one_slice(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "em.tif", np.arange(12, dtype=np.uint8).reshape(3, 4))
    vol = read_volume(tmp_path / "em.tif")
    assert vol.data.shape == (1, 3, 4)
    assert (vol.scale, vol.unit, vol.is_labels) == ((1.0, 1.0, 1.0), "pixel", False)


def test_ome_tiff_physical_size(tmp_path: Path) -> None:
    meta = {
        "axes": "ZYX",
        "PhysicalSizeX": 0.008,
        "PhysicalSizeY": 0.008,
        "PhysicalSizeZ": 30,
        "PhysicalSizeZUnit": "nm",
    }
    tifffile.imwrite(
        tmp_path / "em.ome.tif", np.zeros((2, 4, 6), np.uint8), ome=True, metadata=meta
    )
    vol = read_volume(tmp_path / "em.ome.tif")
    assert (vol.scale, vol.unit, vol.name) == ((30.0, 8.0, 8.0), "nm", "em")


@pytest.mark.parametrize(
    ("name", "dtype", "expected"),
    [
        ("raw", np.uint8, False),
        ("raw", np.uint16, False),
        ("raw", np.uint32, True),
        ("raw", np.int64, True),
        ("train-labels", np.uint8, True),
        ("segGT", np.uint16, True),
        ("neuron_ids", np.uint16, True),
        ("cells_mask2", np.uint8, True),
        ("grids", np.uint16, False),
        ("labels", np.float32, False),
    ],
)
def test_labels_guess(tmp_path: Path, name: str, dtype: type, expected: bool) -> None:
    tifffile.imwrite(tmp_path / f"{name}.tif", np.ones((2, 3, 5), dtype))
    assert read_volume(tmp_path / f"{name}.tif").is_labels is expected


def test_as_labels_overrides_guess(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "raw.tif", np.ones((2, 3, 5), np.uint8))
    assert read_volume(tmp_path / "raw.tif", as_labels=True).is_labels
    tifffile.imwrite(tmp_path / "float_ids.tif", np.full((2, 3, 5), 3.0, np.float32))
    vol = read_volume(tmp_path / "float_ids.tif", as_labels=True)
    assert vol.is_labels and vol.data.dtype == np.uint16


def test_multichannel_tiff_is_rejected(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "two.tif",
        np.zeros((3, 2, 5, 5), np.uint8),
        imagej=True,
        metadata={"axes": "ZCYX"},
    )
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / "two.tif")
    _assert_one_line(err, "two.tif is 4D", "save one channel")


def test_rgb_tiff_grey_in_effect_warns(tmp_path: Path) -> None:
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([grey] * 3, axis=-1), photometric="rgb")
    with pytest.warns(UserWarning, match="greyscale"):
        vol = read_volume(tmp_path / "rgb.tif")
    np.testing.assert_array_equal(vol.data[0], grey)
    colour = np.stack([grey, grey, grey + 1], axis=-1)
    tifffile.imwrite(tmp_path / "colour.tif", colour, photometric="rgb")
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / "colour.tif")
    _assert_one_line(err, "RGB")


# --- slice folders ----------------------------------------------------------------------------


def test_png_folder_natural_sort(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in (10, 1, 2):
        (folder / f"s{z}.PNG").write_bytes(imagecodecs.png_encode(np.full((4, 5), z, np.uint8)))
    (folder / "._s1.png").write_bytes(b"macOS resource fork")
    (folder / "notes.txt").write_text("not a slice")
    vol = read_volume(folder)
    assert vol.data.shape == (3, 4, 5)
    assert vol.data[:, 0, 0].tolist() == [1, 2, 10]
    assert (vol.name, vol.unit) == ("slices", "pixel")


def test_tiff_folder_takes_scale_from_first_slice(tmp_path: Path) -> None:
    for z in range(3):
        tifffile.imwrite(
            tmp_path / f"img_{z}.tif",
            np.full((4, 4), z, np.uint16),
            imagej=True,
            resolution=(0.25, 0.25),
            metadata={"unit": "nm"},
        )
    vol = read_volume(tmp_path)
    assert vol.data[:, 0, 0].tolist() == [0, 1, 2]
    assert vol.scale == (4.0, 4.0, 4.0)  # no spacing in 2D slices: z = x
    assert is_supported_path(tmp_path)


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as err:
        read_volume(empty)
    _assert_one_line(err, "empty", "no .tif")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    tifffile.imwrite(mixed / "z1.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(mixed / "z2.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(mixed / "z10.tif", np.zeros((5, 4), np.uint8))
    with pytest.raises(InputError) as err:
        read_volume(mixed)
    _assert_one_line(err, "z10.tif is 5x4", "same size")


def test_rgb_png_folder_warns_once(tmp_path: Path) -> None:
    for z in range(3):
        rgb = np.full((3, 3, 3), z, np.uint8)
        (tmp_path / f"{z}.png").write_bytes(imagecodecs.png_encode(rgb))
    with pytest.warns(UserWarning, match="greyscale") as record:
        vol = read_volume(tmp_path)
    assert len(record) == 1 and vol.data.shape == (3, 3, 3)


# --- HDF5 and Zarr ----------------------------------------------------------------------------


def test_hdf5_single_dataset_with_ilastik_scale(tmp_path: Path) -> None:
    data = _ids((3, 6, 7), 200).astype(np.uint8)
    with h5py.File(tmp_path / "stack.h5", "w") as f:
        ds = f.create_dataset("exported/data", data=data[..., np.newaxis])  # ilastik z,y,x,c
        ds.attrs["element_size_um"] = [0.05, 0.004, 0.004, 1.0]
    vol = read_volume(tmp_path / "stack.h5")
    np.testing.assert_array_equal(vol.data, data)
    assert (vol.scale, vol.unit, vol.name, vol.is_labels) == (
        (50.0, 4.0, 4.0),
        "nm",
        "stack",
        False,
    )


def test_hdf5_several_datasets_and_inner_path(tmp_path: Path) -> None:
    path = tmp_path / "cremi.hdf"
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=np.zeros((2, 4, 4), np.uint8))
        ids = f.create_dataset("volumes/labels/neuron_ids", data=np.ones((2, 4, 4), np.uint64))
        ids.attrs["resolution"] = [40.0, 4.0, 4.0]
        f.create_dataset("meta/offset", data=np.zeros(3))
    with pytest.raises(InputError) as err:
        read_volume(path)
    _assert_one_line(err, "several", "/volumes/raw", "/volumes/labels/neuron_ids", f"{path}:/")

    vol = read_volume(f"{path}:/volumes/labels/neuron_ids")
    assert vol.is_labels and vol.data.dtype == np.uint64
    assert (vol.scale, vol.name) == ((40.0, 4.0, 4.0), "cremi-neuron_ids")
    assert read_volume(f"{path}:/volumes/labels").data.shape == (2, 4, 4)  # group with one array

    with pytest.raises(InputError) as err:
        read_volume(f"{path}:/volumes/gt")
    _assert_one_line(err, "no dataset '/volumes/gt'", "/volumes/raw")


def test_zarr_array_and_group(tmp_path: Path) -> None:
    data = _ids((2, 5, 6), 1000).astype(np.uint16)
    _zarr_array(tmp_path / "raw.zarr", data)
    vol = read_volume(tmp_path / "raw.zarr")
    np.testing.assert_array_equal(vol.data, data)
    assert not vol.is_labels and vol.unit == "pixel"

    group = zarr.open_group(str(tmp_path / "sample.zarr"), mode="w")
    _zarr_group_array(group, "volumes/raw", data)
    _zarr_group_array(group, "volumes/seg", data.astype(np.uint32))
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / "sample.zarr")
    _assert_one_line(err, "several", "/volumes/raw", "/volumes/seg")
    seg = read_volume(f"{tmp_path / 'sample.zarr'}:/volumes/seg")
    assert seg.is_labels and seg.data.dtype == np.uint32 and seg.name == "sample-seg"
    with pytest.raises(InputError) as err:
        read_volume(f"{tmp_path / 'sample.zarr'}:/volumes/nope")
    _assert_one_line(err, "no array or group")


@pytest.mark.skipif(ZARR_MAJOR < 3, reason="zarr_format= needs zarr 3")
def test_zarr_v2_format_store(tmp_path: Path) -> None:
    _zarr_array(tmp_path / "old", np.ones((2, 3, 3), np.uint8), zarr_format=2)
    assert (tmp_path / "old" / ".zarray").is_file()
    assert is_supported_path(tmp_path / "old")
    assert read_volume(tmp_path / "old").data.shape == (2, 3, 3)


def test_ome_zarr_full_resolution_and_units(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "image.ome.zarr"), mode="w")
    _zarr_group_array(group, "0", np.ones((1, 4, 8, 8), np.uint8))
    _zarr_group_array(group, "1", np.ones((1, 4, 4, 4), np.uint8))
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"
    ]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1, 0.05, 0.004, 0.004]}
                    ],
                },
                {
                    "path": "1",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1, 0.05, 0.008, 0.008]}
                    ],
                },
            ],
        }
    ]
    vol = read_volume(tmp_path / "image.ome.zarr")
    assert vol.data.shape == (4, 8, 8)
    assert (vol.scale, vol.unit, vol.name) == ((50.0, 4.0, 4.0), "nm", "image")


# --- paths and errors -------------------------------------------------------------------------


def test_parse_input_spec(tmp_path: Path) -> None:
    assert parse_input_spec("a/file.h5:/g/ds") == (Path("a/file.h5"), "/g/ds")
    assert parse_input_spec("store.zarr:labels") == (Path("store.zarr"), "/labels")
    assert parse_input_spec("stack.tif") == (Path("stack.tif"), None)
    odd = tmp_path / "scan 12:30.tif"
    tifffile.imwrite(odd, np.zeros((2, 2), np.uint8))
    assert parse_input_spec(str(odd)) == (odd, None)
    assert read_volume(str(odd)).data.shape == (1, 2, 2)


def test_read_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.tif").write_text("this is text, not a TIFF\nsecond line\n")
    cases = {
        tmp_path / "missing.tif": "does not exist",
        tmp_path / "notes.txt": "unsupported extension",
        tmp_path / "fake.tif": "not a readable TIFF",
    }
    for path, fragment in cases.items():
        with pytest.raises(InputError) as err:
            read_volume(path)
        _assert_one_line(err, path.name, fragment)
    h5 = tmp_path / "empty.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("raw", shape=(0, 4, 4), dtype=np.uint8)
    with pytest.raises(InputError) as err:
        read_volume(h5)
    _assert_one_line(err, "zero-sized")


@pytest.mark.parametrize("keep", [0.3, 0.6])
def test_truncated_tiff(tmp_path: Path, keep: float) -> None:
    full = write_image_tiff(tmp_path / "full.tif", np.ones((4, 32, 32), np.uint16))
    raw = full.read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(InputError) as err:
        read_volume(tmp_path / "cut.tif")
    _assert_one_line(err, "cut.tif", "truncated")


# --- npe2 adapters ----------------------------------------------------------------------------


def test_get_reader(tmp_path: Path) -> None:
    assert _reader.get_reader(str(tmp_path / "notes.txt")) is None
    assert _reader.get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.txt")]) is None
    seg = write_labels_tiff(tmp_path / "seg.tif", np.ones((2, 4, 4), np.uint16), scale=(50, 4, 4))
    img = write_image_tiff(tmp_path / "em.tif", np.zeros((2, 4, 4), np.uint8))
    reader = _reader.get_reader(str(seg))
    assert callable(reader)
    [(data, kwargs, kind)] = reader(str(seg))
    assert isinstance(data, np.ndarray) and data.shape == (2, 4, 4)
    assert kwargs == {
        "name": "seg",
        "scale": (50.0, 4.0, 4.0),
        "units": ("nm", "nm", "nm"),
        "axis_labels": ("z", "y", "x"),
        "metadata": {"unit": "nm"},
    }
    assert kind == "labels"
    layers = _reader.get_reader([str(seg), str(img)])([str(seg), str(img)])
    assert [kind for _, _, kind in layers] == ["labels", "image"]


def test_reader_raises_input_error(tmp_path: Path) -> None:
    (tmp_path / "fake.tif").write_text("not a tiff")
    reader = _reader.get_reader(str(tmp_path / "fake.tif"))
    with pytest.raises(InputError):
        reader(str(tmp_path / "fake.tif"))


def test_write_labels_adapter(tmp_path: Path) -> None:
    labels = np.arange(12, dtype=np.int32).reshape(3, 4)
    meta = {"scale": np.array([4.0, 4.0]), "metadata": {"unit": "nm"}, "name": "seg"}
    written = _writer.write_labels(str(tmp_path / "seg"), labels, meta)
    assert written == [str(tmp_path / "seg.tif")]
    vol = read_volume(written[0])
    np.testing.assert_array_equal(vol.data[0], labels)
    assert vol.is_labels and vol.scale[1:] == (4.0, 4.0)
    # napari already confirmed replacing the file
    assert _writer.write_labels(written[0], labels, {}) == written
