"""Transport-free node logic: what a node reads, writes and does each tick, with no I/O.

A :class:`NodeLogic` declares its ports (topic, message type, QoS preset), its timers and its
parameters. A host (``robot_rl.deploy.dds.DdsHost`` everywhere, ``robot_rl.deploy.rclpy_host``
under ROS 2) creates the matching publishers, subscriptions and timers, calls the handlers with
decoded messages and publishes what they return. Tests drive the same class by calling the
handlers with messages and a manual clock.

Handlers: ``on_<key>(msg) -> Out`` for a subscription ``key``, ``tick_<key>() -> Out`` for a
timer ``key``; ``Out`` is a list of ``(publisher key, message)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.qos import QosPreset
from robot_rl.msgs import Time, to_time

Out = list[tuple[str, Any]]


@dataclass(frozen=True)
class Port:
    """One topic a node reads or writes.

    Attributes:
        topic: ROS name as the node writes it: absolute (``/joint_states``), relative
            (``action_raw``, under the node's namespace) or private (``~/action_raw``).
        msg_type: the message class (``robot_rl.msgs``).
        qos: the QoS preset (``robot_rl.deploy.qos``).
    """

    topic: str
    msg_type: type
    qos: QosPreset


class Clock:
    """The node's time: ``now()`` monotonic seconds for timeouts and rates, ``stamp()`` the
    wall-clock time for message headers (ROS time)."""

    def now(self) -> float:
        return time.monotonic()

    def stamp(self) -> Time:
        return to_time(time.time())


class ManualClock(Clock):
    """A clock tests advance by hand; stamps equal ``now``."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def stamp(self) -> Time:
        return to_time(self.t)

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


class NodeLogic:
    """Base of every node. Subclasses set the class attributes and implement the handlers.

    Attributes:
        default_name: the node's name unless the launch file renames it.
        parameters: every parameter the node accepts, with its default (the type of the default
            is the parameter's type; ROS 2 declares them from this).
        lifecycle: a managed node (ROS 2 lifecycle): publishes nothing before :meth:`activate`.
        publishers / subscriptions: ports by key (filled in by ``__init__`` of the subclass).
        timers: timer period (s) by key.
    """

    default_name: ClassVar[str] = "node"
    parameters: ClassVar[dict[str, Any]] = {}
    lifecycle: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any] | None = None, clock: Clock | None = None):
        self.params = self.resolve_params(params or {})
        self.clock = clock or Clock()
        self.publishers: dict[str, Port] = {}
        self.subscriptions: dict[str, Port] = {}
        self.timers: dict[str, float] = {}
        self.log: Callable[[str], None] = print

    @classmethod
    def resolve_params(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``given``; unknown names and wrong types are errors."""
        unknown = sorted(set(given) - set(cls.parameters))
        if unknown:
            raise ConfigError(
                f"{cls.default_name}: unknown parameter(s) {unknown}; "
                f"known: {sorted(cls.parameters)}"
            )
        out = dict(cls.parameters)
        for key, value in given.items():
            out[key] = _coerce(cls.default_name, key, value, cls.parameters[key])
        return out

    # lifecycle ----------------------------------------------------------------------------
    def activate(self) -> Out:
        """Called once the transport is up (a managed node: on activation)."""
        return []

    def deactivate(self) -> Out:
        """Called before the node stops (a managed node: on deactivation); the last messages
        it returns are still published."""
        return []

    def shutdown(self) -> None:
        """Release threads and files."""

    def on_exception(self, key: str, error: Exception) -> Out:
        """A handler raised: what to publish instead (default: log it, publish nothing).
        Nodes that command hardware turn this into a fault."""
        self.log(f"error in {key}: {type(error).__name__}: {error}")
        return []

    # dispatch (hosts call these) ----------------------------------------------------------
    def handle(self, key: str, msg: Any) -> Out:
        """Run ``on_<key>(msg)``; an exception goes to :meth:`on_exception`, never to the host
        (the node keeps running)."""
        try:
            return getattr(self, f"on_{key}")(msg) or []
        except Exception as e:  # noqa: BLE001 — one bad message must not stop the node
            return self.on_exception(key, e)

    def tick(self, key: str) -> Out:
        try:
            return getattr(self, f"tick_{key}")() or []
        except Exception as e:  # noqa: BLE001
            return self.on_exception(key, e)


def _coerce(node: str, key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (ints widen to floats; lists stay lists)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise ConfigError(
        f"{node}: parameter {key!r} must be a {type(default).__name__}, got {value!r}"
    )


def episode_event(msg: Any) -> str | None:
    """The ``event`` of a simulator's episode message (``std_msgs/String`` JSON), or None."""
    try:
        event = json.loads(msg.data).get("event")
    except (ValueError, AttributeError):
        return None
    return event if isinstance(event, str) else None
