"""The arm task family: a 6-DoF arm with a parallel gripper, a cube and a goal on a table.

Action (7,) in [-1, 1]: ``ee_delta`` = (dx, dy, dz, rx, ry, rz, gripper), a world-frame TCP
translation and rotation vector scaled by the profile's ``max_ee_step`` and solved to joint targets
by damped least squares; ``joint_delta`` = six joint deltas scaled by ``max_joint_step``, then the
gripper. Gripper: −1 open, +1 closed (absolute command).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import torch

from robot_rl.core import ConfigError, asset_path, load_profile
from robot_rl.core.layouts import ARM_STATE_NAMES
from robot_rl.envs.backends import BACKENDS
from robot_rl.envs.config import TaskConfig
from robot_rl.envs.ik import dls_step, hinge_jacobian, quat_to_matrix, yaw_quat
from robot_rl.envs.task_env import TaskEnv
from robot_rl.envs.vec_env import TensorSpec

CUBE_HALF = 0.02


@dataclass
class ArmTaskConfig(TaskConfig):
    profile: str = "arm"
    """Robot profile in hardware/ (joint names, limits, control rate, workspace)."""
    model: str = "arm/scene.xml"
    """MJCF scene under sim/."""
    action_mode: str = "ee_delta"
    """``ee_delta`` (IK inside the task) or ``joint_delta``."""
    ik_damping: float = 0.05
    max_joint_step: float = 0.05
    """Radians per control step at |action| = 1 in joint_delta mode."""
    init_joint_noise: float = 0.02
    """Uniform ± noise (rad) on the home pose at reset."""
    cube_center: tuple[float, float] = (0.5, 0.0)
    cube_half_range: tuple[float, float] = (0.08, 0.12)
    cube_yaw_range: float = 0.785
    goal_low: tuple[float, float, float] = (0.35, -0.2, 0.02)
    goal_high: tuple[float, float, float] = (0.65, 0.2, 0.02)
    min_goal_distance: float = 0.1
    """Goals are redrawn until this far (xy) from the cube."""
    success_threshold: float = 0.03
    """Distance (m) within which the task counts as accomplished."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action_mode not in ("ee_delta", "joint_delta"):
            raise ConfigError(
                f"action_mode must be 'ee_delta' or 'joint_delta', got {self.action_mode!r}"
            )
        if any(lo > hi for lo, hi in zip(self.goal_low, self.goal_high)):
            raise ConfigError(
                f"goal_low {list(self.goal_low)} must be <= goal_high {list(self.goal_high)}"
            )
        if self.success_threshold <= 0:
            raise ConfigError(f"success_threshold must be > 0, got {self.success_threshold}")


def _rot6(mat: torch.Tensor) -> torch.Tensor:
    """First two columns of rotation matrices (N, 3, 3) ⇒ (N, 6): continuous, unlike quaternions."""
    return mat[..., :, :2].transpose(-1, -2).reshape(*mat.shape[:-2], 6)


class ArmEnv(TaskEnv):
    """Shared machinery of the arm tasks; subclasses define goals, rewards and success."""

    cfg: ArmTaskConfig
    state_names = ARM_STATE_NAMES

    def __init__(
        self, cfg: ArmTaskConfig, num_envs: int, device: str = "cpu", seed: int | None = None
    ):
        self.profile = load_profile(cfg.profile)
        model = mujoco.MjModel.from_xml_path(str(asset_path("sim", cfg.model)))
        backend = BACKENDS[cfg.backend](model, num_envs, num_threads=cfg.num_threads)
        if torch.device(device) != backend.device:
            raise ConfigError(f"backend {cfg.backend!r} runs on {backend.device}, not {device!r}")
        self._index(model)
        dt = 1.0 / self.profile.control_rate_hz
        self._substeps = max(1, round(dt / model.opt.timestep))
        self.control_dt = self._substeps * model.opt.timestep
        super().__init__(cfg, backend, action_dim=7, seed=seed)
        names = (
            ["dx", "dy", "dz", "rx", "ry", "rz"]
            if cfg.action_mode == "ee_delta"
            else [f"d_{j}" for j in self.profile.joint_names]
        )
        self.action_spec = TensorSpec((7,), torch.float32, -1.0, 1.0, names=(*names, "gripper"))
        dev = self.device
        p = self.profile
        self._q_low = torch.tensor(p.limits("lower"), dtype=torch.float64, device=dev)
        self._q_high = torch.tensor(p.limits("upper"), dtype=torch.float64, device=dev)
        self._q_home = torch.tensor(p.limits("default"), dtype=torch.float64, device=dev)
        self._dq_max = (
            torch.tensor(p.limits("velocity"), dtype=torch.float64, device=dev) * self.control_dt
        )
        self._finger_open = p.gripper.upper
        self._max_pos, self._max_rot = p.max_ee_step
        self._q_des = self._q_home.repeat(num_envs, 1)
        self._goal = torch.zeros(num_envs, 3, dtype=torch.float64, device=dev)
        self._qpos = backend.state("qpos")
        self._qvel = backend.state("qvel")
        self._ctrl = backend.state("ctrl")
        self._mocap = backend.state("mocap_pos")
        self._site_xpos = backend.output("site_xpos")
        self._site_xmat = backend.output("site_xmat")
        self._xaxis = backend.output("xaxis")
        self._xanchor = backend.output("xanchor")
        self._prev_action = torch.zeros(num_envs, 7, device=dev)
        self._action_rate = torch.zeros(num_envs, device=dev)
        self.command_filter: Callable[[ArmEnv, torch.Tensor], torch.Tensor] | None = None
        """Sees every joint position command ``(N, 7)`` (6 joints in rad, then the opening of
        one finger in m) before the actuators do and returns the command to apply: where a
        safety chain runs in simulation (``robot_rl.algos.safety_sim``)."""

    def _index(self, model: mujoco.MjModel) -> None:
        names = self.profile.joint_names
        for name in [*names, self.profile.gripper.name]:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) < 0:
                raise ConfigError(f"profile joint {name!r} is not in the MJCF model")
        jnt = [model.joint(n) for n in names]
        self._arm_qadr = torch.tensor([int(j.qposadr[0]) for j in jnt])
        self._arm_dadr = torch.tensor([int(j.dofadr[0]) for j in jnt])
        self._arm_act = torch.tensor([model.actuator(n).id for n in names])
        self._arm_jnt = torch.tensor([j.id for j in jnt])
        if any(int(j.type[0]) != mujoco.mjtJoint.mjJNT_HINGE for j in jnt):
            raise ConfigError("arm tasks expect hinge joints for every profile joint")
        self._grip_act = model.actuator("gripper").id
        self._finger_qadr = torch.tensor(
            [
                int(model.joint("finger_left").qposadr[0]),
                int(model.joint("finger_right").qposadr[0]),
            ]
        )
        self._finger_dadr = int(model.joint("finger_left").dofadr[0])
        cube = model.joint("cube")
        self._cube_qadr = int(cube.qposadr[0])
        self._cube_dadr = int(cube.dofadr[0])
        self._tcp = model.site(self.profile.ee_frame).id
        self._goal_mocap = int(model.body("goal").mocapid[0])

    # ----------------------------------------------------------------- kinematic quantities
    @property
    def tcp_pos(self) -> torch.Tensor:
        """(N, 3) float64 world position of the tool centre point."""
        return self._site_xpos[:, self._tcp]

    @property
    def tcp_mat(self) -> torch.Tensor:
        return self._site_xmat[:, self._tcp].view(-1, 3, 3)

    @property
    def cube_pos(self) -> torch.Tensor:
        return self._qpos[:, self._cube_qadr : self._cube_qadr + 3]

    @property
    def cube_mat(self) -> torch.Tensor:
        return quat_to_matrix(self._qpos[:, self._cube_qadr + 3 : self._cube_qadr + 7])

    @property
    def cube_linvel(self) -> torch.Tensor:
        return self._qvel[:, self._cube_dadr : self._cube_dadr + 3]

    @property
    def gripper_opening(self) -> torch.Tensor:
        """(N,) distance between the fingers' inner faces, metres (cube width when grasping)."""
        return self.finger_positions.sum(-1)

    @property
    def goal(self) -> torch.Tensor:
        return self._goal

    @property
    def finger_positions(self) -> torch.Tensor:
        """(N, 2) float64 positions of the left and right finger joints, m."""
        return self._qpos[:, self._finger_qadr]

    @property
    def command_joints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Measured positions and velocities ``(N, 7)`` float64 of what the joint command
        drives: the 6 arm joints, then the left finger (the opening of one finger, m)."""
        left, dleft = self._finger_qadr[:1], [self._finger_dadr]
        q = torch.cat([self._qpos[:, self._arm_qadr], self._qpos[:, left]], dim=-1)
        dq = torch.cat([self._qvel[:, self._arm_dadr], self._qvel[:, dleft]], dim=-1)
        return q, dq

    # ----------------------------------------------------------------- hooks
    def _uniform(self, k: int, low, high) -> torch.Tensor:
        low = torch.as_tensor(low, dtype=torch.float64, device=self.device)
        high = torch.as_tensor(high, dtype=torch.float64, device=self.device)
        u = torch.rand(
            (k, *low.shape), generator=self._gen, device=self.device, dtype=torch.float64
        )
        return low + (high - low) * u

    def _reset_task(self, ids: torch.Tensor) -> None:
        k, cfg = len(ids), self.cfg
        s = cfg.randomization.object_pose_scale
        n = cfg.init_joint_noise
        q = (self._q_home + self._uniform(k, [-n] * 6, [n] * 6)).clamp(self._q_low, self._q_high)
        self._qpos[ids[:, None], self._arm_qadr[None]] = q
        self._qpos[ids[:, None], self._finger_qadr[None]] = self._finger_open
        self._q_des[ids] = q
        self._ctrl[ids[:, None], self._arm_act[None]] = q
        self._ctrl[ids, self._grip_act] = self._finger_open
        half = torch.tensor(cfg.cube_half_range, dtype=torch.float64, device=self.device) * s
        center = torch.tensor(cfg.cube_center, dtype=torch.float64, device=self.device)
        cube_xy = self._uniform(k, center - half, center + half)
        yaw = self._uniform(k, -cfg.cube_yaw_range * s, cfg.cube_yaw_range * s)
        a = self._cube_qadr
        self._qpos[ids, a : a + 2] = cube_xy
        self._qpos[ids, a + 2] = CUBE_HALF
        self._qpos[ids, a + 3 : a + 7] = yaw_quat(yaw)
        self._goal[ids] = self._sample_goal(ids, cube_xy)
        self._mocap[ids, self._goal_mocap] = self._goal[ids]
        self._prev_action[ids] = 0.0

    def _sample_goal(self, ids: torch.Tensor, cube_xy: torch.Tensor) -> torch.Tensor:
        """Goal positions (k, 3) at least ``min_goal_distance`` (xy) from the cube: rejection
        sampling, vectorized (a few rounds suffice; leftovers take the farthest draw)."""
        cfg, k = self.cfg, len(ids)
        s = cfg.randomization.object_pose_scale
        lo = torch.tensor(cfg.goal_low, dtype=torch.float64, device=self.device)
        hi = torch.tensor(cfg.goal_high, dtype=torch.float64, device=self.device)
        mid = (lo + hi) / 2
        lo, hi = mid + (lo - mid) * s, mid + (hi - mid) * s
        best = self._uniform(k, lo, hi)
        best_d = (best[:, :2] - cube_xy).norm(dim=-1)
        for _ in range(8):
            ok = best_d >= cfg.min_goal_distance
            if bool(ok.all()):
                break
            cand = self._uniform(k, lo, hi)
            d = (cand[:, :2] - cube_xy).norm(dim=-1)
            better = ~ok & (d > best_d)
            best = torch.where(better[:, None], cand, best)
            best_d = torch.where(better, d, best_d)
        # Still too close (e.g. object_pose_scale shrank both boxes onto each other): push the goal
        # out to min_goal_distance along cube→goal, or along a random heading if they coincide.
        short = best_d < cfg.min_goal_distance
        if bool(short.any()):
            away = best[:, :2] - cube_xy
            heading = self._uniform(k, -math.pi, math.pi)
            rand_dir = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)
            away = torch.where((best_d < 1e-6)[:, None], rand_dir, away)
            away = away / away.norm(dim=-1, keepdim=True)
            pushed = cube_xy + away * cfg.min_goal_distance
            best = best.clone()
            best[:, :2] = torch.where(short[:, None], pushed, best[:, :2])
        return best

    def _apply_action(self, action: torch.Tensor) -> None:
        a = action.to(torch.float64)
        q = self._qpos[:, self._arm_qadr]
        if self.cfg.action_mode == "ee_delta":
            err = torch.cat([a[:, :3] * self._max_pos, a[:, 3:6] * self._max_rot], dim=-1)
            jac = hinge_jacobian(
                self._xaxis[:, self._arm_jnt], self._xanchor[:, self._arm_jnt], self.tcp_pos
            )
            dq = dls_step(jac, err, self.cfg.ik_damping)
        else:
            dq = a[:, :6] * self.cfg.max_joint_step
        dq = torch.maximum(torch.minimum(dq, self._dq_max), -self._dq_max)
        # Integrate the joint target, bounded to a band around the measured joints so a blocked arm
        # (pushing into the table) cannot wind up a large target.
        band = 2 * self._dq_max
        q_des = torch.maximum(torch.minimum(self._q_des + dq, q + band), q - band)
        q_des = torch.maximum(torch.minimum(q_des, self._q_high), self._q_low)
        finger = self._finger_open * (1.0 - a[:, 6]) / 2.0
        if self.command_filter is not None:
            command = self.command_filter(self, torch.cat([q_des, finger[:, None]], dim=-1))
            q_des, finger = command[:, :6].to(q_des), command[:, 6].to(finger)
        self._q_des = q_des
        self._ctrl[:, self._arm_act] = self._q_des
        self._ctrl[:, self._grip_act] = finger
        self._action_rate = (action - self._prev_action).square().sum(-1)
        self._prev_action = action

    def _observe_state(self) -> torch.Tensor:
        tcp, cube, goal = self.tcp_pos, self.cube_pos, self._goal
        parts = [
            self._qpos[:, self._arm_qadr],
            self._qvel[:, self._arm_dadr],
            self.gripper_opening[:, None],
            tcp,
            _rot6(self.tcp_mat),
            cube,
            _rot6(self.cube_mat),
            goal,
            cube - tcp,
            goal - cube,
        ]
        return torch.cat(parts, dim=-1).to(torch.float32)

    def _neutral_action(self) -> torch.Tensor:
        # Hold still with the gripper open (−1), not half closed (0).
        a = torch.zeros(7, device=self.device)
        a[6] = -1.0
        return a

    def _failure(self) -> torch.Tensor:
        # The cube left the table (fell off the edge).
        return self.cube_pos[:, 2] < -0.05

    def _common_terms(self, success: torch.Tensor) -> dict[str, torch.Tensor]:
        """Terms every arm task logs: ``success`` (1 on success) and ``action_rate`` (−‖Δa‖²)."""
        return {"success": success.float(), "action_rate": -self._action_rate}


def tanh_closeness(dist: torch.Tensor, scale: float) -> torch.Tensor:
    """1 at distance 0, falling smoothly to 0: ``1 − tanh(dist / scale)``; float32."""
    return (1.0 - torch.tanh(dist / scale)).to(torch.float32)


def down_orientation(yaw: torch.Tensor) -> torch.Tensor:
    """Gripper pointing down (tool z = −world z), hand x axis at heading ``yaw``: (N, 3, 3)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    z = torch.zeros_like(c)
    o = torch.ones_like(c)
    # columns: hand x = (c, s, 0), hand y = (s, −c, 0), hand z = (0, 0, −1)
    return torch.stack([c, s, z, s, -c, z, z, z, -o], dim=-1).view(-1, 3, 3)


def wrap_to_quarter_turn(yaw: torch.Tensor) -> torch.Tensor:
    """A cube looks the same every 90°: map a yaw to (−π/4, π/4]."""
    return yaw - (math.pi / 2) * torch.round(yaw / (math.pi / 2))
