"""``rccar_race``: an RC car races laps of a track from lidar, odometry and the road ahead.

Action (2,) in [-1, 1]: ``steer`` (× the profile's steering limit, rad, left positive) and
``speed`` (mapped linearly onto ``speed_range``, m/s): the AckermannDrive the ROS 2 nodes send.
The drive's speed loop (:class:`TorchCarBackend`) tracks the speed at the physics rate.

State observation (names in :attr:`RaceEnv.state_names`): the car's longitudinal and lateral
velocity, yaw rate and measured wheel angle; its lateral offset from the centreline and heading
relative to it; the centreline points ``lookahead`` metres ahead in the car's frame (where the
next checkpoints lie); the lidar ranges; the last action.

Reward terms: ``progress`` (metres along the centreline this step), ``crash`` (1 on a collision),
``success`` (1 when the episode's laps are done), ``action_rate`` (−‖Δa‖²). An episode ends on a
collision (a corner of the car's body within ``collision_margin`` of a boundary) or when stuck
(failures), after ``laps`` laps (success), or at ``episode_length`` (truncation). Lap time is the
length of a successful episode: every episode starts at rest.

Each env races one track of ``tracks`` (env i: track i mod T); all tracks step in one batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch

from robot_rl.core import ConfigError, load_profile
from robot_rl.envs.config import TaskConfig, _check_range
from robot_rl.envs.registry import register_task
from robot_rl.envs.task_env import TaskEnv
from robot_rl.envs.tasks.car import dynamics as D
from robot_rl.envs.tasks.car.backend import TorchCarBackend
from robot_rl.envs.tasks.car.lidar import Lidar, LidarConfig, beam_angles
from robot_rl.envs.tasks.car.track import Track
from robot_rl.envs.vec_env import TensorSpec


@dataclass
class RaceConfig(TaskConfig):
    profile: str = "rccar"
    """Robot profile in hardware/ (steering and speed limits, control rate, geometry)."""
    tracks: list[str] = field(default_factory=lambda: ["oval", "twisty", "hairpin"])
    """Track names in sim/tracks/; env i races tracks[i mod len(tracks)]."""
    laps: float = 1.0
    """Laps (of centreline progress) that complete an episode."""
    physics_dt: float = 0.01
    """Seconds per physics step; the control period is the profile's, in whole physics steps."""
    speed_range: tuple[float, float] = (0.0, 7.0)
    """Speed (m/s) at action −1 and +1; within the profile's speed limits."""
    backend: str = "torch"
    """The car is simulated in torch (:class:`TorchCarBackend`) on the env's device."""
    lidar_beams: int = 32
    """Beams of the observed lidar, evenly over ``lidar_fov``."""
    lidar_fov: float = 4.7
    """Field of view (rad) centred on the heading."""
    lidar_max_range: float = 10.0
    """Range (m) reported where a beam hits nothing closer."""
    lookahead: tuple[float, ...] = (1.0, 2.0, 4.0, 6.0)
    """Metres ahead along the centreline of the points observed in the car's frame."""
    collision_margin: float = 0.0
    """A crash: a corner of the car's body (the profile's ``vehicle`` box) comes this close (m)
    to a boundary, or crosses it."""
    stuck_seconds: float = 2.0
    stuck_distance: float = 0.3
    """Stuck (a failure): less than this progress (m) over the last ``stuck_seconds``."""
    start_lateral: float = 0.3
    """Starts: uniform arc length, lateral offset uniform ± this share of the half width."""
    start_heading: float = 0.15
    """Starts: heading uniform ± this (rad) about the track's direction."""
    cornering_stiffness: tuple[float, float] = (1.0, 1.0)
    """Randomisation: multiplier of both axles' cornering stiffness (friction and mass are the
    generic ``randomization.friction`` / ``randomization.mass``)."""
    lidar_noise_std: float = 0.0
    """Randomisation: Gaussian range noise (m)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tracks:
            raise ConfigError("rccar_race needs at least one track")
        if self.laps <= 0:
            raise ConfigError(f"laps must be > 0, got {self.laps}")
        lo, hi = self.speed_range
        if not lo < hi:
            raise ConfigError(f"speed_range must be [low, high] with low < high, got {[lo, hi]}")
        _check_range("cornering_stiffness", self.cornering_stiffness, lo=1e-3)
        checks = {
            "backend": (self.backend == "torch", "'torch'"),
            "lidar_beams": (self.lidar_beams >= 1, ">= 1"),
            "lidar_fov": (0 < self.lidar_fov <= 2 * math.pi, "in (0, 2π]"),
            "lidar_max_range": (self.lidar_max_range > 0, "> 0"),
            "lidar_noise_std": (self.lidar_noise_std >= 0, ">= 0"),
            "lookahead": (len(self.lookahead) > 0, "non-empty"),
            "collision_margin": (self.collision_margin >= 0, ">= 0"),
            "stuck_seconds": (self.stuck_seconds > 0, "> 0"),
            "stuck_distance": (self.stuck_distance >= 0, ">= 0"),
            "physics_dt": (self.physics_dt > 0, "> 0"),
            "start_lateral": (0 <= self.start_lateral <= 1, "in [0, 1]"),
            "start_heading": (self.start_heading >= 0, ">= 0"),
        }
        for key, (ok, need) in checks.items():
            if not ok:
                raise ConfigError(f"rccar_race {key} must be {need}, got {getattr(self, key)!r}")
        r = self.randomization
        if tuple(r.joint_damping) != (1.0, 1.0) or tuple(r.actuator_gain) != (1.0, 1.0):
            raise ConfigError(
                "rccar_race has no joints to damp or actuators to scale: leave "
                "randomization.joint_damping and actuator_gain at [1, 1]"
            )
        if self.image.enabled:
            raise ConfigError("rccar_race has no cameras; its observations are lidar and odometry")


class CarRandomizer:
    """Draws friction, cornering stiffness and mass (with yaw inertia) multipliers per car."""

    def __init__(self, cfg: RaceConfig, backend: TorchCarBackend, gen: torch.Generator):
        r = cfg.randomization
        self.backend, self.gen = backend, gen
        self.terms = [
            (rng, names)
            for rng, names in (
                (r.friction, ("mu",)),
                (cfg.cornering_stiffness, ("C_Sf", "C_Sr")),
                (r.mass, ("m", "I")),
            )
            if tuple(rng) != (1.0, 1.0)
        ]

    def apply(self, ids: torch.Tensor) -> None:
        for (lo, hi), names in self.terms:
            u = torch.rand(len(ids), generator=self.gen, device=ids.device)
            scale = lo + (hi - lo) * u
            for name in names:
                self.backend.param(name)[ids] = float(getattr(self.backend.nominal, name)) * scale


@register_task("rccar_race", RaceConfig, gym_id="robot_rl/RCCarRace-v0")
class RaceEnv(TaskEnv):
    """Batched racing on one or more tracks; see the module docstring."""

    cfg: RaceConfig
    backend: TorchCarBackend
    video_camera = "top"
    CAMERAS = {"top": None, "chase": (12.0, 9.0)}
    """Top-down views: the whole track, or a window (m) following the car."""

    def __init__(
        self, cfg: RaceConfig, num_envs: int, device: str = "cpu", seed: int | None = None
    ):
        self.profile = p = load_profile(cfg.profile)
        limits = dict(zip(p.joint_names, p.joints))
        if set(limits) != {"steering_angle", "speed"}:
            raise ConfigError(
                f"{p.source}: a car profile commands [steering_angle, speed], got {p.joint_names}"
            )
        self.max_steer = limits["steering_angle"].upper
        lo, hi = cfg.speed_range
        if lo < limits["speed"].lower or hi > limits["speed"].upper:
            raise ConfigError(
                f"speed_range {[lo, hi]} leaves the profile's speed limits "
                f"[{limits['speed'].lower}, {limits['speed'].upper}]"
            )
        vehicle = p.extra.get("vehicle", {})
        lr = float(vehicle.get("lr", D.DEFAULT_PARAMS.lr))
        wheelbase = float(vehicle.get("wheelbase", D.DEFAULT_PARAMS.wheelbase))
        params = D.CarParams(
            lf=wheelbase - lr,
            lr=lr,
            max_steer=self.max_steer,
            max_steer_rate=limits["steering_angle"].velocity,
            max_accel=limits["speed"].velocity,
            v_min=min(limits["speed"].lower, -1e-3),
            v_max=limits["speed"].upper * 1.05,
        )
        backend = TorchCarBackend(
            num_envs, device, params, cfg.physics_dt, float(p.extra.get("speed_gain", 8.0))
        )
        self._substeps = max(1, round(1.0 / (p.control_rate_hz * cfg.physics_dt)))
        self.control_dt = self._substeps * cfg.physics_dt
        self.tracks = [_track(name, str(backend.device)) for name in cfg.tracks]
        # the sensor sits lidar_x ahead of the rear axle; the state is the centre of gravity
        mount = float(vehicle.get("lidar_x", 0.27)) - lr
        self.lidar_cfg = LidarConfig(
            num_beams=cfg.lidar_beams,
            fov=cfg.lidar_fov,
            max_range=cfg.lidar_max_range,
            noise_std=cfg.lidar_noise_std,
            mount_offset=mount,
        )
        self.lidars = [_lidar(t, self.lidar_cfg) for t in self.tracks]
        self.beam_angles = beam_angles(cfg.lidar_beams, cfg.lidar_fov, backend.device)
        self.state_names = _state_names(cfg)
        super().__init__(cfg, backend, action_dim=2, seed=seed)
        self.action_spec = TensorSpec((2,), torch.float32, -1.0, 1.0, names=("steer", "speed"))
        n, dev = num_envs, self.device
        tid = torch.arange(n, device=dev) % len(self.tracks)
        self.track_id = tid
        groups = [(t, (tid == t).nonzero().flatten()) for t in range(len(self.tracks))]
        self.track_groups = [(t, ids) for t, ids in groups if len(ids)]
        """(track index, env ids (k,)) of every track some env races."""
        self.s = torch.zeros(n, device=dev)
        """Arc length of each car on its track (m)."""
        self.lateral = torch.zeros(n, device=dev)
        self.seg_index = torch.zeros(n, dtype=torch.long, device=dev)
        self.half_left = torch.ones(n, device=dev)
        self.half_right = torch.ones(n, device=dev)
        self.progress = torch.zeros(n, device=dev)
        """Metres along the centreline since the episode began (negative when reversing)."""
        self.step_progress = torch.zeros(n, device=dev)
        self.ranges = torch.zeros(n, cfg.lidar_beams, device=dev)
        self.crashed = torch.zeros(n, dtype=torch.bool, device=dev)
        self.stuck = torch.zeros(n, dtype=torch.bool, device=dev)
        k = max(1, round(cfg.stuck_seconds / self.control_dt))
        self._progress_hist = torch.zeros(n, k, device=dev)
        self._last_action = torch.zeros(n, 2, device=dev)
        self._action_rate = torch.zeros(n, device=dev)
        self._lookahead = torch.tensor(cfg.lookahead, device=dev)
        front = wheelbase - lr + float(vehicle.get("front_overhang", 0.12))
        rear = params.lr + float(vehicle.get("rear_overhang", 0.13))
        half = 0.5 * float(vehicle.get("width", 0.31))
        self._corners = torch.tensor(
            [[front, half], [front, -half], [-rear, half], [-rear, -half]], device=dev
        )
        """Body corners in the centre-of-gravity frame (forward, left), m."""
        self._start_margin = math.hypot(max(front, rear), half) + cfg.collision_margin
        self._renderers: dict = {}
        self.command_filter = None
        """Sees every AckermannDrive command ``(N, 2)`` (wheel angle rad, speed m/s) before the
        car does and returns the one to apply: where a safety chain runs in simulation."""

    # ----------------------------------------------------------------- helpers
    def _make_randomizer(self) -> CarRandomizer:
        return CarRandomizer(self.cfg, self.backend, self._gen)

    def _uniform(self, k: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(k, generator=self._gen, device=self.device)

    def action_to_command(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised actions ``(N, 2)`` ⇒ AckermannDrive commands (wheel angle rad, speed m/s)."""
        lo, hi = self.cfg.speed_range
        steer = action[:, 0] * self.max_steer
        speed = lo + (action[:, 1] + 1.0) * 0.5 * (hi - lo)
        return torch.stack((steer, speed), dim=-1)

    def command_to_action(self, command: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`action_to_command` (clipped to [-1, 1])."""
        lo, hi = self.cfg.speed_range
        steer = command[:, 0] / self.max_steer
        speed = 2.0 * (command[:, 1] - lo) / (hi - lo) - 1.0
        return torch.stack((steer, speed), dim=-1).clamp(-1.0, 1.0)

    @property
    def pose(self) -> torch.Tensor:
        """(N, 3) x, y, yaw of each car's centre of gravity on its track's map."""
        return self.backend.state[:, :3]

    @property
    def speed(self) -> torch.Tensor:
        """(N,) speed along the velocity (m/s), negative when reversing."""
        return self.backend.state[:, D.V]

    @property
    def body_corners(self) -> torch.Tensor:
        """(N, 4, 2) x, y of the body's corners (the profile's ``vehicle`` box) on the map:
        front left, front right, rear left, rear right."""
        yaw = self.pose[:, 2]
        fwd = torch.stack((yaw.cos(), yaw.sin()), dim=-1)
        left = torch.stack((-yaw.sin(), yaw.cos()), dim=-1)
        c = self._corners
        return self.pose[:, None, :2] + c[:, 0, None] * fwd[:, None] + c[:, 1, None] * left[:, None]

    @property
    def measured_command(self) -> torch.Tensor:
        """(N, 2) the measured wheel angle (rad) and speed (m/s): what the command drives."""
        st = self.backend.state
        return torch.stack((st[:, D.STEER], st[:, D.V]), dim=-1)

    def render(
        self,
        camera: str = "top",
        height: int = 240,
        width: int = 320,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Top-down frames, one per car, with its lidar hits: uint8 (k, H, W, 3). ``camera``:
        ``top`` (the whole track) or ``chase`` (a 12 × 9 m window following the car)."""
        if camera not in self.CAMERAS:
            raise ValueError(f"rccar_race cameras are {sorted(self.CAMERAS)}, got {camera!r}")
        ids = self._all if ids is None else ids.to(self.device)
        out = torch.empty(len(ids), height, width, 3, dtype=torch.uint8, device=self.device)
        for t, _ in self.track_groups:
            rows = (self.track_id[ids] == t).nonzero().flatten()
            if not len(rows):
                continue
            key = (t, camera, height, width)
            if key not in self._renderers:
                self._renderers[key] = self._make_renderer(t, camera, height, width)
            sel = ids[rows]
            out[rows] = self._renderers[key].render(self.pose[sel], self.ranges[sel])
        return out

    def _make_renderer(self, t: int, camera: str, height: int, width: int):
        from robot_rl.envs.tasks.car.render import TopDownRenderer

        v = self.profile.extra.get("vehicle", {})
        rear = float(v.get("lr", 0.17145)) + float(v.get("rear_overhang", 0.13))
        return TopDownRenderer(
            self.tracks[t],
            height,
            width,
            view_size=self.CAMERAS[camera],
            lidar=self.lidar_cfg,
            car_length=float(v.get("length", 0.58)),
            car_width=float(v.get("width", 0.31)),
            cog_to_rear=rear,
        )

    # ----------------------------------------------------------------- hooks
    def _neutral_action(self) -> torch.Tensor:
        return self.command_to_action(torch.zeros(1, 2, device=self.device))[0]

    def _reset_task(self, ids: torch.Tensor) -> None:
        cfg = self.cfg
        st = self.backend.state
        for t, _ in self.track_groups:
            sel = ids[self.track_id[ids] == t]
            if not len(sel):
                continue
            track = self.tracks[t]
            s0 = self._uniform(len(sel), 0.0, track.length)
            xy, heading = track.point_at(s0)
            index = (torch.searchsorted(track.s, s0, right=True) - 1).clamp(0, len(track.s) - 1)
            left, right = track.half_widths_at(index, s0)
            u = self._uniform(len(sel), -cfg.start_lateral, cfg.start_lateral)
            m = self._start_margin
            offset = torch.where(u >= 0, u * (left - m), u * (right - m))
            normal = torch.stack((-heading.sin(), heading.cos()), dim=-1)
            xy = xy + offset[:, None] * normal
            yaw = heading + self._uniform(len(sel), -cfg.start_heading, cfg.start_heading)
            st[sel] = D.initial_state(xy, yaw)
            self.seg_index[sel] = index
        self.progress[ids] = 0.0
        self.step_progress[ids] = 0.0
        self._progress_hist[ids] = 0.0
        self._last_action[ids] = self._neutral_action()
        self._action_rate[ids] = 0.0
        self.backend.command[ids] = 0.0
        self.stuck[ids] = False

    def _apply_action(self, action: torch.Tensor) -> None:
        command = self.action_to_command(action)
        if self.command_filter is not None:
            command = self.command_filter(self, command).to(command)
        self.backend.command = command
        self._action_rate = (action - self._last_action).square().sum(-1)
        self._last_action = action

    def _after_physics(self, ids: torch.Tensor | None = None) -> None:
        """Track position (local search from the last segment), progress, lidar, crash, stuck:
        for every car after a step, for cars ``ids`` just placed by a reset."""
        st = self.backend.state
        stepped = ids is None
        s_prev = self.s.clone()
        for t, rows in self.track_groups:
            if not stepped:
                rows = ids[self.track_id[ids] == t]
                if not len(rows):
                    continue
            track = self.tracks[t]
            s, lateral, index = track.progress_near(st[rows, :2], self.seg_index[rows])
            left, right = track.half_widths_at(index, s)
            self.s[rows], self.lateral[rows], self.seg_index[rows] = s, lateral, index
            self.half_left[rows], self.half_right[rows] = left, right
            self.ranges[rows] = self.lidars[t].scan(st[rows, :3], self._gen)
            if stepped:
                self.step_progress[rows] = track.progress_delta(s_prev[rows], s)
            self.crashed[rows] = self._body_off_track(track, st[rows], self.seg_index[rows])
        if stepped:
            self.progress += self.step_progress
            hist = self._progress_hist
            # progress over the last stuck_seconds: now against the oldest value kept
            full = self.episode_step + 1 >= hist.shape[1]
            self.stuck = full & (self.progress - hist[:, 0] < self.cfg.stuck_distance)
            self._progress_hist = torch.cat((hist[:, 1:], self.progress[:, None]), dim=1)

    def _body_off_track(
        self, track: Track, state: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        """(k,) bool: a corner of the body lies within ``collision_margin`` of a boundary or
        beyond it (or the state is not finite)."""
        yaw = state[:, D.YAW]
        fwd = torch.stack((yaw.cos(), yaw.sin()), dim=-1)
        left = torch.stack((-yaw.sin(), yaw.cos()), dim=-1)
        c = self._corners  # (4, 2)
        corners = state[:, None, :2] + c[:, 0, None] * fwd[:, None] + c[:, 1, None] * left[:, None]
        k = len(state)
        s, lateral, seg = track.progress_near(corners.reshape(-1, 2), index.repeat_interleave(4))
        half_l, half_r = track.half_widths_at(seg, s)
        m = self.cfg.collision_margin
        inside = (lateral <= half_l - m) & (lateral >= -(half_r - m))
        return ~inside.view(k, 4).all(-1) | ~torch.isfinite(state).all(-1)

    def _observe_state(self) -> torch.Tensor:
        st = self.backend.state
        v, beta, yaw = st[:, D.V], st[:, D.SLIP], st[:, D.YAW]
        heading_err = torch.empty_like(yaw)
        ahead = torch.empty(self.num_envs, len(self._lookahead), 2, device=self.device)
        cos, sin = yaw.cos(), yaw.sin()
        for t, ids in self.track_groups:
            track = self.tracks[t]
            _, tangent_heading = track.point_at(self.s[ids])
            heading_err[ids] = _wrap(yaw[ids] + beta[ids] - tangent_heading)
            s_ahead = self.s[ids, None] + self._lookahead
            pts, _ = track.point_at(s_ahead.flatten())
            rel = pts.view(len(ids), -1, 2) - st[ids, None, :2]
            c, s = cos[ids, None], sin[ids, None]
            ahead[ids, :, 0] = c * rel[..., 0] + s * rel[..., 1]
            ahead[ids, :, 1] = -s * rel[..., 0] + c * rel[..., 1]
        parts = [
            (v * beta.cos())[:, None],
            (v * beta.sin())[:, None],
            st[:, D.YAW_RATE, None],
            st[:, D.STEER, None],
            self.lateral[:, None],
            heading_err[:, None],
            ahead.flatten(1),
            self.ranges,
            self._last_action,
        ]
        return torch.cat(parts, dim=-1).to(torch.float32)

    def _success(self) -> torch.Tensor:
        return self.progress >= self.cfg.laps * self._lap_length()

    def _lap_length(self) -> torch.Tensor:
        lengths = torch.tensor([t.length for t in self.tracks], device=self.device)
        return lengths[self.track_id]

    def _failure(self) -> torch.Tensor:
        return self.crashed | self.stuck

    def _episode_metrics(self, success: torch.Tensor) -> dict[str, torch.Tensor]:
        """``lap_time`` (s, completed laps only), ``laps_per_minute`` (0 when the laps were not
        completed: one number that rewards both finishing and speed), ``crash`` and ``stuck``
        (1 if it ended so), ``speed`` (average m/s of centreline progress)."""
        seconds = self.episode_step.to(torch.float32) * self.control_dt
        nan = torch.full_like(seconds, float("nan"))
        lap_time = seconds / self.cfg.laps
        return {
            "lap_time": torch.where(success, lap_time, nan),
            "laps_per_minute": torch.where(success, 60.0 / lap_time.clamp(min=1e-6), 0.0 * seconds),
            "crash": self.crashed.to(torch.float32),
            "stuck": (self.stuck & ~self.crashed).to(torch.float32),
            "speed": self.progress / seconds.clamp(min=self.control_dt),
        }

    def _reward_terms(self, action: torch.Tensor, success: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "progress": self.step_progress.to(torch.float32),
            "crash": self.crashed.to(torch.float32),
            "success": success.to(torch.float32),
            "action_rate": -self._action_rate,
        }


@functools.lru_cache(maxsize=16)
def _track(name: str, device: str) -> Track:
    """Tracks are read-only data: envs of one process share them."""
    return Track.load(name, device)


@functools.lru_cache(maxsize=16)
def _lidar(track: Track, cfg: LidarConfig) -> Lidar:
    """One lidar (and its segment grid, built at first use) per track and configuration."""
    return Lidar(track.boundary_segments(), cfg)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _state_names(cfg: RaceConfig) -> list[str]:
    names = ["v_long", "v_lat", "yaw_rate", "steer", "track_lateral", "track_heading"]
    for d in cfg.lookahead:
        names += [f"ahead_{d:g}m_x", f"ahead_{d:g}m_y"]
    names += [f"lidar_{i:02d}" for i in range(cfg.lidar_beams)]
    return names + ["last_steer", "last_speed"]
