"""Robot profiles (``hardware/*.yaml``): one place for joints, limits, workspace, rates and topics.

The simulated task, the safety chain and the ROS 2 nodes all read the same profile, so a limit is
written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_rl.core.errors import ConfigError
from robot_rl.core.paths import asset_path


@dataclass(frozen=True)
class JointLimits:
    """Limits of one joint, in SI units (rad, rad/s, N·m; m, m/s, N for prismatic joints)."""

    name: str
    lower: float
    upper: float
    velocity: float
    effort: float
    default: float = 0.0

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ConfigError(
                f"joint {self.name!r}: lower {self.lower} must be < upper {self.upper}"
            )
        if not self.lower <= self.default <= self.upper:
            raise ConfigError(
                f"joint {self.name!r}: default {self.default} outside [{self.lower}, {self.upper}]"
            )
        if self.velocity <= 0 or self.effort <= 0:
            raise ConfigError(f"joint {self.name!r}: velocity and effort limits must be > 0")


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box (base frame, metres) the end effector must stay in."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.low) != 3 or len(self.high) != 3:
            raise ConfigError(f"workspace low/high need 3 values, got {self.low} / {self.high}")
        if any(lo >= hi for lo, hi in zip(self.low, self.high)):
            raise ConfigError(
                f"workspace low {self.low} must be below high {self.high} on every axis"
            )


@dataclass(frozen=True)
class RobotProfile:
    """Everything about one robot that sim, safety and deployment must agree on."""

    name: str
    robot_type: str
    joints: tuple[JointLimits, ...]
    control_rate_hz: float
    gripper: JointLimits | None = None
    workspace: Workspace | None = None
    ee_frame: str = ""
    max_ee_step: tuple[float, float] = (0.02, 0.1)
    """Largest end-effector change per control step: (metres, radians)."""
    topics: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def limits(self, key: str) -> list[float]:
        """Per-joint list of ``lower``, ``upper``, ``velocity``, ``effort`` or ``default``."""
        return [float(getattr(j, key)) for j in self.joints]


def _joint(raw: dict[str, Any], where: str) -> JointLimits:
    try:
        return JointLimits(**raw)
    except TypeError as e:
        raise ConfigError(f"{where}: bad joint entry {raw}: {e}") from None


def load_yaml_mapping(
    name_or_path: str | Path, kind: str, folder: str, what: str
) -> tuple[dict, Path]:
    """The mapping in a YAML file: a path, or a name looked up as ``<kind>/<folder>/<name>.yaml``
    among the shipped assets (``folder`` may be empty). Missing, malformed or non-mapping files
    raise a one-line :class:`ConfigError` naming ``what`` and the path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = asset_path(
            kind, f"{folder}/{name_or_path}.yaml" if folder else f"{name_or_path}.yaml"
        )
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        detail = " ".join(str(e).split())
        raise ConfigError(f"{what} {path} is not valid YAML: {detail}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must be a mapping, got {type(raw).__name__}")
    return raw, path


def load_profile(name_or_path: str | Path) -> RobotProfile:
    """Load ``hardware/<name>.yaml`` (or a path) into a validated :class:`RobotProfile`."""
    raw, path = load_yaml_mapping(name_or_path, "hardware", "", "robot profile")
    known = {
        "name",
        "robot_type",
        "joints",
        "control_rate_hz",
        "gripper",
        "workspace",
        "ee_frame",
        "max_ee_step",
        "topics",
    }
    missing = {"name", "robot_type", "joints", "control_rate_hz"} - raw.keys()
    if missing:
        raise ConfigError(f"robot profile {path} is missing {sorted(missing)}")
    joints = tuple(_joint(j, str(path)) for j in raw["joints"])
    if len({j.name for j in joints}) != len(joints):
        raise ConfigError(f"robot profile {path}: joint names are not unique")
    ws = raw.get("workspace")
    return RobotProfile(
        name=raw["name"],
        robot_type=raw["robot_type"],
        joints=joints,
        control_rate_hz=float(raw["control_rate_hz"]),
        gripper=_joint(raw["gripper"], str(path)) if raw.get("gripper") else None,
        workspace=Workspace(tuple(ws["low"]), tuple(ws["high"])) if ws else None,
        ee_frame=raw.get("ee_frame", ""),
        max_ee_step=tuple(raw.get("max_ee_step", (0.02, 0.1))),
        topics=dict(raw.get("topics", {})),
        extra={k: v for k, v in raw.items() if k not in known},
        source=str(path),
    )
