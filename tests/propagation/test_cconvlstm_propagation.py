"""The learned propagator end to end: training on sequences, cards, patches, guarantees."""

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_emseg.datasets.synthetic import make_synthetic_stack
from napari_emseg.inference.loading import WeightsError
from napari_emseg.models.cards import get_propagation_card
from napari_emseg.models.cconvlstm import VARIANTS, CConvLSTMNet
from napari_emseg.propagation import list_methods, propagate
from napari_emseg.propagation.cconvlstm import cheapest_patch, patch_jobs, predict_window
from napari_emseg.training.checkpoint import half_state_dict
from napari_emseg.training.sequence_data import SequenceSampler, SequenceStack
from napari_emseg.training.sequence_loop import PropagationTrainConfig, train_propagation

NET = {"in_channels": 2, "width": 4, "levels": 2, "hidden": 4, "refine_full_res": True}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stack():
    return make_synthetic_stack((6, 64, 64), seed=3)


def write_card(folder, variant="stc", pixel_nm=8.0, seed=0):
    """An untrained network saved as a propagation card (the code path of a trained one)."""
    from napari_emseg.models.cards import sha256_of

    torch.manual_seed(seed)
    net = CConvLSTMNet(**NET, variant=variant)
    weights = folder / f"net-{variant}.pt"
    torch.save(half_state_dict(net.state_dict()), weights)
    card = {
        "name": f"test-{variant}",
        "variant": variant,
        "network": {**NET, "variant": variant},
        "pixel_nm": pixel_nm,
        "weights": weights.name,
        "sha256": sha256_of(weights),
    }
    path = folder / f"net-{variant}.propagation.json"
    path.write_text(json.dumps(card))
    return path


def propagate_with_card(stack, labels, card, **options):
    """The learned propagator from slice 3 with a test card, on the stack's true membranes."""
    return propagate(
        stack.image,
        labels,
        3,
        membrane=stack.membranes.astype(np.float32),
        method="cconvlstm",
        weights=str(card),
        pixel_nm=4.0,
        consistency="none",
        **options,
    )


def reference_labels(stack, ref):
    labels = np.zeros(stack.labels.shape, np.uint32)
    labels[ref] = stack.labels[ref]
    return labels


def test_cconvlstm_is_a_registered_method():
    assert "cconvlstm" in list_methods()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_propagates_and_keeps_reference_and_ids(tmp_path, stack, variant):
    card = write_card(tmp_path, variant)
    labels = reference_labels(stack, 3)
    membrane = (stack.labels == 0).astype(np.float32)
    out = propagate(
        stack.image,
        labels,
        3,
        membrane=membrane,
        method="cconvlstm",
        weights=str(card),
        pixel_nm=8.0,
        patch=32,
        overlap=8,
        window=3,
        newcomers=False,
    )
    assert out.shape == labels.shape
    np.testing.assert_array_equal(out[3], labels[3])
    # Without newcomers every id comes from the reference slice.
    assert set(np.unique(out)) <= set(np.unique(labels[3])) | {0}
    assert all(out[z].any() for z in range(6))  # every slice was filled


def test_targeted_propagation_leaves_other_objects_alone(tmp_path, stack):
    card = write_card(tmp_path)
    labels = stack.labels.astype(np.uint32).copy()
    target = int(np.unique(labels[3])[1])
    out = propagate(
        stack.image,
        labels,
        3,
        membrane=(labels == 0).astype(np.float32),
        method="cconvlstm",
        weights=str(card),
        pixel_nm=8.0,
        objects=[target],
        patch=32,
        overlap=8,
    )
    others = (labels != target) & (labels != 0)
    np.testing.assert_array_equal(out[others], labels[others])
    assert set(np.unique(out)) <= set(np.unique(labels))


def test_patches_stitch_to_the_whole_frame_result():
    """Each pixel comes from the patch whose core holds it: with a net that copies the
    previous mask, the stitched result of small patches equals the reference (no seams)."""
    net = CConvLSTMNet(**NET, mask_prior=50.0).eval()  # the prior dominates: a copying net
    reference = np.zeros((40, 52), np.uint32)
    reference[:, :20], reference[:, 20:35], reference[:, 35:] = 1, 2, 3
    reference[10:30, 5:15] = 4
    frames = np.zeros((3, 2, 40, 52), np.float32)
    out = predict_window(
        net, frames, reference, patch=24, overlap=8, batch=3, device=torch.device("cpu")
    )
    assert out.shape == (2, 40, 52)
    np.testing.assert_array_equal(out[0], reference)
    np.testing.assert_array_equal(out[1], reference)


def test_the_patch_edge_is_the_cheapest_of_the_choices_and_a_fixed_edge_is_kept():
    torch.manual_seed(0)
    net = CConvLSTMNet(**NET, mask_prior=0.0).eval()  # untrained, no copy prior: context counts
    cells = (np.arange(64)[:, None] // 8) * 8 + np.arange(64) // 8 + 1  # 8 px cells
    # Work = patch area x objects per patch: 2x2 patches of 36 px hold fewer cells than 1 of 64.
    work = {
        edge: edge**2 * sum(j[-1].size for j in patch_jobs(cells, edge, 8)) for edge in (36, 64)
    }
    assert work[36] < work[64]
    edge, jobs = cheapest_patch(cells, 8, choices=(64, 36))
    assert edge == 36 and len(jobs) == 4
    frames = np.random.default_rng(0).random((3, 2, 64, 64), dtype=np.float32)
    options = {"overlap": 8, "batch": 4, "device": torch.device("cpu")}
    chosen = predict_window(net, frames, cells, patch=(64, 36), **options)
    np.testing.assert_array_equal(chosen, predict_window(net, frames, cells, patch=36, **options))
    assert not np.array_equal(chosen, predict_window(net, frames, cells, patch=64, **options))


def test_unknown_variant_and_altered_weights_are_refused(tmp_path, stack):
    with pytest.raises(FileNotFoundError, match="train propagation"):
        get_propagation_card(str(tmp_path / "missing.propagation.json"))
    card = write_card(tmp_path)
    (tmp_path / "net-stc.pt").write_bytes(b"not the trained weights")
    with pytest.raises(WeightsError, match="sha256"):
        propagate(
            stack.image,
            reference_labels(stack, 3),
            3,
            method="cconvlstm",
            weights=str(card),
            membrane=np.zeros(stack.image.shape, np.float32),
        )


def test_sampler_masks_follow_the_reference_objects(stack):
    data = SequenceStack(
        "synthetic",
        stack.image.astype(np.float32),
        (stack.labels == 0).astype(np.float32),
        stack.labels.astype(np.uint32),
    )
    sampler = SequenceSampler([data], length=4, crop=32, max_objects=5, artefact_prob=0.0)
    sample = sampler.sample(np.random.default_rng(0))
    assert sample.frames.shape == (4, 2, 32, 32) and sample.masks.shape == (4, 5, 32, 32)
    present = sample.masks[0].reshape(5, -1).any(axis=1)
    assert present[0]  # at least one object, packed from slot 0
    assert not sample.masks[:, ~present].any()  # empty slots stay empty in every frame
    assert (sample.masks.sum(axis=1) <= 1).all()  # objects never overlap


def _tiny_config(data: dict, out, **overrides) -> PropagationTrainConfig:
    """A training run of a few seconds: a tiny network, crops and budget."""
    values = dict(
        data=data, out=str(out), width=4, levels=2, hidden=4, membrane_model="ridge",
        length=3, crop=32, max_objects=3, batch_size=2, steps=4, val_every=2,
        val_sequences=2, device="cpu",
    )  # fmt: skip
    return PropagationTrainConfig(**{**values, **overrides})


def test_train_propagation_exports_a_card_that_propagates_and_resumes(tmp_path, stack):
    image, ids = tmp_path / "image.tif", tmp_path / "ids.tif"
    tifffile.imwrite(image, stack.image)
    tifffile.imwrite(ids, stack.labels.astype(np.uint32))
    config = _tiny_config({"tiny": f"{image},{ids},8"}, tmp_path / "run")
    result = train_propagation(config)
    assert result["steps"] == 4
    log = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log] == [2, 4]
    card = get_propagation_card(result["card"])
    assert card.network["width"] == 4 and card.metrics["step"] in (2, 4)
    out = propagate(
        stack.image,
        reference_labels(stack, 2),
        2,
        method="cconvlstm",
        weights=result["card"],
        pixel_nm=8.0,
        membrane=(stack.labels == 0).astype(np.float32),
    )
    np.testing.assert_array_equal(out[2], stack.labels[2])
    resumed = PropagationTrainConfig.from_dict(
        {**config.__dict__, "steps": 6, "resume": str(tmp_path / "run" / "last.pt")}
    )
    assert train_propagation(resumed)["steps"] == 6


def test_init_from_starts_at_the_cards_weights_and_keeps_them_unless_beaten(tmp_path, stack):
    from napari_emseg.inference.loading import load_network
    from napari_emseg.training.sequence_loop import initial_propagation_network

    image, ids = tmp_path / "image.tif", tmp_path / "ids.tif"
    tifffile.imwrite(image, stack.image)
    tifffile.imwrite(ids, stack.labels.astype(np.uint32))
    data = {"tiny": f"{image},{ids},8"}
    first = train_propagation(_tiny_config(data, tmp_path / "first"))
    card = get_propagation_card(first["card"])
    config = _tiny_config(data, tmp_path / "warm", init_from=first["card"], lr=0.0)
    start = initial_propagation_network(config).state_dict()
    for name, tensor in load_network(card).state_dict().items():
        torch.testing.assert_close(start[name], tensor)
    result = train_propagation(config)
    log = [
        json.loads(line) for line in (tmp_path / "warm" / "metrics.jsonl").read_text().splitlines()
    ]
    # lr 0: no step changes the weights, so no later validation beats the starting point
    assert [r["step"] for r in log] == [0, 2, 4] and log[0]["init_from"] == first["card"]
    assert result["best"]["step"] == 0
    assert log[1]["val_iou"] == pytest.approx(log[0]["val_iou"])
    with pytest.raises(ValueError, match="init-from"):
        initial_propagation_network(
            _tiny_config(data, tmp_path / "x", init_from=first["card"], hidden=6)
        )
    # another pixel size is a fine-tuning to another scale: same weights to start from
    coarser = initial_propagation_network(
        _tiny_config(data, tmp_path / "y", init_from=first["card"], pixel_nm=16.0)
    ).state_dict()
    torch.testing.assert_close(coarser, start)


@pytest.mark.slow
def test_a_campaign_pretrains_on_fresh_synthetic_sequences_and_resumes_by_steps(tmp_path):
    from napari_emseg.training.sequence_data import synthetic_stacks

    first, again = (
        synthetic_stacks(1, seed=s, membrane_model="ridge", pixel_nm=8.0)[0] for s in (1, 2)
    )
    assert first.ids.shape == (24, 128, 128) and not np.array_equal(first.image, again.image)
    config = _tiny_config(
        {"synthetic": "1"}, tmp_path / "run", schedule="steps", time_budget_min=5.0
    )
    assert train_propagation(config)["steps"] == 4
    resumed = PropagationTrainConfig.from_dict(
        {**config.__dict__, "steps": 6, "resume": str(tmp_path / "run" / "last.pt")}
    )
    assert train_propagation(resumed)["steps"] == 6  # resumed from the checkpoint step


def test_padding_objects_change_no_real_objects_result():
    """Patches of different object counts share a batch: slots past a sample's count are
    padding, masked out of the backward sweep over objects."""
    torch.manual_seed(0)
    net = CConvLSTMNet(**NET, variant="stc").eval()
    frames = torch.rand(2, 3, 2, 16, 16)
    masks = (torch.rand(2, 4, 16, 16) > 0.7).float()
    with torch.inference_mode():
        alone = net(frames[:1], masks[:1, :2])
        padded = masks.clone()
        padded[0, 2:] = 0
        together = net(frames, padded, object_counts=torch.tensor([2, 4]))
        unmasked = net(frames, padded)
    torch.testing.assert_close(together[0, :, :2], alone[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(unmasked[0, :, :2], alone[0], atol=1e-5)


@pytest.mark.parametrize("variant", ["st", "stc"])
def test_batched_patches_and_threaded_outlines_give_the_unbatched_result(tmp_path, stack, variant):
    """Batch size and outline threads change the speed, never the labels (stc included: batches
    mix patches of different object counts, padded, and its backward sweep skips the padding)."""
    card = write_card(tmp_path, variant=variant, pixel_nm=4.0)
    labels = reference_labels(stack, 3)
    runs = [
        propagate_with_card(
            stack, labels, card, patch=24, overlap=8, batch=batch, padded=padded, threads=threads
        )
        for batch, padded, threads in ((1, False, 1), (64, False, 1), (5, True, 3), (64, True, 1))
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(other, runs[0])
    assert len(np.unique(runs[0][0])) > 1  # something was propagated


def test_both_directions_at_once_give_the_sequential_labels_and_ids(tmp_path, stack, monkeypatch):
    """Up and down swept in two threads (each torch on one thread) write the labels of one
    sweep after the other, newcomer ids included: the upward ones first, then the downward."""
    import threading

    import napari_emseg.propagation.cconvlstm as cconvlstm

    card = write_card(tmp_path, pixel_nm=4.0)
    labels = reference_labels(stack, 3)
    labels[3][:, 32:] = 0  # the right half enters as newcomers above and below
    callers = set()
    real_predict = cconvlstm.predict_window

    def spy(*args, **kwargs):
        callers.add(threading.get_ident())
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(cconvlstm, "predict_window", spy)
    torch.set_num_threads(2)
    runs = []
    for concurrent in (False, True):
        monkeypatch.setattr(cconvlstm, "_concurrent_directions", lambda *_, c=concurrent: c)
        callers.clear()
        runs.append(propagate_with_card(stack, labels, card))
        assert len(callers) == (2 if concurrent else 1)
    np.testing.assert_array_equal(runs[1], runs[0])
    first_new = int(labels.max()) + 1
    above = np.unique(runs[0][4:][runs[0][4:] >= first_new])
    below = np.unique(runs[0][:3][runs[0][:3] >= first_new])
    assert above.size and below.size and above.max() < below.min()
    assert torch.get_num_threads() == 2  # restored after the sweeps


def test_directions_run_at_once_only_on_a_multicore_cpu_with_room_for_the_ids(monkeypatch):
    from napari_emseg.propagation.cconvlstm import _concurrent_directions

    cpu = torch.device("cpu")
    monkeypatch.setattr("napari_emseg.propagation.cconvlstm.machine_cores", lambda: 2)
    torch.set_num_threads(2)
    assert _concurrent_directions(cpu, None, 1000, np.dtype(np.uint32))
    assert not _concurrent_directions(cpu, 1, 1000, np.dtype(np.uint32))  # threads=1 asked
    assert not _concurrent_directions(cpu, None, 2**33, np.dtype(np.uint32))  # ids overflow
    assert not _concurrent_directions(torch.device("meta"), None, 1000, np.dtype(np.uint32))
    torch.set_num_threads(1)
    assert not _concurrent_directions(cpu, None, 1000, np.dtype(np.uint32))


def test_newcomers_are_numbered_in_slice_order_whatever_the_threads():
    from napari_emseg.propagation.cconvlstm import outline_window

    coarse = np.zeros((3, 20, 20), np.uint32)
    coarse[:, :, :10] = 1  # object 1 on the left; the right half is a new cell in every slice
    membrane = np.zeros((3, 20, 20), np.float32)
    membrane[:, :, 10] = 1.0
    kwargs = {"factor": 1, "fixed": None, "targets": None, "cell_min_size": 5}
    one, next_one = outline_window(coarse, membrane, next_id=5, threads=1, **kwargs)
    three, next_three = outline_window(coarse, membrane, next_id=5, threads=3, **kwargs)
    assert next_one == next_three == 8
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [int(s[5, 15]) for s in one] == [5, 6, 7]


def test_bfloat16_network_agrees_with_float32():
    torch.manual_seed(0)
    net = CConvLSTMNet(**NET).eval()
    reference = np.zeros((32, 32), np.uint32)
    reference[:, :12], reference[:, 12:], reference[8:20, 4:9] = 1, 2, 3
    frames = np.random.default_rng(0).random((3, 2, 32, 32), np.float32)
    runs = [
        predict_window(
            net,
            frames,
            reference,
            patch=32,
            overlap=8,
            batch=1,
            device=torch.device("cpu"),
            dtype=dtype,
        )  # fmt: skip
        for dtype in (None, torch.bfloat16)
    ]
    assert (runs[0] == runs[1]).mean() > 0.97


def test_the_network_runs_at_twice_the_cards_pixel_at_most_16_nm(tmp_path, stack, monkeypatch):
    """A 4 nm stack with an 8 nm card is binned 4x for the network (16 nm), unless told."""
    import napari_emseg.propagation.cconvlstm as module

    seen = []
    real = module.predict_window
    monkeypatch.setattr(module, "predict_window", lambda net, frames, *a, **k: (
        seen.append(frames.shape[-1]), real(net, frames, *a, **k))[1])  # fmt: skip
    card = write_card(tmp_path, pixel_nm=8.0)
    labels = reference_labels(stack, 3)
    for options in ({}, {"network_pixel_nm": 8.0}):
        propagate(stack.image, labels, 3, membrane=stack.membranes.astype(np.float32),
                  method="cconvlstm", weights=str(card), pixel_nm=4.0, consistency="none",
                  **options)  # fmt: skip
    assert seen[0] == 64 // 4 and seen[-1] == 64 // 2


def test_the_network_pixel_is_a_method_option_the_registry_accepts():
    """``method_options={"network_pixel_nm": ...}`` passes the facade's check of the options a
    method takes (the registry's record); an option the method does not take is still refused."""
    from napari_emseg.pipeline import options_for

    assert options_for("cconvlstm", (50.0, 4.0, 4.0), {"network_pixel_nm": 8.0}) == {
        "pixel_nm": 4.0,
        "network_pixel_nm": 8.0,
    }
    with pytest.raises(ValueError, match="the cconvlstm method takes no option network_nm"):
        options_for("cconvlstm", (50.0, 4.0, 4.0), {"network_nm": 8.0})
    with pytest.raises(ValueError, match="the watershed method takes no option network_pixel_nm"):
        options_for("watershed", (50.0, 4.0, 4.0), {"network_pixel_nm": 8.0})


def test_the_cards_patch_edges_are_the_default_and_options_override_them(
    tmp_path, stack, monkeypatch
):
    """A card trained on small crops names its own patch edges; ``patch`` and
    ``patch_min_area`` given by the caller reach the window's prediction."""
    import napari_emseg.propagation.cconvlstm as module

    seen = []
    real = module.predict_window
    monkeypatch.setattr(module, "predict_window", lambda *a, **k: (
        seen.append((k["patch"], k["min_area"])), real(*a, **k))[1])  # fmt: skip
    card = write_card(tmp_path)
    fields = json.loads(card.read_text())
    card.write_text(json.dumps({**fields, "patch_px": [24, 32]}))
    labels = reference_labels(stack, 3)
    for options in ({}, {"patch": 16, "patch_min_area": 9}):
        propagate(stack.image, labels, 3, membrane=stack.membranes.astype(np.float32),
                  method="cconvlstm", weights=str(card), pixel_nm=8.0, consistency="none",
                  **options)  # fmt: skip
    assert seen[0] == ((24, 32), 4) and seen[-1] == (16, 9)


def test_the_cards_window_is_the_default_and_the_option_overrides_it(tmp_path, stack, monkeypatch):
    """Frames per network call: 5 by default, the card's ``window`` when it has one, the
    ``window`` option above both (6 slices from slice 3: up 3-5, down 3-0)."""
    import napari_emseg.propagation.cconvlstm as module

    lengths = []
    real = module.predict_window
    monkeypatch.setattr(module, "predict_window", lambda net, frames, *a, **k: (
        lengths[-1].append(len(frames)), real(net, frames, *a, **k))[1])  # fmt: skip
    plain = write_card(tmp_path)
    windowed = tmp_path / "windowed.propagation.json"
    windowed.write_text(json.dumps({**json.loads(plain.read_text()), "window": 3}))
    labels = reference_labels(stack, 3)
    for card, options in ((plain, {}), (windowed, {}), (windowed, {"window": 2})):
        lengths.append([])
        propagate_with_card(stack, labels, card, **options)
    assert [sorted(seen) for seen in lengths] == [[3, 4], [2, 3, 3], [2] * 5]


def test_coarse_stacks_take_the_stc_card_trained_at_20_nm(stack, monkeypatch):
    """By default a 10 nm stack runs the 20 nm card (its patches, binned 2x) and a 4 nm stack
    the 8 nm card (binned 4x); a card named by the caller is kept."""
    import napari_emseg.propagation.cconvlstm as module

    seen = []
    real = module.predict_window
    monkeypatch.setattr(module, "predict_window", lambda net, frames, *a, **k: (
        seen.append((k["patch"], frames.shape[-1])), real(net, frames, *a, **k))[1])  # fmt: skip
    labels = reference_labels(stack, 3)
    first = []
    for pixel, options in ((10.0, {}), (4.0, {}), (10.0, {"weights": "cconvlstm-stc"})):
        first.append(len(seen))
        propagate(stack.image, labels, 3, membrane=stack.membranes.astype(np.float32),
                  method="cconvlstm", pixel_nm=pixel, consistency="none", **options)  # fmt: skip
    coarse, fine, named = (seen[k] for k in first)
    assert coarse == ((40, 48, 56), 64 // 2) and fine == (None, 64 // 4) and named == (None, 64)


def test_the_cli_says_which_of_steps_and_budget_ends_the_run(tmp_path, stack, capsys):
    """The default --steps ends a long --time-budget-min run early: the CLI says so first."""
    from napari_emseg.cli import main

    image, ids = tmp_path / "image.tif", tmp_path / "ids.tif"
    tifffile.imwrite(image, stack.image)
    tifffile.imwrite(ids, stack.labels.astype(np.uint32))
    code = main(["train", "propagation", "--data", f"tiny={image},{ids},8", "--width", "4",
                 "--levels", "2", "--hidden", "4", "--membrane-model", "ridge", "--length", "3",
                 "--crop", "32", "--max-objects", "3", "--batch-size", "2", "--steps", "2",
                 "--val-every", "2", "--time-budget-min", "85", "--device", "cpu",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 0
    assert "stops after 2 steps or 85 min, whichever comes first" in capsys.readouterr().err
    assert (tmp_path / "run" / "last.pt").is_file()
