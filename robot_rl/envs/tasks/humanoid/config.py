"""Typed configs of the humanoid tasks."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.core import ConfigError
from robot_rl.envs.config import TaskConfig, _check_range


@dataclass
class HumanoidPerturbation:
    """Humanoid-specific domain randomization, on top of ``randomization`` (whose ``friction`` is
    one multiplier per env here, shared by every robot geom that touches the floor)."""

    joint_friction: tuple[float, float] = (0.0, 0.0)
    """Dry friction (frictionloss, N·m) of every leg joint, drawn per joint."""
    armature: tuple[float, float] = (1.0, 1.0)
    """Multiplier of every leg joint's armature (rotor inertia)."""
    base_mass_offset: tuple[float, float] = (0.0, 0.0)
    """kg added to the pelvis (upper body) mass, like a payload (unitree_rl_gym: −1…+3)."""
    default_pose_offset: float = 0.0
    """± rad uniform offset of each joint's zero, per env: the PD target is
    ``default + offset + action_scale·a`` while observations use the nominal default."""
    push_interval_s: tuple[float, float] = field(
        default=(5.0, 5.0),
        metadata={"schedule": True},  # robot-rl eval sweep=: not a term
    )
    """Seconds between pushes within an episode, drawn uniformly per push from [low, high] (the
    first push one draw after the reset); [5, 5]: at 5, 10 and 15 s of a 20 s episode."""
    push_velocity: float = 0.0
    """Largest horizontal velocity kick (m/s, uniform per axis) added to the base; 0: no pushes."""

    def __post_init__(self) -> None:
        _check_range("perturbation.joint_friction", self.joint_friction)
        _check_range("perturbation.armature", self.armature)
        _check_range("perturbation.base_mass_offset", self.base_mass_offset, lo=-1e9)
        if self.default_pose_offset < 0 or self.push_velocity < 0:
            raise ConfigError(
                "perturbation.default_pose_offset and push_velocity must be >= 0, got "
                f"{self.default_pose_offset} and {self.push_velocity}"
            )
        _check_range("perturbation.push_interval_s", self.push_interval_s)
        if self.push_interval_s[0] <= 0:
            raise ConfigError(
                f"perturbation.push_interval_s must be > 0, got {list(self.push_interval_s)}"
            )


@dataclass
class HumanoidTaskConfig(TaskConfig):
    profile: str = "humanoid"
    """Robot profile in hardware/ (joints, limits, default pose, gains, fall thresholds)."""
    model: str = "humanoid/humanoid.xml"
    """MJCF under sim/."""
    episode_length: int = 1000
    """20 s at 50 Hz."""
    terminate_on_success: bool = False
    """Success is surviving to the time limit: episodes end by time or by falling."""
    init_joint_noise: float = 0.0
    """Uniform ± noise (rad) on the default pose at reset."""
    lin_vel_x: tuple[float, float] = (0.0, 0.0)
    """Commanded forward velocity range (m/s, base frame)."""
    lin_vel_y: tuple[float, float] = (0.0, 0.0)
    yaw_rate: tuple[float, float] = (0.0, 0.0)
    """Commanded yaw rate range (rad/s)."""
    command_resample_s: float = 10.0
    """Seconds between command draws within an episode."""
    min_command_speed: float = 0.2
    """Commanded planar speeds below this (m/s) become 0: the policy also learns to stand."""
    tracking_sigma: float = 0.25
    """Width of the exp(−err²/σ) velocity tracking kernels."""
    base_height_target: float = 0.70
    feet_air_time_target: float = 0.5
    """Seconds of swing the feet_air_time term rewards beyond (legged_gym)."""
    success_tracking_error: float = float("inf")
    """Walk: success also needs the episode's mean planar velocity error (m/s) below this."""
    terminate_on_fall: bool = True
    """False: a fall does not end the episode; the robot lies where it fell, as a real one does
    (the deploy simulator, where the safety node must see the fall)."""
    perturbation: HumanoidPerturbation = field(default_factory=HumanoidPerturbation)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lin_vel_x", "lin_vel_y", "yaw_rate"):
            _check_range(name, getattr(self, name), lo=-1e9)
        if self.command_resample_s <= 0 or self.tracking_sigma <= 0:
            raise ConfigError(
                "command_resample_s and tracking_sigma must be > 0, got "
                f"{self.command_resample_s} and {self.tracking_sigma}"
            )
