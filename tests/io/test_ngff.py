"""The NGFF writer, checked by independent readers: ome-zarr-models (the schema) and ome-zarr-py."""

import errno
import json

import numpy as np
import pytest
import zarr

from napari_emseg.io import InputError, read_volume
from napari_emseg.io.ngff import add_levels, labels_from_image_store, write_ngff
from napari_emseg.io.ome_zarr import create_image, multiscales

models = pytest.importorskip("ome_zarr_models.v04")


def _ome_zarr_nodes(path):
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    return list(reader.Reader(parse_url(str(path)))())


def _stack(shape=(2, 600, 520)):
    labels = np.zeros(shape, np.uint32)
    labels[:, 100:400, 50:300] = 9
    labels[1, 0, 0] = 70000  # above uint16: stored as uint32
    image = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    return labels, image


def test_image_and_label_pyramids_are_valid_ngff_that_other_readers_open(tmp_path):
    labels, image = _stack()
    out = write_ngff(tmp_path / "seg.zarr", labels=labels, image=image, scale=(50, 4, 4))
    root = zarr.open_group(str(out), mode="r")
    models.Image.from_zarr(root)  # raises on anything the schema refuses
    label = models.ImageLabel.from_zarr(root["labels"]["labels"])
    assert label.attributes.image_label.source.image == "../../"
    assert [d.path for d in label.attributes.multiscales[0].datasets] == ["0", "1"]
    nodes = _ome_zarr_nodes(out)
    image_node, label_node = nodes[0], nodes[-1]
    assert [level.shape for level in image_node.data] == [(2, 600, 520), (2, 300, 260)]
    assert [level.shape for level in label_node.data] == [(2, 600, 520), (2, 300, 260)]
    np.testing.assert_array_equal(np.asarray(label_node.data[0]), labels)
    np.testing.assert_array_equal(np.asarray(label_node.data[1]), labels[:, ::2, ::2])  # ids kept
    block_mean = image[:, :2, :2].reshape(2, -1).mean(axis=1)
    np.testing.assert_array_equal(np.asarray(image_node.data[1])[:, 0, 0], np.rint(block_mean))
    assert label_node.data[0].dtype == np.uint32
    # Where the levels' pixels lie: labels keep voxel 0 of each block, images average the block.
    transforms = json.loads((out / ".zattrs").read_text())["multiscales"][0]["datasets"][1]
    assert transforms["coordinateTransformations"][1]["translation"] == [0.0, 2.0, 2.0]
    label_meta = json.loads((out / "labels" / "labels" / ".zattrs").read_text())
    assert len(label_meta["multiscales"][0]["datasets"][1]["coordinateTransformations"]) == 1
    assert read_volume(f"{out}:labels/labels").scale == (50.0, 4.0, 4.0)


def test_labels_alone_and_an_unknown_voxel_size(tmp_path):
    labels = np.zeros((3, 40, 40), np.uint16)
    labels[:, 5:20, 5:20] = 4
    out = write_ngff(tmp_path / "seg.zarr", labels=labels, unit="pixel")
    root = zarr.open_group(str(out), mode="r")
    models.Labels.from_zarr(root["labels"])
    label = models.ImageLabel.from_zarr(root["labels"]["labels"])
    assert all(axis.unit is None for axis in label.attributes.multiscales[0].axes)
    assert label.attributes.image_label.source is None
    np.testing.assert_array_equal(read_volume(out, as_labels=True).data, labels)
    assert "Label" in {type(s).__name__ for n in _ome_zarr_nodes(out / "labels") for s in n.specs}


def test_a_lazy_source_is_read_one_slab_at_a_time(tmp_path):
    data = np.random.default_rng(1).random((6, 300, 300)).astype(np.float32)

    class Recording:
        shape, dtype = data.shape, data.dtype
        reads: list = []

        def __getitem__(self, key):
            self.reads.append(key)
            return data[key]

    source = Recording()
    out = write_ngff(
        tmp_path / "map.zarr", image=source, image_name="membrane", chunks=(2, 128, 128)
    )
    assert source.reads == [slice(0, 2), slice(2, 4), slice(4, 6)]
    models.Image.from_zarr(zarr.open_group(str(out), mode="r"))
    np.testing.assert_array_equal(read_volume(out).data, data)


def test_the_blockwise_store_becomes_the_same_layout(tmp_path):
    labels, image = _stack((4, 600, 520))
    scale = (40.0, 8.0, 8.0)
    engine = tmp_path / ".engine.zarr"
    create_image(
        engine,
        shape=labels.shape,
        dtype=labels.dtype,
        chunks=(2, 128, 128),
        attrs=multiscales("labels", scale, "nanometer"),
    )[:] = labels
    out = labels_from_image_store(engine, tmp_path / "seg.zarr", image=image)
    assert not engine.exists()  # moved, not copied
    root = zarr.open_group(str(out), mode="r")
    models.Image.from_zarr(root)
    models.ImageLabel.from_zarr(root["labels"]["labels"])
    np.testing.assert_array_equal(read_volume(f"{out}:labels/labels").data, labels)
    assert root["labels"]["labels"]["1"].shape == (4, 300, 260)
    assert read_volume(out).scale == scale

    membrane = tmp_path / "membrane.zarr"
    create_image(
        membrane,
        shape=labels.shape,
        dtype=np.float32,
        chunks=(2, 128, 128),
        attrs=multiscales("x", scale, "nanometer"),
    )[:] = 0.5
    add_levels(membrane, name="membrane")
    image_model = models.Image.from_zarr(zarr.open_group(str(membrane), mode="r"))
    assert image_model.attributes.multiscales[0].name == "membrane"
    assert len(image_model.attributes.multiscales[0].datasets) == 2


def test_refusals_and_a_full_disk_leave_nothing(tmp_path, monkeypatch):
    labels, _ = _stack((2, 64, 64))
    out = write_ngff(tmp_path / "seg.zarr", labels=labels)
    with pytest.raises(InputError, match="exists"):
        write_ngff(out, labels=labels)
    with pytest.raises(InputError, match="differ"):
        write_ngff(tmp_path / "x.zarr", labels=labels, image=np.zeros((2, 8, 8)))
    with pytest.raises(InputError, match="nothing to write"):
        write_ngff(tmp_path / "x.zarr")
    from napari_emseg.io import ngff

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ngff, "halve", full)
    big = np.zeros((2, 600, 600), np.uint16)
    with pytest.raises(InputError, match="No space left on device"):
        write_ngff(out, labels=big, overwrite=True)
    np.testing.assert_array_equal(read_volume(out, as_labels=True).data, labels)  # old store kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.zarr"]
