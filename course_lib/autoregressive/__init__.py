"""Autoregressive image models: masked convolutions, PixelCNN, Gated PixelCNN, Row LSTM, Diagonal BiLSTM.

Every model here factorizes the probability of a binary image in raster order
(row by row, left to right, and channel by channel inside a pixel),

    log p(x) = sum_i log p(x_i | x_<i),

and predicts one Bernoulli logit per pixel (and channel). ``forward(x)`` gives
all the logits in one parallel pass over a complete image; causality (logit i
never depends on x_j for j >= i) is what makes that pass a valid likelihood,
and :func:`receptive_field` checks it by gradient. Sampling is sequential:
one network evaluation per pixel (:meth:`AutoregressiveModel.sample`, which refuses
images of more than :data:`MAX_SAMPLE_PIXELS` = 64 x 64 pixels unless given ``max_pixels``).

Modules: :mod:`~course_lib.autoregressive.core` (masks, PixelCNN, Gated
PixelCNN, receptive fields), :mod:`~course_lib.autoregressive.pixelrnn` (Row
LSTM, Diagonal BiLSTM), :mod:`~course_lib.autoregressive.attention` (causal
self-attention over pixels), :mod:`~course_lib.autoregressive.made` (MADE, masked
dense layers), :mod:`~course_lib.autoregressive.training` (data,
evaluation, training), :mod:`~course_lib.autoregressive.pretrained` (saved
and shipped models); every public name is importable from here.

================================  =====================================================
piece                             what it is
================================  =====================================================
:func:`causal_mask`               the (k, k) mask A / mask B of a masked convolution
:func:`channel_mask`              the (C_out, C_in, k, k) mask with colour groups
:class:`MaskedConv2d`             an ``nn.Conv2d`` whose mask is applied in ``forward``
:class:`PixelCNN`                 mask A, then mask-B layers (has a blind spot)
:class:`GatedPixelCNN`            vertical + horizontal stacks, gates, residuals, labels
:class:`RowLSTM`                  row-by-row LSTM, triangular receptive field
:class:`DiagonalBiLSTM`           skewed, two-direction diagonal LSTM, full field
:class:`CausalSelfAttention2d`    masked self-attention over pixels (full, local 1-D, local 2-D)
:func:`made_degrees`              MADE's unit degrees (inputs: position in the order)
:func:`made_masks`                MADE's masks: >= between hidden layers, > at the output
:class:`MaskedLinear`             an ``nn.Linear`` whose fixed mask is applied in ``forward``
:class:`MADE`                     masked autoencoder for binary vectors (any order)
:func:`bernoulli_nll`             per-image negative log-likelihood from logits (nats)
:func:`receptive_field`           which inputs a pixel's logit depends on (by gradient)
:func:`train`                     maximum likelihood through ``course_lib.training``
:func:`evaluate_nll`              mean test NLL in nats per image
:func:`load_pretrained`           the shipped class-conditional Gated PixelCNN (or a saved model)
:func:`save_pretrained`           a model, its arguments and metadata, with a digest
================================  =====================================================

Units: log-likelihoods in nats per image; bits/dim = nats / (D ln 2) with
D = C * H * W. For binary data the NLL is an exact discrete log-probability,
not a bound.

References:
    A. van den Oord, N. Kalchbrenner, K. Kavukcuoglu, "Pixel Recurrent Neural
    Networks", ICML 2016 (arXiv:1601.06759): eq. (1)-(2) the factorization,
    §3.1 Row LSTM (eq. 3), §3.2 Diagonal BiLSTM, §3.4 masked convolution
    (masks A and B, Figure 4), Table 4 (binarized MNIST).
    A. van den Oord, N. Kalchbrenner, O. Vinyals, L. Espeholt, A. Graves,
    K. Kavukcuoglu, "Conditional Image Generation with PixelCNN Decoders",
    NeurIPS 2016 (arXiv:1606.05328): §2.1 gated unit (eq. 2), §2.2 blind spot,
    vertical and horizontal stacks (Figure 2), §2.3 conditioning (eq. 4).
"""


from course_lib.autoregressive import attention, core, made, pixelrnn, pretrained, training
from course_lib.autoregressive.attention import *  # noqa: F401,F403
from course_lib.autoregressive.core import *  # noqa: F401,F403
from course_lib.autoregressive.core import _GatedLayer, _down_shift  # noqa: F401  (shown in Chapter 2)
from course_lib.autoregressive.made import *  # noqa: F401,F403
from course_lib.autoregressive.pixelrnn import *  # noqa: F401,F403
from course_lib.autoregressive.pixelrnn import _DiagonalBiLSTMLayer, _RowLSTMLayer  # noqa: F401  (shown in Chapter 2)
from course_lib.autoregressive.training import *  # noqa: F401,F403
from course_lib.autoregressive.training import _epoch_draw  # noqa: F401
from course_lib.autoregressive.pretrained import *  # noqa: F401,F403

__all__ = core.__all__ + attention.__all__ + made.__all__ + pixelrnn.__all__ + training.__all__ + pretrained.__all__
