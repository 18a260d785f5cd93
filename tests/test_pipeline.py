"""The facade: one set of defaults, voxel size and device rules for the CLI, widgets and API."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import napari_emseg
from napari_emseg import pipeline
from napari_emseg.io import Volume


def test_the_public_api_is_the_facade_and_lazy():
    for name in napari_emseg.__all__:
        assert getattr(napari_emseg, name) is not None
    assert napari_emseg.segment is pipeline.segment and napari_emseg.Volume is Volume
    with pytest.raises(AttributeError):
        napari_emseg.no_such_function  # noqa: B018
    code = (
        "import sys, napari_emseg; napari_emseg.list_models(); napari_emseg.read_volume; "
        "print(sorted(m for m in ('torch', 'napari', 'qtpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_imports_no_torch():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "napari_emseg", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert "segment" in out.stdout and "torch" not in imported and "napari" not in imported


def test_voxel_size_comes_from_the_volume_unless_given():
    volume = Volume(np.zeros((2, 4, 4), np.uint8), (40.0, 8.0, 8.0), "nm", False, "v")
    assert pipeline._unpack(volume, None)[1] == (40.0, 8.0, 8.0)
    assert pipeline._unpack(volume, (30, 5, 5))[1] == (30.0, 5.0, 5.0)
    unknown = Volume(np.zeros((2, 4, 4), np.uint8), (1.0, 1.0, 1.0), "pixel", False, "v")
    assert pipeline._unpack(unknown, None)[1] is None
    with pytest.raises(ValueError, match="three positive numbers"):
        pipeline._unpack(volume, (0, 4, 4))


def test_results_say_whether_the_voxel_size_was_estimated(tiny_stack, monkeypatch):
    """``voxel_estimated`` is True exactly when the facade estimated the size (with its note),
    False when the caller or the file gave it."""
    estimates = []

    def estimate(array, **kwargs):
        estimates.append(array.shape)
        return (40.0, 8.0, 8.0), "a test estimate"

    monkeypatch.setattr(pipeline, "estimate_voxel_size", estimate)
    image = tiny_stack.image[:3]
    reference = np.zeros(image.shape, np.uint32)
    reference[1] = tiny_stack.labels[1]
    plain = {"model": "ridge", "device": "cpu"}
    runs = {
        "segment": lambda **kw: pipeline.segment(image, propagation="watershed", **plain, **kw),
        "propagate": lambda **kw: pipeline.propagate(
            image, reference, 1, method="watershed", calibrate=False, **plain, **kw
        ),
        "repropagate": lambda **kw: pipeline.repropagate(
            image, reference, references=[1], method="watershed", calibrate=False, **plain, **kw
        ),
    }
    for name, run in runs.items():
        with pytest.warns(pipeline.VoxelSizeWarning, match="voxel size unknown: estimated"):
            estimated = run()
        assert estimated.voxel_estimated is True, name
        assert estimated.voxel_size == (40.0, 8.0, 8.0)
        assert any("a test estimate" in note for note in estimated.notes)
        given = run(voxel_size=(40, 8, 8))
        assert given.voxel_estimated is False, name
        assert not any("estimated" in note for note in given.notes)
    from_file = Volume(image, (40.0, 8.0, 8.0), "nm", False, "v")
    assert pipeline.segment(from_file, propagation="watershed", **plain).voxel_estimated is False
    assert len(estimates) == len(runs)  # only the runs without a size estimated it


def test_an_estimated_size_keeps_its_model_while_the_slice_chooses_the_size(
    tiny_stack, monkeypatch
):
    """Candidate sizes on both sides of the models' 5 nm limit are all predicted with the
    estimate's model, and so is the run: the search compares sizes, not networks."""
    from napari_emseg.inference import membrane as membrane_module
    from napari_emseg.models.cards import default_model

    real_predict = membrane_module.predict_membrane
    models = []

    def predict(stack, model=None, **kwargs):
        models.append(model)
        return real_predict(stack, model="ridge", **kwargs)

    monkeypatch.setattr(membrane_module, "predict_membrane", predict)
    monkeypatch.setattr(pipeline, "estimate_voxel_size", lambda a, **k: ((50.0, 4.4, 4.4), "t"))
    image = tiny_stack.image[:3]
    reference = np.zeros(image.shape, np.uint32)
    reference[1] = tiny_stack.labels[1]
    with pytest.warns(pipeline.VoxelSizeWarning):
        result = pipeline.propagate(image, reference, 1, method="watershed", device="cpu")
    assert result.calibration is not None and "pixel_nm" in result.calibration.choices
    assert default_model(4.4 * 1.25) != default_model(4.4)  # the search crosses the limit
    assert len(models) > 2 and set(models) == {default_model(4.4)}


def test_method_options_take_the_pixel_size_and_only_the_options_a_method_knows():
    assert pipeline.options_for("cconvlstm", (40.0, 8.0, 8.0)) == {"pixel_nm": 8.0}
    assert pipeline.options_for("watershed", (40.0, 8.0, 8.0), {"newcomers": False}) == {
        "pixel_nm": 8.0,
        "newcomers": False,
    }
    assert pipeline.options_for("cconvlstm", None, {"variant": "st"}) == {"variant": "st"}
    with pytest.raises(ValueError, match="the watershed method takes no option variant"):
        pipeline.options_for("watershed", None, {"variant": "stc"})


def test_implausible_voxel_sizes_are_refused_with_a_hint_about_units():
    with pytest.raises(ValueError, match="not micrometres"):
        pipeline.checked_voxel_size((0.05, 0.004, 0.004))
    with pytest.raises(ValueError, match="pixels at most 100 nm"):
        pipeline.checked_voxel_size((50, 400, 400))
    assert pipeline.checked_voxel_size((5000, 100, 100)) == (5000.0, 100.0, 100.0)


def test_widgets_read_the_voxel_size_from_the_layer_scale():
    from napari_emseg._widgets.viewer_session import ViewerSession

    from_scale = ViewerSession.scale_voxel_size
    assert from_scale(SimpleNamespace(scale=(40.0, 8.0, 8.0))) == (40.0, 8.0, 8.0)
    assert from_scale(SimpleNamespace(scale=(1.0, 1.0, 1.0))) is None
    assert from_scale(SimpleNamespace(scale=(4.0, 4.0))) == (1.0, 4.0, 4.0)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((2, 16, 16), np.nan, np.float32), "no finite values"),
        (np.full((2, 16, 16), 9, np.uint8), "constant"),
    ],
)
def test_images_with_nothing_to_segment_are_refused(image, message):
    with pytest.raises(ValueError, match=message):
        pipeline.segment(image, model="ridge", propagation="watershed")
    with pytest.raises(ValueError, match=message):
        pipeline.predict_membrane(image, model="ridge")


@pytest.mark.slow
def test_a_partly_nan_image_is_segmented_with_a_warning():
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    image = make_synthetic_stack((3, 48, 48), seed=3).image.astype(np.float32)
    image[0, :4] = np.nan
    with pytest.warns(UserWarning, match="NaN"):
        result = pipeline.segment(
            image, model="ridge", propagation="watershed", voxel_size=(50, 4, 4)
        )
    assert result.labels.max() > 0


def test_devices_are_checked_with_one_line_errors():
    assert pipeline.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        pipeline.resolve_device("tpu")
    with pytest.raises(ValueError, match="unknown device"):
        pipeline.resolve_device("cpu:1")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            pipeline.resolve_device("cuda:0")


def test_segment_starts_isotropic_volumes_with_3d_agglomeration(monkeypatch):
    from napari_emseg.propagation import agglomeration

    membrane = np.zeros((6, 40, 40), np.float32)
    membrane[:, :, 19:21] = 1.0  # one membrane plane: two cells through the whole stack
    labels = agglomeration.agglomerate(membrane, voxel_size=(10.0, 10.0, 10.0))
    assert labels.dtype == np.uint32 and len(np.unique(labels)) == 2
    assert labels[0, 5, 5] == labels[5, 5, 5] != labels[0, 5, 35]  # one 3D id per cell

    calls = []
    monkeypatch.setattr(agglomeration, "agglomerate", lambda m, **kw: calls.append(kw) or m > 2)
    image = (255 * (1 - membrane)).astype(np.uint8)
    result = pipeline.segment(image, model="ridge", voxel_size=(10, 10, 10))
    assert len(calls) == 1 and result.method == "agglomeration"  # auto: isotropic voxels
    pipeline.segment(image, model="ridge", voxel_size=(50, 4, 4), propagation="watershed")
    pipeline.segment(image, model="ridge", voxel_size=(10, 10, 10), propagation="watershed")
    assert len(calls) == 1  # thick sections, or a propagator asked for: one slice, propagated
    pipeline.segment(
        image, model="ridge", start="agglomeration", propagation="watershed", voxel_size=(8, 8, 8)
    )
    assert len(calls) == 2
    with pytest.raises(ValueError, match="unknown start"):
        pipeline.segment(image, model="ridge", start="magic", voxel_size=(8, 8, 8))


NETWORK = "fusionnet-w0.375-native"


def _maps_by_ridge(monkeypatch) -> list:
    """Record how each membrane map is asked for (views, planes); make it with the ridge."""
    import napari_emseg.inference.membrane as inference

    asked = []
    real = inference.predict_membrane

    def recorded(*args, **kwargs):
        asked.append((kwargs.get("views", 1), kwargs.get("planes", 1)))
        return real(*args, **{**kwargs, "model": "ridge"})

    monkeypatch.setattr(inference, "predict_membrane", recorded)
    return asked


def test_every_entry_makes_the_membrane_map_of_a_stack_the_same_way(monkeypatch):
    """Segment, propagate and the facade's predict_membrane ask the same views and planes of
    the map: a network sees three planes of isotropic voxels (FIB-SEM) of 16 slices or more, two
    rotations of the sections of thinner or less isotropic stacks, one view of thick sections;
    the classical model sees the sections."""
    asked = _maps_by_ridge(monkeypatch)
    cases = {
        ((10, 10, 10), 16, NETWORK): (1, 3),
        ((10, 10, 10), 4, NETWORK): (2, 1),
        ((20, 10, 10), 16, NETWORK): (2, 1),
        ((50, 4, 4), 16, NETWORK): (1, 1),
        ((10, 10, 10), 16, "ridge"): (2, 1),
    }
    for (voxel, depth, model), expected in cases.items():
        image = np.full((depth, 32, 32), 200, np.uint8)
        image[:, :, 15:17] = 40
        labels = np.zeros(image.shape, np.uint32)
        labels[2] = 1 + (np.arange(32) > 16)[None, :]
        asked.clear()
        pipeline.segment(image, model=model, voxel_size=voxel, device="cpu")
        pipeline.propagate(
            image, labels, 2, model=model, voxel_size=voxel, calibrate=False, device="cpu"
        )
        pipeline.predict_membrane(image, model=model, voxel_size=voxel, device="cpu")
        assert asked == [expected] * 3, (voxel, depth, model)
        assert tuple(pipeline.membrane_views(voxel, image.shape, model).values()) == expected


def test_the_agglomeration_threshold_follows_the_map_on_every_entry(monkeypatch):
    """A network's map averaged over three planes is cut lower (PLANES_THRESHOLD) than a map
    of the sections (DEFAULT_THRESHOLD; thin stacks, the classical model): by segment's start,
    by propagate without calibration and as the default a calibration keeps."""
    import importlib

    import napari_emseg.propagation.agglomeration as agglomeration

    # the package exports the function calibrate under the module's name
    calibration = importlib.import_module("napari_emseg.calibration.calibrate")
    seen = []
    real_cut, real_propagate = agglomeration.agglomerate, agglomeration.propagate_agglomeration
    real_choose = calibration.choose_threshold

    def cut(*args, **kwargs):
        seen.append(("segment", kwargs["threshold"]))
        return real_cut(*args, **kwargs)

    def propagated(*args, **kwargs):
        seen.append(("propagate", kwargs["threshold"]))
        return real_propagate(*args, **kwargs)

    def choose(*args, **kwargs):
        seen.append(("calibrate", kwargs["default"]))
        return real_choose(*args, **kwargs)

    monkeypatch.setattr(agglomeration, "agglomerate", cut)
    monkeypatch.setattr(agglomeration, "propagate_agglomeration", propagated)
    monkeypatch.setattr(calibration, "choose_threshold", choose)
    _maps_by_ridge(monkeypatch)
    for depth, model, expected in (
        (16, NETWORK, agglomeration.PLANES_THRESHOLD),
        (8, NETWORK, agglomeration.DEFAULT_THRESHOLD),
        (16, "ridge", agglomeration.DEFAULT_THRESHOLD),
    ):
        image = np.full((depth, 48, 48), 200, np.uint8)
        image[:, ::8], image[:, :, ::8] = 40, 40
        labels = np.zeros(image.shape, np.uint32)
        labels[2] = np.arange(48)[:, None] // 8 * 8 + np.arange(48) // 8 + 1
        seen.clear()
        voxel = (10, 10, 10)
        pipeline.segment(image, model=model, voxel_size=voxel, device="cpu")
        pipeline.propagate(
            image, labels, 2, model=model, voxel_size=voxel, calibrate=False, device="cpu"
        )
        pipeline.calibrate(image, labels, [2], model=model, voxel_size=voxel, device="cpu")
        assert seen == [("segment", expected), ("propagate", expected), ("calibrate", expected)]
    assert agglomeration.PLANES_THRESHOLD < agglomeration.DEFAULT_THRESHOLD
