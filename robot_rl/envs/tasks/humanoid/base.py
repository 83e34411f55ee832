"""The humanoid environment: PD joint targets around the default pose, IMU-style observations,
legged_gym-style reward terms, fall terminations, pushes and velocity commands.

Action (12,) in [-1, 1], profile joint order: joint targets ``q = q0 + action_scale · a`` (q0 the
profile's default pose plus this env's pose offset), held by the MJCF's PD position actuators.

Observation ``state`` (45,), each group scaled to order 1 (legged_gym scales):
``base_ang_vel`` ×0.25 (IMU gyro, base frame) | ``projected_gravity`` (3) | ``command`` (vx, vy,
yaw rate) ×(2, 2, 0.25) | ``joint_pos − q0`` (12) | ``joint_vel`` ×0.05 (12) | ``last_action``
(12). Observation noise (``randomization.obs_noise_std``) is added to it.

Observation ``privileged`` (10,), noise-free, for an asymmetric critic: base linear velocity
(base frame, 3), base height, foot contacts (2), floor friction multiplier, pelvis payload (kg),
the last push kick (world vx, vy).
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import torch

from robot_rl.core import ConfigError, asset_path, load_profile
from robot_rl.core.layouts import HUMANOID_OBS_SCALES as OBS_SCALES
from robot_rl.core.layouts import humanoid_state_names
from robot_rl.envs.backends import BACKENDS
from robot_rl.envs.task_env import TaskEnv
from robot_rl.envs.tasks.humanoid.config import HumanoidTaskConfig
from robot_rl.envs.tasks.humanoid.randomization import HumanoidRandomizer
from robot_rl.envs.vec_env import Obs, TensorSpec

NUM_JOINTS = 12
CONTACT_FORCE = 1.0
"""Newtons of touch-sensor force that count as contact."""
PRIVILEGED_NAMES = (
    "base_lin_vel.x",
    "base_lin_vel.y",
    "base_lin_vel.z",
    "base_height",
    "contact.left_foot",
    "contact.right_foot",
    "friction",
    "base_mass_offset",
    "push_vel.x",
    "push_vel.y",
)


def roll_pitch(quat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll and pitch (rad) of (N, 4) wxyz quaternions."""
    w, x, y, z = quat.unbind(-1)
    roll = torch.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = torch.asin((2 * (w * y - z * x)).clamp(-1.0, 1.0))
    return roll, pitch


def projected_gravity(quat: torch.Tensor) -> torch.Tensor:
    """World gravity direction (0, 0, −1) in the body frame of (N, 4) wxyz quaternions: −R[2, :]."""
    w, x, y, z = quat.unbind(-1)
    return -torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1)


class HumanoidEnv(TaskEnv):
    """Shared machinery of the humanoid tasks; subclasses define success and extra terms."""

    cfg: HumanoidTaskConfig
    video_camera = "front"

    def __init__(
        self, cfg: HumanoidTaskConfig, num_envs: int, device: str = "cpu", seed: int | None = None
    ):
        self.profile = p = load_profile(cfg.profile)
        if len(p.joints) != NUM_JOINTS:
            raise ConfigError(
                f"{p.source}: a humanoid profile has 12 leg joints, got {len(p.joints)}"
            )
        model = mujoco.MjModel.from_xml_path(str(asset_path("sim", cfg.model)))
        backend = BACKENDS[cfg.backend](model, num_envs, num_threads=cfg.num_threads)
        if torch.device(device) != backend.device:
            raise ConfigError(f"backend {cfg.backend!r} runs on {backend.device}, not {device!r}")
        self._index(model)
        self._substeps = max(1, round(1.0 / (p.control_rate_hz * model.opt.timestep)))
        self.control_dt = self._substeps * model.opt.timestep
        self.state_names = humanoid_state_names(p.joint_names)
        super().__init__(cfg, backend, action_dim=NUM_JOINTS, seed=seed)
        self.action_spec = TensorSpec(
            (NUM_JOINTS,), torch.float32, -1.0, 1.0, names=tuple(p.joint_names)
        )
        self.observation_spec["privileged"] = TensorSpec(
            (len(PRIVILEGED_NAMES),), torch.float32, names=PRIVILEGED_NAMES
        )
        n, dev, f64 = num_envs, self.device, torch.float64
        self.action_scale = float(p.extra.get("action_scale", 0.25))
        fall = p.extra.get("fall", {})
        self.max_roll = float(fall.get("max_roll", 0.8))
        self.max_pitch = float(fall.get("max_pitch", 1.0))
        self.min_base_height = float(fall.get("min_base_height", 0.4))
        self.q0 = torch.tensor(p.limits("default"), dtype=f64, device=dev)
        self._q_low = torch.tensor(p.limits("lower"), dtype=f64, device=dev)
        self._q_high = torch.tensor(p.limits("upper"), dtype=f64, device=dev)
        self.q0_env = self.q0.repeat(n, 1)
        """(N, 12) this env's PD zero: the default pose plus its randomized offset."""
        self._qpos = backend.state("qpos")
        self._qvel = backend.state("qvel")
        self._ctrl = backend.state("ctrl")
        self._sensors = backend.output("sensordata")
        self._force = backend.output("actuator_force")
        z = lambda *s: torch.zeros(n, *s, device=dev)  # noqa: E731
        self.command = z(3)
        """(N, 3) commanded base velocity: vx, vy (m/s, base frame), yaw rate (rad/s)."""
        self.last_action = z(NUM_JOINTS)
        self._prev_action = z(NUM_JOINTS)
        self._prev_qvel = z(NUM_JOINTS)
        self._joint_acc = z(NUM_JOINTS)
        self.foot_contact = torch.ones(n, 2, dtype=torch.bool, device=dev)
        self._last_contact = torch.ones(n, 2, dtype=torch.bool, device=dev)
        self.feet_air_time = z(2)
        self.touchdown_air_time = z(2)
        """(N, 2) seconds each foot swung before touching down this step, 0 otherwise."""
        self.body_contact = torch.zeros(n, dtype=torch.bool, device=dev)
        self.fallen = torch.zeros(n, dtype=torch.bool, device=dev)
        self.push_count = torch.zeros(n, dtype=torch.long, device=dev)
        self._next_push = torch.zeros(n, dtype=torch.long, device=dev)
        """(N,) episode step at which each env is pushed next."""
        self.last_push = z(2)
        self._track_err_sum = z()
        self.command_filter: Callable[[HumanoidEnv, torch.Tensor], torch.Tensor] | None = None
        """Replaces the joint targets ``(N, 12)`` before they reach the PD actuators (the deploy
        simulator: the targets a ``LowCmd_`` carries; it may also set the actuators' gains)."""

    def _index(self, model: mujoco.MjModel) -> None:
        names = self.profile.joint_names
        for name in names:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) < 0:
                raise ConfigError(f"profile joint {name!r} is not in the MJCF model")
        jnt = [model.joint(n) for n in names]
        self._qadr = torch.tensor([int(j.qposadr[0]) for j in jnt])
        self._dadr = torch.tensor([int(j.dofadr[0]) for j in jnt])
        self._act = torch.tensor([model.actuator(n).id for n in names])
        self._pelvis = model.body("pelvis").id

        def adr(name: str, dim: int) -> slice:
            a = int(model.sensor(name).adr[0])
            return slice(a, a + dim)

        self._s_gyro = adr("imu_gyro", 3)
        self._s_quat = adr("imu_quat", 4)
        self._s_linvel = adr("imu_linvel", 3)
        feet = self.profile.extra.get("feet", ["left_foot", "right_foot"])
        self._s_feet = [int(model.sensor(f"{f}_touch").adr[0]) for f in feet]
        self._s_body = int(model.sensor("upper_body_touch").adr[0])

    def _make_randomizer(self) -> HumanoidRandomizer:
        return HumanoidRandomizer(self.cfg, self.backend, self._gen, self._pelvis, self._dadr)

    # ----------------------------------------------------------------- measured quantities
    @property
    def base_quat(self) -> torch.Tensor:
        """(N, 4) wxyz orientation of the IMU (pelvis), float64."""
        return self._sensors[:, self._s_quat]

    @property
    def base_ang_vel(self) -> torch.Tensor:
        """(N, 3) gyro, base frame, rad/s."""
        return self._sensors[:, self._s_gyro]

    @property
    def base_lin_vel(self) -> torch.Tensor:
        """(N, 3) base-frame linear velocity of the IMU, m/s (privileged: no sensor measures it)."""
        return self._sensors[:, self._s_linvel]

    @property
    def base_height(self) -> torch.Tensor:
        return self._qpos[:, 2]

    @property
    def joint_pos(self) -> torch.Tensor:
        return self._qpos[:, self._qadr]

    @property
    def joint_vel(self) -> torch.Tensor:
        return self._qvel[:, self._dadr]

    @property
    def torques(self) -> torch.Tensor:
        """(N, 12) actuator torques of the last physics step, N·m."""
        return self._force[:, self._act]

    # ----------------------------------------------------------------- hooks
    def _uniform(self, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(shape, generator=self._gen, device=self.device, dtype=torch.float64)
        return lo + (hi - lo) * u

    def _sample_commands(self, ids: torch.Tensor) -> None:
        cfg, k = self.cfg, len(ids)
        cmd = torch.stack(
            [self._uniform((k,), *r) for r in (cfg.lin_vel_x, cfg.lin_vel_y, cfg.yaw_rate)], -1
        ).float()
        slow = cmd[:, :2].norm(dim=-1) < cfg.min_command_speed
        cmd[:, :2] *= (~slow)[:, None]
        self.command[ids] = cmd

    def _reset_task(self, ids: torch.Tensor) -> None:
        k, cfg = len(ids), self.cfg
        off = cfg.perturbation.default_pose_offset
        self.q0_env[ids] = self.q0 + self._uniform((k, NUM_JOINTS), -off, off)
        n = cfg.init_joint_noise
        q = self.q0_env[ids] + self._uniform((k, NUM_JOINTS), -n, n)
        q = torch.maximum(torch.minimum(q, self._q_high), self._q_low)
        self._qpos[ids, 0:3] = torch.tensor([0.0, 0.0, 0.705], dtype=torch.float64)
        self._qpos[ids, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        self._qpos[ids[:, None], self._qadr[None]] = q
        self._ctrl[ids[:, None], self._act[None]] = self.q0_env[ids]
        self._sample_commands(ids)
        self.last_action[ids] = 0.0
        self._prev_action[ids] = 0.0
        self.push_count[ids] = 0
        self._next_push[ids] = self._push_gap(k)
        self.last_push[ids] = 0.0
        self._track_err_sum[ids] = 0.0

    def _apply_action(self, action: torch.Tensor) -> None:
        self._events()
        target = self.q0_env + self.action_scale * action.to(torch.float64)
        target = torch.maximum(torch.minimum(target, self._q_high), self._q_low)
        if self.command_filter is not None:
            target = self.command_filter(self, target).to(target)
        self._ctrl[:, self._act] = target
        self._prev_action = self.last_action
        self.last_action = action.clone()

    def _push_gap(self, k: int) -> torch.Tensor:
        """(k,) control steps to the next push, one draw from ``push_interval_s`` each."""
        gap = self._uniform((k,), *self.cfg.perturbation.push_interval_s) / self.control_dt
        return gap.round().long().clamp(min=1)

    def _events(self) -> None:
        """Pushes (at each env's drawn push step) and command resampling (at fixed times)."""
        step = self.episode_step
        p = self.cfg.perturbation
        if p.push_velocity > 0:
            ids = (step >= self._next_push).nonzero().flatten()
            if len(ids):
                kick = self._uniform((len(ids), 2), -p.push_velocity, p.push_velocity)
                self._qvel[ids, 0:2] += kick  # free joint: world-frame linear velocity
                self.push_count[ids] += 1
                self.last_push[ids] = kick.float()
                self._next_push[ids] += self._push_gap(len(ids))
        every = max(1, round(self.cfg.command_resample_s / self.control_dt))
        ids = ((step > 0) & (step % every == 0)).nonzero().flatten()
        if len(ids):
            self._sample_commands(ids)

    def _after_physics(self, ids: torch.Tensor | None = None) -> None:
        qvel = self.joint_vel.float()
        if ids is not None:  # a reset: the feet stand on the floor, nothing has moved yet
            self._prev_qvel[ids] = qvel[ids]
            self._joint_acc[ids] = 0.0
            self.foot_contact[ids] = True
            self._last_contact[ids] = True
            self.feet_air_time[ids] = 0.0
            self.touchdown_air_time[ids] = 0.0
            self.body_contact[ids] = False
            self.fallen[ids] = False
            return
        self._joint_acc = (qvel - self._prev_qvel) / self.control_dt
        self._prev_qvel = qvel
        # touch sensors describe the last substep (acceleration-stage): 5 ms old at most
        contact = self._sensors[:, self._s_feet] > CONTACT_FORCE
        filt = contact | self._last_contact  # legged_gym: contacts flicker on the 1st substep
        self._last_contact = contact
        self.foot_contact = contact
        first = (self.feet_air_time > 0) & filt
        self.feet_air_time = self.feet_air_time + self.control_dt
        self.touchdown_air_time = torch.where(first, self.feet_air_time, 0.0)
        self.feet_air_time = self.feet_air_time * ~filt
        self.body_contact = self._sensors[:, self._s_body] > CONTACT_FORCE
        roll, pitch = roll_pitch(self.base_quat)
        self.fallen = (
            (roll.abs() > self.max_roll)
            | (pitch.abs() > self.max_pitch)
            | (self.base_height < self.min_base_height)
            | self.body_contact
        )
        err = (self.command[:, :2] - self.base_lin_vel[:, :2].float()).norm(dim=-1)
        self._track_err_sum += err

    def _observe_state(self) -> torch.Tensor:
        scale = torch.tensor(OBS_SCALES["command"], device=self.device)
        parts = [
            self.base_ang_vel.float() * OBS_SCALES["ang_vel"],
            projected_gravity(self.base_quat).float(),
            self.command * scale,
            (self.joint_pos - self.q0).float(),
            self.joint_vel.float() * OBS_SCALES["joint_vel"],
            self.last_action,
        ]
        return torch.cat(parts, dim=-1)

    def _privileged(self) -> torch.Tensor:
        r = self.randomizer
        parts = [
            self.base_lin_vel.float(),
            self.base_height.float()[:, None],
            self.foot_contact.float(),
            r.friction.to(self.device)[:, None],
            r.mass_offset.to(self.device)[:, None],
            self.last_push,
        ]
        return torch.cat(parts, dim=-1)

    def _observe(self) -> Obs:
        obs = super()._observe()
        obs["privileged"] = self._privileged()
        return obs

    def _failure(self) -> torch.Tensor:
        return self.fallen & self.cfg.terminate_on_fall

    def _survived(self) -> torch.Tensor:
        """(N,) bool: the episode reached its time limit standing."""
        return (self.episode_step >= self.max_episode_steps) & ~self.fallen

    def mean_tracking_error(self) -> torch.Tensor:
        """(N,) mean planar velocity error of the episode so far, m/s."""
        return self._track_err_sum / self.episode_step.clamp(min=1).float()

    def _reward_terms(self, action: torch.Tensor, success: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        v = self.base_lin_vel.float()
        w = self.base_ang_vel.float()
        g = projected_gravity(self.base_quat).float()
        q_dev = (self.joint_pos - self.q0).float()
        lin_err = (self.command[:, :2] - v[:, :2]).square().sum(-1)
        yaw_err = (self.command[:, 2] - w[:, 2]).square()
        # soft limits at 90% of the range, as legged_gym's soft_dof_pos_limit
        mid, half = (self._q_high + self._q_low) / 2, 0.45 * (self._q_high - self._q_low)
        q = self.joint_pos
        over = (q - (mid + half)).clamp(min=0) + ((mid - half) - q).clamp(min=0)
        moving = (self.command[:, :2].norm(dim=-1) > 0.1).float()
        touched = (self.touchdown_air_time > 0).float()
        air = ((self.touchdown_air_time - cfg.feet_air_time_target) * touched).sum(-1) * moving
        return {
            "tracking_lin_vel": torch.exp(-lin_err / cfg.tracking_sigma),
            "tracking_ang_vel": torch.exp(-yaw_err / cfg.tracking_sigma),
            "lin_vel_z": -v[:, 2].square(),
            "ang_vel_xy": -w[:, :2].square().sum(-1),
            "orientation": -g[:, :2].square().sum(-1),
            "base_height": -(self.base_height.float() - cfg.base_height_target).square(),
            "torques": -self.torques.float().square().sum(-1),
            "joint_acc": -self._joint_acc.square().sum(-1),
            "action_rate": -(self.last_action - self._prev_action).square().sum(-1),
            "joint_deviation": -q_dev.square().sum(-1),
            "joint_limits": -over.float().sum(-1),
            "feet_air_time": air,
            "collision": -self.body_contact.float(),
            "alive": torch.ones(self.num_envs, device=self.device),
            "termination": -self.fallen.float(),
            "success": success.float(),
        }

    def _episode_metrics(self, success: torch.Tensor) -> dict[str, torch.Tensor]:
        """``survival_time`` (s), ``fell`` (1 if it ended by falling), ``pushes`` received."""
        return {
            "survival_time": self.episode_step.float() * self.control_dt,
            "fell": self.fallen.float(),
            "pushes": self.push_count.float(),
        }
