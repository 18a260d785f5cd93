"""Several outputs all or nothing (OutputSet)."""

import errno
import os

import pytest

from napari_emseg.io import InputError
from napari_emseg.io.outputs import OutputSet


def test_outputs_appear_together_replacing_old_ones(tmp_path):
    (tmp_path / "b.txt").write_text("old")
    with OutputSet() as outputs:
        with outputs.writing(tmp_path / "a.txt") as first:
            first.write_text("A")
        with outputs.writing(tmp_path / "b.txt") as second:
            second.write_text("B")
        assert first.parent == tmp_path and first.name.startswith(".") and first.suffix == ".txt"
        assert not (tmp_path / "a.txt").exists()  # nothing in place before the commit
        written = outputs.commit()
    assert written == [tmp_path / "a.txt", tmp_path / "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "A" and (tmp_path / "b.txt").read_text() == "B"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_an_error_before_the_commit_removes_every_temporary(tmp_path):
    (tmp_path / "b.txt").write_text("old")
    full = r"cannot write .*b\.txt \(No space left on device\)"
    with pytest.raises(InputError, match=full), OutputSet() as outputs:
        with outputs.writing(tmp_path / "a.txt") as first:
            first.write_text("A")
        with outputs.writing(tmp_path / "b.txt") as second:
            second.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device", str(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
    assert (tmp_path / "b.txt").read_text() == "old"


def test_a_failed_rename_puts_the_old_outputs_back(tmp_path, monkeypatch):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"old {name}")
    real = os.replace

    def second_new_output_fails(src, dst):
        if str(src).endswith(".staged.txt") and str(dst).endswith("b.txt"):
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    with OutputSet() as outputs:
        for name in ("a.txt", "b.txt"):
            with outputs.writing(tmp_path / name) as tmp:
                tmp.write_text(f"new {name}")
        monkeypatch.setattr(os, "replace", second_new_output_fails)
        with pytest.raises(InputError, match="nothing was replaced"):
            outputs.commit()
    assert (tmp_path / "a.txt").read_text() == "old a.txt"
    assert (tmp_path / "b.txt").read_text() == "old b.txt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_folders_are_outputs_too(tmp_path):
    old = tmp_path / "store.zarr"
    old.mkdir()
    (old / "old-chunk").write_text("x")
    with OutputSet() as outputs:
        with outputs.writing(old) as tmp:
            tmp.mkdir()
            (tmp / "new-chunk").write_text("y")
        outputs.commit()
    assert [p.name for p in old.iterdir()] == ["new-chunk"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]
