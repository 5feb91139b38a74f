"""Masked convolutions, the shared model interface, PixelCNN and Gated PixelCNN, receptive fields.

Part of :mod:`course_lib.autoregressive` (see its docstring for the overview and references).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import checks

__all__ = [
    "causal_mask",
    "channel_mask",
    "MaskedConv2d",
    "AutoregressiveModel",
    "PixelCNN",
    "GatedPixelCNN",
    "bernoulli_nll",
    "input_gradient",
    "receptive_field",
    "MAX_SAMPLE_PIXELS",
]

MASK_TYPES = ("A", "B")

#: Default bound on the H x W pixels of one :meth:`AutoregressiveModel.sample` call (64 x 64):
#: sampling runs one network evaluation per pixel and channel, one after another.
MAX_SAMPLE_PIXELS = 64 * 64


# ----------------------------------------------------------------------------
# Masks (pure functions)
# ----------------------------------------------------------------------------
def _odd_kernel(kernel_size, name: str = "kernel_size") -> int:
    """``kernel_size`` as an odd positive int; errors name ``name`` (the caller's argument)."""
    k = checks.positive_int(name, kernel_size)
    if k % 2 == 0:
        raise ValueError(f"{name} must be odd (the centre is the current pixel), got {k}")
    return k


def causal_mask(kernel_size: int, mask_type: str) -> Tensor:
    """The spatial mask of a masked convolution: which kernel weights are kept.

    Rows above the centre are kept, and in the centre row the positions left
    of the centre. Mask ``"A"`` drops the centre (the pixel being predicted,
    used in the first layer); mask ``"B"`` keeps it (later layers, whose
    centre feature already excludes the pixel itself).

    Args:
        kernel_size: odd positive int k.
        mask_type: ``"A"`` or ``"B"``.

    Returns:
        bool tensor of shape (k, k); True marks a weight that is kept.

    Raises:
        ValueError: an even or non-positive ``kernel_size``; a ``mask_type`` other than "A"/"B".

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.4 and Figure 4.
    """
    k = _odd_kernel(kernel_size)
    checks.one_of("mask_type", mask_type, MASK_TYPES)
    c = k // 2
    mask = torch.zeros(k, k, dtype=torch.bool)
    mask[:c, :] = True
    mask[c, :c] = True
    if mask_type == "B":
        mask[c, c] = True
    return mask


def _groups(channels: int, color_groups: int) -> Tensor:
    """Colour group of each channel: contiguous blocks, ``c * groups // channels``."""
    return torch.arange(channels) * color_groups // channels


def channel_mask(in_channels: int, out_channels: int, kernel_size: int, mask_type: str, color_groups: int = 1) -> Tensor:
    """The full (C_out, C_in, k, k) mask of a masked convolution with colour groups.

    Channels are split into ``color_groups`` contiguous groups (R, G, B for
    ``color_groups=3``). Off-centre positions follow :func:`causal_mask`
    for every channel pair. At the centre, output group g sees input groups
    g' < g (mask "A") or g' <= g (mask "B"), so G is predicted from R, and B
    from R and G, of the same pixel.

    Args:
        in_channels, out_channels: positive ints, each at least ``color_groups``.
        kernel_size: odd positive int.
        mask_type: ``"A"`` or ``"B"``.
        color_groups: number of colour groups (1 for grey images).

    Returns:
        bool tensor of shape (out_channels, in_channels, k, k).

    Raises:
        ValueError: bad sizes (naming the argument), an even kernel, a bad mask_type.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.4 (Figure 4, right).
    """
    cin = checks.positive_int("in_channels", in_channels)
    cout = checks.positive_int("out_channels", out_channels)
    g = checks.positive_int("color_groups", color_groups)
    if cin < g:
        raise ValueError(f"in_channels must be at least color_groups={g}, got {cin}")
    if cout < g:
        raise ValueError(f"out_channels must be at least color_groups={g}, got {cout}")
    spatial = causal_mask(kernel_size, mask_type)
    k = spatial.shape[0]
    mask = spatial.expand(cout, cin, k, k).clone()
    mask[:, :, k // 2, k // 2] = False
    gin, gout = _groups(cin, g), _groups(cout, g)
    centre = gin[None, :] < gout[:, None] if mask_type == "A" else gin[None, :] <= gout[:, None]
    mask[:, :, k // 2, k // 2] = centre
    return mask


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution whose weights outside the causal mask are ignored.

    The mask is multiplied into the weight inside :meth:`forward` (a pure
    function of the stored weight), so no optimizer step and no edit of
    ``weight`` can break causality. ``weight.data *= mask`` done once at
    construction is not enough: a zeroed weight still gets a non-zero
    gradient (the loss depends on it linearly), so the first optimizer
    update makes it non-zero again (Chapter 2 measures this with one SGD
    step); loading foreign weights or a hand edit would do the same. Zero
    padding of k // 2 keeps the H x W resolution.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: odd int k.
        mask_type: ``"A"`` (first layer, excludes the current pixel) or ``"B"``.
        color_groups: colour groups (see :func:`channel_mask`).
        bias: add a bias.

    Shapes: input (B, C_in, H, W) -> output (B, C_out, H, W).

    Raises:
        ValueError: from :func:`channel_mask`.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.4.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, color_groups: int = 1, bias: bool = True):
        mask = channel_mask(in_channels, out_channels, kernel_size, mask_type, color_groups)
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.mask_type, self.color_groups = mask_type, color_groups
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type!r}, color_groups={self.color_groups}"


# ----------------------------------------------------------------------------
# Shared model interface: log_prob and sample
# ----------------------------------------------------------------------------
def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Negative log-likelihood of binary images under independent Bernoulli logits, per image.

    ``-sum_i [x_i log sigma(l_i) + (1 - x_i) log(1 - sigma(l_i))]`` over all
    channels and pixels, computed stably as binary cross-entropy with logits.

    Args:
        logits: (B, C, H, W) real logits.
        x: (B, C, H, W) tensor of 0s and 1s.

    Returns:
        (B,) NLL in nats.

    Raises:
        ValueError: shapes that differ or are not 4-D, or non-binary ``x``.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", eq. (1)-(2).
    """
    checks.tensor("logits", logits)
    checks.tensor("x", x)
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (B, C, H, W), got {tuple(logits.shape)}")
    if x.shape != logits.shape:
        raise ValueError(f"x must have the shape of logits {tuple(logits.shape)}, got {tuple(x.shape)}")
    checks.binary("x", x)
    bce = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return bce.flatten(1).sum(1)


class AutoregressiveModel(nn.Module):
    """Base of the four models: ``forward`` gives logits; ``log_prob`` and ``sample`` follow from it."""

    in_channels: int
    num_classes: int | None = None
    vertical_reach: int | None = None
    """How many rows above its own row a logit can depend on (None: unbounded, as in an RNN)."""
    _arch: dict
    """The constructor arguments (checked ints), which ``save_pretrained`` stores to rebuild the model."""

    def _check_x(self, x: Tensor, name: str = "x") -> Tensor:
        checks.tensor(name, x)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] < 2 or x.shape[3] < 2:
            raise ValueError(
                f"{name} must have shape (B, {self.in_channels}, H, W) with H, W >= 2, got {tuple(x.shape)}"
            )
        return x

    def _check_y(self, y, batch: int, name: str = "y") -> Tensor | None:
        """Labels (batch,) as an int64 tensor (None for an unconditional model); errors name ``name``."""
        if self.num_classes is None:
            if y is not None:
                raise ValueError(f"{name} must be None: this model has no num_classes (it is not class-conditional)")
            return None
        return checks.class_labels(name, y, batch, self.num_classes)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log-likelihood of binary images: (B, C, H, W) -> (B,) in nats, on the model's device.

        ``x`` and ``y`` may live on another device (a CPU batch for a model on a GPU):
        they are moved to the model's.

        Raises:
            ValueError: a wrong shape, non-binary ``x``, or a bad label ``y``.
        """
        self._check_x(x)
        checks.binary("x", x)
        y = self._check_y(y, x.shape[0])
        device = next(self.parameters()).device      # a CPU batch scored by a model on a GPU: move the batch
        kwargs = {} if y is None else {"y": y.to(device)}
        logits = self(x.to(device=device, dtype=self._dtype()), **kwargs)
        return -bernoulli_nll(logits, x.to(device=device, dtype=logits.dtype))

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @torch.no_grad()
    def sample(
        self,
        n: int,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        given: Tensor | None = None,
        generator: torch.Generator | None = None,
        y: Tensor | None = None,
        *,
        max_pixels: int | None = MAX_SAMPLE_PIXELS,
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw images pixel by pixel in raster order (channels in order inside a pixel).

        One network evaluation per pixel and channel still to be drawn: C*H*W
        sequential evaluations for an unconditional sample (784 for 28 x 28).
        Since every model here is causal, the logits of row i depend on rows
        <= i only; each evaluation runs on rows 0..i, which halves the work,
        and a convolutional model (finite ``vertical_reach``) only on the rows
        within its reach above row i.

        Because the cost grows with the image (a 512 x 512 image is 262,144
        sequential evaluations, hours on a CPU), images of more than
        ``max_pixels`` pixels H x W are refused unless asked for: by default
        at most :data:`MAX_SAMPLE_PIXELS` = 4,096 (64 x 64).

        Args:
            n: number of images (positive int).
            image_shape: (C, H, W) with C = ``in_channels`` and H, W >= 2.
            given: optional (n, C, H, W) tensor; NaN marks the pixels to sample,
                every other entry (0 or 1) is kept as given (completions).
            generator: the ``torch.Generator`` (on the CPU) for the Bernoulli
                draws; ``None``: the global one.
            y: (n,) integer labels, required when the model has ``num_classes``.
            max_pixels: refuse images with more than this many pixels H x W
                (a positive int); ``None``: no bound.
            temperature: each pixel is drawn from sigmoid(logit / temperature)
                (a positive float). 1 is the model's own distribution; below 1
                every conditional is sharpened towards its more likely value
                (reduced-temperature sampling, as for Glow: Kingma and Dhariwal
                2018, §3), which trades diversity for cleaner strokes. The
                log-likelihood is always that of temperature 1.

        Returns:
            (n, C, H, W) float tensor of 0s and 1s on the model's device.

        Raises:
            ValueError: ``n`` < 1; an ``image_shape`` that is not (``in_channels``, H, W)
                with H, W >= 2, or with more than ``max_pixels`` pixels; a bad ``y``;
                a ``given`` of the wrong shape or with known entries other than 0/1;
                a ``temperature`` that is not positive and finite.
            ArgumentTypeError (a TypeError and a ValueError): a non-int ``n``
                (``2.5``, ``True``) or ``max_pixels``, an ``image_shape`` that is not
                a tuple of ints, a ``given`` or ``y`` that is not a tensor, a
                ``generator`` that is not a ``torch.Generator``.

        References:
            van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §2 (sequential generation).
        """
        n = checks.positive_int("n", n)
        if not (isinstance(image_shape, (tuple, list)) and len(image_shape) == 3):
            raise checks.ArgumentTypeError(f"image_shape must be a (C, H, W) tuple of ints, got {image_shape!r}")
        c, h, w = (checks.positive_int("image_shape", v) for v in image_shape)
        if c != self.in_channels or h < 2 or w < 2:
            raise ValueError(f"image_shape must be ({self.in_channels}, H, W) with H, W >= 2, got {tuple(image_shape)}")
        if max_pixels is not None:
            max_pixels = checks.positive_int("max_pixels", max_pixels)
            if h * w > max_pixels:
                raise ValueError(
                    f"image_shape {tuple(image_shape)} has {h * w:,} pixels, more than max_pixels={max_pixels:,}: "
                    f"sampling runs {c * h * w:,} network evaluations one after another; pass a larger "
                    "max_pixels (or max_pixels=None) to sample it anyway"
                )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise checks.ArgumentTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator (the draws are made on the CPU), got one on {generator.device}")
        temperature = checks.positive_float("temperature", temperature)
        y = self._check_y(y, n)
        device, dtype = next(self.parameters()).device, self._dtype()
        if given is None:
            given = torch.full((n, c, h, w), float("nan"), device=device, dtype=dtype)
        else:
            checks.tensor("given", given)
            if given.shape != (n, c, h, w):
                raise ValueError(f"given must have shape {(n, c, h, w)}, got {tuple(given.shape)}")
            known = given[~torch.isnan(given)]
            if known.numel() and not bool(((known == 0) | (known == 1)).all()):
                raise ValueError("given must hold 0 or 1 at known pixels and NaN at the pixels to sample")
            given = given.to(device=device, dtype=dtype)
        unknown = torch.isnan(given)
        x = torch.where(unknown, torch.zeros_like(given), given)
        kwargs = {} if y is None else {"y": y.to(device)}
        was_training = self.training
        self.eval()
        try:
            for i in range(h):
                for j in range(w):
                    for ch in range(c):
                        todo = unknown[:, ch, i, j]
                        if not bool(todo.any()):
                            continue  # every image knows this pixel: no evaluation needed
                        # Row i's logits depend on rows <= i only, so the rows below can be left out;
                        # a convolutional model also ignores the rows above its vertical reach.
                        top = 0 if self.vertical_reach is None else max(0, i - self.vertical_reach)
                        p = torch.sigmoid(self(x[:, :, top : i + 1], **kwargs)[:, ch, i - top, j] / temperature)
                        u = torch.rand(n, generator=generator, device="cpu", dtype=torch.float32).to(device)
                        draw = (u < p.float()).to(dtype)
                        x[:, ch, i, j] = torch.where(todo, draw, x[:, ch, i, j])
        finally:
            self.train(was_training)
        return x


def _output_head(hidden: int, out_channels: int, color_groups: int) -> nn.Sequential:
    """ReLU, 1x1 (mask B), ReLU, 1x1 (mask B) -> logits, as in PixelRNN §4 (Table 2's output layers)."""
    return nn.Sequential(
        nn.ReLU(),
        MaskedConv2d(hidden, hidden, 1, "B", color_groups),
        nn.ReLU(),
        MaskedConv2d(hidden, out_channels, 1, "B", color_groups),
    )


# ----------------------------------------------------------------------------
# PixelCNN
# ----------------------------------------------------------------------------
class PixelCNN(AutoregressiveModel):
    """PixelCNN for binary images: a mask-A convolution, then mask-B layers with residual connections.

    Args:
        in_channels: image channels C (1 for binarized MNIST; 3 for binary
            colour, with colour groups R -> G -> B).
        hidden_channels: feature channels (at least ``in_channels``).
        num_layers: number of mask-B k x k layers after the first layer.
        kernel_size: odd kernel size k of the mask-B layers.
        first_kernel_size: odd kernel size of the mask-A first layer (the
            papers use 7).

    Shapes: ``forward``: (B, C, H, W) -> Bernoulli logits (B, C, H, W).

    Its receptive field has a blind spot: stacked masks never reach the
    pixels above and to the right beyond the first layer's reach
    (Conditional PixelCNN §2.2); :func:`receptive_field` shows it.

    Raises:
        ValueError: a size out of range (an even or non-positive kernel size,
            ``hidden_channels < in_channels``, ``num_layers < 0``); the message
            names the argument.
        ArgumentTypeError (a TypeError and a ValueError): a size that is not an int.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.4, Table 2.
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 32, num_layers: int = 6, kernel_size: int = 3, first_kernel_size: int = 7):
        super().__init__()
        self.in_channels = checks.positive_int("in_channels", in_channels)
        hidden = checks.positive_int("hidden_channels", hidden_channels)
        if hidden < self.in_channels:  # each colour group needs its own hidden channels
            raise ValueError(f"hidden_channels must be at least in_channels={self.in_channels} (one colour group each), got {hidden}")
        checks.nonnegative_int("num_layers", num_layers)
        _odd_kernel(kernel_size), _odd_kernel(first_kernel_size, "first_kernel_size")
        self._arch = dict(in_channels=self.in_channels, hidden_channels=hidden, num_layers=int(num_layers),
                          kernel_size=int(kernel_size), first_kernel_size=int(first_kernel_size))
        g = self.in_channels
        self.input_conv = MaskedConv2d(in_channels, hidden, first_kernel_size, "A", g)
        self.layers = nn.ModuleList(MaskedConv2d(hidden, hidden, kernel_size, "B", g) for _ in range(num_layers))
        self.head = _output_head(hidden, in_channels, g)
        self.vertical_reach = first_kernel_size // 2 + num_layers * (kernel_size // 2)

    def forward(self, x: Tensor, num_layers: int | None = None) -> Tensor:
        """Logits (B, C, H, W); ``num_layers`` truncates the stack (for receptive-field plots)."""
        h = self.input_conv(x)
        for layer in self.layers[:num_layers]:
            h = h + layer(F.relu(h))
        return self.head(h)


# ----------------------------------------------------------------------------
# Gated PixelCNN
# ----------------------------------------------------------------------------
def _down_shift(x: Tensor) -> Tensor:
    """Shift a (B, C, H, W) map down by one row (zeros in the first row)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def _right_shift(x: Tensor) -> Tensor:
    """Shift a (B, C, H, W) map right by one column (zeros in the first column)."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


def _gate(a: Tensor) -> Tensor:
    """The gated unit tanh(a_1) * sigmoid(a_2), splitting the channels in half (Conditional PixelCNN eq. 2)."""
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class _GatedLayer(nn.Module):
    """One gated layer: a vertical stack (rows above) and a horizontal stack (row to the left).

    The vertical convolution, a (k//2 + 1) x k kernel, covers rows i - k//2 .. i
    (all k columns) by padding the top only, so its output at row i has seen
    rows <= i; it reaches the horizontal stack shifted down one row (the term
    ``v_to_h(down_shift(v_pre))``, a 1 x 1 convolution added to the horizontal
    pre-activation), so the horizontal stack at (i, j) only sees rows < i from it. The horizontal convolution
    covers columns j - k//2 .. j of row i (for the first layer shifted right,
    so it sees only columns < j: mask A). No masks are needed: the kernel
    shapes and paddings make the dependence causal.
    """

    def __init__(self, in_ch: int, hidden: int, k: int, first: bool, num_classes: int | None):
        super().__init__()
        self.k, self.first = k, first
        self.v_conv = nn.Conv2d(in_ch, 2 * hidden, (k // 2 + 1, k))
        self.h_conv = nn.Conv2d(in_ch, 2 * hidden, (1, k // 2 + 1))
        self.v_to_h = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        self.h_out = nn.Conv2d(hidden, hidden, 1)
        self.embed = None if num_classes is None else nn.Embedding(num_classes, 2 * hidden)

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        k = self.k
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))
        h_in = _right_shift(h) if self.first else h
        h_pre = self.h_conv(F.pad(h_in, (k // 2, 0, 0, 0))) + self.v_to_h(_down_shift(v_pre))
        if self.embed is not None:
            e = self.embed(y)[:, :, None, None]
            v_pre, h_pre = v_pre + e, h_pre + e
        h_new = self.h_out(_gate(h_pre))
        return _gate(v_pre), (h_new if self.first else h + h_new)


class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN: vertical and horizontal stacks (no blind spot), gated units, residuals, optional labels.

    Args:
        in_channels: must be 1 (binary grey images).
        hidden_channels: feature channels h per stack.
        num_layers: gated layers after the first (k_first x k_first) layer.
        kernel_size: odd kernel size k of the later layers.
        num_classes: when set, every layer adds a learned embedding of the
            label ``y`` inside the gates (class-conditional model).
        first_kernel_size: odd kernel size of the first layer (7 by default).

    Shapes: ``forward(x, y=None)``: (B, 1, H, W) [and (B,) labels] -> logits (B, 1, H, W).

    Raises:
        ValueError: ``in_channels`` other than 1, a size out of range (the
            message names the argument), a bad ``y``.
        ArgumentTypeError (a TypeError and a ValueError): a size that is not an int.

    References:
        van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
        Decoders", §2.1 (eq. 2, gated unit), §2.2 (Figure 2: stacks, blind
        spot), §2.3 (eq. 4, conditioning on a class).
    """

    def __init__(self, in_channels: int = 1, hidden_channels: int = 32, num_layers: int = 6, kernel_size: int = 3, num_classes: int | None = None, first_kernel_size: int = 7):
        super().__init__()
        if checks.positive_int("in_channels", in_channels) != 1:
            raise ValueError(f"in_channels must be 1 for GatedPixelCNN (binary grey images), got {in_channels}")
        self.in_channels = 1
        hidden = checks.positive_int("hidden_channels", hidden_channels)
        checks.nonnegative_int("num_layers", num_layers)
        _odd_kernel(kernel_size), _odd_kernel(first_kernel_size, "first_kernel_size")
        self.num_classes = None if num_classes is None else checks.positive_int("num_classes", num_classes)
        self._arch = dict(in_channels=1, hidden_channels=hidden, num_layers=int(num_layers), kernel_size=int(kernel_size),
                          num_classes=self.num_classes, first_kernel_size=int(first_kernel_size))
        self.layers = nn.ModuleList([_GatedLayer(1, hidden, first_kernel_size, True, self.num_classes)])
        self.layers.extend(_GatedLayer(hidden, hidden, kernel_size, False, self.num_classes) for _ in range(num_layers))
        self.head = _output_head(hidden, 1, 1)
        # the vertical stack reaches k//2 rows per layer; the shift into the horizontal stack adds one
        self.vertical_reach = 1 + first_kernel_size // 2 + num_layers * (kernel_size // 2)

    def forward(self, x: Tensor, y: Tensor | None = None, num_layers: int | None = None) -> Tensor:
        """Logits (B, 1, H, W); ``num_layers`` truncates the stack after that many later layers."""
        y = self._check_y(y, x.shape[0])
        v, h = x, x
        for layer in self.layers[: None if num_layers is None else num_layers + 1]:
            v, h = layer(v, h, y)
        return self.head(h)


# ----------------------------------------------------------------------------
# Receptive fields, by gradient
# ----------------------------------------------------------------------------
def _image_shape(image_shape, in_channels: int) -> tuple[int, int, int]:
    if not isinstance(image_shape, (tuple, list)):
        raise checks.ArgumentTypeError(f"image_shape must be an (H, W) or (C, H, W) tuple of ints, got {image_shape!r}")
    if len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {image_shape!r}")
    shape = tuple(checks.positive_int("image_shape", v) for v in image_shape)
    if len(shape) == 2:
        shape = (in_channels,) + shape
    if shape[0] != in_channels or shape[1] < 2 or shape[2] < 2:
        raise ValueError(f"image_shape must be ({in_channels}, H, W) with H, W >= 2, got {tuple(image_shape)}")
    return shape


def _is_index(value) -> bool:
    """An int, a NumPy integer or a 0-d integer tensor (not a bool, not a float such as 1.5)."""
    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pixel_and_channel(pixel, channel, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Check ``pixel`` = (row, column) and ``channel`` against a (C, H, W) image; return them as ints."""
    c, h, w = shape
    if isinstance(pixel, np.ndarray) and pixel.ndim == 1:
        pixel = tuple(pixel)
    if not (isinstance(pixel, (tuple, list)) and len(pixel) == 2 and all(_is_index(v) for v in pixel)):
        raise checks.ArgumentTypeError(f"pixel must be a (row, column) pair of ints, got {pixel!r}")
    row, col = int(pixel[0]), int(pixel[1])
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"pixel must be a (row, column) inside the {h} x {w} image, got {(row, col)!r}")
    if not _is_index(channel):
        raise checks.ArgumentTypeError(f"channel must be an int in 0..{c - 1}, got {channel!r} ({type(channel).__name__})")
    if not 0 <= int(channel) < c:
        raise ValueError(f"channel must be in 0..{c - 1}, got {channel!r}")
    return row, col, int(channel)


def input_gradient(model: nn.Module, pixel: tuple[int, int], image_shape, channel: int = 0, num_probes: int = 4, seed: int = 0, **forward_kwargs) -> Tensor:
    """|d logit(channel, pixel) / d x| summed over ``num_probes`` random inputs: (C, H, W), float64.

    Random real-valued inputs in [0, 1) are used so that no ReLU is off
    everywhere by accident; a zero entry means "no dependence" for every probe.

    Args:
        model: a module with ``forward(x, **forward_kwargs)`` -> logits of x's shape.
        pixel: (row, column) of the output pixel: ints (NumPy integers and
            0-d integer tensors too) with 0 <= row < H, 0 <= column < W.
        image_shape: (H, W) or (C, H, W).
        channel: the output channel whose logit is differentiated, an int in 0..C-1.
        num_probes, seed: number of random inputs (positive int) and their seed (int >= 0).

    Returns:
        (C, H, W) float64 tensor on the CPU, >= 0.

    Raises:
        ValueError: a pixel or channel outside the image, a bad image_shape,
            ``num_probes`` < 1, a negative ``seed``.
        ArgumentTypeError (a TypeError and a ValueError): a pixel that is not a
            pair of ints (``(1.5, 2)``), a channel that is not an int (``0.5``),
            a non-int ``num_probes`` or ``seed``.

    References:
        Conditional PixelCNN (van den Oord et al. 2016), §2.2, Figure 1 (right): the blind spot.
    """
    c, h, w = _image_shape(image_shape, getattr(model, "in_channels", 1))
    row, col, channel = _pixel_and_channel(pixel, channel, (c, h, w))
    num_probes = checks.positive_int("num_probes", num_probes)
    seed = checks.nonnegative_int("seed", seed)
    param = next(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(num_probes, c, h, w, generator=gen).to(device=param.device, dtype=param.dtype).requires_grad_(True)
    y = None
    if getattr(model, "num_classes", None) is not None and "y" not in forward_kwargs:
        y = torch.randint(model.num_classes, (num_probes,), generator=gen).to(param.device)
        forward_kwargs = {**forward_kwargs, "y": y}
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(x, **forward_kwargs)
            (grad,) = torch.autograd.grad(out[:, channel, row, col].sum(), x)
    finally:
        model.train(was_training)
    return grad.abs().sum(0).detach().to(torch.float64).cpu()


def receptive_field(model: nn.Module, pixel: tuple[int, int], image_shape, **kwargs) -> Tensor:
    """Where the input influences ``pixel``'s logit, measured by gradient.

    Args:
        model: one of this module's models (or any module mapping (B, C, H, W)
            to logits of the same shape).
        pixel: (row, column), ints inside the image (NumPy integers accepted).
        image_shape: (H, W) or (C, H, W).
        kwargs: passed to :func:`input_gradient` (``channel``, ``num_probes``,
            ``seed``, forward keywords such as ``num_layers``).

    Returns:
        bool tensor (H, W): True where some input channel at that position has
        a non-zero gradient.

    Raises:
        ValueError, ArgumentTypeError: as :func:`input_gradient` (naming
            ``pixel``, ``channel``, ``image_shape``, ...).

    References:
        Conditional PixelCNN (van den Oord et al. 2016), §2.2, Figure 1.
    """
    return input_gradient(model, pixel, image_shape, **kwargs).sum(0) > 0
