"""Reinforcement learning: one module per chapter topic, re-exported here.

``from course_lib import rl`` then ``rl.train_reinforce(...)``: every public name of
the submodules is available from this package.

Chapter 4 of the book derives REINFORCE (Williams 1992; Sutton & Barto 2018,
Algorithm 13.3; CS182 notes section 7.2-7.3). This module is the RL half of the
library; chapters 5-7 (baselines, Q-iteration, DQN) build on the same pieces,
which are kept separate on purpose:


piece                                  function / class

network builder (reused by DQN)        :func:`mlp`
policy (parameters only, no state)     :class:`CategoricalPolicy`
state-value critic / learned baseline  :class:`ValueNetwork`
returns (pure math)                    :func:`reward_to_go`
loss (pure math)                       :func:`reinforce_loss`
rollout collection (env side)          :func:`make_vec_env`, :func:`collect_batch`,
                                       :func:`env_generators` (env RNGs for checkpoints)
training loop                          :class:`ReinforceConfig`, :func:`train_reinforce`
                                       (``baseline`` in :data:`BASELINES`)
evaluation / widget                    :func:`evaluate`, :func:`rollout_episode`
exact gradients on a tabular MDP       :class:`TabularMDP` (``(S*A)^H <= MAX_TRAJECTORIES``),
                                       :func:`tiny_mdp`,
                                       :func:`enumerate_trajectories`,
                                       :func:`exact_objective`,
                                       :func:`sample_trajectories`,
                                       :func:`reinforce_gradient_estimate`
DQN (Chapter 7)                        :class:`ReplayBuffer`, :func:`td_target` (V or Q),
                                       :func:`double_dqn_target`, :func:`linear_schedule`,
                                       :class:`QNetwork`, :class:`NatureCNN`, :class:`DQNConfig`,
                                       :func:`train_dqn`, :func:`make_atari_env`
evolution strategies                   :class:`ESConfig`, :func:`train_es`,
                                       :func:`centered_ranks`,
                                       :func:`es_gradient_estimate`


Symbols and shapes used in the docstrings (Spinning Up style):


symbol  meaning

``B``   batch of observations fed to the policy at once
``N``   number of trajectories (episodes) or of parallel environments
``T``   time steps (of one episode, or of a padded block of them)
``S``   number of states of a tabular MDP
``A``   number of discrete actions
``H``   horizon of a tabular MDP (every trajectory has exactly ``H`` steps)
``D``   number of policy parameters (ES flattens them into one vector)
``P``   ES population size (``2 * num_pairs``, mirrored sampling)
``r_t`` reward received after the action at time ``t``
``G_t`` discounted reward-to-go ``sum_{k>=t} gamma^(k-t) r_k``


Returns: *undiscounted return* means the plain sum of rewards of an episode (what
CartPole's "solved" criterion and every ``mean_return`` in a history refer to).
``gamma`` is only used inside the gradient estimator's weights.

Environments come from gymnasium (>= 1.0); vector environments are built with
``gymnasium.make_vec(..., vectorization_mode="sync")`` and SAME_STEP autoreset (see
:func:`make_vec_env`). Progress bars use tqdm. Nothing here plots.
"""

from course_lib.nets import mlp
from course_lib.rl.actor_critic import *  # noqa: F401,F403
from course_lib.rl.actor_critic import __all__ as _actor_critic_all
from course_lib.rl.advantage import *  # noqa: F401,F403
from course_lib.rl.advantage import __all__ as _advantage_all
from course_lib.rl.dynamic_programming import *  # noqa: F401,F403
from course_lib.rl.dynamic_programming import __all__ as _dp_all
from course_lib.rl.envs import *  # noqa: F401,F403
from course_lib.rl.envs import __all__ as _envs_all
from course_lib.rl.es import *  # noqa: F401,F403
from course_lib.rl.es import __all__ as _es_all
from course_lib.rl.policy_gradient import *  # noqa: F401,F403
from course_lib.rl.value_based import *  # noqa: F401,F403
from course_lib.rl.value_based import __all__ as _value_based_all
from course_lib.rl.policy_gradient import __all__ as _pg_all
from course_lib.rl.reinforce import *  # noqa: F401,F403
from course_lib.rl.reinforce import __all__ as _reinforce_all
from course_lib.rl.tabular import *  # noqa: F401,F403
from course_lib.rl.tabular import __all__ as _tabular_all
from course_lib.rl.variance import *  # noqa: F401,F403
from course_lib.rl.variance import __all__ as _variance_all
from course_lib.rl.dqn import *  # noqa: F401,F403  (after advantage: its td_target also takes Q(s', .))
from course_lib.rl.dqn import __all__ as _dqn_all
from course_lib.rl.atari import *  # noqa: F401,F403
from course_lib.rl.atari import __all__ as _atari_all

__all__ = ["mlp", *_pg_all, *_envs_all, *_reinforce_all, *_tabular_all, *_es_all, *_dp_all, *_value_based_all,
           *_advantage_all, *_variance_all, *_actor_critic_all,
           *[name for name in _dqn_all if name != "td_target"], *_atari_all]
