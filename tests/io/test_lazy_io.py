"""Lazy reading: Zarr and HDF5 stay on disk (dask / DiskArray), uncompressed TIFF is mapped."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from napari_emseg import _reader
from napari_emseg.io import open_volume, read_volume
from napari_emseg.io.lazy import DiskArray, is_lazy, read_region
from napari_emseg.segmentation.normalization import intensity_range, sample_step

STACK = (np.arange(3 * 20 * 24) % 251).astype(np.uint16).reshape(3, 20, 24)


def _is_dask(data) -> bool:
    import dask.array as da

    return isinstance(data, da.Array)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "tiff": tmp_path / "plain.tif",
        "big_endian": tmp_path / "fiji.tif",
        "compressed": tmp_path / "packed.tif",
        "h5": tmp_path / "stack.h5",
        "zarr": tmp_path / "image.ome.zarr",
    }
    tifffile.imwrite(paths["tiff"], STACK, imagej=True, metadata={"axes": "ZYX"})
    zyx = {"axes": "ZYX"}
    tifffile.imwrite(paths["big_endian"], STACK, byteorder=">", imagej=True, metadata=zyx)
    tifffile.imwrite(paths["compressed"], STACK, compression="zlib", metadata=zyx)
    with h5py.File(paths["h5"], "w") as handle:
        handle.create_dataset("raw", data=STACK[None], chunks=(1, 1, 10, 12))
    group = zarr.open_group(str(paths["zarr"]), mode="w")
    group.create_array("0", shape=(1, *STACK.shape), chunks=(1, 1, 8, 8), dtype=STACK.dtype)
    group["0"][...] = STACK[None]
    group.attrs["multiscales"] = [
        {
            "axes": [{"name": "t", "type": "time"}]
            + [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1, 50, 4, 4]}],
                }
            ],
        }
    ]
    return paths


@pytest.mark.parametrize(
    ("kind", "lazy_type"),
    [
        ("tiff", np.memmap),
        ("big_endian", "dask"),  # bytes are swapped chunk by chunk as they are read
        ("compressed", np.ndarray),  # cannot be mapped: read as before
        ("h5", "dask"),
        ("zarr", "dask"),
    ],
)
def test_lazy_reads_keep_data_on_disk_and_match_eager_reads(files, kind, lazy_type):
    eager = read_volume(files[kind])
    lazy = read_volume(files[kind], lazy=True)
    if lazy_type == "dask":
        assert _is_dask(lazy.data)
    else:
        assert type(lazy.data) is lazy_type
    assert lazy.data.shape == eager.data.shape == STACK.shape
    assert lazy.data.dtype == eager.data.dtype and lazy.data.dtype.isnative
    np.testing.assert_array_equal(np.asarray(lazy.data), eager.data)
    assert (lazy.scale, lazy.unit, lazy.is_labels) == (eager.scale, eager.unit, eager.is_labels)


@pytest.mark.parametrize("kind", ["tiff", "big_endian", "h5", "zarr"])
def test_open_volume_reads_only_the_region_asked_for(files, kind):
    volume = open_volume(files[kind])
    assert is_lazy(volume.data)
    region = (slice(1, 3), slice(4, 15), slice(0, 24, 5))
    np.testing.assert_array_equal(read_region(volume.data, region), STACK[region])
    np.testing.assert_array_equal(volume.data[2, 7], STACK[2, 7])


def test_ome_zarr_scale_is_kept_when_read_lazily(files):
    assert read_volume(files["zarr"], lazy=True).scale == (50.0, 4.0, 4.0)


def test_disk_array_indexes_like_numpy():
    source = np.arange(2 * 1 * 5 * 6).reshape(2, 1, 5, 6)  # a singleton axis to drop
    disk = DiskArray(source, (2, 5, 6), np.int64)
    view = source[:, 0]
    for key in [(1,), (-1, 2), (..., 3), (slice(None), slice(1, 4), slice(None, None, 2)), 0]:
        np.testing.assert_array_equal(disk[key], view[key])
    assert disk[0, 5:5].shape == (0, 6)
    with pytest.raises(IndexError):
        disk[2]
    with pytest.raises(ValueError, match="singletons"):
        DiskArray(source, (2, 6, 5), np.int64)


def test_napari_reader_passes_big_inputs_lazily(files, monkeypatch):
    small = _reader.read_layers(str(files["zarr"]))[0][0]
    assert type(small) is np.ndarray  # small inputs are loaded: labels can be painted
    monkeypatch.setattr("napari_emseg.io.lazy.LAZY_ABOVE_BYTES", 0)
    assert _is_dask(_reader.read_layers(str(files["zarr"]))[0][0])
    assert isinstance(_reader.read_layers(str(files["tiff"]))[0][0], np.memmap)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_intensity_range_matches_numpy_percentile_of_the_sample(rng, dtype):
    info = np.iinfo(dtype)
    image = rng.integers(info.min, info.max, (40, 150, 120), endpoint=True).astype(dtype)
    step = sample_step(image.shape)
    expected = np.percentile(image[::step, ::step, ::step], [0.5, 99.5])
    assert intensity_range(image) == tuple(float(v) for v in expected)
    assert intensity_range(DiskArray(image, image.shape, dtype)) == intensity_range(image)
