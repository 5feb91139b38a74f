"""Normalizing flows: NICE and RealNVP, written out layer by layer (Chapter 1).

A flow is an invertible map :math:`f` from data :math:`x` to a latent
:math:`z = f(x)` with a simple prior :math:`p_Z`. The change of variables
formula (Dinh et al. 2014, eq. 1) gives the exact log-likelihood

.. math::  \\log p_X(x) = \\log p_Z(f(x)) + \\log \\left|\\det \\frac{\\partial f(x)}{\\partial x}\\right|.

Conventions used by every bijection in this package:

======================  =====================================================
``forward(x)``          data side to latent side, returns ``(z, log_det)``
``inverse(z)``          latent side to data side, returns ``(x, log_det)``
``log_det``             shape ``(B,)``, nats, ``log|det d output / d input|``
``mask``                bool ``(D,)``; ``True`` marks the half that passes
                        through unchanged and conditions the other half
======================  =====================================================

Shapes: ``B`` is the batch size and ``D`` the data dimension (784 for MNIST).
Inputs are checked at the top of every public function (:mod:`course_lib.checks`):
a numpy array, a 1-D or 3-D tensor or a wrong ``D`` raises an error naming the
argument; float64 input to a float32 model is converted to the model's dtype.

Modules: :mod:`~course_lib.flows.core` (the coupling equations, priors, the
NICE log-likelihood, the layers and the NICE/RealNVP models),
:mod:`~course_lib.flows.training` (:class:`TrainConfig`, :func:`train`,
:func:`evaluate_log_likelihood`), :mod:`~course_lib.flows.image` (checkerboard
masks, the logit transform, ImageRealNVP, the K-draw dequantization bound; also
importable as ``course_lib.image_flows``), and the private
:mod:`~course_lib.flows._partition` (fast mask split/merge). Every public name
is importable from here.

References:
    L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components
    Estimation. arXiv:1410.8516, 2014.

    L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP.
    arXiv:1605.08803, 2016 (ICLR 2017).

    L. Theis, A. van den Oord, M. Bethge. A note on the evaluation of
    generative models. ICLR 2016, §3.1 (dequantization bound).
"""

from course_lib.flows import core, image, training
from course_lib.flows._partition import check_mask, partition  # noqa: F401
from course_lib.flows.core import *  # noqa: F401,F403
from course_lib.flows.core import (  # noqa: F401  (the module's own helpers, as before the split)
    PRIOR_STD,
    PRIORS,
    _as_float,
    _check_generator,
    _check_output,
    _Coupling,
    _param_dtype,
    _prior_log_prob,
    _relu_mlp,
)
from course_lib.flows.image import *  # noqa: F401,F403
from course_lib.flows.training import *  # noqa: F401,F403
from course_lib.flows.training import HISTORY_KEYS, _check_callable, _check_data, _check_flow  # noqa: F401

__all__ = core.__all__ + training.__all__ + image.__all__
