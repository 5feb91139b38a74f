"""Chapter 3: latent-variable models, the ELBO, the variational autoencoder and the IWAE bound.

Pieces, in the order the chapter uses them:

==========================================  =================================================
piece                                       function / class
==========================================  =================================================
Gaussian densities (pure math)              :func:`standard_normal_log_prob`,
                                            :func:`diag_gaussian_log_prob`
Bernoulli likelihood of binary pixels       :func:`bernoulli_log_prob`
discretized logistic of 8-bit grey levels   :func:`discretized_logistic_log_prob`
closed-form KL to the prior                 :func:`gaussian_kl`
the reparameterization trick                :func:`reparameterize`
stable ``log (1/k) sum_j exp(w_j)``         :func:`log_mean_exp`
gradient estimators of ``E_q[f(z)]``        :func:`reparameterization_gradient`,
                                            :func:`score_function_gradient`
posterior collapse diagnostic               :func:`active_units`
the exact check model (probabilistic PCA)   :class:`LinearGaussian`
the VAE (Bernoulli decoder)                 :class:`VAE`
a learned mixture prior (the prior hole)    :class:`MixturePriorVAE`, :class:`VampPriorVAE`
the conditional VAE (labels seen)           :class:`ConditionalVAE`
grey-level decoders (Gaussian, logistic)    :class:`GreyVAE`
binarized MNIST                             :func:`binarize_dynamic`, :func:`binarize_fixed`
training / evaluation                       :class:`VAEConfig`, :func:`train_vae`,
                                            :func:`evaluate_bounds`
shipped weights (embedded SHA-256)          :func:`save_pretrained`, :func:`load_pretrained`
                                            (the file format: :mod:`course_lib.pretrained`)
==========================================  =================================================

Shapes: ``B`` examples, ``D`` data dimensions (784 for MNIST), ``Z`` latent
dimensions, ``k`` importance samples. Units: every log-density, bound and KL
is in **nats per example** (natural log, summed over the D pixels or the Z
latent coordinates); a test negative log-likelihood of 90 means
``-log p(x) = 90`` nats for one 784-pixel digit.

References:
    D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
    arXiv:1312.6114 (eq. 3 the ELBO, eq. 10 the estimator, §2.4 the
    reparameterization, Appendix B the Gaussian KL).
    Y. Burda, R. Grosse, R. Salakhutdinov, "Importance Weighted Autoencoders",
    ICLR 2016, arXiv:1509.00519 (eq. 8 the k-sample bound, Theorem 1, §5.2
    active units, Table 1).
    I. Higgins et al., "beta-VAE", ICLR 2017 (eq. 4).
    T. Salimans, A. Karpathy, X. Chen, D. P. Kingma, "PixelCNN++", ICLR 2017,
    arXiv:1701.05517 (§2.1 and eq. 2: the discretized logistic).
    M. E. Tipping, C. M. Bishop, "Probabilistic Principal Component
    Analysis", JRSS B 1999 (eqs. 6 and 7: marginal and posterior).
"""


from course_lib.vae.core import *  # noqa: F401,F403
from course_lib.vae.core import __all__ as _core_all
from course_lib.vae.core import _location_scale  # noqa: F401  (graded tests disable it)
from course_lib.vae.training import *  # noqa: F401,F403
from course_lib.vae.training import __all__ as _training_all

__all__ = [*_core_all, *_training_all]
