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


def test_isotropic_stacks_average_two_views_of_the_membrane_map_on_every_entry(monkeypatch):
    """Segment, propagate and the facade's predict_membrane ask the same views of the map: two
    for near-isotropic voxels (FIB-SEM), one for thick sections."""
    import napari_emseg.inference.membrane as inference

    views = []
    real = inference.predict_membrane

    def recorded(*args, **kwargs):
        views.append(kwargs.get("views", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_membrane", recorded)
    image = np.full((4, 32, 32), 200, np.uint8)
    image[:, :, 15:17] = 40
    labels = np.zeros(image.shape, np.uint32)
    labels[2] = 1 + (np.arange(32) > 16)[None, :]
    for voxel in ((10, 10, 10), (50, 4, 4)):
        views.clear()
        pipeline.segment(image, model="ridge", voxel_size=voxel)
        pipeline.propagate(image, labels, 2, model="ridge", voxel_size=voxel, calibrate=False)
        pipeline.predict_membrane(image, model="ridge", voxel_size=voxel)
        assert views == [pipeline.membrane_views(voxel)] * 3
    assert pipeline.membrane_views((10, 10, 10)) == pipeline.ISOTROPIC_MEMBRANE_VIEWS == 2
