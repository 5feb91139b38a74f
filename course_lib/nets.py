"""Small network builders shared by every chapter (policies, critics, Q-networks, flows' couplings)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from course_lib import checks

__all__ = ["mlp"]




def mlp(
    sizes: Sequence[int],
    activation: type[nn.Module] = nn.Tanh,
    output_activation: type[nn.Module] | None = None,
) -> nn.Sequential:
    """Build a multilayer perceptron ``Linear -> act -> ... -> Linear [-> out_act]``.

    Shared by the policy here and by later chapters (the Q-network of DQN).

    Args:
        sizes: layer widths ``(in, hidden_1, ..., out)``, at least two positive ints.
        activation: module class put after every hidden ``Linear`` (default ``nn.Tanh``).
        output_activation: module class after the last ``Linear``, or ``None`` for none
            (logits / Q-values are unbounded).

    Shapes:
        the returned module maps ``(..., sizes[0])`` to ``(..., sizes[-1])``.

    Raises:
        ValueError: if ``sizes`` has fewer than two entries or a non-positive one.

    Source: the ``mlp`` helper of OpenAI Spinning Up (``spinup/algos/pytorch/vpg/core.py``).
    """
    sizes = checks.int_sizes("sizes", sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must have at least two entries (in, out), got {sizes!r}")
    layers: list[nn.Module] = []
    for j in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[j], sizes[j + 1]))
        last = j == len(sizes) - 2
        act = output_activation if last else activation
        if act is not None:
            layers.append(act())
    return nn.Sequential(*layers)


