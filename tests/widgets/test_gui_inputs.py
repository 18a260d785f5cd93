"""The inputs people give: a single 2D image, a 2D labels layer, a file without a voxel size."""

import numpy as np
import pytest
import tifffile
from gui_support import PROOFREAD, SEGMENT, wait_idle

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_a_2d_image_is_a_one_slice_stack_everywhere(
    make_napari_viewer, small_stack, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    image = viewer.add_image(small_stack.image[2], name="em")  # one 2D image
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    segment.session.model = "ridge"
    segment.image_layer.value = image
    segment.segment_button.native.click()
    wait_idle(qtbot, segment)
    labels = viewer.layers["em labels"]
    assert labels.data.shape == (1, 96, 96) and "a single slice" in segment.status.value
    segment.propagate_button.native.click()  # was: "must be the same 3D shape"
    assert not segment.busy and "nothing to propagate" in segment.status.value

    drawn = viewer.add_labels(np.zeros((96, 96), np.uint32), name="drawn")  # 2D "new labels"
    assert proofread.labels_layer.value is drawn
    drawn.paint((20, 20), 1)
    drawn.paint((70, 70), 2)
    proofread.object.value, proofread.other.value = 1, 2
    proofread.buttons["merge"].native.click()
    assert set(np.unique(drawn.data).tolist()) == {0, 1}
    drawn.undo()
    assert set(np.unique(drawn.data).tolist()) == {0, 1, 2}
    proofread.worklist.find_button.native.click()
    wait_idle(qtbot, proofread)
    assert "no suspicious place" in proofread.status.value
    written = proofread.export(tmp_path / "drawn.tif")
    assert tifffile.imread(written[0]).shape[-2:] == (96, 96)


def test_a_file_without_a_voxel_size_says_what_it_assumed(
    make_napari_viewer, small_stack, qtbot, tmp_path
):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, small_stack.image)  # no voxel size in the file
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(path), plugin="napari-emseg")
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    assert segment.voxel_size.widget.value == ""  # unknown, and shown so
    segment.session.model = "ridge"
    segment.method.value = "watershed"
    labels = viewer.add_labels(small_stack.labels.copy(), name="labels")
    segment.ref_slice.value = 2
    segment.propagate_button.native.click()
    wait_idle(qtbot, segment)
    assert "voxels changed" in segment.status.value
    assert "note: voxel size unknown" in segment.status.value
    assert "voxel (nm) field" in segment.status.value  # where to give it, in the GUI
    assert labels.data.shape == image.data.shape
    field = segment.voxel_size.widget
    estimated = segment.session.estimated_voxel_size(image)
    assert estimated is not None and field.value == ""  # not typed: shown as estimated
    assert field.native.placeholderText().startswith("estimated ")
    assert segment.session.voxel_size(image) == estimated  # the next run uses the same size
    field.value = "50 4 4"  # the user knows better
    assert segment.session.voxel_size(image) == (50.0, 4.0, 4.0)
    assert segment.session.estimated_voxel_size(image) is None


def test_a_run_s_size_is_kept_as_estimated_only_when_the_result_says_so(make_napari_viewer):
    from napari_emseg import pipeline
    from napari_emseg._widgets.viewer_session import session_of_viewer

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((3, 8, 8), np.uint8), name="em")  # scale 1: size unknown
    session = session_of_viewer(viewer)

    def result(**kwargs):
        return pipeline.Propagation(np.zeros((3, 8, 8), np.uint32), voxel_size=(50, 4, 4), **kwargs)

    session.remember_estimate(image, result(notes=["the voxel size was estimated elsewhere"]))
    assert session.estimated_voxel_size(image) is None  # the flag decides, not a note's words
    session.remember_estimate(image, result(voxel_estimated=True))
    assert session.estimated_voxel_size(image) == (50.0, 4.0, 4.0)
    assert session.voxel_size(image) == (50.0, 4.0, 4.0)  # the next run uses the same size


def test_defaults_let_the_data_decide_and_calibration_can_be_switched_off(
    make_napari_viewer, qtbot
):
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    small_stack = make_synthetic_stack((4, 160, 160), seed=3)  # enough cells to calibrate on
    viewer = make_napari_viewer()
    viewer.add_image(small_stack.image, name="em", scale=small_stack.scale)
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    _, proofread = viewer.window.add_plugin_dock_widget(*PROOFREAD)
    assert segment.model.value == "auto" and segment.session.engine_model is None
    assert segment.method.value == "auto"  # as the CLI and the API: method by the data
    segment.session.model = "ridge"
    segment.method.value = "watershed"
    viewer.add_labels(small_stack.labels.copy(), name="labels")
    segment.ref_slice.value = 2
    segment.propagate_button.native.click()
    wait_idle(qtbot, segment)
    assert "calibrated vote_threshold" in segment.status.value  # choice and score shown
    proofread.calibrate.value = False
    assert segment.session.calibrate is False
    segment.labels_layer.value = viewer.add_labels(small_stack.labels.copy(), name="again")
    segment.propagate_button.native.click()
    wait_idle(qtbot, segment)
    assert "voxels changed" in segment.status.value and "calibrat" not in segment.status.value


def test_a_stack_whose_size_cannot_be_estimated_asks_for_it_in_the_field(make_napari_viewer, qtbot):
    rng = np.random.default_rng(0)
    viewer = make_napari_viewer()
    image = viewer.add_image(rng.integers(0, 255, (3, 64, 64), np.uint8), name="noise")
    _, segment = viewer.window.add_plugin_dock_widget(*SEGMENT)
    segment.image_layer.value = image
    segment.segment_button.native.click()
    wait_idle(qtbot, segment)
    assert "cannot be estimated" in segment.status.value
    assert "voxel (nm) field" in segment.status.value
    field = segment.voxel_size.widget.native
    assert "border" in field.styleSheet()  # the field that takes it is marked
    segment.voxel_size.widget.value = "50 4 4"
    assert field.styleSheet() == ""
