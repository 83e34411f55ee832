"""Shared foundations: asset paths, robot profiles, registries, seeding, user-facing errors."""

from robot_rl.core.errors import ConfigError, DatasetError, RobotRLError
from robot_rl.core.paths import asset_path, asset_root
from robot_rl.core.profile import RobotProfile, load_profile
from robot_rl.core.registry import Registry

__all__ = [
    "ConfigError",
    "DatasetError",
    "Registry",
    "RobotProfile",
    "RobotRLError",
    "asset_path",
    "asset_root",
    "load_profile",
]
