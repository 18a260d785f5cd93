"""The supervoxel-vote study on a synthetic stack: the vote, the choice, the caches, the table."""

import numpy as np
import pytest

from napari_emseg.evaluation.data import Block
from napari_emseg.evaluation.supervoxels import (
    METHODS,
    Result,
    Setting,
    choose,
    grid,
    library_default,
    predict_cached,
    propagations,
    run_setting,
    table,
)
from napari_emseg.metrics import adapted_rand_error


@pytest.fixture()
def block(tiny_stack):
    block = Block("synthetic", tiny_stack.image, tiny_stack.labels, 3, tiny_stack.scale)
    block.membrane = tiny_stack.membranes.astype(np.float32)
    return block


def outlines_off(gt: np.ndarray, ref: int) -> np.ndarray:
    """The ground truth with, outside the reference, a band of each cell given to a neighbour
    id (an outline error inside one cell) and the boundary filled as a propagator does."""
    out = gt.copy()
    for z in range(gt.shape[0]):
        if z != ref:
            band = (gt[z] > 0) & (np.arange(gt.shape[2]) % 12 == 0)
            out[z][band] = np.roll(gt[z], 3, axis=1)[band]
    return out


def test_the_vote_repairs_outlines_inside_supervoxels(block):
    damaged = outlines_off(block.gt, block.ref)
    outputs = {method: (damaged, 1.0) for method in METHODS}
    before = run_setting(block, outputs, None)
    assert before.setting is None and before.seconds == {m: 1.0 for m in METHODS}
    assert before.are["watershed"] == adapted_rand_error(damaged, block.gt) > 0
    after = run_setting(block, outputs, Setting(True, 0.5, 0.0))  # per slice: thick sections
    assert after.are["watershed"] < before.are["watershed"]
    assert after.supervoxels > 1 and after.mean == pytest.approx(after.are["watershed"])
    assert all(after.seconds[m] > 0 for m in METHODS)


def test_library_default_follows_the_maps_anisotropy(block):
    assert library_default(block.membrane).per_slice is True  # ssTEM-like: 50 nm sections
    isotropic = np.repeat(block.membrane[:1], 6, axis=0)  # a map that never changes in z
    assert library_default(isotropic).per_slice is False


def test_the_choice_is_the_lowest_mean_and_keeps_the_other_layout_and_waterz():
    def result(per_slice, threshold, are, waterz=False):
        setting = Setting(per_slice, 1.0, threshold, waterz)
        return Result(setting, {m: are for m in METHODS}, {m: 0.0 for m in METHODS})

    results = [
        Result(None, {m: 0.1 for m in METHODS}, {m: 0.0 for m in METHODS}),  # no vote: ignored
        result(False, 0.2, 0.30),
        result(False, 0.4, 0.25),
        result(True, 0.3, 0.28),
        result(True, 0.1, 0.20, waterz=True),  # waterz is never the choice
    ]
    choice = choose(results)
    assert choice.best == Setting(False, 1.0, 0.4) and choice.other_layout.per_slice
    assert choice.waterz == Setting(True, 1.0, 0.1, True)
    lines = table(results, {choice.best}).splitlines()
    assert lines[2].startswith("| no vote (propagation alone) | - | 0.100 | 0.100 | 0.100 |")
    assert "| **3D, sigma 1, threshold 0.4** (chosen) |" in lines[4]
    assert sum(s.waterz for s in grid(waterz=True)) == 8 and not any(
        s.waterz for s in grid(waterz=False)
    )


def test_caches_are_read_back_without_recomputing(block, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("recomputed")

    np.save(tmp_path / "map.npy", block.membrane * 0.5)
    monkeypatch.setattr("napari_emseg.inference.membrane.predict_membrane", refuse)
    assert predict_cached(block, tmp_path, "map") == 0.0
    np.testing.assert_array_equal(block.membrane, np.load(tmp_path / "map.npy"))
    saved = {m: block.gt + i for i, m in enumerate(METHODS)}
    saved.update({f"{m}_seconds": np.array(2.5) for m in METHODS})
    np.savez_compressed(tmp_path / "runs.npz", **saved)
    monkeypatch.setattr("napari_emseg.propagation.propagate", refuse)
    outputs = propagations(block, cache=tmp_path / "runs.npz")
    assert list(outputs) == list(METHODS) and outputs["cconvlstm"][1] == 2.5
    np.testing.assert_array_equal(outputs["cconvlstm"][0], block.gt + 1)


def test_propagations_are_cached_after_a_run(block, tmp_path, monkeypatch):
    calls = []

    def fake(image, labels, ref, **options):
        calls.append(options["method"])
        assert labels[ref].all() and not labels[ref - 1].any()  # the grown reference only
        return np.broadcast_to(labels[ref], labels.shape).copy()

    monkeypatch.setattr("napari_emseg.propagation.propagate", fake)
    cache = tmp_path / "sub" / "runs.npz"
    first = propagations(block, cache=cache)
    assert calls == list(METHODS) and cache.exists()
    again = propagations(block, cache=cache)
    assert calls == list(METHODS)  # read, not run
    np.testing.assert_array_equal(again["watershed"][0], first["watershed"][0])
