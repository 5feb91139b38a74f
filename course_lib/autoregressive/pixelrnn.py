"""PixelRNN: the Row LSTM and the Diagonal BiLSTM (van den Oord et al. 2016, §3.1-3.2).

Part of :mod:`course_lib.autoregressive`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import checks
from course_lib.autoregressive.core import AutoregressiveModel, MaskedConv2d, _down_shift, _odd_kernel, _output_head

__all__ = ["RowLSTM", "DiagonalBiLSTM", "skew", "unskew"]

# ----------------------------------------------------------------------------
# PixelRNN: Row LSTM and Diagonal BiLSTM
# ----------------------------------------------------------------------------
def _lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """[o, f, i, g] pre-activations (B, 4h, ...) and cell c -> (h, c) (PixelRNN eq. 3)."""
    o, f, i, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class _RowLSTMLayer(nn.Module):
    """Input-to-state: a 1 x k convolution over columns j - k//2 .. j of the same row (mask B).
    State-to-state: a width-k 1-D convolution over the previous row's hidden state."""

    def __init__(self, hidden: int, k: int = 3):
        super().__init__()
        self.k = k
        self.input_to_state = nn.Conv2d(hidden, 4 * hidden, (1, k // 2 + 1))
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, k, padding=k // 2, bias=False)
        self.out = nn.Conv2d(hidden, hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, hid, height, width = x.shape
        gates_x = self.input_to_state(F.pad(x, (self.k // 2, 0, 0, 0)))  # (B, 4h, H, W), computed in parallel
        h = x.new_zeros(b, hid, width)
        c = x.new_zeros(b, hid, width)
        rows = []
        for i in range(height):  # sequential over rows, parallel over the row's pixels
            h, c = _lstm_update(gates_x[:, :, i] + self.state_to_state(h), c)
            rows.append(h)
        return x + self.out(torch.stack(rows, dim=2))


class RowLSTM(AutoregressiveModel):
    """Row LSTM (PixelRNN §3.1): a 7x7 mask-A convolution, Row LSTM layers with residuals, 1x1 output layers.

    Each layer processes the image one row at a time; the state of row i
    comes from row i - 1 through a width-3 convolution, so the receptive
    field grows by one column per row upwards: a triangle, which misses
    context far to the left and right of the rows above.

    Args:
        in_channels: must be 1.
        hidden_channels: LSTM state size h.
        num_layers: Row LSTM layers.
        first_kernel_size: odd size of the mask-A input convolution (7).

    Shapes: ``forward``: (B, 1, H, W) -> logits (B, 1, H, W).

    Raises:
        ValueError: ``in_channels`` other than 1, a size out of range (an even
            ``first_kernel_size``, ``num_layers < 0``; the message names the argument).
        ArgumentTypeError (a TypeError and a ValueError): a size that is not an int.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.1 (eq. 3), Figure 2 (centre).
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 32, num_layers: int = 2, first_kernel_size: int = 7):
        super().__init__()
        if checks.positive_int("in_channels", in_channels) != 1:
            raise ValueError(f"in_channels must be 1 for RowLSTM (binary grey images), got {in_channels}")
        self.in_channels = 1
        hidden = checks.positive_int("hidden_channels", hidden_channels)
        checks.nonnegative_int("num_layers", num_layers)
        _odd_kernel(first_kernel_size, "first_kernel_size")
        self._arch = dict(in_channels=1, hidden_channels=hidden, num_layers=int(num_layers), first_kernel_size=int(first_kernel_size))
        self.input_conv = MaskedConv2d(1, hidden, first_kernel_size, "A")
        self.layers = nn.ModuleList(_RowLSTMLayer(hidden) for _ in range(num_layers))
        self.head = _output_head(hidden, 1, 1)

    def forward(self, x: Tensor, num_layers: int | None = None) -> Tensor:
        h = self.input_conv(x)
        for layer in self.layers[:num_layers]:
            h = layer(h)
        return self.head(h)


def skew(x: Tensor) -> Tensor:
    """Shift row i of a (B, C, H, W) map right by i: -> (B, C, H, W + H - 1), zeros elsewhere.

    After skewing, each column holds one anti-diagonal... of the original
    image read top-right to bottom-left; the pixel left of (i, j) and the
    pixel above it are both in the previous column (rows i and i - 1), so a
    column-by-column recurrence with a 2 x 1 kernel follows the diagonals.

    Raises:
        ValueError: ``x`` not 4-D.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.2 and Figure 3.
    """
    checks.tensor("x", x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(b, c, h * (w + h))[:, :, : h * (w + h - 1)]
    return flat.reshape(b, c, h, w + h - 1)


def unskew(x: Tensor, width: int) -> Tensor:
    """Invert :func:`skew`: (B, C, H, W + H - 1) -> (B, C, H, W).

    Raises:
        ValueError: a shape that is not the skew of a width-``width`` map.
    """
    checks.tensor("x", x)
    width = checks.positive_int("width", width)
    if x.ndim != 4 or x.shape[3] != width + x.shape[2] - 1:
        raise ValueError(f"x must have shape (B, C, H, width + H - 1) with width={width}, got {tuple(x.shape)}")
    b, c, h, _ = x.shape
    flat = F.pad(x.reshape(b, c, h * (width + h - 1)), (0, h))
    return flat.reshape(b, c, h, width + h)[:, :, :, :width]


class _DiagonalLSTM(nn.Module):
    """One direction: left to right along the diagonals of a skewed map.

    State-to-state is a 2 x 1 convolution over the previous skewed column
    (original pixels: the one to the left, rows i, and the one above, row i - 1).
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2, bias=False)

    def forward(self, gates_x: Tensor) -> Tensor:
        """(B, 4h, H, W) input-to-state pre-activations -> (B, h, H, W) hidden states."""
        b, four_h, height, width = gates_x.shape
        g = skew(gates_x)
        h = g.new_zeros(b, four_h // 4, height)
        c = torch.zeros_like(h)
        cols = []
        for j in range(g.shape[3]):
            h, c = _lstm_update(g[:, :, :, j] + self.state_to_state(F.pad(h, (1, 0))), c)
            cols.append(h)
        return unskew(torch.stack(cols, dim=3), width)


class _DiagonalBiLSTMLayer(nn.Module):
    """Two diagonal LSTMs: left-to-right, and right-to-left (on the mirrored map), the latter shifted down a row."""

    def __init__(self, hidden: int, raw_channels: int = 0):
        super().__init__()
        self.input_to_state = nn.Conv2d(hidden, 8 * hidden, 1)  # 1x1: mask B for grey images
        # The right-to-left direction is shifted down a row, so it may also read the raw
        # pixels of its own row (all in the past after the shift). Without this, exactly one
        # past pixel is missed (measured by gradient in Chapter 2, for every output pixel (i, j)
        # with j + k//2 < W - 1): x(i-1, W-1), the last pixel of the row above. The mask-A
        # feature at (i-1, j') holds x(i-1, <j') only, and no column lies right of W-1, so no
        # feature of row i-1 holds it; the left-to-right direction reaches row i's features
        # only at columns <= j, which hold row i-1 up to column j + k//2 only.
        self.raw_to_state = nn.Conv2d(raw_channels, 4 * hidden, 1, bias=False) if raw_channels else None
        self.left = _DiagonalLSTM(hidden)
        self.right = _DiagonalLSTM(hidden)
        self.out = nn.Conv2d(hidden, hidden, 1)

    def forward(self, x: Tensor, raw: Tensor | None = None) -> Tensor:
        gl, gr = self.input_to_state(x).chunk(2, dim=1)
        if self.raw_to_state is not None:
            gr = gr + self.raw_to_state(raw)
        h_left = self.left(gl)
        # The right-to-left state at (i, j) has seen (i, j+1..W): future pixels of row i.
        # Shifted down one row, pixel (i, j) receives the state of (i-1, j) instead: all past.
        h_right = _down_shift(self.right(gr.flip(3)).flip(3))
        return x + self.out(h_left + h_right)


class DiagonalBiLSTM(AutoregressiveModel):
    """Diagonal BiLSTM (PixelRNN §3.2): mask-A 7x7 convolution, bidirectional diagonal LSTM layers, 1x1 outputs.

    Receptive field: every pixel above and to the left of the current one in
    raster order (the whole context), at the cost of W + H - 1 sequential
    steps per direction and layer.

    Args:
        in_channels: must be 1.
        hidden_channels: LSTM state size h.
        num_layers: Diagonal BiLSTM layers.
        first_kernel_size: odd size of the mask-A input convolution (7).

    Shapes: ``forward``: (B, 1, H, W) -> logits (B, 1, H, W).

    Raises:
        ValueError: ``in_channels`` other than 1, a size out of range (an even
            ``first_kernel_size``, ``num_layers < 0``; the message names the argument).
        ArgumentTypeError (a TypeError and a ValueError): a size that is not an int.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.2, Figure 3.
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 32, num_layers: int = 2, first_kernel_size: int = 7):
        super().__init__()
        if checks.positive_int("in_channels", in_channels) != 1:
            raise ValueError(f"in_channels must be 1 for DiagonalBiLSTM (binary grey images), got {in_channels}")
        self.in_channels = 1
        hidden = checks.positive_int("hidden_channels", hidden_channels)
        checks.nonnegative_int("num_layers", num_layers)
        _odd_kernel(first_kernel_size, "first_kernel_size")
        self._arch = dict(in_channels=1, hidden_channels=hidden, num_layers=int(num_layers), first_kernel_size=int(first_kernel_size))
        self.input_conv = MaskedConv2d(1, hidden, first_kernel_size, "A")
        self.layers = nn.ModuleList(_DiagonalBiLSTMLayer(hidden, raw_channels=1 if i == 0 else 0) for i in range(num_layers))
        self.head = _output_head(hidden, 1, 1)

    def forward(self, x: Tensor, num_layers: int | None = None) -> Tensor:
        h = self.input_conv(x)
        for i, layer in enumerate(self.layers[:num_layers]):
            h = layer(h, raw=x if i == 0 else None)
        return self.head(h)
