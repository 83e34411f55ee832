"""The batched environment contract every backend and task implements.

All tensors are batched over ``num_envs`` on ``self.device``. Finished envs reset automatically
inside :meth:`VecEnv.step`; the observation they finished with is kept in ``info["final_obs"]`` so
learners can bootstrap truncated episodes from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

Obs = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TensorSpec:
    """Shape (without the env dimension), dtype and, for actions, bounds of one tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    low: float | None = None
    high: float | None = None
    names: tuple[str, ...] | None = None


class VecEnv(ABC):
    """N environments stepped together.

    Attributes:
        num_envs: number of parallel environments N.
        device: device of every tensor this env takes and returns.
        observation_spec: per observation key: ``state`` float32 ``(N, state_dim)``, optional
            ``image`` uint8 ``(N, num_cameras*3, H, W)``, ``instruction`` int64 ``(N,)`` (an index
            into :attr:`instructions`).
        action_spec: float32 ``(N, action_dim)`` in ``[low, high]``.
        instructions: the language instruction of each task index.
        max_episode_steps: control steps before an episode is truncated.
        control_dt: seconds per control step.
    """

    num_envs: int
    device: torch.device
    observation_spec: dict[str, TensorSpec]
    action_spec: TensorSpec
    instructions: list[str]
    max_episode_steps: int
    control_dt: float

    @property
    def action_dim(self) -> int:
        return self.action_spec.shape[0]

    @abstractmethod
    def reset(self, seed: int | None = None) -> Obs:
        """Reset every env; ``seed`` fixes the whole future (resets, randomization, noise)."""

    @abstractmethod
    def step(
        self, action: torch.Tensor
    ) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Advance one control step.

        Args:
            action: Shape: ``(num_envs, action_dim)``, within the action bounds.

        Returns:
            obs: observations after the step (for finished envs: the first of the next episode).
            reward: Shape ``(num_envs,)`` float32, the weighted sum of ``info["reward_terms"]``.
            terminated: Shape ``(num_envs,)`` bool: the episode ended in an absorbing state
                (success or failure); do not bootstrap.
            truncated: Shape ``(num_envs,)`` bool: the time limit cut the episode; bootstrap from
                ``info["final_obs"]``.
            info: ``final_obs`` (obs dict; rows of finished envs hold their last observation),
                ``success`` (N,) bool, ``reward_terms`` {name: (N,)}, and ``episode`` with
                ``return``, ``length``, ``success`` (N,) and ``metrics`` (a dict of task-specific
                (N,) float measures, NaN where one does not apply) valid where
                ``terminated | truncated``.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources."""
