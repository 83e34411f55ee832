"""Scripted experts of the arm tasks: phase machines in end-effector space, batched over envs."""

from __future__ import annotations

import torch

from robot_rl.core import ConfigError
from robot_rl.envs.experts.base import EXPERTS, Expert
from robot_rl.envs.ik import orientation_error, yaw_of
from robot_rl.envs.tasks.arm.base import CUBE_HALF, ArmEnv, down_orientation, wrap_to_quarter_turn
from robot_rl.envs.vec_env import Obs

OPEN, CLOSE = -1.0, 1.0


class ArmExpert(Expert):
    """Shared: turn a TCP target position, a hand yaw and a gripper command into an action."""

    env: ArmEnv
    GAIN = 0.5
    noise_free = (6,)  # the gripper command stays decisive; its timing already varies

    def _hesitate(self, a: torch.Tensor, pause: torch.Tensor) -> None:
        a[pause, :6] = 0.0  # the hand stops; the gripper keeps its command

    def __init__(
        self,
        env: ArmEnv,
        noise: float = 0.0,
        seed: int | None = None,
        bias: list[float] | tuple[float, ...] | None = None,
    ):
        if env.cfg.action_mode != "ee_delta":
            raise ConfigError(
                f"the arm experts act in end-effector space; task action_mode is "
                f"{env.cfg.action_mode!r}, expected 'ee_delta'"
            )
        super().__init__(env, noise=noise, seed=seed, bias=bias)

    def reset(self, ids: torch.Tensor | None = None) -> None:
        n = self.env.num_envs
        if ids is None or not hasattr(self, "phase"):
            self.phase = torch.zeros(n, dtype=torch.long, device=self.env.device)
            self.timer = torch.zeros(n, dtype=torch.long, device=self.env.device)
        else:
            self.phase[ids] = 0
            self.timer[ids] = 0

    def _to_action(
        self, target: torch.Tensor, yaw: torch.Tensor, grip: torch.Tensor
    ) -> torch.Tensor:
        env = self.env
        max_pos, max_rot = env.profile.max_ee_step
        # Gain 0.5: the joint target integrates the command and the arm lags it by about a step,
        # so a deadbeat gain of 1 would oscillate (poles on the unit circle); 0.5 puts them at 0.71.
        pos = self.GAIN * (target - env.tcp_pos) / max_pos
        # Saturate by the norm, not per axis, so the motion goes straight at the target.
        pos = pos / pos.norm(dim=-1, keepdim=True).clamp_min(1.0)
        rot = self.GAIN * orientation_error(env.tcp_mat, down_orientation(yaw)) / max_rot
        rot = rot / rot.norm(dim=-1, keepdim=True).clamp_min(1.0)
        return torch.cat([pos, rot, grip[:, None].to(pos.dtype)], dim=-1)

    def _hand_yaw(self) -> torch.Tensor:
        return yaw_of(self.env.tcp_mat)

    def _set(self, mask: torch.Tensor, phase: int) -> None:
        self.phase = torch.where(mask, torch.full_like(self.phase, phase), self.phase)
        self.timer = torch.where(mask, torch.zeros_like(self.timer), self.timer)


@EXPERTS.register("arm_reach")
class ReachExpert(ArmExpert):
    def _clean_action(self, obs: Obs) -> torch.Tensor:
        env = self.env
        grip = torch.full((env.num_envs,), OPEN, dtype=torch.float64, device=env.device)
        return self._to_action(env.goal, self._hand_yaw(), grip)


@EXPERTS.register("arm_push")
class PushExpert(ArmExpert):
    """0: fly above a point behind the cube; 1: descend; 2: push along cube→goal, re-approach if the
    cube slides off the fingers."""

    BEHIND = 0.065  # approach point, m behind the cube centre
    CONTACT = CUBE_HALF + 0.014  # tcp-to-cube-centre distance while pushing
    HIGH, LOW = 0.09, 0.02

    def _clean_action(self, obs: Obs) -> torch.Tensor:
        env = self.env
        tcp, cube, goal = env.tcp_pos, env.cube_pos, env.goal
        d = goal[:, :2] - cube[:, :2]
        dist = d.norm(dim=-1, keepdim=True)
        u = d / dist.clamp_min(1e-6)
        perp = torch.stack([-u[:, 1], u[:, 0]], dim=-1)
        rel = tcp[:, :2] - cube[:, :2]
        along, lateral = (rel * u).sum(-1), (rel * perp).sum(-1)

        # Phase transitions (evaluated before choosing targets).
        approach_xy = cube[:, :2] - u * self.BEHIND
        at_approach = (tcp[:, :2] - approach_xy).norm(dim=-1) < 0.012
        lost = (lateral.abs() > 0.02) | (along > -CUBE_HALF)
        self._set((self.phase == 0) & at_approach, 1)
        self._set((self.phase == 1) & (tcp[:, 2] < self.LOW + 0.012), 2)
        self._set((self.phase == 2) & lost, 0)

        z_high = torch.full_like(tcp[:, 2], self.HIGH)
        z_low = torch.full_like(tcp[:, 2], self.LOW)
        t0 = torch.cat([approach_xy, z_high[:, None]], dim=-1)
        # Descend only once above the approach point; keep xy there.
        t1 = torch.cat([approach_xy, z_low[:, None]], dim=-1)
        step = dist.clamp(max=0.02)
        push_xy = cube[:, :2] - u * self.CONTACT + u * step - perp * lateral[:, None]
        t2 = torch.cat([push_xy, z_low[:, None]], dim=-1)
        target = torch.where(
            (self.phase == 0)[:, None], t0, torch.where((self.phase == 1)[:, None], t1, t2)
        )
        # Phase 0 starting low (after losing the cube): rise first, then travel.
        rising = (self.phase == 0) & (tcp[:, 2] < self.HIGH - 0.02)
        target = torch.where(rising[:, None], torch.cat([tcp[:, :2], z_high[:, None]], -1), target)
        yaw = torch.atan2(u[:, 1], u[:, 0])  # fingers' wide face across the push direction
        hand_yaw = self._hand_yaw()
        yaw = hand_yaw + wrap_to_quarter_turn(yaw - hand_yaw)
        grip = torch.full((env.num_envs,), CLOSE, dtype=torch.float64, device=env.device)
        return self._to_action(target, yaw, grip)


@EXPERTS.register("arm_pick_place")
class PickPlaceExpert(ArmExpert):
    """0 above cube (align yaw) → 1 descend → 2 close → 3 lift → 4 carry above goal → 5 lower →
    6 open → 7 retreat. Dropping the cube while carrying goes back to 0."""

    HOVER = 0.08

    def _clean_action(self, obs: Obs) -> torch.Tensor:
        env = self.env
        tcp, cube, goal = env.tcp_pos, env.cube_pos, env.goal
        p = self.phase
        self.timer += 1
        cube_yaw = yaw_of(env.cube_mat)
        hand_yaw = self._hand_yaw()
        yaw_err = wrap_to_quarter_turn(cube_yaw - hand_yaw)
        xy_err = (tcp[:, :2] - cube[:, :2]).norm(dim=-1)
        held = (env.gripper_opening < 2 * CUBE_HALF + 0.006) & ((tcp - cube).norm(dim=-1) < 0.025)

        self._set((p == 0) & (xy_err < 0.008) & (yaw_err.abs() < 0.06), 1)
        self._set((p == 1) & ((tcp - cube).norm(dim=-1) < 0.008), 2)
        self._set((p == 2) & (self.timer > 6), 3)
        self._set((p == 3) & (tcp[:, 2] > cube[:, 2].clamp(max=CUBE_HALF) + self.HOVER - 0.02), 4)
        goal_xy_err = (cube[:, :2] - goal[:, :2]).norm(dim=-1)
        self._set((p == 4) & (goal_xy_err < 0.008), 5)
        self._set((p == 5) & ((cube - goal).norm(dim=-1) < 0.008), 6)
        self._set((p == 6) & (self.timer > 6), 7)
        self._set(((p == 3) | (p == 4) | (p == 5)) & ~held & (self.timer > 3), 0)
        p = self.phase

        up = torch.tensor([0.0, 0.0, self.HOVER], dtype=tcp.dtype, device=tcp.device)
        targets = torch.stack(
            [
                cube + up,  # 0
                cube,  # 1
                cube,  # 2
                torch.cat([tcp[:, :2], (CUBE_HALF + self.HOVER) * torch.ones_like(tcp[:, :1])], -1),
                goal + up,  # 4
                goal + (tcp - cube),  # 5: bring the cube (not the tcp) onto the goal
                tcp,  # 6
                goal + up,  # 7
            ],
            dim=1,
        )
        target = targets[torch.arange(env.num_envs), p]
        # Hovering at 0 while the yaw aligns; descending at 1 keeps xy locked on the cube.
        yaw = torch.where(p <= 1, hand_yaw + yaw_err, hand_yaw)
        grip = torch.where((p >= 2) & (p <= 5), CLOSE, OPEN).to(torch.float64)
        return self._to_action(target, yaw, grip)
