"""The safety chain inside simulation: the same chain the ROS 2 safety node runs filters every
command of N parallel envs (the arm's joint commands, the RC car's AckermannDrive), and the hard
limits the real robot must never cross are counted from the simulated state.

What the chain reads differs per robot; a small readings adapter per env family builds the
:class:`SafetyState` each tick (:class:`ArmReadings`, :class:`CarReadings`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.envs.tasks.arm.base import ArmEnv
from robot_rl.envs.tasks.car.lidar import Lidar, beam_angles
from robot_rl.envs.tasks.car.race import RaceEnv
from robot_rl.safety import COMPONENTS, SafetyChain, SafetyConfig, SafetyState
from robot_rl.safety.cbf import Obstacles
from robot_rl.safety.chain import CommandSpace, build_fallback


def attach_safety(env, safety: dict | str) -> SimSafety:
    """The chain of a safety config (a dict, or a ``configs/safety`` name or path) filtering
    ``env``'s commands (an arm task or ``rccar_race``), with the env family's violation meter."""
    from robot_rl.safety import build_chain

    cfg = SafetyConfig.load(safety)
    meter = _family(env)[2](env, cfg)
    return SimSafety(build_chain(cfg.profile, cfg), env, meter)


class ArmReadings:
    """The arm chain's readings: the measured command joints ``(N, 7)`` and their velocities."""

    def __init__(self, env: ArmEnv) -> None:
        self.env = env

    def state(self, now: float, fresh: np.ndarray) -> SafetyState:
        q, dq = (x.cpu().numpy() for x in self.env.command_joints)
        return SafetyState(q=q, dq=dq, now=now, stamp=now, command_stamp=now)


class CarReadings:
    """The RC car chain's readings, as the deployed safety node gets them: ``q`` the measured
    wheel angle and speed ``(N, 2)``, ``dq`` their change over the last control period (0 on a
    fresh episode); ``extra``: ``pose (N, 3)`` of the rear axle (the profile's base frame, which
    the geofence assumes; the simulator integrates the centre of gravity, ``vehicle.lr`` ahead of
    it), ``speed (N,)``, ``ranges (N, K)`` (+inf: no return) and ``range_angles (K,)`` of a scan
    from the lidar's mount.

    The scan: the env's 32 observation beams over 4.7 rad leave 0.15 rad between beams, so at
    7 m/s the emergency brake's 0.4 m wide corridor holds no beam until the wall is ~2.6 m ahead,
    too late to stop (0.6 s · 7 m/s + bumper = 4.4 m needed). The real car's safety node reads the
    full scan (the profile's ``lidar``: 1080 beams), so by default the chain gets its own scan
    with the profile's beams and field of view, cast from the same mount on the same track (the
    env's range and noise; noise from its own generator, so the env's draws stay unchanged).

    Args:
        env: the race env.
        scan_beams: beams of the chain's scan; None: the profile's ``lidar.num_beams`` (the
            env's when the profile has no lidar). The env's own count reuses the env's scan.
        seed: the chain scan's noise generator.
    """

    def __init__(self, env: RaceEnv, scan_beams: int | None = None, seed: int = 0) -> None:
        self.env = env
        p = env.profile.extra
        vehicle, lidar = p.get("vehicle", {}), p.get("lidar", {})
        if "lr" not in vehicle:
            raise ConfigError(f"{env.profile.source}: vehicle.lr (rear axle to CoG) is missing")
        self.lr = float(vehicle["lr"])
        cfg = env.lidar_cfg
        beams = int(scan_beams if scan_beams is not None else lidar.get("num_beams", cfg.num_beams))
        fov = float(lidar.get("fov", cfg.fov)) if scan_beams is None else cfg.fov
        self.lidars: dict[int, Lidar] | None = None
        if beams == cfg.num_beams and fov == cfg.fov:
            angles = env.beam_angles
        else:
            own = replace(cfg, num_beams=beams, fov=fov)
            self.lidars = {
                t: Lidar(env.tracks[t].boundary_segments(), own) for t, _ in env.track_groups
            }
            angles = beam_angles(beams, fov)
        self.angles = angles.cpu().numpy().astype(np.float64)
        self.gen = torch.Generator(device=env.device).manual_seed(seed)
        self.prev_q: np.ndarray | None = None

    def scan(self) -> np.ndarray:
        """Ranges ``(N, K)`` from the current poses; the range limit reads as +inf."""
        env = self.env
        if self.lidars is None:
            ranges = env.ranges
        else:
            ranges = torch.empty(env.num_envs, len(self.angles), device=env.device)
            for t, ids in env.track_groups:
                ranges[ids] = self.lidars[t].scan(env.pose[ids], self.gen)
        r = ranges.cpu().numpy().astype(np.float64)
        return np.where(r >= env.lidar_cfg.max_range, np.inf, r)

    def state(self, now: float, fresh: np.ndarray) -> SafetyState:
        env = self.env
        q = env.measured_command.cpu().numpy().astype(np.float64)
        if self.prev_q is None or self.prev_q.shape != q.shape:
            dq = np.zeros_like(q)
        else:
            dq = (q - self.prev_q) / env.control_dt
        dq[fresh] = 0.0
        self.prev_q = q
        pose = env.pose.cpu().numpy().astype(np.float64)
        yaw = pose[:, 2]
        rear = pose.copy()
        rear[:, 0] -= self.lr * np.cos(yaw)
        rear[:, 1] -= self.lr * np.sin(yaw)
        extra = {
            "pose": rear,
            "speed": q[:, 1].copy(),
            "ranges": self.scan(),
            "range_angles": self.angles,
        }
        return SafetyState(q=q, dq=dq, now=now, stamp=now, command_stamp=now, extra=extra)


class SimSafety:
    """Installs ``chain`` as ``env.command_filter``: each step the env's command ``(N, A)`` goes
    through ``chain.step`` with the env family's readings (:class:`ArmReadings`,
    :class:`CarReadings`), on the simulated clock. Rows whose episode just (re)started forget
    their per-row memory and get the measured pose as their last command."""

    def __init__(
        self,
        chain: SafetyChain,
        env: ArmEnv | RaceEnv,
        meter: ViolationMeter | CarViolationMeter | None = None,
        readings: ArmReadings | CarReadings | None = None,
    ) -> None:
        """With ``meter``, violations are counted on the state every step reaches (terminal
        states included, the env's ``step_observer``). ``readings``: default, the env family's
        with its defaults."""
        self.readings = readings if readings is not None else _family(env)[1](env)
        self.chain, self.env, self.meter = chain, env, meter
        self.now = 0.0
        env.command_filter = self
        if meter is not None:
            env.step_observer = lambda _env: meter.update()

    def summary(self) -> dict[str, float]:
        """Intervention rates per component and, with a meter, violations per 1000 steps."""
        out = self.chain.stats.scalars()
        if self.meter is not None:
            out |= {f"violations/{k}": v for k, v in self.meter.result.per_1000().items()}
        return out

    def __call__(self, env: ArmEnv | RaceEnv, command: torch.Tensor) -> torch.Tensor:
        fresh = np.flatnonzero(env.episode_step.cpu().numpy() == 0)
        state = self.readings.state(self.now, fresh)
        self.chain.reset_rows(fresh, state.q)
        applied, _ = self.chain.step(state, command.cpu().numpy().astype(np.float64))
        self.now += env.control_dt
        return torch.from_numpy(applied).to(command)

    def detach(self) -> None:
        self.env.command_filter = None
        self.env.step_observer = None


@dataclass
class Violations:
    """Hard-limit violations counted per env step: a step counts once per kind it violates."""

    steps: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def per_1000(self) -> dict[str, float]:
        return {k: 1000.0 * v / max(self.steps, 1) for k, v in self.counts.items()}

    @property
    def total_per_1000(self) -> float:
        return sum(self.per_1000().values())


class ViolationMeter:
    """Counts, from the simulated state after each step, the limits a real arm must never
    cross: arm joint positions and speeds beyond the profile's limits, the gripper's opening or
    speed beyond its limits, the tool outside the workspace box, the tool inside a keep-out region
    of the safety config.

    Args:
        env: the arm env.
        cfg: the safety config (its ``cbf`` keep-out regions).
        position_tol: rad beyond a position limit that counts (the simulator's soft limits).
        speed_factor: measured speed above this times the limit counts.
    """

    def __init__(
        self, env: ArmEnv, cfg: SafetyConfig, position_tol: float = 1e-3, speed_factor: float = 1.0
    ) -> None:
        self.env, p = env, env.profile
        self.lower = torch.tensor(p.limits("lower") + [p.gripper.lower], dtype=torch.float64)
        self.upper = torch.tensor(p.limits("upper") + [p.gripper.upper], dtype=torch.float64)
        self.speed = torch.tensor(p.limits("velocity") + [p.gripper.velocity], dtype=torch.float64)
        self.tol, self.speed_factor = position_tol, speed_factor
        self.low = torch.tensor(p.workspace.low, dtype=torch.float64)
        self.high = torch.tensor(p.workspace.high, dtype=torch.float64)
        obstacles = Obstacles.build(cfg.cbf.get("halfspaces"), cfg.cbf.get("spheres"))
        self.normals = torch.from_numpy(obstacles.normals)
        self.offsets = torch.from_numpy(obstacles.offsets)
        self.centers = torch.from_numpy(obstacles.centers)
        self.radii = torch.from_numpy(obstacles.radii)
        self.result = Violations()

    def kinds(self) -> dict[str, torch.Tensor]:
        """``(N,)`` bool per kind, for the current state."""
        q, dq = (x.cpu() for x in self.env.command_joints)
        tcp = self.env.tcp_pos.cpu()
        beyond = (q < self.lower - self.tol) | (q > self.upper + self.tol)
        fast = dq.abs() > self.speed_factor * self.speed
        out = {
            "joint_position": beyond[:, :-1].any(-1),
            "joint_speed": fast[:, :-1].any(-1),
            # the finger, counted on its own: contact presses it past its open stop or knocks
            # it faster than it is ever commanded to move
            "gripper": beyond[:, -1] | fast[:, -1],
            "workspace": ((tcp < self.low) | (tcp > self.high)).any(-1),
        }
        inside = torch.zeros(len(tcp), dtype=torch.bool)
        if len(self.normals):
            inside |= (tcp @ self.normals.T - self.offsets < 0).any(-1)
        if len(self.centers):
            inside |= ((tcp[:, None] - self.centers).norm(dim=-1) < self.radii).any(-1)
        out["keep_out"] = inside
        return out

    def update(self) -> dict[str, torch.Tensor]:
        kinds = self.kinds()
        self.result.steps += len(next(iter(kinds.values())))
        for k, v in kinds.items():
            self.result.counts[k] = self.result.counts.get(k, 0) + int(v.sum())
        return kinds


class CarViolationMeter:
    """Counts, from the simulated state after each step, what a real RC car must never do:
    ``collision`` (a body corner touched a boundary: the env's ``crashed``; a car stopped and
    ended as "stuck" is no collision), ``speed`` (measured speed beyond the profile's speed
    limits), ``geofence`` (a body corner outside the safety config's fence; counted only when the
    config has one).

    Args:
        env: the race env.
        cfg: the safety config (its ``geofence``).
        speed_factor: measured speed beyond this times a limit counts.
    """

    def __init__(self, env: RaceEnv, cfg: SafetyConfig, speed_factor: float = 1.0) -> None:
        self.env, p = env, env.profile
        speed = p.joints[p.joint_names.index("speed")]
        self.low, self.high = speed_factor * speed.lower, speed_factor * speed.upper
        self.fence = None
        if cfg.geofence:  # the chain's own fence, parsed once (a limit is written once)
            space = CommandSpace.of(p)
            fallback = build_fallback(p, cfg, space)
            self.fence = COMPONENTS.get("geofence")(p, cfg, space, fallback)
        self.result = Violations()

    def kinds(self) -> dict[str, torch.Tensor]:
        """``(N,)`` bool per kind, for the current state."""
        env = self.env
        v = env.speed.cpu()
        out = {
            "collision": env.crashed.cpu().clone(),
            "speed": (v > self.high) | (v < self.low),
        }
        if self.fence is not None:
            corners = env.body_corners.cpu().double().numpy()
            inside = self.fence.inside(corners.reshape(-1, 2)).reshape(len(corners), -1)
            out["geofence"] = torch.from_numpy(~inside.all(axis=-1))
        return out

    def update(self) -> dict[str, torch.Tensor]:
        kinds = self.kinds()
        self.result.steps += len(next(iter(kinds.values())))
        for k, val in kinds.items():
            self.result.counts[k] = self.result.counts.get(k, 0) + int(val.sum())
        return kinds


def _family(env) -> tuple[type, type, type]:
    """(env class, readings, meter) of the env family ``env`` belongs to."""
    for family in _FAMILIES:
        if isinstance(env, family[0]):
            return family
    names = [f[0].__name__ for f in _FAMILIES]
    raise ConfigError(f"the safety chain runs in {names} envs, not in {type(env).__name__}")


_FAMILIES = (
    (ArmEnv, ArmReadings, ViolationMeter),
    (RaceEnv, CarReadings, CarViolationMeter),
)
