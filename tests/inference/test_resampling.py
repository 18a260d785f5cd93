"""Resampling to a model's pixel size and back (issue #13)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_emseg.inference.membrane import predict_membrane
from napari_emseg.inference.resampling import (
    MAX_UPSAMPLING,
    back_to_shape,
    needs_resampling,
    to_pixel_size,
    work_pixel_nm,
)


def _smooth_stack(shape=(2, 90, 120)) -> np.ndarray:
    noise = np.random.default_rng(1).random(shape).astype(np.float32)
    return ndi.gaussian_filter(noise, (0, 6, 6)) * 10


@pytest.mark.parametrize("pixel_nm, target_nm", [(10.0, 4.0), (4.0, 10.0), (4.0, 6.0)])
def test_round_trip_keeps_a_smooth_image(pixel_nm, target_nm):
    image = _smooth_stack()
    there = to_pixel_size(image, pixel_nm, target_nm)
    expected_yx = tuple(round(n * pixel_nm / target_nm) for n in image.shape[1:])
    assert there.shape == (image.shape[0], *expected_yx)
    back = back_to_shape(there, image.shape)
    assert back.shape == image.shape and back.dtype == np.float32
    inner = (slice(None), slice(8, -8), slice(8, -8))  # edges interpolate from fewer samples
    error = np.abs(back[inner] - image[inner]).max()
    assert error < 0.05 * np.ptp(image), error


def test_shrinking_is_anti_aliased():
    # A one-pixel stripe pattern cannot be shown at a 2.5x coarser grid: an anti-aliased
    # resampling gives its mean, plain sampling would give a false pattern.
    stripes = np.zeros((1, 100, 100), np.float32)
    stripes[:, :, ::2] = 1.0
    coarse = to_pixel_size(stripes, 4.0, 10.0)
    assert np.ptp(coarse[:, 5:-5, 5:-5]) < 0.2
    assert abs(float(coarse.mean()) - 0.5) < 0.05


def test_z_is_never_resampled():
    with pytest.raises(ValueError, match="depth"):
        back_to_shape(np.zeros((3, 10, 10), np.float32), (4, 20, 20))
    assert to_pixel_size(np.zeros((7, 20, 20)), 8.0, 4.0).shape == (7, 40, 40)


def test_tolerance():
    assert not needs_resampling(4.3, 4.0) and needs_resampling(4.6, 4.0)
    assert not needs_resampling(None, 4.0) and not needs_resampling(10.0, None)


def test_membrane_network_sees_its_own_pixel_size(monkeypatch):
    """A one-size model (4 nm) sees a 10 nm stack enlarged by 1.25x at most (to 8 nm), a 2 nm
    stack shrunk to 4 nm; the map returns to the input grid."""
    seen = []

    def fake_tiled(net, stack, **_):
        seen.append(stack.shape)
        return np.full(stack.shape, 0.25, np.float32)

    monkeypatch.setattr("napari_emseg.inference.tiled.predict_tiled", fake_tiled)
    image = (np.random.default_rng(0).random((2, 40, 60)) * 255).astype(np.uint8)
    model = "unet-w0.1875-isbi"  # trained at 4 nm (its card says so)
    prob = predict_membrane(image, model=model, device="cpu", pixel_nm=10.0)
    assert seen[-1] == (2, 50, 75) and prob.shape == image.shape
    assert np.allclose(prob, 0.25)
    predict_membrane(image, model=model, device="cpu", pixel_nm=2.0)
    assert seen[-1] == (2, 20, 30)
    predict_membrane(image, model=model, device="cpu", pixel_nm=4.2)  # within tolerance
    predict_membrane(image, model=model, device="cpu", pixel_nm=10.0, resample=False)
    predict_membrane(image, model=model, device="cpu")  # unknown size: as it is
    assert seen[2:] == [(2, 40, 60)] * 3


def test_a_range_model_runs_stacks_in_its_range_at_their_own_size(monkeypatch, tmp_path):
    import dataclasses
    import json

    from napari_emseg.models.cards import get_card

    seen = []
    monkeypatch.setattr(
        "napari_emseg.inference.tiled.predict_tiled",
        lambda net, stack, **_: seen.append(stack.shape) or np.zeros(stack.shape, np.float32),
    )
    card = dataclasses.asdict(get_card("unet-w0.1875-isbi"))
    weights = get_card("unet-w0.1875-isbi").weights
    from napari_emseg.models.cards import weights_path

    card.update(name="ranged", pixel_range_nm=[4.0, 12.0])
    card["weights"] = str(weights_path(get_card("unet-w0.1875-isbi")))
    path = tmp_path / "ranged.json"
    path.write_text(json.dumps(card))
    assert weights
    image = np.zeros((1, 40, 60), np.uint8)
    for pixel, shape in [(10.0, (1, 40, 60)), (4.0, (1, 40, 60)), (2.0, (1, 20, 30))]:
        predict_membrane(image, model=str(path), device="cpu", pixel_nm=pixel)
        assert seen[-1] == shape


def test_work_pixel_size_never_enlarges_more_than_max_upsampling():
    for pixel in (3.0, 5.0, 11.0, 20.0, 60.0):
        work = work_pixel_nm(pixel, 4.0)
        assert pixel / work <= MAX_UPSAMPLING + 1e-9
        assert work_pixel_nm(pixel, None, (4.0, 12.0)) <= max(pixel, 4.0)
    assert work_pixel_nm(None, 4.0) is None


def test_two_views_are_the_mean_of_the_map_and_of_the_rotated_stacks_map():
    """``views=2`` averages the network's map of the stack and, rotated back, of the stack
    turned by 90 degrees; its progress goes once from 0 to the end."""
    stack = (_smooth_stack((2, 48, 48)) * 255).astype(np.uint8)
    one = predict_membrane(stack, pixel_nm=10.0)
    turned = np.ascontiguousarray(np.rot90(stack, 1, axes=(1, 2)))
    back = np.rot90(predict_membrane(turned, pixel_nm=10.0), -1, axes=(1, 2))
    calls = []
    two = predict_membrane(stack, pixel_nm=10.0, views=2, progress=lambda *a: calls.append(a))
    assert np.allclose(two, (one + back) / 2, atol=1e-6) and not np.allclose(two, one)
    fractions = [done / total for done, total, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] <= 0.5


def test_three_planes_are_the_mean_of_the_maps_of_the_sections_and_the_xz_and_yz_planes():
    """``planes=3`` averages the maps of the sections and of the xz and yz planes (each turned
    back; those across the sections with a shorter overlap), resampled like the sections (a 2 nm
    stack runs at 4 nm); progress runs once."""
    stack = (_smooth_stack((16, 24, 32)) * 255).astype(np.uint8)
    kwargs = {"model": "fusionnet-w0.375-multimodal", "pixel_nm": 2.0, "device": "cpu"}
    value_range = (float(stack.min()), float(stack.max()))
    maps = [predict_membrane(stack, value_range=value_range, **kwargs)]
    for axes in ((1, 0, 2), (2, 1, 0)):  # planes across the sections: a 16 px overlap
        turned = np.ascontiguousarray(stack.transpose(axes))
        maps.append(
            predict_membrane(turned, value_range=value_range, overlap=16, **kwargs).transpose(axes)
        )
    calls = []
    three = predict_membrane(
        stack, planes=3, value_range=value_range, progress=lambda *a: calls.append(a), **kwargs
    )
    assert three.shape == stack.shape
    assert np.allclose(three, np.mean(maps, axis=0), atol=1e-5)
    assert not np.allclose(three, maps[0], atol=1e-3)
    fractions = [done / total for done, total, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] <= 1 / 3


def test_too_thin_stacks_and_single_slices_use_the_sections_only():
    stack = (_smooth_stack((4, 32, 32)) * 255).astype(np.uint8)
    assert np.array_equal(predict_membrane(stack, planes=3), predict_membrane(stack))
    assert np.array_equal(predict_membrane(stack[0], planes=3), predict_membrane(stack[0]))
    with pytest.raises(ValueError, match="planes must be 1 or 3"):
        predict_membrane(stack, planes=2)
