"""A convolutional LSTM cell (Shi et al. 2015, without peephole connections)."""

import torch
import torch.nn.functional as F
from torch import nn

from napari_emseg.models.blocks import conv_with_shared

LSTMState = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: a single convolution over ``[x | h]`` gives the gates i, f, o, g.

    ``c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)`` and ``h = sigmoid(o) * tanh(c)``; the
    padding keeps the spatial size.

    Parameters
    ----------
    in_channels : int
        Channels of the input ``x``.
    hidden_channels : int
        Channels of the hidden and cell states.
    kernel_size : int
        Odd size of the gate convolution.

    Examples
    --------
    >>> cell = ConvLSTMCell(3, 8)
    >>> h, c = cell(torch.zeros(2, 3, 9, 7))
    >>> h.shape, c.shape
    (torch.Size([2, 8, 9, 7]), torch.Size([2, 8, 9, 7]))
    >>> h, c = cell(torch.zeros(2, 3, 9, 7), (h, c))
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels,
            4 * hidden_channels,
            kernel_size,
            padding=kernel_size // 2,
        )
        with torch.no_grad():
            # A forget-gate bias of 1 keeps the memory at the start of training (Jozefowicz 2015).
            self.gates.bias.zero_()
            self.gates.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def zero_state(self, x: torch.Tensor) -> LSTMState:
        """Zero ``(h, c)`` matching the batch size, size, dtype and device of ``x``."""
        shape = (x.shape[0], self.hidden_channels, *x.shape[-2:])
        zeros = x.new_zeros(shape)
        return zeros, zeros

    def input_gates(
        self, x: torch.Tensor, shared: torch.Tensor | None = None, at: int = 0
    ) -> torch.Tensor:
        """The input's share of the gate pre-activations (with the bias).

        The gate convolution is linear in ``[x | h]``, so it splits into a convolution of ``x``
        and one of ``h``. Inputs that do not depend on the recurrence (all objects of a frame)
        go through the first part in one batched call; only the ``h`` part is sequential.
        ``shared`` (B, S, h, w) are input channels common to the B * M rows of ``x`` from
        channel ``at`` on, left out of ``x`` (:func:`~napari_emseg.models.blocks.conv_with_shared`).
        """
        weight = self.gates.weight[:, : self.in_channels]
        if shared is not None:
            return conv_with_shared(x, shared, self.gates, at, weight)
        return F.conv2d(x, weight, self.gates.bias, padding=self.gates.padding)

    def step(self, input_gates: torch.Tensor, state: LSTMState | None = None) -> LSTMState:
        """Advance one step from precomputed :meth:`input_gates` (zero state when None)."""
        gates = input_gates
        if state is not None:
            weight = self.gates.weight[:, self.in_channels :]
            gates = gates + F.conv2d(state[0], weight, padding=self.gates.padding)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(g)
        if state is not None:
            c = c + torch.sigmoid(f) * state[1]
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> LSTMState:
        """Advance one step from ``state`` (zeros when None); returns the new ``(h, c)``."""
        return self.step(self.input_gates(x), state)
