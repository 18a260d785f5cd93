"""Consistent ConvLSTM propagation network (Gonda, Wei and Pfister, arXiv 2102.01021).

A frame encoder gives features at ``levels`` resolutions (full, 1/2, 1/4, ...). A hierarchical
decoder of consistent ConvLSTM modules, coarse to fine, predicts one mask per object per frame,
as in RVOS: the input of each module is ``[upsampled coarser output | 3x3-projected encoder
features | the object's previous-frame mask pooled to the level]`` (eq. 1); the recurrent state
passes from object ``m - 1`` to object ``m`` within a frame (spatial recurrence) and the hidden
state of object ``m`` from frame ``t - 1`` to ``t`` (temporal recurrence, eqs. 2-3). Variants:

- ``"st"``: one forward ConvLSTM over the objects (RVOS's spatio-temporal recurrence).
- ``"stl"``: local consistency, a forward and a backward ConvLSTM over the objects whose
  outputs are concatenated and mixed by a 1x1 convolution.
- ``"stn"``: non-local consistency, the output is convolved (3x3) together with the stored
  reference-frame output of the same object at that level (a residual skip).
- ``"stc"``: both (eq. 4), the paper's best model.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from napari_emseg.models.blocks import conv_with_shared, pad_to_multiple
from napari_emseg.models.cards import PROPAGATION_VARIANTS
from napari_emseg.models.convlstm import ConvLSTMCell

VARIANTS = PROPAGATION_VARIANTS


def _norm(channels: int) -> nn.GroupNorm:
    # Group norm, not batch norm: batches here are one sequence, and train/eval must agree.
    return nn.GroupNorm(math.gcd(4, channels), channels)


class _ResBlock(nn.Module):
    """x + two 3x3 conv-norm layers, then ReLU (the ResNet basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class FrameEncoder(nn.Module):
    """A small ResNet-style encoder trained from scratch; one feature map per level.

    Level 0 is at full resolution and each next level halves the size (2x2 max pooling).

    Examples
    --------
    >>> enc = FrameEncoder(1, [4, 8])
    >>> [f.shape[1:] for f in enc(torch.zeros(1, 1, 8, 8))]
    [torch.Size([4, 8, 8]), torch.Size([8, 4, 4])]
    """

    def __init__(self, in_channels: int, widths: list[int]):
        super().__init__()
        stages = []
        c_in = in_channels
        for k, c_out in enumerate(widths):
            stages.append(
                nn.Sequential(
                    nn.MaxPool2d(2) if k else nn.Identity(),
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    _norm(c_out),
                    nn.ReLU(inplace=True),
                    _ResBlock(c_out),
                )
            )
            c_in = c_out
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of ``x`` (N, C, H, W), finest first."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class CConvLSTM(nn.Module):
    """One decoder level: spatio-temporal ConvLSTM(s) over the objects of a frame.

    Inputs are stacked per object, ``x`` of shape (B, M, C, h, w), and the frame's own
    features, ``shared`` (B, S, h, w), are the same for all of its objects: the module's input
    is ``[x[:, :, :shared_at] | shared | x[:, :, shared_at:]]``, but the shared channels are
    convolved once per frame, not once per object. The spatial state ``(h, c)`` runs along the
    objects; the temporal hidden state of the same object at the previous frame enters as extra
    input channels (as in RVOS), one per direction.

    Parameters
    ----------
    in_channels, hidden : int
        Input channels per object (the shared ones included) and hidden channels.
    shared_at : int
        Where the shared channels sit among the input channels.
    local : bool
        Add a backward ConvLSTM over the objects (local consistency).
    non_local : bool
        Convolve the output together with the reference frame's output of the same object.
    """

    def __init__(
        self, in_channels: int, hidden: int, *, local: bool, non_local: bool, shared_at: int = 0
    ):
        super().__init__()
        self.hidden = hidden
        self.shared_at = shared_at
        self.forward_cell = ConvLSTMCell(in_channels + hidden, hidden)
        self.backward_cell = ConvLSTMCell(in_channels + hidden, hidden) if local else None
        self.merge = nn.Conv2d(2 * hidden, hidden, 1) if local else None
        self.reference = nn.Conv2d(2 * hidden, hidden, 3, padding=1) if non_local else None

    def _sweep(
        self,
        cell: ConvLSTMCell,
        x: torch.Tensor,
        temporal: torch.Tensor | None,
        order: range,
        shared: torch.Tensor | None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, m = x.shape[:2]
        h_time = x.new_zeros((b, m, self.hidden, *x.shape[-2:])) if temporal is None else temporal
        # Every object's input is known before the sweep: one batched convolution for all of
        # them; only the spatial state's share of the gates is computed object by object.
        gates = cell.input_gates(
            torch.cat([x, h_time], dim=2).flatten(0, 1), shared, self.shared_at
        )
        gates = gates.view(b, m, *gates.shape[1:])
        spatial = None  # zero state for the first object of the sweep
        outputs: list[torch.Tensor] = [x] * m  # placeholders, all overwritten
        for k in order:
            spatial = cell.step(gates[:, k], spatial)
            if valid is not None:  # a padding object passes on the zero state it got
                keep = valid[:, k].to(spatial[0].dtype)[:, None, None, None]
                spatial = (spatial[0] * keep, spatial[1] * keep)
            outputs[k] = spatial[0]
        return torch.stack(outputs, dim=1)

    def forward(
        self,
        x: torch.Tensor,
        temporal: tuple[torch.Tensor, torch.Tensor | None] | None = None,
        reference: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        shared: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor | None]]:
        """Process one frame.

        Parameters
        ----------
        x : Tensor (B, M, C, h, w)
            Per-object inputs, in the object order (without the ``shared`` channels).
        temporal : (Tensor, Tensor or None), optional
            Forward and backward hidden states of every object at the previous frame
            (B, M, hidden, h, w); None at the first frame.
        reference : Tensor (B, M, hidden, h, w), optional
            The ``local`` output of the reference frame; None means this frame is the reference.
        valid : Tensor (B, M) of bool, optional
            False for padding objects after a sample's real ones: the backward sweep reaches
            the last real object with a zero state, as if the padding were not there.
        shared : Tensor (B, S, h, w), optional
            The frame's input channels common to all objects (None: all are in ``x``).

        Returns
        -------
        out : Tensor (B, M, hidden, h, w)
            The module output.
        local : Tensor (B, M, hidden, h, w)
            The output before the non-local step (store it at the reference frame).
        states : (Tensor, Tensor or None)
            Forward and backward hidden states, the ``temporal`` input of the next frame.
        """
        t_fwd, t_bwd = (None, None) if temporal is None else temporal
        n = x.shape[1]
        h_fwd = self._sweep(self.forward_cell, x, t_fwd, range(n), shared)
        h_bwd = None
        local = h_fwd
        if self.backward_cell is not None and self.merge is not None:
            backward = range(n - 1, -1, -1)
            h_bwd = self._sweep(self.backward_cell, x, t_bwd, backward, shared, valid)
            local = self.merge(torch.cat([h_fwd, h_bwd], dim=2).flatten(0, 1))
            local = local.view_as(h_fwd)
        out = local
        if self.reference is not None:
            ref = local if reference is None else reference
            skip = self.reference(torch.cat([local, ref], dim=2).flatten(0, 1))
            out = local + skip.view_as(local)  # residual: the reference refines, never replaces
        return out, local, (h_fwd, h_bwd)


class _Refine(nn.Module):
    """A non-recurrent full-resolution step: two 3x3 convs per object, all objects at once.

    At full resolution the recurrent modules cost most of the compute; this refinement keeps
    the hierarchical decoder's input (coarser output, encoder features, previous mask) and
    sharpens the coarser levels' object masks at a fraction of the cost. As in
    :class:`CConvLSTM`, ``shared`` channels enter at ``shared_at``, convolved once per frame.
    """

    def __init__(self, in_channels: int, hidden: int, shared_at: int = 0):
        super().__init__()
        self.shared_at = shared_at
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(
        self, x: torch.Tensor, *_unused, shared: torch.Tensor | None = None, **_ignored
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        first, rest = self.body[0], self.body[1:]
        rows = x.flatten(0, 1)
        if rows.device.type == "cpu":
            rows, shared = _channels_last(rows), None if shared is None else _channels_last(shared)
        hidden = (
            first(rows) if shared is None else conv_with_shared(rows, shared, first, self.shared_at)
        )
        out = rest(hidden).view(*x.shape[:2], -1, *x.shape[-2:])
        return out, out, None


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last layout and, under autocast, already in its dtype (one copy).

    oneDNN's 3x3 convolutions of these few channels (12-13) at full resolution ran 1.6-2x
    faster from channels-last on the CPU, to the same values; the head inherits the layout.
    """
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return x.to(dtype=dtype, memory_format=torch.channels_last)


def _pool(masks: torch.Tensor, level: int) -> torch.Tensor:
    """(B, M, H, W) masks -> (B, M, 1, H / 2**level, W / 2**level) by average pooling."""
    b, m = masks.shape[:2]
    pooled = F.avg_pool2d(masks.flatten(0, 1)[:, None], 2**level) if level else masks[:, :, None]
    return pooled.view(b, m, 1, *pooled.shape[-2:])


def _up2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling of (B, M, C, h, w)."""
    up = F.interpolate(x.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=False)
    return up.view(*x.shape[:3], *up.shape[-2:])


class CConvLSTMNet(nn.Module):
    """Propagate object masks from a reference frame through a sequence of EM frames.

    Parameters
    ----------
    in_channels : int
        Channels of a frame: 1 (the EM image) or 2 (image and membrane probability).
    width : int
        Channels of the finest encoder level; level ``k`` has ``width * 2**k`` (at most
        ``8 * width``).
    levels : int
        Resolutions of the encoder and decoder (3 or 4 typical); sizes are padded to multiples
        of ``2**(levels - 1)`` and cropped back.
    hidden : int
        Hidden channels of every ConvLSTM and encoder adapter.
    variant : {"st", "stl", "stn", "stc"}
        Consistency: none, local (bidirectional over objects), non-local (reference skip), both.
    mask_prior : float
        The head predicts a correction to ``mask_prior * (2 * previous_mask - 1)`` (0 = the
        paper's plain head). Without this prior the order-invariant Hungarian loss lets output
        slot ``m`` drift to another object early in training, which breaks propagation (slot
        ``m`` must stay reference object ``m``, whose previous mask it is fed); with it, every
        slot starts as a copy of its own object and the matching stays the identity.
    refine_full_res : bool
        Replace the full-resolution CConvLSTM (level 0) by a non-recurrent refinement (two
        convolutions per object); the recurrent, consistent modules then run from 1/2 resolution
        down. About 4x less compute, which is what makes CPU training and inference practical.

    Examples
    --------
    >>> net = CConvLSTMNet(width=4, levels=2, hidden=4, variant="stc")
    >>> frames = torch.zeros(1, 3, 1, 11, 13)  # B, T, C, H, W; frame 0 is the reference
    >>> masks = torch.zeros(1, 2, 11, 13)  # B, M, H, W: two objects in frame 0
    >>> net(frames, masks).shape  # B, T, M, H, W mask logits
    torch.Size([1, 3, 2, 11, 13])
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 16,
        levels: int = 4,
        hidden: int = 32,
        variant: str = "stc",
        mask_prior: float = 3.0,
        refine_full_res: bool = False,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.in_channels = in_channels
        self.levels = levels
        self.variant = variant
        self.mask_prior = mask_prior
        self.refine_full_res = refine_full_res and levels > 1
        widths = [min(width * 2**k, 8 * width) for k in range(levels)]
        self.encoder = FrameEncoder(in_channels, widths)
        self.adapters = nn.ModuleList(nn.Conv2d(w, hidden, 3, padding=1) for w in widths)
        local, non_local = variant in ("stl", "stc"), variant in ("stn", "stc")
        # Each level's input is [coarser output | encoder features | previous mask]; the
        # features are the frame's, shared by its objects (``shared_at`` = the coarser width).
        # The coarsest level's "coarser output" is the pooled reference mask (1 channel): the
        # paper's h^0 of an object.
        up_channels = [1 if k == levels - 1 else hidden for k in range(levels)]
        self.decoder = nn.ModuleList(
            _Refine(2 * hidden + 1, hidden, shared_at=hidden)
            if k == 0 and self.refine_full_res
            else CConvLSTM(
                up_channels[k] + hidden + 1,
                hidden,
                local=local,
                non_local=non_local,
                shared_at=up_channels[k],
            )
            for k in range(levels)
        )
        self.head = nn.Conv2d(hidden, 1, 3, padding=1)

    @property
    def size_divisor(self) -> int:
        """Padded sizes are multiples of this."""
        return 2 ** (self.levels - 1)

    def forward(
        self,
        frames: torch.Tensor,
        reference_masks: torch.Tensor,
        *,
        teacher_masks: torch.Tensor | None = None,
        object_counts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask logits of every object in every frame.

        Parameters
        ----------
        frames : Tensor (B, T, C, H, W)
            Normalised frames; frame 0 is the reference frame.
        reference_masks : Tensor (B, M, H, W)
            The M object masks (0/1) of frame 0. M is fixed for the sequence; an object that
            disappears should get an empty mask.
        teacher_masks : Tensor (B, T, M, H, W), optional
            Ground-truth masks fed as the previous-frame masks (teacher forcing); without them
            each frame uses the sigmoid of the model's prediction for the frame before.
        object_counts : Tensor (B,) of int, optional
            Real objects of each sample; the slots after them are padding (empty masks) that
            change no real object's result, so samples of different object counts share a
            batch. Default: every slot is real.

        Returns
        -------
        Tensor (B, T, M, H, W)
            Logits. Frame 0 is predicted from its given masks (a reconstruction, which also
            trains the decoder); frames 1..T-1 are the propagation.
        """
        b, t_len, c, h, w = frames.shape
        if c != self.in_channels:
            raise ValueError(f"frames have {c} channels, the model expects {self.in_channels}")
        if reference_masks.ndim != 4 or reference_masks.shape[0] != b:
            raise ValueError(f"reference_masks must be (B, M, H, W), got {reference_masks.shape}")
        if reference_masks.shape[-2:] != (h, w):
            raise ValueError("reference_masks and frames differ in size")
        m = reference_masks.shape[1]
        if teacher_masks is not None and teacher_masks.shape != (b, t_len, m, h, w):
            raise ValueError(f"teacher_masks must be {(b, t_len, m, h, w)}")

        d = self.size_divisor
        pad = (0, -w % d, 0, -h % d)
        x = pad_to_multiple(frames.flatten(0, 1), d)
        features = [a(f) for a, f in zip(self.adapters, self.encoder(x), strict=True)]
        features = [f.view(b, t_len, *f.shape[1:]) for f in features]
        reference = F.pad(reference_masks.to(x.dtype), pad)  # zeros: no object in the padding
        teacher = None if teacher_masks is None else F.pad(teacher_masks.to(x.dtype), pad)
        seed = _pool(reference, self.levels - 1)
        valid = None
        if object_counts is not None:
            slots = torch.arange(m, device=object_counts.device)
            valid = (slots[None, :] < object_counts[:, None]).to(frames.device)

        temporal: list = [None] * self.levels
        stored: list[torch.Tensor | None] = [None] * self.levels
        previous = reference
        logits = []
        for t in range(t_len):
            up = seed
            out = seed
            for k in reversed(range(self.levels)):
                inputs = torch.cat([up, _pool(previous, k)], dim=2)
                out, local, temporal[k] = self.decoder[k](
                    inputs, temporal[k], stored[k], valid=valid, shared=features[k][:, t]
                )
                if t == 0:
                    stored[k] = local
                if k:
                    up = _up2(out)
            frame_logits = self.head(out.flatten(0, 1)).view(b, m, *out.shape[-2:])
            frame_logits = frame_logits + self.mask_prior * (2 * previous - 1)
            logits.append(frame_logits)
            if teacher is not None:
                previous = teacher[:, t]
            elif t > 0:
                # Detached: the paper fine-tunes on its own masks as inputs, not through them.
                previous = torch.sigmoid(frame_logits).detach()
        return torch.stack(logits, dim=1)[..., :h, :w]
