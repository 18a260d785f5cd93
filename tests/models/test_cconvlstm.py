"""ConvLSTM cell, consistent ConvLSTM propagation network and its order-invariant loss."""

import numpy as np
import pytest
import torch

from napari_emseg.datasets.synthetic import make_synthetic_stack
from napari_emseg.models.cconvlstm import VARIANTS, CConvLSTMNet
from napari_emseg.models.convlstm import ConvLSTMCell
from napari_emseg.training.sequence_loss import matched_sequence_loss, soft_iou_loss


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convolutions run faster on one thread, and the CI machine is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_convlstm_cell_shapes_and_gradients():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 5)
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    h, c = cell(x)
    assert h.shape == c.shape == (2, 5, 7, 9)
    assert h.abs().max() < 1  # sigmoid * tanh
    h2, c2 = cell(x, (h, c))
    (h2.sum() + c2.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_convlstm_cell_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(1, 2, kernel_size=2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_runs_at_odd_sizes(variant):
    torch.manual_seed(0)
    net = CConvLSTMNet(in_channels=2, width=4, levels=3, hidden=4, variant=variant)
    frames = torch.randn(2, 3, 2, 13, 11)  # B, T, C, H, W: odd sizes need padding by 4
    masks = (torch.rand(2, 3, 13, 11) > 0.5).float()
    logits = net(frames, masks)
    assert logits.shape == (2, 3, 3, 13, 11)
    teacher = (torch.rand(2, 3, 3, 13, 11) > 0.5).float()
    assert net(frames, masks, teacher_masks=teacher).shape == (2, 3, 3, 13, 11)
    # Every parameter is used: gradients reach both directions and the reference skip.
    matched_sequence_loss(logits, teacher).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name


def test_variants_differ_in_modules():
    modules = {v: CConvLSTMNet(width=4, levels=2, hidden=4, variant=v).decoder[0] for v in VARIANTS}
    assert modules["st"].backward_cell is None and modules["st"].reference is None
    assert modules["stl"].backward_cell is not None and modules["stl"].reference is None
    assert modules["stn"].backward_cell is None and modules["stn"].reference is not None
    assert modules["stc"].backward_cell is not None and modules["stc"].reference is not None


@pytest.mark.parametrize("refine_full_res", [False, True])
def test_shared_frame_features_give_the_concatenated_inputs_result(refine_full_res):
    # Each decoder level convolves the frame's features once, not once per object: the result
    # must be the module's on the features concatenated into every object's input.
    torch.manual_seed(0)
    net = CConvLSTMNet(width=4, levels=2, hidden=4, variant="stc", refine_full_res=refine_full_res)
    level = net.decoder[0]
    up, features, previous = (
        torch.randn(2, 3, 4, 6, 6),
        torch.randn(2, 4, 6, 6),
        torch.rand(2, 3, 1, 6, 6),
    )
    with torch.no_grad():
        split = level(torch.cat([up, previous], dim=2), shared=features)[0]
        every_object = features[:, None].expand(-1, 3, -1, -1, -1)
        whole = level(torch.cat([up, every_object, previous], dim=2))[0]
    assert split.shape == (2, 3, 4, 6, 6)
    assert torch.allclose(split, whole, atol=1e-5)


@pytest.mark.parametrize(("variant", "sees_later_objects"), [("st", False), ("stl", True)])
def test_backward_recurrence_lets_an_object_see_later_objects(variant, sees_later_objects):
    torch.manual_seed(0)
    net = CConvLSTMNet(width=4, levels=2, hidden=4, variant=variant).eval()
    frames = torch.randn(1, 2, 1, 8, 8)
    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 0, :4] = 1
    changed = masks.clone()
    changed[0, 1, 4:, 4:] = 1  # only the last object's mask differs
    with torch.no_grad():
        first = net(frames, masks)[:, :, 0]
        first_changed = net(frames, changed)[:, :, 0]
    assert (not torch.allclose(first, first_changed)) == sees_later_objects


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="variant"):
        CConvLSTMNet(variant="xyz")
    net = CConvLSTMNet(width=4, levels=2, hidden=4)
    with pytest.raises(ValueError, match="channels"):
        net(torch.zeros(1, 2, 2, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="teacher_masks"):
        net(torch.zeros(1, 2, 1, 8, 8), torch.zeros(1, 1, 8, 8), teacher_masks=torch.zeros(1, 8, 8))


def _random_masks(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = (torch.rand(2, 3, 4, 6, 5, generator=g) > 0.6).float()
    logits = torch.randn(2, 3, 4, 6, 5, generator=g) * 3
    return logits, targets


def test_soft_iou_loss_edge_cases():
    g = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert torch.allclose(soft_iou_loss(g, g), torch.zeros(2))  # empty vs empty is perfect
    assert torch.allclose(soft_iou_loss(1 - g[:1], g[:1]), torch.ones(1))  # disjoint
    assert soft_iou_loss(g, g, ndim=3).shape == ()


def test_matched_loss_is_invariant_to_object_order():
    logits, targets = _random_masks(0)
    loss = matched_sequence_loss(logits, targets)
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(matched_sequence_loss(logits, targets[:, :, perm]), loss)
    assert torch.allclose(matched_sequence_loss(logits[:, :, perm], targets), loss)
    other = torch.tensor([1, 3, 0, 2])
    assert torch.allclose(matched_sequence_loss(logits[:, :, other], targets[:, :, perm]), loss)


def test_matched_loss_is_zero_when_perfect_and_larger_when_wrong():
    _, targets = _random_masks(1)
    perfect = torch.logit(targets.clamp(1e-7, 1 - 1e-7).double())  # sigmoid gives the targets
    assert matched_sequence_loss(perfect, targets.double()).item() < 1e-6
    wrong = matched_sequence_loss(-perfect, targets.double())
    assert wrong.item() > 0.5  # inverted masks still overlap other objects, so not 1
    noisy = perfect + torch.randn_like(perfect) * 20
    assert 0 < matched_sequence_loss(noisy, targets.double()).item() < wrong.item()


def test_matched_loss_gradients_reach_logits():
    logits, targets = _random_masks(2)
    logits.requires_grad_(True)
    matched_sequence_loss(logits, targets).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def _tiny_sequence() -> tuple[torch.Tensor, torch.Tensor]:
    """Three 32 x 32 frames and the masks (1, T, 3, H, W) of the three largest neurites."""
    stack = make_synthetic_stack((3, 32, 32), seed=1, n_neurites=6)
    ids, counts = np.unique(stack.labels[0], return_counts=True)
    keep = [i for i in ids[np.argsort(-counts, kind="stable")] if i][:3]
    image = torch.as_tensor(stack.image, dtype=torch.float32)
    frames = ((image - image.mean()) / image.std())[None, :, None]
    masks = torch.stack([torch.as_tensor(stack.labels == i) for i in keep], dim=1)
    return frames, masks[None].float()


def _mean_iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    inter = (pred & target).sum((-1, -2)).float()
    union = (pred | target).sum((-1, -2)).float().clamp(min=1)
    return (inter / union).mean().item()


@pytest.mark.slow
def test_tiny_model_overfits_a_tiny_sequence():
    torch.manual_seed(0)
    frames, masks = _tiny_sequence()
    truth = masks[:, 1:] > 0.5
    copy_iou = _mean_iou(masks[:, :-1] > 0.5, truth)
    assert copy_iou < 0.7  # the objects move: copying the previous mask is not enough

    net = CConvLSTMNet(width=8, levels=3, hidden=8, variant="stc")
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        logits = net(frames, masks[:, 0], teacher_masks=masks)
        loss = matched_sequence_loss(logits, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with torch.no_grad():  # free-running: frames 1..T-1 from the model's own previous masks
        pred = net(frames, masks[:, 0])[:, 1:] > 0
    assert _mean_iou(pred, truth) > 0.9
