"""Held-out blocks: the loaders read the shared-data layout with the right voxel sizes and
reference slices (on a fake data folder of tiny synthetic files, and on the real data when it is
there), crops move the reference with them, and the data folder is found one way."""

import numpy as np
import pytest

from napari_emseg.evaluation import data as data_module
from napari_emseg.evaluation.data import (
    GALA_VOXEL_NM,
    GERHARD_VOXEL_NM,
    ISBI_VOXEL_NM,
    Block,
    blocks,
    data_dir,
    find_data_dir,
    gala_block,
    gerhard_stack,
    held_out_blocks,
    isbi_block,
    training_blocks,
)


def test_isbi_blocks_are_slices_of_the_stack_with_3d_ids_and_membrane_labels(fake_data):
    root, isbi, _, _ = fake_data
    held = isbi_block(20, 30, data=root)
    assert held.name == "ISBI 2012 slices 20-29"
    assert held.voxel_size == ISBI_VOXEL_NM == (50.0, 4.0, 4.0) and held.pixel_nm == 4.0
    assert (held.first, held.ref) == (20, 5)  # slice 25 of the stack
    np.testing.assert_array_equal(held.image, isbi.image[20:30])
    assert held.gt.dtype == np.uint32
    np.testing.assert_array_equal(held.gt, isbi.labels[20:30])
    np.testing.assert_array_equal(held.membrane_mask, isbi.membranes[20:30])
    assert set(np.unique(held.membrane_labels())) == {0, 255}
    train = isbi_block(0, 20, data=root)
    assert (train.first, train.ref, train.shape[0]) == (0, 10, 20)
    assert isbi_block(0, 30, ref=15, data=root).ref == 15
    assert isbi_block(4, 10, data=root).ref == 3  # elsewhere: the middle slice


def test_gala_blocks_are_isotropic_with_reference_25(fake_data):
    root, _, gala, _ = fake_data
    test = gala_block("test", data=root)
    assert test.name == "gala FIB-SEM test block" and test.voxel_size == GALA_VOXEL_NM
    assert test.ref == 25 and test.membrane_mask is None
    np.testing.assert_array_equal(test.gt, gala["test"].labels)
    assert gala_block("train", name="named", ref=3, data=root).name == "named"


def test_gerhard_has_membrane_masks_and_no_ids(fake_data):
    root, _, _, gerhard = fake_data
    stack = gerhard_stack(data=root)
    assert stack.gt is None and stack.voxel_size == GERHARD_VOXEL_NM
    assert stack.membrane_mask.dtype == bool
    np.testing.assert_array_equal(stack.membrane_mask, gerhard.membranes)
    with pytest.raises(ValueError, match="no ground-truth ids"):
        stack.reference()


def test_splits_pair_gala_and_isbi_and_never_mix_held_out_slices(fake_data):
    root = fake_data[0]
    held, train = held_out_blocks(data=root), training_blocks(data=root)
    assert [b.name for b in held] == ["gala FIB-SEM test block", "ISBI 2012 slices 20-29"]
    assert [b.name for b in train] == ["gala FIB-SEM train block", "ISBI 2012 slices 0-19"]
    assert [b.name for b in blocks("train", data=root)] == [b.name for b in train]
    with pytest.raises(ValueError, match="split"):
        blocks("validation", data=root)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda root: isbi_block(25, 35, data=root), "slices 0-29"),
        (lambda root: isbi_block(20, 30, ref=10, data=root), "outside"),
        (lambda root: gala_block("val", data=root), "choose from"),
    ],
)
def test_bad_requests_say_what_is_wrong(fake_data, call, needle):
    with pytest.raises(ValueError, match=needle):
        call(fake_data[0])


def test_crop_moves_the_reference_and_keeps_every_array_aligned(make_stack):
    stack = make_stack((10, 32, 32), seed=2)
    block = Block("b", stack.image, stack.labels, 6, (50.0, 4.0, 4.0), first=20)
    block.membrane = stack.membranes.astype(np.float32)
    block.membrane_mask = stack.membranes
    small = block.crop(np.s_[4:8, 2:12, 5:15])
    assert (small.ref, small.first, small.shape) == (2, 24, (4, 10, 10))
    for name in ("image", "gt", "membrane", "membrane_mask"):
        np.testing.assert_array_equal(getattr(small, name), getattr(block, name)[4:8, 2:12, 5:15])
    assert block.shape == (10, 32, 32)  # the original is untouched
    with pytest.raises(ValueError, match="leaves out its reference"):
        block.crop(np.s_[0:3])
    assert block.crop(np.s_[0:3], ref=1).ref == 1


def test_centred_crop_keeps_the_reference_inside_even_at_the_edge():
    block = Block("b", np.zeros((50, 100, 200), np.uint8), None, 45, (10.0,) * 3)
    small = block.centred_crop(16, 64)
    assert small.shape == (16, 64, 64) and small.first == 34 and small.ref == 11
    assert small.first + small.ref == 45


def test_the_data_folder_is_found_from_the_environment_first(tmp_path, monkeypatch):
    monkeypatch.setenv("EMSEG_SHARED_DATA", str(tmp_path))
    assert find_data_dir() == tmp_path == data_dir()
    assert data_dir(tmp_path / ".." / tmp_path.name).resolve() == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="no shared data folder"):
        data_dir(tmp_path / "missing")


def test_no_data_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EMSEG_SHARED_DATA", str(tmp_path / "missing"))
    monkeypatch.setattr(data_module, "_package_checkout", lambda: tmp_path / "checkout")
    monkeypatch.setattr(data_module, "FALLBACK_DATA", tmp_path / "nowhere")
    assert find_data_dir() is None
    with pytest.raises(FileNotFoundError, match="EMSEG_SHARED_DATA"):
        data_dir()


def test_real_held_out_blocks_have_the_documented_shapes(shared_data):
    gala, isbi = held_out_blocks(data=shared_data)
    assert gala.shape == (50, 100, 200) and len(np.unique(gala.gt)) - 1 == 132
    assert isbi.shape == (10, 512, 512) and isbi.first + isbi.ref == 25
    # The official labels and the 3D ids agree on membranes (SOURCE.md: 99.97 %).
    assert np.mean(isbi.membrane_mask == (isbi.gt == 0)) > 0.99
