"""Adapting a membrane network to corrected slices: targets, loss, card, CLI, cancel."""

import inspect
import json

import numpy as np
import pytest
import tifffile
import torch

from napari_emseg._progress import Cancelled
from napari_emseg.cli import adapt as cli_adapt
from napari_emseg.cli import main
from napari_emseg.inference.loading import WeightsError, load_network
from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.io import InputError
from napari_emseg.models.cards import get_card
from napari_emseg.training.adapt import (
    _augmented_crop,
    adapt,
    boundary_targets,
    masked_loss,
)

FAST = {"steps": 40, "crop": 48, "batch_size": 2, "lr": 1e-2, "device": "cpu"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run fastest on one thread; two oversubscribe a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_card(tiny_card):
    """The base model of these tests: the tiny U-Net card of tests/conftest.py."""
    return tiny_card


@pytest.fixture(scope="module")
def stack():
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    return make_synthetic_stack((5, 80, 80), seed=3)


def test_targets_are_label_changes_and_far_zeros_are_ignored():
    labels = np.zeros((40, 40), np.uint32)
    labels[:, :20], labels[:, 20:] = 1, 2
    labels[30:, :] = 0  # an unlabelled band, 10 rows deep
    target, known = boundary_targets(labels, boundary_px=2)
    assert target[:25, 19:21].all() and target[:25, :19].sum() == 0 and target[:25, 21:].sum() == 0
    assert target[30:].all()  # label 0 is membrane where it counts ...
    assert known[:32].all() and not known[32:].any()  # ... only within 2 px of an object
    thick, _ = boundary_targets(labels, boundary_px=6)
    assert thick[:25].sum(axis=1).min() == 6


def test_masked_loss_ignores_unknown_pixels():
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    known = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    a = masked_loss(torch.tensor([[5.0, -5.0, 5.0, 5.0]]), target, known)
    b = masked_loss(torch.tensor([[5.0, -5.0, -5.0, -5.0]]), target, known)
    wrong = masked_loss(torch.tensor([[-5.0, 5.0, 5.0, 5.0]]), target, known)
    assert torch.isclose(a, b) and wrong > 10 * a


def test_augmented_crops_keep_image_and_target_aligned(rng):
    target, known = boundary_targets(np.kron(np.arange(16).reshape(4, 4), np.ones((20, 20), int)))
    image = 1.0 - target  # dark membranes, exactly where the target is
    for _ in range(10):
        crop = _augmented_crop(image.astype(np.float32), target, known, rng, 48)
        assert crop.shape == (3, 48, 48) and set(np.unique(crop[1])) <= {0.0, 1.0}
        dark, bright = crop[0][crop[1] == 1].mean(), crop[0][crop[1] == 0].mean()
        assert bright - dark > 0.5


def test_adapt_lowers_the_loss_and_writes_a_checked_card(stack, base_card, tmp_path):
    out = tmp_path / "mine.json"
    seen = []
    card_path = adapt(
        stack.image,
        stack.labels,
        [2],
        out=out,
        model=str(base_card),
        progress=lambda *a: seen.append(a),
        source="synthetic.tif",
        **FAST,
    )
    assert card_path == out and out.with_suffix(".pt").is_file()
    written = json.loads(out.read_text())
    metrics = written["metrics"]
    assert metrics["adapt_steps"] == 40 and seen[-1][:2] == (40, 40)
    assert metrics["adapt_loss_after"] < 0.8 * metrics["adapt_loss_before"]
    assert written["adapted_from"]["ref_slices"] == [2]
    assert written["adapted_from"]["image"] == "synthetic.tif"
    card = get_card(out)
    assert card.base_model == "tiny" and card.architecture == "unet" and card.depth == 2
    state = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    load_network(card)
    prob = predict_membrane(stack.image, model=str(out), device="cpu")
    assert prob.shape == stack.image.shape

    weights = out.with_suffix(".pt")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_network(get_card(out))


def test_existing_card_is_kept_and_cancel_writes_nothing(stack, base_card, tmp_path):
    out = tmp_path / "mine.json"
    out.write_text("{}")
    with pytest.raises(InputError, match="exists"):
        adapt(stack.image, stack.labels, [2], out=out, model=str(base_card), **FAST)
    assert out.read_text() == "{}"
    calls = []
    fresh = tmp_path / "cancelled.json"
    with pytest.raises(Cancelled):
        adapt(
            stack.image,
            stack.labels,
            [2],
            out=fresh,
            model=str(base_card),
            cancel=lambda: len(calls) >= 3,
            progress=lambda *a: calls.append(a),
            **FAST,
        )
    assert len(calls) == 3 and not fresh.exists() and not fresh.with_suffix(".pt").exists()


def test_the_time_budget_stops_training(stack, base_card, tmp_path):
    settings = {**FAST, "steps": 100_000, "time_budget_s": 2.5}
    out = adapt(
        stack.image, stack.labels, 2, out=tmp_path / "m.json", model=str(base_card), **settings
    )
    metrics = json.loads(out.read_text())["metrics"]
    assert 0 < metrics["adapt_steps"] < 100_000 and metrics["adapt_seconds"] <= 2.5


def test_progress_counts_the_steps_that_fit_from_measured_step_times(stack, base_card, tmp_path):
    seen = []
    settings = {**FAST, "steps": 100_000, "time_budget_s": 2.0}
    adapt(
        stack.image,
        stack.labels,
        2,
        out=tmp_path / "m.json",
        model=str(base_card),
        progress=lambda *a: seen.append(a),
        **settings,
    )
    done, expected, message = seen[-1]
    # Not 100,000 steps: what the measured pace fits into the budget (give or take a step).
    assert all(total < 1000 for _, total, _ in seen) and abs(expected - done) <= 2
    assert f"step {done} of" in message and "s left" in message


def test_holdout_keeps_part_of_the_corrections_out_of_training_and_scores_both(
    stack, base_card, tmp_path, monkeypatch
):
    from napari_emseg.training import adapt as module
    from napari_emseg.training.holdout import choose_holdout

    held = choose_holdout(stack.labels, [2])
    assert held.z == 2 and 0 < held.x0 < stack.labels.shape[-1] and held.trained == (2,)
    mask = held.train_mask(2, stack.labels.shape[1:])
    assert mask[:, : held.x0].all() and not mask[:, held.x0 :].any()
    labelled = np.count_nonzero(stack.labels[2][:, held.x0 :])
    assert abs(labelled - np.count_nonzero(stack.labels[2][:, : held.x0])) <= 2 * 80  # a column

    knowns = []
    fine_tune = module._fine_tune
    monkeypatch.setattr(
        module, "_fine_tune", lambda *a, **k: knowns.append(a[3].copy()) or fine_tune(*a, **k)
    )
    out = adapt(
        stack.image, stack.labels, [2], out=tmp_path / "m.json", model=str(base_card),
        holdout=True, pixel_nm=4.0, **FAST,
    )  # fmt: skip
    assert not knowns[0][0][:, held.x0 :].any()  # nothing right of the cut is learned
    check = json.loads(out.read_text())["validation"]
    assert check["scored_on"] == held.describe() and "x >= " in check["scored_on"]
    before, after = check["error_before"], check["error_after"]
    assert 0 <= before <= 1 and 0 <= after <= 1 and check["kept"] == (after < before)

    two = adapt(
        stack.image, stack.labels, [1, 3], out=tmp_path / "two.json", model=str(base_card),
        holdout=True, **{**FAST, "steps": 2},
    )  # fmt: skip
    written = json.loads(two.read_text())
    assert written["validation"]["scored_on"] == "slice 3 (held out; trained on slice 1)"
    assert written["adapted_from"]["ref_slices"] == [1]


def test_the_facade_fine_tunes_the_model_in_use_and_says_whether_it_switched(
    stack, base_card, tmp_path, monkeypatch
):
    from napari_emseg import pipeline
    from napari_emseg.training import adapt as module

    result = pipeline.adapt(
        stack.image, stack.labels, [2], out=str(tmp_path / "m.json"), model=str(base_card),
        device="cpu", steps=3, voxel_size=(50, 4, 4),
    )  # fmt: skip
    assert isinstance(result, pipeline.Adaptation) and str(result) == str(tmp_path / "m.json")
    assert result.kept == (result.score_after < result.score_before)
    assert "x >= " in result.scored_on and result.scored_on in result.message
    assert ("switched to it" if result.kept else "not switched, tiny stays in use") in (
        result.message
    )
    assert get_card(result).base_model == "tiny"  # usable as model= (os.fspath)

    bases = []
    monkeypatch.setattr(module, "adapt", lambda *a, **k: bases.append(k["model"]) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        pipeline.adapt(stack.image, stack.labels, [2], out=str(tmp_path / "d.json"))
    assert bases == [pipeline.list_models()[0]]  # the default model, not another base


def test_a_budget_with_no_room_to_train_never_switches(stack, base_card, tmp_path):
    from napari_emseg import pipeline

    result = pipeline.adapt(
        stack.image, stack.labels, [2], out=str(tmp_path / "m.json"), model=str(base_card),
        device="cpu", time_budget_s=0.01, voxel_size=(50, 4, 4),
    )  # fmt: skip
    assert json.loads(result.card.read_text())["metrics"]["adapt_steps"] == 0
    assert not result.kept and "no training step fitted in the time budget" in result.message


def test_bad_inputs_are_refused(stack, base_card, tmp_path):
    out = tmp_path / "m.json"
    with pytest.raises(ValueError, match="no labels"):
        adapt(stack.image, np.zeros_like(stack.labels), [2], out=out, model=str(base_card))
    with pytest.raises(ValueError, match="outside"):
        adapt(stack.image, stack.labels, [9], out=out, model=str(base_card))
    with pytest.raises(ValueError, match="classical"):
        adapt(stack.image, stack.labels, [2], out=out, model="ridge")
    with pytest.raises(InputError, match=".json"):
        adapt(stack.image, stack.labels, [2], out=tmp_path / "m.pt", model=str(base_card))


def test_cli_defaults_are_the_function_defaults():
    from napari_emseg.training import adapt as module

    assert cli_adapt.DEFAULT_BASE_MODEL == module.DEFAULT_BASE_MODEL
    defaults = inspect.signature(adapt).parameters
    assert cli_adapt.DEFAULT_STEPS == defaults["steps"].default
    assert cli_adapt.DEFAULT_TIME_BUDGET_S == defaults["time_budget_s"].default


def test_cli_adapts_refuses_to_overwrite_and_propagate_uses_the_card(
    stack, base_card, tmp_path, capsys
):
    image, labels = tmp_path / "image.tif", tmp_path / "labels.tif"
    tifffile.imwrite(image, stack.image)
    tifffile.imwrite(labels, stack.labels[2])  # 2D labels of the one reference slice
    card = tmp_path / "my-model.json"
    args = ["adapt", str(image), "--labels", str(labels), "--ref-slice", "2", "-o", str(card)]
    args += ["--model", str(base_card), "--steps", "3", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["card"] == str(card) and printed["adapt_steps"] == 3
    assert printed["base_model"] == "tiny" and "x >= " in printed["scored_on"]
    before, after = printed["score_before"], printed["score_after"]
    assert printed["switched"] == (after < before)
    assert get_card(card).training_command  # the command line, recorded for provenance
    before = card.read_bytes()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and card.read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()

    out = tmp_path / "out.tif"
    propagate = ["propagate", str(image), "--labels", str(labels), "--ref-slice", "2"]
    propagate += ["--method", "watershed", "--model", str(card), "-o", str(out), "--quiet"]
    propagate += ["--voxel-size", "50", "4", "4"]  # the tiny random network shows no membranes
    assert main(propagate) == 0
    result = tifffile.imread(out)
    assert result.shape == stack.image.shape and (result[2] == stack.labels[2]).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ref-slice", "7"], "outside"),
        (["--ref-slice", "1", "2"], "single --ref-slice"),
        (["--ref-slice", "2", "--model", "ridge"], "classical"),
        (["--ref-slice", "2", "--steps", "0"], "--steps"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(stack, tmp_path, capsys, extra, message):
    image, labels = tmp_path / "image.tif", tmp_path / "labels.tif"
    tifffile.imwrite(image, stack.image)
    tifffile.imwrite(labels, stack.labels[2])
    card = tmp_path / "m.json"
    args = ["adapt", str(image), "--labels", str(labels), "-o", str(card), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not card.exists()
