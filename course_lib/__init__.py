"""course_lib: the library behind the course book on deep generative models and deep RL.

Submodules, one per chapter topic (the README's layout map says which equations):

- :mod:`course_lib.flows`: normalizing flows, NICE and RealNVP (Ch. 1); its image part
  :mod:`course_lib.flows.image` is also importable as ``course_lib.image_flows``.
- :mod:`course_lib.autoregressive`: PixelCNN, Gated PixelCNN, PixelRNN (Ch. 2).
- :mod:`course_lib.vae`: the ELBO, the VAE, IWAE, the pPCA check model (Ch. 3).
- :mod:`course_lib.rl`: policy gradients, ES, baselines and actor-critic, dynamic
  programming and Q-learning, DQN (Ch. 4-7), one module each, re-exported.

Shared pieces below them:

- :mod:`course_lib.training`: the one training core every trainer goes through.
- :mod:`course_lib.checks`: argument checkers; :mod:`course_lib.nets`: ``mlp``.
- :mod:`course_lib.pretrained`: shipped model files with an embedded SHA-256 digest (used by ``vae`` and ``autoregressive``).
- :mod:`course_lib.data`: MNIST (embedded subset and the official IDX files), preprocessing.
- :mod:`course_lib.latent`, :mod:`course_lib.widgets`: interpolation; live and kernel-free widgets.
- :mod:`course_lib.grading`: the fallback and the reference switch used by graded exercises.

The book's Sphinx extensions are not part of the library: they live in ``book/_ext/``.
"""

from course_lib._runtime import by_profile, get_device, profile, seed_everything, set_num_threads

__all__ = ["profile", "get_device", "seed_everything", "by_profile", "set_num_threads"]
__version__ = "0.1.0"
