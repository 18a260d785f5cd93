"""Blockwise segmentation: block layout, stitching, memory bound, dask.distributed and the CLI."""

import json
import sys
import tracemalloc

import numpy as np
import pytest
import zarr

from napari_emseg import pipeline
from napari_emseg.blockwise.grid import BlockGrid, intersection
from napari_emseg.blockwise.run import segment_blockwise
from napari_emseg.blockwise.stitching import final_ids, match_overlap
from napari_emseg.cli import main
from napari_emseg.io import open_volume, read_volume
from napari_emseg.metrics import adapted_rand_error


def _read_labels(path) -> np.ndarray:
    return np.asarray(read_volume(path, as_labels=True).data)


def _zarr_volume(path, data: np.ndarray, chunks=(4, 64, 64)) -> None:
    array = zarr.open_array(str(path), mode="w", shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data


def _relabel_per_block(image, **_):
    """A stand-in for pipeline.segment: ground-truth ids, renumbered at random in each block.

    The image passed in *is* the ground truth; any two blocks then agree on every overlap voxel
    up to their private numbering, so stitching must recover the ground truth exactly.
    """
    ids, inverse = np.unique(image, return_inverse=True)
    shuffled = np.random.default_rng(int(image.sum()) % 1000).permutation(ids.size) + 1
    if ids[0] == 0:
        shuffled[0] = 0  # background stays 0
    labels = shuffled[inverse.reshape(image.shape)].astype(np.uint32)
    return pipeline.Segmentation(np.zeros(image.shape, np.float32), labels, image.shape[0] // 2)


# -- block layout -------------------------------------------------------------------------------


def test_cores_tile_the_volume_once_and_outer_regions_hold_their_core():
    grid = BlockGrid((10, 50, 37), (4, 16, 16), (1, 5, 3))
    covered = np.zeros(grid.shape, int)
    for block in grid.blocks():
        covered[block.core] += 1
        assert intersection(block.core, block.outer) == block.core
    assert (covered == 1).all()
    assert grid.grid_shape == (3, 4, 3)  # the last block on each axis is shorter


def test_neighbour_pairs_share_faces_and_their_outer_regions_overlap():
    grid = BlockGrid((8, 32, 32), (4, 16, 16), (1, 2, 2))
    pairs = grid.neighbour_pairs()
    assert len(pairs) == 12  # the edges of a 2x2x2 cube
    blocks = grid.blocks()
    for a, b in pairs:
        region = intersection(blocks[a].outer, blocks[b].outer)
        assert all(s.stop > s.start for s in region)
    assert BlockGrid((8, 32, 32), (4, 16, 16), (0, 0, 0)).neighbour_pairs() == []


def test_block_layout_rejects_a_halo_over_half_the_block():
    with pytest.raises(ValueError, match="more than half"):
        BlockGrid((8, 64, 64), (4, 32, 32), (1, 17, 4))
    with pytest.raises(ValueError, match="three integers"):
        BlockGrid((8, 64, 64), (4, 32), (1, 1, 1))


def test_block_shape_is_clipped_to_the_volume():
    grid = BlockGrid((5, 20, 20), (32, 512, 512), (4, 32, 32))
    assert grid.block_shape == (5, 20, 20) and len(grid) == 1
    assert grid.blocks()[0].outer == grid.blocks()[0].core


# -- stitching rules ----------------------------------------------------------------------------


def test_match_overlap_needs_a_majority_of_both_ids():
    a = np.array([1, 1, 1, 1, 2, 2, 0, 0])
    b = np.array([7, 7, 8, 8, 9, 9, 9, 9])  # 1 is split in two halves; 2 is a third of 9
    assert match_overlap(a, b).tolist() == []
    assert match_overlap(a, b, threshold=0.3).tolist() == [[1, 7], [1, 8], [2, 9]]


def test_match_overlap_ignores_background_and_small_overlaps():
    a = np.array([0, 0, 3, 3])
    b = np.array([5, 5, 5, 6])
    assert match_overlap(a, b).tolist() == []  # 3 and 5 share 1 voxel: half of 3, a third of 5
    assert match_overlap(a, np.array([0, 0, 6, 6]), min_voxels=3).tolist() == []


def test_final_ids_merge_chains_and_drop_halo_only_ids():
    # blocks A (1-2), B (3-4), C (5): A1~B3 and B3~C5 chain into one object; 4 only in a halo
    table = final_ids(5, np.array([[1, 3], [3, 5]]), np.array([1, 2, 3, 5]))
    assert table.tolist() == [0, 1, 2, 1, 0, 1]


# -- blockwise engine ---------------------------------------------------------------------------


@pytest.mark.slow
def test_one_block_is_the_ordinary_pipeline(tiny_stack, tmp_path):
    single = pipeline.segment(tiny_stack.image, model="ridge", propagation="watershed")
    result = segment_blockwise(
        tiny_stack.image,
        tmp_path / "seg.zarr",
        block_shape=(64, 512, 512),
        model="ridge",
        propagation="watershed",
        membrane_output=tmp_path / "membrane.zarr",
    )
    assert result.blocks == 1 and result.matches == 0
    np.testing.assert_array_equal(_read_labels(result.labels) > 0, single.labels > 0)
    assert adapted_rand_error(_read_labels(result.labels), single.labels) == 0.0
    membrane = read_volume(tmp_path / "membrane.zarr").data
    np.testing.assert_array_equal(membrane, single.membrane)


@pytest.mark.slow
def test_stitching_recovers_ids_that_every_block_numbered_differently(
    tiny_stack, tmp_path, monkeypatch
):
    monkeypatch.setattr(pipeline, "segment", _relabel_per_block)
    gt = tiny_stack.labels  # (6, 96, 96); blocks of 4x40x40 leave short blocks at the ends
    result = segment_blockwise(
        gt.astype(np.uint16),
        tmp_path / "seg.zarr",
        block_shape=(4, 40, 40),
        halo=(1, 6, 6),
        start="watershed",
        chain=False,  # every block on its own: only the stitching links them
    )
    out = _read_labels(result.labels)
    assert result.blocks == 2 * 3 * 3
    assert adapted_rand_error(out, gt) == 0.0 and adapted_rand_error(gt, out) == 0.0
    assert np.unique(out[gt > 0]).size == np.unique(gt[gt > 0]).size  # one id per object


def test_blockwise_agrees_with_the_single_block_result(tmp_path):
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((8, 128, 128), seed=5)
    single = pipeline.segment(
        stack.image, model="ridge", propagation="watershed", voxel_size=stack.scale
    ).labels
    result = segment_blockwise(
        stack.image,
        tmp_path / "seg.zarr",
        block_shape=(4, 64, 64),
        halo=(2, 16, 16),
        model="ridge",
        scale=stack.scale,
        unit="nm",
    )
    blocks = _read_labels(result.labels)
    assert result.blocks == 8 and result.matches > 0
    # Blocks start from their own middle slices, so the results differ a little; without the
    # stitching every object crossing a block face would be split (ARE above 0.4 here).
    assert adapted_rand_error(blocks, single) < 0.15
    assert (
        adapted_rand_error(blocks, stack.labels) < adapted_rand_error(single, stack.labels) + 0.05
    )


def test_blockwise_reads_lazily_and_writes_ome_zarr_with_the_voxel_size(tiny_stack, tmp_path):
    path = tmp_path / "image.h5"
    import h5py

    with h5py.File(path, "w") as handle:
        data = handle.create_dataset("raw", data=tiny_stack.image, chunks=(2, 48, 48))
        data.attrs["resolution"] = [50.0, 4.0, 4.0]
    result = segment_blockwise(
        path, tmp_path / "seg.zarr", block_shape=(3, 48, 48), halo=(1, 8, 8), model="ridge",
        propagation="watershed",
    )  # fmt: skip
    written = read_volume(result.labels)
    assert written.is_labels and written.scale == (50.0, 4.0, 4.0)
    assert written.data.dtype == np.uint16 and written.data.max() == result.objects


@pytest.mark.slow
def test_blockwise_refuses_existing_outputs_and_leaves_no_partial_folders(tiny_stack, tmp_path):
    from napari_emseg._progress import Cancelled
    from napari_emseg.io import InputError

    (tmp_path / "seg.zarr").mkdir()
    with pytest.raises(InputError, match="exists"):
        segment_blockwise(tiny_stack.image, tmp_path / "seg.zarr", model="ridge")
    calls = []

    def cancel_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        segment_blockwise(
            tiny_stack.image,
            tmp_path / "other.zarr",
            block_shape=(2, 96, 96),
            halo=(1, 0, 0),
            model="ridge",
            cancel=cancel_after_two,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.zarr"]


@pytest.mark.slow
def test_peak_memory_is_set_by_the_block_not_the_volume(tmp_path, monkeypatch):
    """Segment an on-disk volume larger than a memory cap derived from the block size alone.

    tracemalloc counts every numpy buffer and Python object allocated while it runs, so its
    peak covers reading blocks, the scratch store, matching overlaps, relabelling and the
    percentile sample. Each block is segmented by a stand-in that allocates what the real
    pipeline allocates per block (a float32 membrane map and uint32 labels of the block with its
    halo), because the real pipeline only ever sees one block and the test must stay fast; what
    could grow with the volume is the engine around it, and that is what is measured. A warm-up
    run first imports everything (imported modules would count as allocations).
    """

    def per_block(image, **_):
        membrane = image.astype(np.float32) / np.float32(image.max() or 1)
        labels = (image // 4096).astype(np.uint32) + 1  # bands: every block sees the same ids
        return pipeline.Segmentation(membrane, labels, image.shape[0] // 2)

    monkeypatch.setattr(pipeline, "segment", per_block)
    z, y, x = np.ogrid[:32, :256, :256]
    volume = ((z * 1999 + y * 97 + x * 31) % 65536).astype(np.uint16)
    _zarr_volume(tmp_path / "volume.zarr", volume, chunks=(8, 64, 64))
    _zarr_volume(tmp_path / "warm.zarr", volume[:8, :64, :64], chunks=(8, 64, 64))
    block, halo = (8, 64, 64), (2, 4, 4)
    outer = np.prod([b + 2 * h for b, h in zip(block, halo, strict=True)])
    cap = 32 * outer + 1_000_000  # 32 bytes per voxel of a block with halo, plus 1 MB
    assert volume.nbytes > 1.3 * cap
    del volume

    # The stand-in replaces segment; chained blocks would call the real membrane network.
    segment_blockwise(
        open_volume(tmp_path / "warm.zarr").data,
        tmp_path / "warm-out.zarr",
        chain=False,
        start="watershed",  # the stand-in's path (the agglomeration start runs the network)
        scale=(8.0, 8.0, 8.0),
        unit="nm",
    )
    source = open_volume(tmp_path / "volume.zarr").data
    tracemalloc.start()
    try:
        result = segment_blockwise(
            source,
            tmp_path / "out.zarr",
            block_shape=block,
            halo=halo,
            chain=False,
            start="watershed",
            scale=(8.0, 8.0, 8.0),
            unit="nm",
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.blocks == 4 * 4 * 4
    assert peak < cap, f"peak {peak / 1e6:.2f} MB over the cap {cap / 1e6:.2f} MB"


# -- dask.distributed ---------------------------------------------------------------------------


@pytest.mark.slow
def test_distributed_equals_blockwise_here(tmp_path):
    pytest.importorskip("distributed")
    from napari_emseg.blockwise.cluster import dask_client
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((8, 96, 96), seed=2)
    _zarr_volume(tmp_path / "image.zarr", stack.image)
    options = {"block_shape": (4, 48, 48), "halo": (2, 16, 16), "model": "ridge"}
    here = segment_blockwise(tmp_path / "image.zarr", tmp_path / "here.zarr", **options)
    with dask_client(workers=2, processes=False) as client:
        there = segment_blockwise(
            tmp_path / "image.zarr",
            tmp_path / "there.zarr",
            client=client,
            membrane_output=tmp_path / "membrane.zarr",
            **options,
        )
    single = pipeline.segment(stack.image, model="ridge", propagation="watershed")
    distributed = _read_labels(there.labels)
    np.testing.assert_array_equal(distributed, _read_labels(here.labels))
    assert adapted_rand_error(distributed, single.labels) < 0.15
    membrane = read_volume(tmp_path / "membrane.zarr").data
    # The ridge filter rescales each slice of each block by its own percentiles: close, not equal.
    assert np.corrcoef(membrane.ravel(), single.membrane.ravel())[0, 1] > 0.9


# -- command line -------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_segments_zarr_to_ome_zarr_on_a_scheduler(tmp_path, capsys):
    LocalCluster = pytest.importorskip("distributed").LocalCluster

    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((6, 64, 64), seed=4)
    _zarr_volume(tmp_path / "image.zarr", stack.image)
    args = ["segment", str(tmp_path / "image.zarr"), "--model", "ridge", "--quiet"]
    args += ["--block", "3", "64", "64", "--halo", "1", "8", "8"]
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        code = main(
            [*args, "-o", str(tmp_path / "a.zarr"), "--scheduler", cluster.scheduler_address]
        )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["blocks"] == 2 and summary["objects"] == _read_labels(tmp_path / "a.zarr").max()
    assert main([*args, "-o", str(tmp_path / "b.zarr")]) == 0  # blockwise, here
    capsys.readouterr()
    np.testing.assert_array_equal(
        _read_labels(tmp_path / "a.zarr"), _read_labels(tmp_path / "b.zarr")
    )


def test_cli_blockwise_errors_are_one_line(tmp_path, capsys, monkeypatch):
    image = tmp_path / "image.zarr"
    _zarr_volume(image, np.zeros((4, 64, 64), np.uint8))
    assert main(["segment", str(image), "-o", str(tmp_path / "x.tif"), "--dask", "local"]) == 2
    assert "give -o LABELS.zarr" in capsys.readouterr().err
    out = str(tmp_path / "x.zarr")
    assert main(["segment", str(image), "-o", out, "--ref-slice", "9"]) == 2
    assert "reference slice 9 is outside 0..3" in capsys.readouterr().err
    assert (
        main(
            [
                "segment",
                str(image),
                "-o",
                out,
                "--halo",
                "2",
                "20",
                "20",
                "--block",
                "2",
                "32",
                "32",
            ]
        )
        == 2
    )
    assert "more than half" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    assert main(["segment", str(image), "-o", out, "--dask", "local"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'napari-emseg[dask]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("block_shape, halo", [((2, 96, 96), (1, 0, 0)), ((4, 96, 96), (2, 0, 0))])
def test_blocks_that_cut_z_are_chained_like_one_run(tiny_stack, tmp_path, block_shape, halo):
    """Each layer starts from the slice its neighbour towards the reference labelled."""
    voxel = (50.0, 4.0, 4.0)  # thick sections: the supervoxel vote works slice by slice
    whole = pipeline.segment(
        tiny_stack.image, model="ridge", propagation="watershed", voxel_size=voxel
    )
    result = segment_blockwise(
        tiny_stack.image,
        tmp_path / "seg.zarr",
        block_shape=block_shape,
        halo=halo,
        model="ridge",
        propagation="watershed",
        scale=voxel,
        unit="nm",
    )
    chained_error = adapted_rand_error(_read_labels(result.labels), whole.labels)
    assert chained_error <= 0.02
    # Without the chain every layer restarts from its own watershed: ids break at z faces.
    unchained = segment_blockwise(
        tiny_stack.image,
        tmp_path / "unchained.zarr",
        block_shape=block_shape,
        halo=halo,
        model="ridge",
        propagation="watershed",
        scale=voxel,
        unit="nm",
        chain=False,
    )
    unchained_error = adapted_rand_error(_read_labels(unchained.labels), whole.labels)
    assert unchained_error > chained_error + 0.02


@pytest.mark.slow
def test_chained_learned_propagation_starts_where_one_run_starts_a_window(tmp_path, monkeypatch):
    """Blocks of 4 slices, windows of 5 (stride 4) from slice 6: each chained block reads back
    to slice 6, beyond its 1-slice halo, and predicts as the whole-volume run does."""
    import napari_emseg.propagation as propagation
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((12, 96, 96), seed=3)
    voxel = (50.0, 4.0, 4.0)
    whole = pipeline.segment(stack.image, model="ridge", propagation="cconvlstm", voxel_size=voxel)

    def blockwise(name: str) -> np.ndarray:
        result = segment_blockwise(
            stack.image,
            tmp_path / name,
            block_shape=(4, 96, 96),
            halo=(1, 0, 0),
            model="ridge",
            propagation="cconvlstm",
            scale=voxel,
            unit="nm",
        )
        return _read_labels(result.labels)

    aligned = adapted_rand_error(blockwise("aligned.zarr"), whole.labels)
    assert aligned <= 0.005
    monkeypatch.setattr(propagation, "window_stride", lambda method, options=None: 1)
    assert adapted_rand_error(blockwise("unaligned.zarr"), whole.labels) > aligned


def test_chained_blocks_vote_once_over_the_volume_on_isotropic_voxels(tmp_path):
    """3D supervoxels cross block faces: the blocks' counts are pooled per stitched supervoxel,
    so the vote lands as one run's; without a vote, the chain alone equals one run exactly."""
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((16, 96, 96), seed=3)
    voxel = (8.0, 8.0, 8.0)
    errors, wholes = {}, {}
    for consistency in ("supervoxels", "none"):
        options = {"consistency": consistency}
        whole = pipeline.segment(
            stack.image,
            model="ridge",
            start="watershed",
            propagation="watershed",
            voxel_size=voxel,
            method_options=options,
        )
        result = segment_blockwise(
            stack.image,
            tmp_path / f"{consistency}.zarr",
            block_shape=(6, 96, 96),
            halo=(3, 0, 0),
            model="ridge",
            start="watershed",
            propagation="watershed",
            method_options=options,
            scale=voxel,
            unit="nm",
        )
        errors[consistency] = adapted_rand_error(_read_labels(result.labels), whole.labels)
        wholes[consistency] = whole.labels
    assert errors["none"] == 0
    # The vote changes one run by far more than the blockwise run differs from it.
    assert adapted_rand_error(wholes["none"], wholes["supervoxels"]) > 0.05
    assert errors["supervoxels"] <= 0.02


def test_votes_of_blocks_are_pooled_per_supervoxel():
    from napari_emseg.blockwise.vote import apply_winners, tally, winners

    # Supervoxel 1 spans two blocks: object 4 wins the first block's part, object 5 the whole.
    first = tally(np.array([4, 4, 5]), np.array([1, 1, 1]))
    second = tally(np.array([5, 5, 5, 4]), np.array([1, 1, 1, 2]))
    winner = winners([first, second], 2)
    assert winner.tolist() == [0, 5, 4]
    fixed = np.array([True, False, False])
    assert apply_winners(np.array([4, 4, 0]), np.array([1, 1, 1]), winner, fixed).tolist() == [
        4,
        5,
        0,
    ]


def test_chaining_needs_a_z_halo(tiny_stack, tmp_path):
    with pytest.raises(ValueError, match="z halo"):
        segment_blockwise(
            tiny_stack.image,
            tmp_path / "s.zarr",
            block_shape=(3, 96, 96),
            halo=(0, 0, 0),
            model="ridge",
            start="watershed",
        )


def _pointwise_membrane(image, **_options):
    """A membrane map that depends on each voxel alone: identical block by block."""
    return (1.0 - np.asarray(image, np.float32) / 255.0).astype(np.float32)


@pytest.mark.parametrize("block_shape, halo", [((8, 64, 64), (2, 8, 8)), ((5, 40, 96), (2, 4, 4))])
def test_the_agglomeration_start_is_one_merge_tree_over_the_volume(
    tmp_path, monkeypatch, block_shape, halo
):
    from scipy import ndimage as ndi

    from napari_emseg.datasets.synthetic import make_synthetic_stack
    from napari_emseg.propagation.agglomeration import agglomerate

    # An image whose map is a clean membrane map, as a trained network gives (a noisy map
    # breaks into thousands of specks whose cuts at block faces do change the merges).
    stack = make_synthetic_stack((16, 128, 128), seed=4)
    clean = ndi.gaussian_filter(stack.membranes.astype(np.float32), (0, 1, 1))
    image = np.rint(255 * (1 - clean / clean.max())).astype(np.uint8)
    voxel = (8.0, 8.0, 8.0)
    single = agglomerate(_pointwise_membrane(image), voxel_size=voxel)
    assert np.unique(single).size > 5
    monkeypatch.setattr(pipeline, "predict_membrane", _pointwise_membrane)
    result = segment_blockwise(
        image, tmp_path / "seg.zarr", block_shape=block_shape, halo=halo,
        scale=voxel, unit="nm", start="agglomeration",
    )  # fmt: skip
    blocks = _read_labels(result.labels)
    assert result.blocks > 4 and result.matches == 0  # one merge tree: nothing to match
    # Basins cut by block faces are joined through their faces: objects as in one run.
    assert adapted_rand_error(blocks, single) <= 0.01
    assert adapted_rand_error(single, blocks) <= 0.01


def test_the_agglomeration_start_agrees_with_one_run_through_the_model(tmp_path):
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack((16, 128, 128), seed=4)
    voxel = (8.0, 8.0, 8.0)  # near-isotropic: the start is a 3D agglomeration
    single = pipeline.segment(stack.image, model="ridge", voxel_size=voxel)
    assert single.method == "agglomeration"
    result = segment_blockwise(
        stack.image, tmp_path / "seg.zarr", block_shape=(16, 64, 128), halo=(0, 32, 32),
        model="ridge", scale=voxel, unit="nm",
    )  # fmt: skip
    blocks = _read_labels(result.labels)
    assert adapted_rand_error(blocks, single.labels) <= 0.02
    assert adapted_rand_error(single.labels, blocks) <= 0.02
