"""The proofreading engine on tiny literal stacks: edits, session, repropagation, checks, export."""

import csv
import json

import numpy as np
import pytest

from napari_emseg.io import InputError, read_volume
from napari_emseg.proofreading import (
    Diff,
    ProofreadingSession,
    delete_object,
    diff_between,
    find_suspicious,
    ids_touched,
    merge_objects,
    next_free_id,
    object_extent,
    object_table,
    repropagate,
    split_object,
    suspicion_map,
    write_object_csv,
    write_ome_zarr,
)
from napari_emseg.proofreading.repropagate import fill_plan


def applied(labels: np.ndarray, diff: Diff) -> np.ndarray:
    """The diff applied to a copy; also checks that computing it left the input alone."""
    out = labels.copy()
    diff.apply(out)
    assert diff.values.dtype == labels.dtype
    return out


# --- edits ------------------------------------------------------------------------------------

STACK = np.array(
    [
        [[1, 1, 2], [1, 1, 2], [3, 3, 2]],
        [[1, 2, 2], [1, 2, 2], [3, 3, 0]],
    ],
    np.uint16,
)


def test_merge_everywhere_and_in_one_slice_leave_the_input_untouched():
    before = STACK.copy()
    whole = merge_objects(STACK, 1, [2, 3])
    np.testing.assert_array_equal(STACK, before)
    np.testing.assert_array_equal(applied(STACK, whole), np.where(STACK > 0, 1, 0))
    one = applied(STACK, merge_objects(STACK, 2, [1], z=1))
    np.testing.assert_array_equal(one[0], STACK[0])
    np.testing.assert_array_equal(one[1], [[2, 2, 2], [2, 2, 2], [3, 3, 0]])
    assert ids_touched(STACK, whole) == {1, 2, 3}


def test_merge_edge_cases_keep_in_absorb_absent_ids_and_background():
    assert merge_objects(STACK, 1, [1, 0, 99]).size == 0  # nothing to do is an empty diff
    with pytest.raises(ValueError, match="background"):
        merge_objects(STACK, 0, [1])
    with pytest.raises(ValueError, match="outside"):
        merge_objects(STACK, 1, [2], z=5)


def test_delete_everywhere_and_in_one_slice():
    gone = applied(STACK, delete_object(STACK, 2))
    assert not (gone == 2).any() and (gone[STACK != 2] == STACK[STACK != 2]).all()
    slice_only = applied(STACK, delete_object(STACK, 3, z=0))
    assert not (slice_only[0] == 3).any() and (slice_only[1] == 3).sum() == 2
    assert delete_object(STACK, 0).size == 0  # deleting background does nothing


def test_diff_slices_inverse_and_diff_between():
    diff = delete_object(STACK, 3, z=1)
    assert diff.slices == {1}
    out = STACK.copy()
    undo = diff.inverse(out)
    diff.apply(out)
    undo.apply(out)
    np.testing.assert_array_equal(out, STACK)
    after = applied(STACK, diff)
    again = diff_between(STACK, after)
    np.testing.assert_array_equal(applied(STACK, again), after)


def test_next_free_id_of_empty_and_filled_labels():
    assert next_free_id(np.zeros((1, 2, 2), np.uint8)) == 1
    assert next_free_id(STACK) == 4


def wall_stack(depth: int = 2, size: int = 9):
    """One object over two cells split by a membrane line at x = 4 (a merge error)."""
    labels = np.full((depth, 5, size), 5, np.uint16)
    labels[:, 0] = 1  # another object along the top row
    membrane = np.zeros(labels.shape, np.float32)
    membrane[:, :, 4] = 1.0
    return labels, membrane


def test_split_with_two_seeds_follows_the_membrane_line_in_the_seeded_slice_only():
    labels, membrane = wall_stack()
    before = labels.copy()
    diff = split_object(labels, 5, [(0, 2, 1), (0, 2, 7)], membrane=membrane)
    np.testing.assert_array_equal(labels, before)
    out = applied(labels, diff)
    assert (out[0, 1:, :4] == 5).all() and (out[0, 1:, 5:] == 6).all()  # 6 = next free id
    np.testing.assert_array_equal(out[1], labels[1])  # a 2D split: other slices untouched
    assert (out[0, 0] == 1).all()  # other objects untouched


def test_split_without_membrane_cuts_at_the_neck_and_honours_new_ids():
    labels = np.zeros((1, 7, 13), np.int32)
    labels[0, :, :6] = labels[0, :, 7:] = 4  # two blobs
    labels[0, 3, 6] = 4  # joined by a one-pixel neck
    out = applied(labels, split_object(labels, 4, [(0, 3, 1), (0, 3, 11)], new_ids=[40]))
    assert (out[0, :, :6] == 4).all() and (out[0, :, 7:] == 40).all()


def test_split_of_a_cell_with_a_flat_membrane_map_cuts_between_the_seeds():
    # Labels with 0 on the membranes: inside the object the membrane map is flat, and a seed
    # on the slope by the outline must not lose the whole plateau to a seed further in.
    labels = np.zeros((1, 32, 62), np.uint8)
    labels[0, 1:31, 1:61] = 2
    membrane = (labels == 0).astype(np.float32)
    out = applied(labels, split_object(labels, 2, [(0, 16, 3), (0, 16, 60)], membrane=membrane))
    assert (out[0, :, 2:25] != 3).all() and (out[0, 1:31, 37:60] == 3).all()


@pytest.mark.parametrize(
    ("seeds", "kwargs", "message"),
    [
        ([(0, 2, 1)], {}, "at least 2 seeds"),
        ([(0, 2, 1), (0, 0, 1)], {}, "lies on id 1, not on object 5"),
        ([(0, 2, 1), (0, 2, 99)], {}, "outside the volume"),
        ([(0, 2, 1), (0, 2, 1)], {}, "same voxel"),
        ([(0, 2, 1), (0, 2, 7)], {"new_ids": [1]}, "belong to other objects"),
        ([(0, 2, 1), (0, 2, 7)], {"new_ids": [6, 7]}, "one id per seed"),
    ],
)
def test_split_refuses_bad_seeds_with_clear_messages(seeds, kwargs, message):
    labels, membrane = wall_stack()
    with pytest.raises(ValueError, match=message):
        split_object(labels, 5, seeds, membrane=membrane, **kwargs)


def test_object_extent_and_table_agree_including_huge_ids():
    labels = np.zeros((3, 4, 5), np.uint64)
    labels[0:2, 1:3, 1:4] = 2**40  # a hashed id: no lookup table up to it
    labels[2, 3, 4] = 7
    table = object_table(labels)
    assert [e.id for e in table] == [7, 2**40]
    big = object_extent(labels, 2**40)
    assert table[1] == big
    assert big.voxels == 12 and big.z_range == (0, 1)
    assert big.bbox == (0, 1, 1, 2, 3, 4) and big.centroid == (0.5, 1.5, 2.0)
    assert object_table(np.zeros((2, 2, 2), np.uint8)) == []
    with pytest.raises(ValueError, match="not in the labels"):
        object_extent(labels, 3)


# --- session ----------------------------------------------------------------------------------


def quadrants(depth: int = 3) -> np.ndarray:
    """Four 4 x 4 objects in a 10 x 10 slice, clear of the image edge."""
    labels = np.zeros((depth, 10, 10), np.uint16)
    labels[:, 1:5, 1:5], labels[:, 1:5, 5:9], labels[:, 5:9, 1:5], labels[:, 5:9, 5:9] = 1, 2, 3, 4
    return labels


def test_session_changed_objects_after_edit_merge_and_erase():
    labels = quadrants()
    session = ProofreadingSession()
    session.add_reference(1)
    assert session.changed_objects(labels) == {1, 2, 3, 4}  # no snapshot yet: all are new
    session.snapshot_reference(labels)
    assert session.changed_objects(labels) == set()
    edited = labels.copy()
    edited[1, 1, 1] = 0  # edit one object
    assert session.changed_objects(edited) == {1}
    edited[0] = 9  # another slice does not matter
    edited[1][edited[1] == 3] = 2  # merge 3 into 2
    assert session.changed_objects(edited) == {1, 2, 3}
    session.snapshot_reference(edited)
    edited[1][edited[1] == 4] = 0  # erase one
    assert session.changed_objects(edited) == {4}
    session.remove_reference(1)
    assert session.changed_objects(edited) == set()


def test_session_locks_and_frozen_slices():
    session = ProofreadingSession()
    assert session.toggle_lock(3) and not session.toggle_lock(3)
    session.lock(5)
    session.unlock(6)  # unlocking an unlocked id is fine
    assert session.locked == {5}
    session.add_reference(2)
    session.mark_edited([1, 2])
    session.mark_edited(7)
    assert session.frozen_slices() == {1, 7}
    with pytest.raises(ValueError, match="outside"):
        ProofreadingSession(reference_slices={5}).snapshot_reference(quadrants())


# --- repropagation ----------------------------------------------------------------------------


def columns(depth: int = 9):
    """Three vertical cells (ids 1, 2, 3) split by two straight membranes, in every slice."""
    image = np.full((depth, 32, 48), 200, np.uint8)
    membrane = np.zeros(image.shape, np.float32)
    for x in (16, 32):
        image[:, :, x] = 30
        membrane[:, :, x] = 1.0
    labels = np.zeros(image.shape, np.uint16)
    labels[:, :, :16], labels[:, :, 17:32], labels[:, :, 33:] = 1, 2, 3
    return image, membrane, labels


def test_fill_plan_splits_between_references_ties_to_the_lower():
    assert fill_plan([2, 6], 0, 9) == [(2, 0, 4), (6, 5, 9)]  # 4 is a tie: the lower one
    assert fill_plan([2, 7], 0, 9) == [(2, 0, 4), (7, 5, 9)]
    assert fill_plan([0], 0, 0) == []


def test_two_references_meet_in_between():
    image, membrane, labels = columns()
    labels[1][labels[1] == 3] = 7  # each reference names the right cell differently
    labels[7][labels[7] == 3] = 8
    out = repropagate(image, labels, references=[1, 7], membrane=membrane)
    right = [int(out[z, 12, 40]) for z in range(9)]
    assert right == [7, 7, 7, 7, 7, 8, 8, 8, 8]  # slice 4 is a tie: the lower reference
    np.testing.assert_array_equal(out[1], labels[1])
    np.testing.assert_array_equal(out[7], labels[7])


def test_frozen_slices_stay_and_stop_the_run_and_z_range_limits_it():
    image, membrane, labels = columns()
    labels[1][labels[1] == 3] = 7
    labels[5, 2, 2] = 9  # slice 5 was painted by hand: its dot must survive
    labels[5][labels[5] == 3] = 6
    before = labels.copy()
    out = repropagate(
        image, labels, references=[1], frozen_slices=[5], z_range=(0, 7), membrane=membrane
    )
    np.testing.assert_array_equal(labels, before)  # the input is not modified
    np.testing.assert_array_equal(out[5], labels[5])
    np.testing.assert_array_equal(out[8], labels[8])  # outside z_range
    right = [int(out[z, 12, 40]) for z in range(8)]
    assert right == [7, 7, 7, 7, 6, 6, 6, 6]  # 3 is a tie (the lower wins); 6, 7 from 5


def test_objects_only_change_their_own_voxels_and_zeros():
    image, membrane, labels = columns()
    labels[:, 0:3, 0:3] = 0  # an unlabelled corner
    labels[4][labels[4] == 1] = 3  # 3 wrongly covers the left cell in slice 4
    labels[2, :, 12:16] = 3  # and a strip of it in slice 2
    out = repropagate(image, labels, references=[0], objects=[1], membrane=membrane)
    others = (labels != 0) & (labels != 1)
    np.testing.assert_array_equal(out[others], labels[others])  # 3 keeps even wrong voxels
    assert (out[1:] == 1).sum() > 0 and set(np.unique(out)) <= {0, 1, 2, 3}


def test_an_object_merged_away_on_the_reference_is_released_elsewhere():
    image, membrane, labels = columns()
    labels[4][labels[4] == 2] = 1  # on the reference the user merges 2 into 1
    session = ProofreadingSession(reference_slices={4})
    session.snapshot_reference(columns()[2])
    changed = session.changed_objects(labels)
    assert changed == {1, 2}
    out = repropagate(image, labels, references=[4], objects=changed, membrane=membrane)
    assert not (out == 2).any()  # 2 is gone from every slice...
    assert (out[:, 12, 24] == 1).all()  # ...and 1 took its place
    np.testing.assert_array_equal(out[labels == 3], labels[labels == 3])


def test_locked_objects_never_change_nor_grow():
    image, membrane, labels = columns()
    labels[3][labels[3] == 2] = 0  # 2 is missing from slice 3...
    labels[3, :, 17:22] = 3  # ...and locked 3 wrongly holds part of its cell there
    out = repropagate(image, labels, references=[0], locked=[3], membrane=membrane)
    np.testing.assert_array_equal(out == 3, labels == 3)
    assert (out[3, :, 25] == 2).all()  # the free part of the cell is 2 again


def test_the_crop_does_not_change_the_result():
    image, membrane, labels = columns()
    labels[2][labels[2] == 2] = 1
    args = {"references": [2], "objects": [1, 2], "membrane": membrane}
    near = repropagate(image, labels, margin=8, **args)
    np.testing.assert_array_equal(near, repropagate(image, labels, margin=1000, **args))


def test_repropagate_refuses_bad_arguments():
    image, membrane, labels = columns()
    with pytest.raises(ValueError, match="no reference slice"):
        repropagate(image, labels, references=[0], z_range=(2, 4), membrane=membrane)
    with pytest.raises(ValueError, match="unknown propagation method"):
        repropagate(image, labels, references=[0], method="magic", membrane=membrane)
    with pytest.raises(ValueError, match="outside"):
        repropagate(image, labels, references=[20], membrane=membrane)


# --- consistency ------------------------------------------------------------------------------


def planted_errors() -> np.ndarray:
    labels = quadrants(depth=7)
    labels[1][quadrants()[0] == 1], labels[1][quadrants()[0] == 2] = 2, 1  # id swap in slice 1
    labels[3][labels[3] == 3] = 0  # a gap: 3 is missing from slice 3
    labels[5][labels[5] == 4] = 0  # an area jump: 4 shrinks to one pixel in slice 5
    labels[5, 7, 7] = 4
    return labels


@pytest.mark.parametrize("with_membrane", [False, True])
def test_planted_errors_come_first(with_membrane):
    labels = planted_errors()
    membrane = None
    if with_membrane:
        membrane = np.zeros(labels.shape, np.float32)
        membrane[:, 4:6, :] = membrane[:, :, 4:6] = 1.0
    found = find_suspicious(labels, membrane=membrane)
    top = {(s.obj, s.z) for s in found[:4]}
    assert top == {(1, 1), (2, 1), (3, 3), (4, 5)}
    assert all(0.0 <= s.score <= 1.0 for s in found)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    gap = next(s for s in found if (s.obj, s.z) == (3, 3))
    assert "missing" in gap.reason and gap.centroid == (6.5, 2.5)
    assert len(find_suspicious(labels, max_items=2)) == 2


def test_consistent_labels_raise_nothing_and_the_map_paints_scores():
    assert find_suspicious(quadrants(depth=5)) == []
    assert find_suspicious(np.zeros((3, 4, 4), np.uint8)) == []
    labels = planted_errors()
    found = find_suspicious(labels)
    score = suspicion_map(labels, found)
    assert score.dtype == np.float32 and score.shape == labels.shape
    swap = next(s for s in found if (s.obj, s.z) == (1, 1))
    assert (score[1][labels[1] == 1] == np.float32(swap.score)).all()
    assert score[3, 6, 1] > 0.5  # the gap is painted where the object lies above and below
    assert score[0].max() < 0.6


# --- export -----------------------------------------------------------------------------------


def test_object_csv_round_trip_and_overwrite_refusal(tmp_path):
    labels = quadrants(depth=2)
    labels[1][labels[1] == 4] = 0
    path = write_object_csv(tmp_path / "objects.csv", labels, scale=(50, 4, 4))
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    four = rows[3]
    assert four["voxels"] == "16" and float(four["volume_nm3"]) == 16 * 50 * 4 * 4
    assert (four["z_first"], four["z_last"]) == ("0", "0")
    assert [four[k] for k in ("z0", "y0", "x0", "z1", "y1", "x1")] == list("055199")
    with pytest.raises(InputError, match="exists"):
        write_object_csv(path, labels)
    write_object_csv(path, labels[:1], overwrite=True)
    assert len(path.read_text().splitlines()) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["objects.csv"]  # no temporary left


def test_ome_zarr_round_trip_metadata_and_overwrite_refusal(tmp_path):
    labels = quadrants(depth=3).astype(np.uint32)
    labels[2, 0, 0] = 70000  # above uint16: stored as uint32
    path = write_ome_zarr(tmp_path / "seg.zarr", labels, scale=(50, 4, 4), chunks=(1, 4, 4))
    volume = read_volume(path, as_labels=True)  # labels without an image: the labels
    np.testing.assert_array_equal(volume.data, labels)
    assert volume.scale == (50.0, 4.0, 4.0) and volume.data.dtype == np.uint32
    assert json.loads((path / "labels" / ".zattrs").read_text()) == {"labels": ["labels"]}
    meta = json.loads((path / "labels" / "labels" / ".zattrs").read_text())
    assert "image-label" in meta  # an NGFF image-label, in the labels group
    attrs = meta["multiscales"][0]
    assert attrs["version"] == "0.4"
    assert [(a["name"], a["unit"]) for a in attrs["axes"]] == [
        ("z", "nanometer"),
        ("y", "nanometer"),
        ("x", "nanometer"),
    ]
    level = attrs["datasets"][0]["path"]
    zarray = json.loads((path / "labels" / "labels" / level / ".zarray").read_text())
    assert zarray["dimension_separator"] == "/"
    with pytest.raises(InputError, match="exists"):
        write_ome_zarr(path, labels, scale=(50, 4, 4))
    write_ome_zarr(path, labels[:1], scale=(0.05, 0.004, 0.004), unit="um", overwrite=True)
    again = read_volume(path, as_labels=True)
    assert again.data.shape == (1, 10, 10) and again.scale == (50.0, 4.0, 4.0)
    assert [p.name for p in tmp_path.iterdir()] == ["seg.zarr"]  # no temporary left
    with pytest.raises(InputError, match="unit"):
        write_ome_zarr(tmp_path / "other.zarr", labels, scale=(1, 1, 1), unit="pixel")


def test_ome_zarr_holds_the_image_and_a_label_pyramid_that_napari_reads_whole(tmp_path):
    from napari_emseg._reader import read_layers

    labels = np.zeros((2, 600, 520), np.uint16)
    labels[:, 100:400, 50:300] = 9
    image = np.random.default_rng(0).integers(0, 255, labels.shape).astype(np.uint8)
    path = write_ome_zarr(tmp_path / "seg.ome.zarr", labels, scale=(50, 4, 4), image=image)
    np.testing.assert_array_equal(read_volume(path).data, image)  # the root is the image
    np.testing.assert_array_equal(read_volume(f"{path}:labels/labels").data, labels)
    (img, img_kw, img_kind), (lab, lab_kw, lab_kind) = read_layers(str(path))
    assert (img_kind, lab_kind) == ("image", "labels") and img_kw["multiscale"]
    assert [level.shape for level in lab] == [(2, 600, 520), (2, 300, 260)]  # y, x halve
    assert lab_kw["scale"] == (50.0, 4.0, 4.0)
    np.testing.assert_array_equal(np.asarray(lab[1]), labels[:, ::2, ::2])  # nearest: ids kept


def test_slices_the_user_corrected_are_not_listed_as_suspicious():
    from napari_emseg.proofreading import find_suspicious

    labels = np.zeros((5, 20, 20), np.uint16)
    labels[:, 2:18, 2:10], labels[:, 2:18, 10:18] = 1, 2
    labels[2, 2:18, 2:10], labels[2, 2:18, 10:18] = 2, 1  # ids swapped in slice 2
    assert {s.z for s in find_suspicious(labels)} == {2}
    assert find_suspicious(labels, trusted_slices=[2]) == []  # the user says slice 2 is right
    listed = find_suspicious(labels, trusted_slices=[1])
    assert {s.z for s in listed} == {2}  # a trusted neighbour leaves the blame on slice 2
