"""Reinforcement learning: one module per chapter topic, re-exported here.

``from course_lib import rl`` then ``rl.train_reinforce(...)``: every public name of
the submodules is available from this package.

One module per chapter topic (each reads top to bottom; shared pieces sit below):

=================================  ======  ====================================================
module                             chapter  what is in it
=================================  ======  ====================================================
:mod:`~course_lib.rl.policy_gradient`  4-5  ``CategoricalPolicy``, ``GaussianPolicy``, ``ValueNetwork``,
                                           ``reward_to_go``, ``reinforce_loss``
:mod:`~course_lib.rl.reinforce`        4-5  ``ReinforceConfig`` (``baseline`` in ``BASELINES``), ``train_reinforce``
:mod:`~course_lib.rl.tabular`          4    ``TabularMDP``, ``tiny_mdp``, exact objective and gradients
:mod:`~course_lib.rl.es`               4    ``ESConfig``, ``train_es``, ``centered_ranks``, ``es_gradient_estimate``
:mod:`~course_lib.rl.advantage`        5    ``gae``, TD targets, n-step returns, ``optimal_baseline``,
                                           importance weights
:mod:`~course_lib.rl.variance`         5    exact variances of gradient estimators on the tiny MDP
:mod:`~course_lib.rl.actor_critic`     5    ``ActorCriticConfig``, ``train_actor_critic`` (A2C, PPO)
:mod:`~course_lib.rl.dynamic_programming` 6 Bellman backups, value/policy/Q-iteration
:mod:`~course_lib.rl.mdp`              6    ``FiniteMDP``, ``random_mdp`` (imported by ``dynamic_programming``)
:mod:`~course_lib.rl.value_based`      6    bandits, ε-greedy, ``q_learning``, SARSA, Baird's counterexample
:mod:`~course_lib.rl.fitted_q`         6    ``fitted_q_iteration``, ``collect_transitions``, ``evaluate_q_function``
                                           (imported by ``value_based``)
:mod:`~course_lib.rl.dqn`              7    ``td_target``, ``double_dqn_target``, ``linear_schedule``,
                                           ``QNetwork``, ``NatureCNN``, ``train_dqn``
:mod:`~course_lib.rl.replay`           7    ``ReplayBuffer``, ``sample_indices`` (imported by ``dqn``)
:mod:`~course_lib.rl.atari`            7    the Atari pipeline (``make_atari_env``)
:mod:`~course_lib.rl.envs`             4-7  vector envs (SAME_STEP autoreset), ``collect_batch``, ``evaluate``,
                                           ``rollout_episode``, ``env_generators``
=================================  ======  ====================================================

Symbols and shapes used in the docstrings (Spinning Up style):

======  =====================================================================
symbol  meaning
======  =====================================================================
``B``   batch of observations fed to the policy at once
``N``   number of trajectories (episodes) or of parallel environments
``T``   time steps (of one episode, or the horizon of a tabular MDP)
``S``   number of states of a tabular MDP
``A``   number of discrete actions
``D``   number of policy parameters (ES flattens them into one vector)
``P``   ES population size (``2 * num_pairs``, mirrored sampling)
``r_t`` reward received after the action at time ``t``
``G_t`` discounted reward-to-go ``sum_{k>=t} gamma^(k-t) r_k``
======  =====================================================================

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
