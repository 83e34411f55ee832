"""The three arm tasks: reach a point, push the cube to a goal, pick the cube and place it."""

from __future__ import annotations

import math

import torch

from robot_rl.envs.registry import register_task
from robot_rl.envs.tasks.arm.base import CUBE_HALF, ArmEnv, ArmTaskConfig, tanh_closeness


@register_task("arm_reach", ArmTaskConfig, gym_id="robot_rl/ArmReach-v0")
class ArmReach(ArmEnv):
    """Move the tool centre point to a goal point in the air."""

    def _reward_terms(self, action: torch.Tensor, success: torch.Tensor) -> dict[str, torch.Tensor]:
        dist = (self.tcp_pos - self.goal).norm(dim=-1)
        return {"reach": tanh_closeness(dist, 0.1), **self._common_terms(success)}

    def _success(self) -> torch.Tensor:
        return (self.tcp_pos - self.goal).norm(dim=-1) < self.cfg.success_threshold


@register_task("arm_push", ArmTaskConfig, gym_id="robot_rl/ArmPush-v0")
class ArmPush(ArmEnv):
    """Push the cube (without lifting it) into a goal region on the table.

    Episode metric ``closest_goal_distance``: the closest the cube came to the goal (m, in the
    table plane) during the episode; a miss by how much (the success radius is
    ``success_threshold``)."""

    def __init__(
        self, cfg: ArmTaskConfig, num_envs: int, device: str = "cpu", seed: int | None = None
    ):
        super().__init__(cfg, num_envs, device, seed)
        self._closest = torch.full((num_envs,), math.inf, dtype=torch.float64, device=self.device)

    def _cube_goal(self) -> torch.Tensor:
        return (self.cube_pos[:, :2] - self.goal[:, :2]).norm(dim=-1)

    def _after_physics(self, ids: torch.Tensor | None = None) -> None:
        super()._after_physics(ids)
        if ids is None:
            torch.minimum(self._closest, self._cube_goal(), out=self._closest)
        else:  # a new episode starts where its cube was put
            self._closest[ids] = self._cube_goal()[ids]

    def _reward_terms(self, action: torch.Tensor, success: torch.Tensor) -> dict[str, torch.Tensor]:
        tcp_cube = (self.tcp_pos - self.cube_pos).norm(dim=-1)
        return {
            "reach_cube": tanh_closeness(tcp_cube, 0.05),
            "cube_to_goal": tanh_closeness(self._cube_goal(), 0.1),
            **self._common_terms(success),
        }

    def _success(self) -> torch.Tensor:
        on_table = self.cube_pos[:, 2] < CUBE_HALF + 0.01
        return (self._cube_goal() < self.cfg.success_threshold) & on_table

    def _episode_metrics(self, success: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"closest_goal_distance": self._closest.to(torch.float32, copy=True)}


@register_task("arm_pick_place", ArmTaskConfig, gym_id="robot_rl/ArmPickPlace-v0")
class ArmPickPlace(ArmEnv):
    """Grasp the cube, lift it, carry it to the goal and release it there."""

    def grasped(self) -> torch.Tensor:
        """(N,) bool: the cube is held between the fingers."""
        near = (self.tcp_pos - self.cube_pos).norm(dim=-1) < 0.02
        closed_on_cube = (self.gripper_opening - 2 * CUBE_HALF).abs() < 0.006
        return near & closed_on_cube

    def _reward_terms(self, action: torch.Tensor, success: torch.Tensor) -> dict[str, torch.Tensor]:
        tcp_cube = (self.tcp_pos - self.cube_pos).norm(dim=-1)
        cube_goal = (self.cube_pos - self.goal).norm(dim=-1)
        grasped = self.grasped().float()
        lift = ((self.cube_pos[:, 2] - CUBE_HALF) / 0.08).clamp(0, 1).to(torch.float32)
        return {
            "reach_cube": tanh_closeness(tcp_cube, 0.05),
            "grasp": grasped,
            "lift": grasped * lift,
            "cube_to_goal": tanh_closeness(cube_goal, 0.1),
            **self._common_terms(success),
        }

    def _success(self) -> torch.Tensor:
        at_goal = (self.cube_pos - self.goal).norm(dim=-1) < self.cfg.success_threshold
        released = self.gripper_opening > 2 * CUBE_HALF + 0.01
        resting = self.cube_linvel.norm(dim=-1) < 0.05
        return at_goal & released & resting
