"""QoS presets shared by the DDS and rclpy transports, spelled out so they never fall back to a
vendor's "system default".

ROS 2's defaults (FIELD_NOTES "ROS 2 on the wire"): default = reliable, volatile, keep-last 10;
sensor_data = best effort, volatile, keep-last 5. A best-effort writer never matches a reliable
reader, so anything a ros2_control controller subscribes to must be published reliable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cyclonedds.qos import Policy, Qos
from cyclonedds.util import duration

from robot_rl.core.errors import ConfigError

if TYPE_CHECKING:
    from rclpy.qos import QoSProfile

MAX_BLOCKING_TIME_S = 0.1
"""How long a reliable writer may block on a full history (Cyclone's and the DDS spec's default);
with keep-last histories a writer replaces old samples instead, so this rarely matters."""


@dataclass(frozen=True)
class QosPreset:
    """A named reliability / durability / keep-last-depth combination."""

    name: str
    reliable: bool
    """Reliable (retransmit until acknowledged) rather than best effort."""
    transient_local: bool
    """Late-joining readers receive the last `depth` samples (ROS 1 "latched")."""
    depth: int
    """Keep-last history depth on both writer and reader."""

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ConfigError(f"QoS preset {self.name!r}: depth={self.depth} must be at least 1")


SENSOR = QosPreset("sensor", reliable=False, transient_local=False, depth=5)
"""rclpy's qos_profile_sensor_data: drop rather than delay stale readings."""
STATE = QosPreset("state", reliable=True, transient_local=False, depth=10)
"""rclpy's default profile: joint states, odometry, diagnostics."""
COMMAND = QosPreset("command", reliable=True, transient_local=False, depth=1)
"""What ros2_control's ForwardCommandController subscribes `~/commands` with under Cyclone."""
LATCHED = QosPreset("latched", reliable=True, transient_local=True, depth=1)
"""One retained sample for late joiners: robot description, maps, mode announcements."""

PRESETS: dict[str, QosPreset] = {p.name: p for p in (SENSOR, STATE, COMMAND, LATCHED)}


def preset(name: str) -> QosPreset:
    """The preset called `name` (case-insensitive)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown QoS preset {name!r}; expected one of {', '.join(PRESETS)}"
        ) from None


def to_dds(p: QosPreset) -> Qos:
    """The cyclonedds Qos with reliability, durability and history all set explicitly."""
    reliability = (
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=MAX_BLOCKING_TIME_S))
        if p.reliable
        else Policy.Reliability.BestEffort
    )
    durability = (
        Policy.Durability.TransientLocal if p.transient_local else Policy.Durability.Volatile
    )
    return Qos(reliability, durability, Policy.History.KeepLast(depth=p.depth))


def to_rclpy(p: QosPreset) -> QoSProfile:
    """The rclpy QoSProfile (ROS 2 Humble and later); imports rclpy only when called."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE if p.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL if p.transient_local else DurabilityPolicy.VOLATILE
        ),
        history=HistoryPolicy.KEEP_LAST,
        depth=p.depth,
    )
