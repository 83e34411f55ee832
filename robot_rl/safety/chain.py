"""A safety chain: components applied in order, built from a robot profile and a safety config.

``build_chain(profile, cfg)`` reads the limits from the profile (``hardware/*.yaml``) and only the
choice of components and their margins from the config (``configs/safety/*.yaml``), so a limit is
written once. The chain is itself a filter: ``filter`` is pure; ``step`` filters, then lets every
component commit, remembers the applied command (the next tick's ``last_command``) and counts
interventions per component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import RobotProfile, load_profile, load_yaml_mapping
from robot_rl.core.registry import Registry
from robot_rl.safety.base import Fallback, Report, SafetyFilter, SafetyState, make_report
from robot_rl.safety.cbf import ArmCBF, Obstacles
from robot_rl.safety.energy import EnergyTank
from robot_rl.safety.kinematics import chain_from_profile
from robot_rl.safety.limits import JointLimits, ObservationGuard, RateLimiter
from robot_rl.safety.mobile import EmergencyBrake, FallDetector, Geofence
from robot_rl.safety.watchdog import Watchdog
from robot_rl.safety.workspace import WorkspaceBox


@dataclass
class SafetyConfig:
    """``configs/safety/<name>.yaml``: which components, in which order, with which margins."""

    profile: str = "arm"  # hardware/<profile>.yaml (or a path)
    chain: list[str] = field(default_factory=list)  # component names, applied in order
    safe_action: str = "hold"  # hold | damp | brake (what failing closed commands)
    observation_stale_s: float = 0.1
    # how far a reading may lie beyond a limit before it is broken (rad for joints); one value
    # per command entry where their units differ (a car: rad of steering, m/s of speed)
    position_tolerance: float | list[float] = 0.05
    joint_margin: float = 0.0  # rad kept from every joint's position limit
    # tighter [lower, upper] for named command entries, e.g. {speed: [-1.0, 3.0]} for a car's
    # first runs; inside the profile's limits (a limit is written once, a config only narrows it)
    command_limits: dict[str, list[float]] = field(default_factory=dict)
    gripper_margin: float = 0.0  # m kept from the gripper's limits
    # share of the profile's velocity limits the rate limiter commands: the joints lag their
    # command and catch up faster than it moved, so a command at the limit overshoots it
    velocity_scale: float = 1.0
    # rad/s² (m/s² at the tool) a joint / the tool is assumed to brake with: limits are pulled in
    # by the stopping distance at the measured speed; 0 turns this off
    braking_deceleration: float = 0.0
    # rad of command the joint-limit band is pulled in per rad a joint reads beyond it (a joint
    # bent past its command by contact is pushed back harder the further it is bent); 0: off
    deflection_gain: float = 0.0
    watchdog_timeout_s: float = 0.2
    workspace_margin_m: float = 0.01
    cbf: dict[str, Any] = field(default_factory=dict)  # gamma, halfspaces, spheres
    energy_tank: dict[str, Any] = field(default_factory=dict)  # EnergyTank arguments
    fall: dict[str, Any] = field(default_factory=dict)  # max_roll, max_pitch (rad)
    brake: dict[str, Any] = field(default_factory=dict)  # EmergencyBrake arguments
    # polygon [[x, y], ...] or low/high [x, y] (m, map/odom frame); margin (m); deceleration
    # (m/s², default: the profile's speed rate limit)
    geofence: dict[str, Any] = field(default_factory=dict)
    brake_action: list[float] = field(default_factory=list)  # the brake safe action
    reflex: dict[str, Any] = field(default_factory=dict)  # checkpoint (dir), threshold (optional)

    def __post_init__(self) -> None:
        unknown = [c for c in self.chain if c not in COMPONENTS]
        if unknown:
            raise ConfigError(
                f"safety chain names unknown components {unknown}; known: {COMPONENTS.names()}"
            )
        if not 0 < self.velocity_scale <= 1:
            raise ConfigError(f"safety.velocity_scale must be in (0, 1], got {self.velocity_scale}")
        for key in ("observation_stale_s", "watchdog_timeout_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"safety.{key} must be > 0, got {getattr(self, key)}")
        for key in ("braking_deceleration", "deflection_gain"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"safety.{key} must be >= 0, got {getattr(self, key)}")

    @staticmethod
    def load(source: str | Path | dict[str, Any]) -> SafetyConfig:
        """From a dict, a YAML path, or the name of a file in ``configs/safety/``."""
        if isinstance(source, dict):
            raw, where = source, "safety config"
        else:
            raw, path = load_yaml_mapping(source, "configs", "safety", "safety config")
            where = str(path)
        known = {f.name for f in fields(SafetyConfig)}
        bad = sorted(set(raw) - known)
        if bad:
            raise ConfigError(f"{where}: unknown keys {bad}; known: {sorted(known)}")
        return SafetyConfig(**raw)


@dataclass
class CommandSpace:
    """The command vector a profile's robot takes: its joints, then its gripper (if any)."""

    names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    default: np.ndarray
    acceleration: np.ndarray | None
    dt: float
    gripper: np.ndarray  # (A,) bool: the gripper's entry

    @staticmethod
    def of(profile: RobotProfile) -> CommandSpace:
        joints = list(profile.joints) + ([profile.gripper] if profile.gripper else [])
        acc = profile.extra.get("acceleration_limits")
        if acc is not None and len(acc) != len(joints):
            raise ConfigError(
                f"{profile.source}: acceleration_limits needs {len(joints)} values, got {len(acc)}"
            )

        def arr(key: str) -> np.ndarray:
            return np.array([float(getattr(j, key)) for j in joints])

        return CommandSpace(
            [j.name for j in joints],
            arr("lower"),
            arr("upper"),
            arr("velocity"),
            arr("effort"),
            arr("default"),
            None if acc is None else np.asarray(acc, float),
            1.0 / profile.control_rate_hz,
            np.array([i == len(profile.joints) for i in range(len(joints))]),
        )


def kept_limits(cfg: SafetyConfig, space: CommandSpace) -> tuple[np.ndarray, np.ndarray]:
    """The position band every component keeps commands in: the profile's limits shrunk by the
    config's margins (rad for joints, m for a gripper). Components downstream of the clamp use
    it too, so none of them moves a command back out to the hard limit."""
    margin = np.where(space.gripper, cfg.gripper_margin, cfg.joint_margin)
    lower, upper = space.lower + margin, space.upper - margin
    if (lower > upper).any():
        raise ConfigError(
            f"safety margins {cfg.joint_margin} / {cfg.gripper_margin} leave no range"
        )
    for name, band in cfg.command_limits.items():
        if name not in space.names:
            raise ConfigError(f"safety.command_limits names {name!r}; commands: {space.names}")
        i = space.names.index(name)
        try:
            lo, hi = (float(x) for x in band)
        except (TypeError, ValueError):
            raise ConfigError(
                f"safety.command_limits.{name} must be [low, high], got {band!r}"
            ) from None
        if not space.lower[i] <= lo <= hi <= space.upper[i]:
            raise ConfigError(
                f"safety.command_limits.{name} = {list(band)} must be an interval inside the "
                f"profile's [{space.lower[i]}, {space.upper[i]}]"
            )
        lower[i], upper[i] = max(lower[i], lo), min(upper[i], hi)
        if lower[i] > upper[i]:
            raise ConfigError(
                f"safety.command_limits.{name} = {list(band)} and the margin "
                f"{margin[i]} leave no range"
            )
    return lower, upper


Builder = Callable[[RobotProfile, SafetyConfig, CommandSpace, Fallback], SafetyFilter]
COMPONENTS: Registry[Builder] = Registry("safety component")


@COMPONENTS.register("observation_guard")
def _guard(profile, cfg, space, fallback):
    tolerance = np.asarray(cfg.position_tolerance, float)
    if tolerance.shape not in ((), space.lower.shape):
        raise ConfigError(
            f"safety.position_tolerance {cfg.position_tolerance}: one value, or one per command "
            f"entry {space.names}"
        )
    return ObservationGuard(
        fallback,
        space.lower,
        space.upper,
        space.velocity,
        cfg.observation_stale_s,
        tolerance,
    )


@COMPONENTS.register("joint_limits")
def _limits(profile, cfg, space, fallback):
    lower, upper = kept_limits(cfg, space)
    braking = None
    if cfg.braking_deceleration > 0:
        braking = np.full(space.lower.shape, cfg.braking_deceleration)
    return JointLimits(fallback, lower, upper, 0.0, braking, cfg.deflection_gain)


@COMPONENTS.register("rate_limiter")
def _rate(profile, cfg, space, fallback):
    velocity = cfg.velocity_scale * space.velocity
    lower, upper = kept_limits(cfg, space)
    return RateLimiter(fallback, lower, upper, velocity, space.dt, space.acceleration)


@COMPONENTS.register("workspace_box")
def _box(profile, cfg, space, fallback):
    if profile.workspace is None:
        raise ConfigError(f"{profile.source} has no workspace box for the workspace_box filter")
    return WorkspaceBox(
        fallback,
        chain_from_profile(profile.extra, profile.source),
        np.array(profile.workspace.low),
        np.array(profile.workspace.high),
        space.lower,
        space.upper,
        cfg.workspace_margin_m,
    )


@COMPONENTS.register("cbf")
def _cbf(profile, cfg, space, fallback):
    c = dict(cfg.cbf)
    obstacles = Obstacles.build(
        c.pop("halfspaces", None), c.pop("spheres", None), with_margins=True
    )
    gamma = float(c.pop("gamma", 0.5))
    points = c.pop("points", None)
    if c:
        raise ConfigError(f"safety.cbf: unknown keys {sorted(c)}")
    chain = chain_from_profile(profile.extra, profile.source)
    lower, upper = kept_limits(cfg, space)
    return ArmCBF(
        fallback,
        chain,
        obstacles,
        gamma,
        lower,
        upper,
        space.velocity,
        space.dt,
        None if points is None else np.asarray(points, float),
        cfg.velocity_scale * space.velocity * space.dt if "rate_limiter" in cfg.chain else None,
    )


@COMPONENTS.register("energy_tank")
def _tank(profile, cfg, space, fallback):
    c = dict(cfg.energy_tank)
    stiffness = np.broadcast_to(np.asarray(c.pop("stiffness", 100.0), float), space.lower.shape)
    try:
        return EnergyTank(fallback, stiffness, space.dt, **c)
    except TypeError as e:
        raise ConfigError(f"safety.energy_tank: {e}") from None


@COMPONENTS.register("watchdog")
def _watchdog(profile, cfg, space, fallback):
    return Watchdog(fallback, cfg.watchdog_timeout_s, len(space.lower))


@COMPONENTS.register("fall_detector")
def _fall(profile, cfg, space, fallback):
    # the profile's thresholds (hardware/*.yaml fall:, shared with the simulated tasks), which a
    # config may narrow
    fall = profile.extra.get("fall", {})
    c = {
        "max_roll": 0.8,
        "max_pitch": 0.8,
        **{k: fall[k] for k in fall if k in ("max_roll", "max_pitch")},
    }
    c |= cfg.fall
    return FallDetector(fallback, float(c["max_roll"]), float(c["max_pitch"]), len(space.lower))


@COMPONENTS.register("emergency_brake")
def _aeb(profile, cfg, space, fallback):
    # the scan's geometry from the profile unless the config says otherwise: the body reaches
    # front / rear beyond the lidar, which sees nothing nearer than its range_min
    v, lidar, c = profile.extra.get("vehicle"), profile.extra.get("lidar"), {}
    if v and "lidar_x" in v:
        if "wheelbase" not in v:
            raise ConfigError(f"{profile.source}: vehicle.lidar_x needs vehicle.wheelbase")
        c["front"] = v["wheelbase"] + v.get("front_overhang", 0.0) - v["lidar_x"]
        c["rear"] = v["lidar_x"] + v.get("rear_overhang", 0.0)
    if lidar and "range_min" in lidar:
        c["range_min"] = lidar["range_min"]
    try:
        return EmergencyBrake(fallback, len(space.lower), **{**c, **cfg.brake})
    except TypeError as e:
        raise ConfigError(f"safety.brake: {e}") from None


@COMPONENTS.register("geofence")
def _geofence(profile, cfg, space, fallback):
    c = dict(cfg.geofence)
    if "speed" not in space.names:
        raise ConfigError(f"{profile.source}: the geofence needs a 'speed' command entry")
    speed = space.names.index("speed")
    try:
        if "polygon" in c and not {"low", "high"} & set(c):
            polygon = np.asarray(c.pop("polygon"), float)
        elif "low" in c and "high" in c and "polygon" not in c:
            (x0, y0), (x1, y1) = c.pop("low"), c.pop("high")
            polygon = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
        else:
            raise ValueError("needs either polygon: [[x, y], ...] or low: [x, y] and high: [x, y]")
        margin = float(c.pop("margin", 0.2))
        decel = float(c.pop("deceleration", space.velocity[speed]))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"safety.geofence {cfg.geofence}: {e}") from None
    if c:
        raise ConfigError(f"safety.geofence: unknown keys {sorted(c)}")
    # the body as a disk around the middle of its length; the pose is the base frame's origin
    # (the rear axle, hardware/*.yaml vehicle)
    v = profile.extra.get("vehicle", {})
    front = float(v.get("wheelbase", 0.0)) + float(v.get("front_overhang", 0.0))
    rear = float(v.get("rear_overhang", 0.0))
    offset = (front - rear) / 2
    radius = float(np.hypot((front + rear) / 2, float(v.get("width", 0.0)) / 2))
    try:
        return Geofence(fallback, len(space.lower), polygon, margin, decel, offset, radius, speed)
    except ValueError as e:
        raise ConfigError(f"safety.geofence: {e}") from None


@COMPONENTS.register("reflex")
def _reflex(profile, cfg, space, fallback):
    from robot_rl.safety.reflex import ReflexFilter, load_reflex, risk_features

    if not cfg.reflex.get("checkpoint"):
        raise ConfigError("the reflex component needs safety.reflex.checkpoint (a trained critic)")
    critic, meta = load_reflex(cfg.reflex["checkpoint"])
    features = risk_features(profile, cfg)
    if features.dim != critic.in_dim:
        raise ConfigError(
            f"reflex checkpoint {cfg.reflex['checkpoint']} reads {critic.in_dim} features; this "
            f"profile and safety config give {features.dim}"
        )
    threshold = float(cfg.reflex.get("threshold", meta["threshold"]))
    return ReflexFilter(fallback, critic, features, threshold)


@dataclass
class InterventionStats:
    """Per-component counts over the ticks seen: interventions, fail-closed rows, the summed
    size of the corrections (finite ones)."""

    ticks: int = 0
    rows: int = 0
    interventions: dict[str, int] = field(default_factory=dict)
    fail_closed: dict[str, int] = field(default_factory=dict)
    magnitude: dict[str, float] = field(default_factory=dict)

    def add(self, reports: list[Report]) -> None:
        self.ticks += 1
        self.rows += len(reports[0].intervened) if reports else 0
        for r in reports:
            self.interventions[r.component] = self.interventions.get(r.component, 0) + int(
                r.intervened.sum()
            )
            self.fail_closed[r.component] = self.fail_closed.get(r.component, 0) + int(
                r.fail_closed.sum()
            )
            m = r.magnitude[np.isfinite(r.magnitude)].sum()
            self.magnitude[r.component] = self.magnitude.get(r.component, 0.0) + float(m)

    def scalars(self) -> dict[str, float]:
        """``safety/<component>/{rate, fail_closed_rate, mean_correction}`` for TensorBoard."""
        out = {}
        for name, count in self.interventions.items():
            rows = max(self.rows, 1)
            out[f"safety/{name}/rate"] = count / rows
            out[f"safety/{name}/fail_closed_rate"] = self.fail_closed[name] / rows
            out[f"safety/{name}/mean_correction"] = self.magnitude[name] / max(count, 1)
        return out


class SafetyChain:
    """Components applied in order; the chain fails closed as a whole when one of them raises
    or when its output is not finite and inside the position limits.

    Args:
        filters: the components.
        fallback: the safe action.
        space: the command space (its limits are the chain's last check).
    """

    name = "chain"

    def __init__(
        self, filters: list[SafetyFilter], fallback: Fallback, space: CommandSpace
    ) -> None:
        self.filters, self.fallback, self.space = filters, fallback, space
        self.last_command: np.ndarray | None = None
        self.last_velocity: np.ndarray | None = None
        self.stats = InterventionStats()

    def with_memory(self, state: SafetyState) -> SafetyState:
        """A copy of ``state`` with the chain's remembered last command and velocity filled in
        (when the caller did not give them)."""
        known = self.last_command is not None and self.last_command.shape == state.q.shape
        if state.last_command is None and known:
            return replace(state, last_command=self.last_command, last_velocity=self.last_velocity)
        return state

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, list[Report]]:
        """The applied action ``(N, A)`` and every component's report (pure)."""
        proposed = np.asarray(action, dtype=float)
        reports: list[Report] = []
        try:
            out = proposed
            for f in self.filters:
                out, report = f.filter(state, out)
                reports.append(report)
            bad = ~np.isfinite(out).all(axis=-1)
            bad |= ((out < self.space.lower) | (out > self.space.upper)).any(axis=-1)
        except Exception as e:  # noqa: BLE001 — a failing component must not pass the action on
            safe = self.fallback(state)
            fail = np.ones(state.n, dtype=bool)
            return safe, reports + [
                make_report("chain", safe, safe, fail, [f"{type(e).__name__}: {e}"])
            ]
        if bad.any():
            out = out.copy()
            out[bad] = self.fallback(state)[bad]
            reports.append(make_report("chain", out, out, bad, ["output outside the limits"]))
        return out, reports

    def step(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, list[Report]]:
        """Filter one tick, commit it to every component, remember it and count it."""
        state = self.with_memory(state)
        applied, reports = self.filter(state, action)
        self.commit(state, applied)
        if self.last_command is not None and self.last_command.shape == applied.shape:
            dt = self.space.dt
            if state.elapsed is not None and np.isfinite(state.elapsed):
                dt = min(max(float(state.elapsed), 1e-3 * dt), dt)
            self.last_velocity = (applied - self.last_command) / dt
        self.last_command = applied.copy()
        self.stats.add(reports)
        return applied, reports

    def commit(self, state: SafetyState, applied: np.ndarray) -> None:
        """Every component's commit (``step`` does it; a caller filtering by hand may too)."""
        for f in self.filters:
            f.commit(state, applied)

    def hold_at(self, command: np.ndarray) -> None:
        """The robot was commanded ``command (N, A)`` outside the chain (a damped mode): the
        next tick starts from it, at rest."""
        self.last_command, self.last_velocity = np.array(command, float), None

    def reset(self) -> None:
        for f in self.filters:
            f.reset()
        self.last_command = self.last_velocity = None
        self.stats = InterventionStats()

    def reset_rows(self, rows: np.ndarray, q: np.ndarray) -> None:
        """Rows ``(K,)`` whose robot starts over (a simulated episode reset): their last
        command becomes the measured pose ``q (N, A)``, their velocity 0, and components with
        per-row memory forget those rows."""
        if self.last_command is not None and len(rows):
            self.last_command[rows] = q[rows]
            if self.last_velocity is not None:
                self.last_velocity[rows] = 0.0
        for f in self.filters:
            forget = getattr(f, "reset_rows", None)
            if forget is not None:
                forget(rows)


def build_fallback(profile: RobotProfile, cfg: SafetyConfig, space: CommandSpace) -> Fallback:
    brake = np.asarray(cfg.brake_action, float) if cfg.brake_action else None
    return Fallback(cfg.safe_action, space.lower, space.upper, space.default, brake)


def build_chain(
    profile: RobotProfile | str | Path, cfg: SafetyConfig | str | Path | dict[str, Any]
) -> SafetyChain:
    """The chain ``cfg.chain`` for ``profile``: limits from the profile, choices from ``cfg``."""
    cfg = cfg if isinstance(cfg, SafetyConfig) else SafetyConfig.load(cfg)
    profile = profile if isinstance(profile, RobotProfile) else load_profile(profile)
    space = CommandSpace.of(profile)
    fallback = build_fallback(profile, cfg, space)
    filters = [COMPONENTS.get(name)(profile, cfg, space, fallback) for name in cfg.chain]
    return SafetyChain(filters, fallback, space)
