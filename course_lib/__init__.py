"""course_lib: the library behind the course book on deep generative models and deep RL.

Submodules:

- :mod:`course_lib.data`: MNIST (embedded subset and the official IDX files), preprocessing.
- :mod:`course_lib.flows`: normalizing flows (NICE, RealNVP).
- :mod:`course_lib.rl`: policy-gradient building blocks (REINFORCE, evolution strategies).
- :mod:`course_lib.widgets`: interactive and static (kernel-free) widgets.
- :mod:`course_lib.grading`: the fallback used by graded exercises.
"""

from course_lib._runtime import by_profile, get_device, profile, seed_everything, set_num_threads

__all__ = ["profile", "get_device", "seed_everything", "by_profile", "set_num_threads"]
__version__ = "0.1.0"
