"""Measured commands, tiled inputs, waterz's affinities and the legacy GPU loop (on the CPU)."""

import os
import sys

import numpy as np
import pytest
import torch

from napari_emseg.evaluation.gpu import legacy_predict
from napari_emseg.evaluation.processes import run_measured, tiled, to_zarr
from napari_emseg.evaluation.proofreading_speed import benchmark_repropagate_one_object
from napari_emseg.evaluation.waterz import boundary_affinities, quiet_stdout, waterz_available


def test_a_measured_command_reports_time_memory_and_its_last_line():
    grow = "import numpy; a = numpy.ones(50_000_000, numpy.uint8); print('first'); print('last')"
    run = run_measured([sys.executable, "-c", grow], threads=3)
    assert run["stdout"] == "last" and run["seconds"] > 0
    assert run["peak_rss_mb"] > 45  # the 50 MB array, exact from ru_maxrss
    env = run_measured([sys.executable, "-c", "import os; print(os.environ['OMP_NUM_THREADS'])"])
    assert env["stdout"] == "1"


def test_a_failing_command_raises_with_its_error():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        run_measured([sys.executable, "-c", "1 / 0"])


def test_tiled_volumes_keep_label_ids_apart_between_tiles():
    ids = np.array([[[0, 1], [2, 2]]], np.uint32)
    big = tiled(ids, (2, 3), labels=True)
    assert big.shape == (1, 4, 6)
    tiles = [big[:, y : y + 2, x : x + 2] for y in (0, 2) for x in (0, 2, 4)]
    assert all(((t == 0) == (ids == 0)).all() for t in tiles)  # boundaries stay boundaries
    assert len({int(t.max()) for t in tiles}) == 6  # every tile its own ids
    np.testing.assert_array_equal(tiled(ids, (2, 3))[:, 2:, 4:], ids)  # images just repeat


def test_zarr_input_carries_its_voxel_size(tmp_path):
    from napari_emseg.io import read_volume

    image = np.arange(2 * 20 * 30, dtype=np.uint8).reshape(2, 20, 30)
    to_zarr(image, tmp_path / "image.zarr", (50.0, 4.0, 4.0))
    volume = read_volume(tmp_path / "image.zarr")
    np.testing.assert_array_equal(np.asarray(volume.data), image)
    assert tuple(volume.scale) == (50.0, 4.0, 4.0)


def test_affinities_link_each_voxel_to_its_predecessor():
    boundary = np.zeros((2, 3, 4), np.float32)
    boundary[:, :, 2] = 1.0  # a wall across x
    affs = boundary_affinities(boundary)
    assert affs.shape == (3, 2, 3, 4) and affs.flags["C_CONTIGUOUS"]
    assert (affs[:, 0, 0, 0] == 0).all()  # the first voxel has no predecessor
    assert affs[2, 0, 0, 1] == 1 and affs[2, 0, 0, 2] == 0 and affs[2, 0, 0, 3] == 0
    assert affs[0, 1, 0, 0] == 1 and affs[0, 1, 0, 2] == 0  # z links, cut by the wall
    assert not boundary_affinities(boundary, axes=(1, 2))[0].any()  # per slice: no z links


def test_quiet_stdout_silences_the_file_descriptor(capfd):
    with quiet_stdout():
        os.write(1, b"from C++\n")
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "after\n"


@pytest.mark.skipif(not waterz_available(), reason="waterz is the optional `eval` extra")
def test_waterz_supervoxels_are_a_fresh_array():
    from napari_emseg.evaluation.waterz import waterz_supervoxels

    membrane = np.zeros((2, 16, 16), np.float32)
    membrane[:, :, 8] = 1.0
    first = waterz_supervoxels(membrane, 0.5, per_slice=True)
    assert first.shape == membrane.shape and len(np.unique(first[:, :, :8])) <= 2


@pytest.mark.slow
def test_the_legacy_gpu_loop_blends_tiles_like_the_tiled_prediction():
    from napari_emseg.inference.tiled import predict_tiled
    from napari_emseg.models.fusionnet import FusionNet

    torch.manual_seed(0)
    net = FusionNet(width=0.0625, depth=2).eval()
    image = np.random.default_rng(0).random((2, 48, 80), dtype=np.float32)
    legacy = legacy_predict(net, image, device="cpu", tile=64, overlap=32, batch_size=3)
    halo = 16
    cropped = legacy[:, halo : halo + 48, halo : halo + 80]
    plain = predict_tiled(net, image, device=torch.device("cpu"), tile=64, overlap=32)
    np.testing.assert_allclose(cropped, plain, atol=0.02)  # bf16 against the default


def test_repropagating_one_object_on_the_sample_is_fast():
    assert 0 < benchmark_repropagate_one_object((6, 64, 64), repeats=1) < 5


def test_the_modes_table_shows_layouts_and_agreement():
    from napari_emseg.evaluation.processes import modes_table

    memory = {"seconds": 3.5, "peak_rss_mb": 400.0, "tree_peak_rss_mb": 900.0}
    runs = {
        "single": {**memory, "objects": 80, "are_vs_gt": 0.12},
        "blockwise": {**memory, "block": [15, 256, 256], "halo": [7, 32, 32], "blocks": 4},
    }
    agreement = {"blockwise_vs_single": 0.004, "distributed_equals_blockwise": False}
    text = modes_table([{"case": "isbi", "runs": runs, "agreement": agreement}])
    lines = text.splitlines()
    assert lines[2] == "| isbi | single |  | 3.5 | 400.0 | 900.0 |  | 80 | 0.12 |  |"
    assert lines[3].startswith("| isbi | blockwise | [15, 256, 256] / [7, 32, 32] | 3.5 |")
    assert lines[3].endswith("| 4 |  |  | 0.004 |")
    assert lines[-1] == "Distributed labels identical to blockwise: isbi: False"
