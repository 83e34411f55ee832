"""Typed task configs. Defaults live here; ``configs/task/<name>.yaml`` sets a task's values;
keyword
overrides (``make(..., episode_length=50)``) or Hydra overrides come last."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robot_rl.core.errors import ConfigError


def _check_range(name: str, rng: Any, lo: float = 0.0) -> None:
    if len(rng) != 2 or not lo <= rng[0] <= rng[1]:
        raise ConfigError(f"{name} must be [low, high] with {lo} <= low <= high, got {list(rng)}")


@dataclass
class RandomizationConfig:
    """Per-env domain randomization, drawn at every reset. Ranges are [low, high] multipliers of
    the model's nominal values; [1, 1] disables a term."""

    friction: tuple[float, float] = (1.0, 1.0)
    """Sliding friction of every colliding geom."""
    mass: tuple[float, float] = (1.0, 1.0)
    """Mass (and inertia) of every body."""
    joint_damping: tuple[float, float] = (1.0, 1.0)
    """Passive damping of every joint."""
    actuator_gain: tuple[float, float] = (1.0, 1.0)
    """Stiffness kp of every position actuator."""
    obs_noise_std: float = 0.0
    """Std of Gaussian noise added to the state observation."""
    action_delay: int = 0
    """Each env applies the action from d control steps ago, d uniform in {0, ..., action_delay}."""
    object_pose_scale: float = 1.0
    """Scales the task's object and goal reset ranges (0 = always the nominal pose)."""

    def __post_init__(self) -> None:
        for name in ("friction", "mass", "joint_damping", "actuator_gain"):
            _check_range(f"randomization.{name}", getattr(self, name))
        if self.obs_noise_std < 0:
            raise ConfigError(f"randomization.obs_noise_std must be >= 0, got {self.obs_noise_std}")
        if self.action_delay < 0:
            raise ConfigError(f"randomization.action_delay must be >= 0, got {self.action_delay}")
        if self.object_pose_scale < 0:
            raise ConfigError(
                f"randomization.object_pose_scale must be >= 0, got {self.object_pose_scale}"
            )


@dataclass
class ImageConfig:
    """Camera images in observations (rendered offscreen)."""

    enabled: bool = False
    cameras: tuple[str, ...] = ("front",)
    height: int = 84
    width: int = 84

    def __post_init__(self) -> None:
        if self.enabled and not self.cameras:
            raise ConfigError("image.cameras must name at least one camera when images are enabled")
        if not (8 <= self.height <= 1024 and 8 <= self.width <= 1024):
            raise ConfigError(f"image size must be within 8..1024, got {self.height}x{self.width}")


@dataclass
class TaskConfig:
    """Fields every task has; task families subclass this with their own."""

    name: str = ""
    instruction: str = ""
    """Language instruction given to policies (and stored as the dataset's task string)."""
    episode_length: int = 100
    """Control steps before truncation."""
    terminate_on_success: bool = True
    backend: str = "mujoco_cpu"
    num_threads: int = 0
    """Physics threads; 0 = one per core."""
    reward_weights: dict[str, float] = field(default_factory=dict)
    """Weight of each named reward term; terms not listed weigh 0 (still logged)."""
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    image: ImageConfig = field(default_factory=ImageConfig)

    def __post_init__(self) -> None:
        if self.episode_length < 1:
            raise ConfigError(f"episode_length must be >= 1, got {self.episode_length}")


def build_config(schema: type, *sources: Any, where: str = "task config") -> Any:
    """Merge ``sources`` (dicts / DictConfigs, later wins) onto the dataclass ``schema``.

    Unknown keys and wrongly typed values raise :class:`ConfigError` naming the key.
    """
    try:
        merged = OmegaConf.structured(schema)
        for src in sources:
            if src is None:
                continue
            if not isinstance(src, DictConfig):
                src = OmegaConf.create(src)
            merged = OmegaConf.merge(merged, src)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        msg = str(e).splitlines()[0]
        raise ConfigError(f"{where}: {msg}" + (f" (key '{key}')" if key else "")) from None
