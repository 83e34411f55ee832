"""The two humanoid tasks: stand and recover from pushes; track a commanded base velocity."""

from __future__ import annotations

import torch

from robot_rl.envs.registry import register_task
from robot_rl.envs.tasks.humanoid.base import HumanoidEnv
from robot_rl.envs.tasks.humanoid.config import HumanoidTaskConfig


@register_task("humanoid_balance", HumanoidTaskConfig, gym_id="robot_rl/HumanoidBalance-v0")
class HumanoidBalance(HumanoidEnv):
    """Stand on the spot (zero command) through random pushes; success = still standing at the
    time limit."""

    def _success(self) -> torch.Tensor:
        return self._survived()


@register_task("humanoid_walk", HumanoidTaskConfig, gym_id="robot_rl/HumanoidWalk-v0")
class HumanoidWalk(HumanoidEnv):
    """Track a commanded (vx, vy, yaw rate), redrawn every ``command_resample_s``; success =
    standing at the time limit with a mean planar velocity error under
    ``success_tracking_error``."""

    def _success(self) -> torch.Tensor:
        accurate = self.mean_tracking_error() < self.cfg.success_tracking_error
        return self._survived() & accurate

    def _episode_metrics(self, success: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adds ``tracking_error``: the episode's mean planar velocity error, m/s."""
        return {**super()._episode_metrics(success), "tracking_error": self.mean_tracking_error()}
