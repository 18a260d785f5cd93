"""What the scripts used to compute themselves, now in the package: the block sets of each
study, shipping propagation weights, the adapt / baseline / choice / blockwise rows, the
supervoxel study's two stages and the scripted proofreader's picks (tiny synthetic stacks)."""

import json

import numpy as np
import pytest

from napari_emseg.evaluation import Block, score
from napari_emseg.evaluation import supervoxels as sv_study
from napari_emseg.evaluation.adapt import score_methods, split_blocks
from napari_emseg.evaluation.baselines import propagation_row, slice_watershed
from napari_emseg.evaluation.blockwise import CASES, agreement, mode_commands
from napari_emseg.evaluation.choices import agglomeration_grid, pixel_rule_row
from napari_emseg.evaluation.corrections import largest_touching_pair, neurons_to_trace
from napari_emseg.evaluation.effort import Start, check_scores, effort_blocks
from napari_emseg.evaluation.membrane import figure_panels, resampling_row
from napari_emseg.evaluation.propagation import run_blocks, study_blocks
from napari_emseg.evaluation.weights import run_history, ship
from napari_emseg.metrics import adapted_rand_error


@pytest.fixture()
def block(tiny_stack):
    return Block("tiny", tiny_stack.image, tiny_stack.labels.astype(np.uint32), 3, (40.0, 4.0, 4.0))


# -- the block sets ---------------------------------------------------------------------------


def test_each_study_reads_its_held_out_blocks_with_their_references(fake_data):
    root = fake_data[0]
    (gala, _), (isbi, label) = study_blocks(data=root)
    assert gala.name.startswith("gala FIB-SEM medulla, test") and gala.ref == 25
    assert (isbi.first, isbi.ref, label) == (20, 5, "reference slice 25 of the stack")
    quick = [b for b, _ in study_blocks(data=root, quick=True)]
    assert all(b.shape[0] <= 16 and b.first + b.ref in (25,) for b in quick)

    gala, isbi = effort_blocks(data=root, quick=True)
    assert (gala.ref, isbi.ref, gala.shape[0]) == (4, 4, 8)
    assert "centred 256x256 crop" in isbi.name and isbi.first == 20

    blocks = sv_study.study_blocks(data=root)
    assert {k: (b.first, b.first + b.ref) for k, b in blocks.items()} == {
        "gala-train": (0, 25),
        "gala-test": (0, 25),
        "isbi-train": (0, 10),
        "isbi-test": (20, 25),
    }
    assert [b.name for b in split_blocks("train", data=root)] == [
        "gala FIB-SEM train block, ref 25",
        "ISBI 2012 slices 0-19, ref 10",
    ]


# -- shipping propagation weights -------------------------------------------------------------


def fake_run(tmp_path, *, step: int, init_from: bool = True):
    """A fine-tuning run folder and the package's weights folder it would replace."""
    run, weights = tmp_path / "run", tmp_path / "weights"
    run.mkdir()
    weights.mkdir()
    first = {"step": 0, "val_iou": 0.5, **({"init_from": "stc"} if init_from else {})}
    history = [first, {"step": step, "val_iou": 0.6}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in history))
    card = {
        "name": "cconvlstm-stc",
        "weights": "stc.pt",
        "description": "Shipped.",
        "metrics": {"step": step, "train_closed_loop_iou": 0.6},
    }
    (run / "stc.propagation.json").write_text(json.dumps(card))
    (run / "stc.pt").write_bytes(b"new")
    shipped = {**card, "metrics": {"step": 0}}
    (weights / "stc.propagation.json").write_text(json.dumps(shipped))
    (weights / "stc.pt").write_bytes(b"old")
    return run, weights


def test_weights_that_lower_the_training_error_replace_the_shipped_ones(tmp_path):
    run, weights = fake_run(tmp_path, step=40)
    scored = []

    def score_card(card):  # the shipped card is scored from a copy, not from the package
        scored.append(card.parent)
        return 0.3 if card.parent == run else 0.4

    message = ship(run, weights, score_card)
    assert "shipped step 40" in message and "training ARE 0.4000 -> 0.3000" in message
    assert weights not in scored and run in scored
    assert (weights / "stc.pt").read_bytes() == b"new"
    card = json.loads((weights / "stc.propagation.json").read_text())
    assert (
        card["metrics"]["training_are"] == 0.3 and card["metrics"]["start_closed_loop_iou"] == 0.5
    )
    assert card["description"].startswith("Shipped. Fine-tuned 40 steps")


@pytest.mark.parametrize(
    ("step", "init_from", "ares", "needle"),
    [
        (40, True, (0.4, 0.4), "kept the shipped weights (crop IoU"),  # not lower: kept
        (0, True, (0.3, 0.4), "no step beat 0.5000"),
        (40, False, (0.3, 0.4), "not started from shipped weights"),
    ],
)
def test_weights_are_kept_unless_both_tests_pass(tmp_path, step, init_from, ares, needle):
    run, weights = fake_run(tmp_path, step=step, init_from=init_from)
    message = ship(run, weights, lambda card: ares[0] if card.parent == run else ares[1])
    assert needle in message
    assert (weights / "stc.pt").read_bytes() == b"old"
    assert len(run_history(run)) == 2


# -- rows of the adapt, baseline, choice, membrane and propagation studies --------------------


def test_adapt_scores_each_method_from_the_reference(block, tiny_stack):
    membrane = tiny_stack.membranes.astype(np.float32)
    scores = score_methods(block, block.reference(), membrane, ["watershed"], device="cpu")
    assert list(scores) == ["watershed"] and 0 <= scores["watershed"].are < 0.5


def test_baseline_rows_score_the_watershed_and_the_propagation(block, tiny_stack):
    membrane = tiny_stack.membranes.astype(np.float32)
    errors, objects = slice_watershed(membrane, block.gt, [0, 1])
    assert len(errors) == 2 and all(0 <= e < 0.5 for e in errors) and min(objects) > 1
    cells = [c.strip() for c in propagation_row("tiny", block, membrane, "true").split("|")]
    assert cells[1:3] == ["tiny", "true"] and len(cells) == 8  # 6 cells between 7 bars
    assert float(cells[3]) < score(block.reference(), block.gt).are  # beats the bare reference


def test_the_agglomeration_grid_scores_each_setting(block, tiny_stack):
    membrane = tiny_stack.membranes.astype(np.float32)
    rows = agglomeration_grid(block, [(1.0, 0.5), (1.0, 0.99)], membrane=membrane)
    assert [r[:2] for r in rows] == [(1.0, 0.5), (1.0, 0.99)]
    assert all(0 <= r[2] <= 1 and r[3] >= 1 for r in rows)


def test_a_pixel_rule_row_scores_the_map_and_each_rule(block):
    rules = {"watershed, sizes in nm": ("watershed", {})}
    resample, seconds, vrand, agglomerated, errors = pixel_rule_row(
        block, model="ridge", resample=False, rules=rules
    )
    assert resample is False and seconds > 0 and 0 < vrand <= 1 and 0 <= agglomerated <= 1
    assert list(errors) == list(rules) and 0 <= errors["watershed, sizes in nm"] <= 1


@pytest.mark.slow
def test_the_resampling_row_scores_both_maps_and_the_propagation(block):
    row = resampling_row(block, "ridge")
    assert row["model"] == "ridge" and set(row["native_10nm"]) == {
        "vrand",
        "vinfo",
        "vrand_threshold",
    }
    assert 0 <= row["propagate_are"] <= 1 and row["propagate_seconds"] > 0
    assert "propagate_are" not in resampling_row(block, "ridge", propagate=False)


def test_the_figure_shows_the_best_network_beside_ridge():
    raw = np.arange(30 * 4).reshape(30, 2, 2).astype(float)
    maps = [("weak", 0.5, np.zeros((10, 2, 2))), ("strong", 0.9, np.full((10, 2, 2), 0.25))]
    panels = figure_panels(raw, raw, 27, np.ones((10, 2, 2)), maps)
    assert [t for t, _ in panels] == [
        "raw (slice 27)",
        "ridge",
        "strong",
        "labels (black = membrane)",
    ]
    np.testing.assert_array_equal(panels[0][1], raw[27])
    assert (panels[2][1] == 0.75).all() and (panels[1][1] == 0).all()


def test_propagation_rows_come_with_the_maps_seconds(block):
    ((rows, seconds),) = run_blocks([block], ["copy"], model="ridge")
    assert block.membrane is not None and seconds > 0
    assert len(rows) == 1 and rows[0].method.startswith("reference copied") and rows[0].are < 1


# -- blockwise --------------------------------------------------------------------------------


def test_every_blockwise_case_has_the_modes_the_report_compares(tmp_path):
    for name, case in CASES.items():
        commands = mode_commands(
            name, case, tmp_path / "i.tif", tmp_path / "i.zarr", tmp_path, workers=3
        )
        assert {"import-only", "single", "blockwise", "distributed"} <= set(commands)
        assert commands["distributed"][-4:] == ["--dask", "local", "--workers", "3"]
        outputs = {c[c.index("-o") + 1] for m, c in commands.items() if m != "import-only"}
        assert len(outputs) == len(commands) - 1  # no two modes write the same file


def test_agreement_compares_with_the_single_run():
    single = np.array([[[1, 1, 2, 2]]])
    found = agreement(
        {"single": single, "blockwise": single, "distributed": single + 5},
        ["blockwise", "distributed"],
    )
    assert found == {
        "blockwise_vs_single": 0.0,
        "distributed_vs_single": 0.0,
        "distributed_equals_blockwise": False,
    }


# -- the supervoxel study and the effort check ------------------------------------------------


def test_held_out_blocks_run_only_the_settings_chosen_on_training(block, tiny_stack, monkeypatch):
    block.membrane = tiny_stack.membranes.astype(np.float32)
    few = [sv_study.Setting(False, 1.0, 0.2), sv_study.Setting(True, 1.0, 0.3)]
    monkeypatch.setattr(sv_study, "grid", lambda *, waterz: few)
    ran = []
    real = sv_study.run_setting

    def recording(b, outputs, setting):
        ran.append((b.name, setting))
        return real(b, outputs, setting)

    monkeypatch.setattr(sv_study, "run_setting", recording)
    out = {m: (block.reference(), 0.1) for m in sv_study.METHODS}
    keys = ["gala-train", "gala-test", "isbi-train", "isbi-test"]
    blocks = {
        k: Block(k, block.image, block.gt, block.ref, block.voxel_size, membrane=block.membrane)
        for k in keys
    }
    sections, held = sv_study.run_study(blocks, dict.fromkeys(keys, out), waterz=False)
    assert [len(results) for _, results, _ in sections] == [3, 3]  # no vote + the grid
    for _, rows, chosen, default in held:
        settings = [r.setting for r in rows]
        assert settings[0] is None and next(iter(chosen)) in settings and default in settings
        assert set(settings) <= {None, *few, default}
    assert {name for name, _ in ran} == set(keys)


def test_the_effort_check_refuses_a_score_that_is_not_the_metrics(block):
    class Result:
        labels = block.reference()
        final_are = adapted_rand_error(block.reference(), block.gt)

    runs = {"tiny": [Start("a", "start", Result()), Start("d", "none")]}
    check_scores([block], runs)
    Result.final_are += 0.01
    with pytest.raises(AssertionError, match="tiny a"):
        check_scores([block], runs)


# -- the scripted proofreader's picks ---------------------------------------------------------


def test_the_merge_to_correct_is_the_largest_touching_pair():
    plane = np.zeros((6, 9), np.uint32)
    plane[:, :3], plane[:, 3:5], plane[:, 6:] = 1, 2, 3  # 3 touches nothing
    assert largest_touching_pair(plane) == (1, 2)
    with pytest.raises(RuntimeError, match="no touching"):
        largest_touching_pair(np.eye(3, dtype=np.uint32))


def test_neurons_to_trace_run_through_the_whole_stack_largest_first():
    truth = np.zeros((3, 4, 10), np.uint32)
    truth[:, :, :3], truth[:, :, 4:] = 1, 2
    truth[1, :3, 4:] = 5  # the largest on slice 1, but only there
    assert neurons_to_trace(truth, 1) == [1, 2]
    assert neurons_to_trace(truth, 0) == [2, 1]
    assert neurons_to_trace(truth, 0, count=1) == [2]
