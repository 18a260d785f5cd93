"""Order-invariant soft-IoU loss for multi-object mask sequences (CConvLSTM, RVOS)."""

import torch
from scipy.optimize import linear_sum_assignment

_EPS = 1e-6  # makes an empty prediction of an empty target a perfect match (loss 0)


def soft_iou_loss(pred_probs: torch.Tensor, target: torch.Tensor, *, ndim: int = 2) -> torch.Tensor:
    """``1 - sum(p * g) / sum(p + g - p * g)`` per mask, over the last ``ndim`` dimensions.

    Parameters
    ----------
    pred_probs : Tensor
        Probabilities in [0, 1].
    target : Tensor, same shape
        0/1 ground-truth masks.
    ndim : int
        Trailing dimensions that form one mask (2 for (H, W), 3 for a (T, H, W) sequence).

    Returns
    -------
    Tensor
        The loss of every mask: the shape of the inputs without the last ``ndim`` dims.

    Examples
    --------
    >>> g = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    >>> soft_iou_loss(g, g).item()
    0.0
    >>> round(soft_iou_loss(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), g).item(), 3)
    0.5
    """
    if pred_probs.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred_probs.shape)} vs {tuple(target.shape)}")
    dims = tuple(range(-ndim, 0))
    target = target.to(pred_probs.dtype)
    inter = (pred_probs * target).sum(dims)
    union = (pred_probs + target).sum(dims) - inter
    return 1.0 - (inter + _EPS) / (union + _EPS)


def pairwise_soft_iou_loss(pred_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft-IoU loss of every predicted object against every ground-truth object.

    ``pred_probs`` (B, M, ...) and ``target`` (B, G, ...) give (B, M, G); each object's mask is
    everything after the object axis (for example a whole (T, H, W) sequence).

    Examples
    --------
    >>> g = torch.eye(2).view(1, 2, 2, 1)  # two one-pixel objects
    >>> pairwise_soft_iou_loss(g.flip(1), g)[0].round(decimals=3)
    tensor([[1., 0.],
            [0., 1.]])
    """
    p = pred_probs.flatten(2)
    g = target.to(p.dtype).flatten(2)
    inter = p @ g.transpose(1, 2)
    union = p.sum(-1)[:, :, None] + g.sum(-1)[:, None, :] - inter
    return 1.0 - (inter + _EPS) / (union + _EPS)


def matched_sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean soft-IoU loss after Hungarian matching of predicted to ground-truth objects.

    The cost of a pair is the soft-IoU loss over the whole sequence, so an object is matched
    once for all its frames and the loss does not depend on the order of the objects.

    Parameters
    ----------
    logits : Tensor (B, T, M, H, W)
        Mask logits of M predicted objects.
    targets : Tensor (B, T, G, H, W)
        0/1 masks of G ground-truth objects (G may differ from M; unmatched ones are ignored).

    Returns
    -------
    Tensor
        Scalar: the mean over the matched pairs of the batch.

    Examples
    --------
    >>> g = torch.zeros(1, 2, 2, 4, 4)
    >>> g[:, :, 0, :2] = 1
    >>> g[:, :, 1, 2:] = 1
    >>> logits = (g.flip(2) * 2 - 1) * 50  # confident, objects in the other order
    >>> matched_sequence_loss(logits, g).item()
    0.0
    """
    if logits.ndim != 5 or targets.ndim != 5:
        raise ValueError("logits and targets must be (B, T, M, H, W)")
    if logits.shape[:2] != targets.shape[:2] or logits.shape[3:] != targets.shape[3:]:
        raise ValueError(f"shapes differ: {tuple(logits.shape)} vs {tuple(targets.shape)}")
    # Objects first: (B, M, T, H, W) so one object's whole sequence is one mask.
    cost = pairwise_soft_iou_loss(torch.sigmoid(logits).transpose(1, 2), targets.transpose(1, 2))
    matched = []
    for b, c in enumerate(cost.detach().cpu().numpy()):
        rows, cols = linear_sum_assignment(c)
        matched.append(cost[b, torch.as_tensor(rows), torch.as_tensor(cols)])
    return torch.cat(matched).mean()
