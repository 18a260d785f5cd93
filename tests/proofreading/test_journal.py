import numpy as np
import pytest

from napari_emseg.proofreading.journal import SessionJournal, autosave_root, pending_journals


def test_records_only_changes_and_rebuilds_every_state(tmp_path):
    labels = np.zeros((3, 8, 8), np.uint32)
    journal = SessionJournal.create(tmp_path, labels, name="labels", scale=(50, 4, 4))
    assert not journal.record(labels)  # nothing changed, nothing written
    states = []
    for value in (5, 6, 0):
        labels[1, 2:4, 2:4] = value
        labels[2, 0, value % 8] = value + 1
        assert journal.record(labels)
        states.append(labels.copy())
    reopened = SessionJournal.open(journal.folder)
    np.testing.assert_array_equal(reopened.final_state(), labels)
    replayed = reopened.base()
    flat = replayed.reshape(-1)
    for state, (index, old, new) in zip(states, reopened.diffs(), strict=True):
        assert index.size <= 5  # diffs hold the changed voxels only
        np.testing.assert_array_equal(flat[index], old)
        flat[index] = new
        np.testing.assert_array_equal(replayed, state)
    assert reopened.meta["scale"] == [50.0, 4.0, 4.0]


def test_pending_journals_are_found_newest_first_and_discarded(tmp_path):
    first = SessionJournal.create(tmp_path, np.zeros((1, 2, 2), np.uint16), name="a")
    second = SessionJournal.create(tmp_path, np.ones((1, 2, 2), np.uint16), name="b")
    (tmp_path / "broken").mkdir()  # a journal cut off mid-creation is skipped
    names = {journal.meta["name"] for journal in pending_journals(tmp_path)}
    assert names == {"a", "b"}
    first.discard()
    second.discard()
    assert pending_journals(tmp_path) == []


def test_shape_changes_are_refused(tmp_path):
    journal = SessionJournal.create(tmp_path, np.zeros((1, 2, 2), np.uint8), name="a")
    with pytest.raises(ValueError, match="journal of shape"):
        journal.record(np.zeros((1, 3, 3), np.uint8))


def test_autosave_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EMSEG_AUTOSAVE_DIR", str(tmp_path))
    assert autosave_root() == tmp_path
