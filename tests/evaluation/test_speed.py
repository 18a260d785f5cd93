"""The engine benchmark (``napari-emseg benchmark``): stage split, user cases, child processes."""

import json

import pytest

from napari_emseg.evaluation import speed


def test_stage_split_groups_the_engine_stages_a_user_waits_through():
    seconds = {"membrane": 2.0, "reference": 0.5, "agglomeration": 1.0, "propagation": 3.0,
               "outline": 1.5, "vote": 0.25, "calibration": 0.0, "mystery": 0.75}  # fmt: skip
    split = speed.stage_split(seconds)
    assert split == {"membrane": 2.0, "start": 1.5, "propagation": 4.5, "vote": 0.25, "other": 0.75}
    assert sum(split.values()) == pytest.approx(sum(seconds.values()))


@pytest.mark.parametrize("what", ["segment", "propagate"])
def test_run_case_times_the_facade_with_its_stage_split(what):
    case = speed.run_case(what, (3, 48, 48), 10.0, device="cpu", repeats=2)
    assert case["repeats"] == 2 and case["seconds"] > 0 and case["first_s"] > 0
    assert case["peak_rss_mb"] > 50  # this process, torch loaded
    assert "membrane" in case["stage_split"] and "propagation" in case["stage_split"]
    assert sum(case["stage_split"].values()) <= case["first_s"] + case["seconds"]


def test_run_case_refuses_an_unknown_case():
    with pytest.raises(ValueError, match="segment or propagate"):
        speed.run_case("adapt", (3, 48, 48), 10.0)
    with pytest.raises(ValueError, match="unknown case"):
        speed.measure_case("segment_1x1x1")


def test_measure_case_runs_in_a_child_and_reports_its_json(monkeypatch):
    monkeypatch.setitem(speed.CASES, "tiny", ("segment", (2, 40, 40), 10.0))
    case = speed.measure_case("tiny", device="cpu")
    assert case["case"] == "tiny" and case["seconds"] > 0
    assert json.dumps(case)  # plain JSON, as the benchmark prints it


def test_child_failure_is_one_line(monkeypatch):
    monkeypatch.setitem(speed.CASES, "broken", ("adapt", (2, 40, 40), 10.0))
    with pytest.raises(RuntimeError, match="benchmark case broken failed: .*segment or propagate"):
        speed.measure_case("broken", device="cpu")


def test_a_case_with_sections_as_thin_as_its_pixels_times_the_fibsem_path(capsys):
    """``--section-nm 10`` at 10 nm pixels is a FIB-SEM stack: segment takes its 3D
    agglomeration start (thick sections take the learned propagator)."""
    speed._main(["segment", "4", "48", "48", "10", "--section-nm", "10", "--device", "cpu"])
    case = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert case["method"] == "agglomeration" and "agglomeration" in case["stage_seconds"]


def test_a_case_may_name_its_sections(monkeypatch):
    """A case's fourth field is its section thickness: the FIB-SEM case runs the agglomeration."""
    monkeypatch.setitem(speed.CASES, "tiny_fibsem", ("segment", (4, 48, 48), 10.0, 10.0))
    monkeypatch.setitem(speed.CASES, "tiny_thick", ("segment", (4, 48, 48), 10.0))
    assert speed.measure_case("tiny_fibsem", device="cpu")["method"] == "agglomeration"
    assert speed.measure_case("tiny_thick", device="cpu")["method"] != "agglomeration"
