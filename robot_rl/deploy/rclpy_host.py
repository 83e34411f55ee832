"""Run a :class:`~robot_rl.deploy.node.NodeLogic` as a ROS 2 node with rclpy (Humble, Jazzy).

The node logic is the same one ``robot-rl launch`` runs over bare DDS; only the I/O differs.
Messages are copied field by field between our structs and the ROS message classes (the field
names are ROS's, so one generic copy serves every type). Names, namespaces, remappings and
parameter files are rclpy's own. A managed node (``logic.lifecycle``) is an rclpy lifecycle
node: its publishers exist only from ``configure`` and publish only while active; with the
parameter ``autostart`` true it configures and activates itself (nav2's lifecycle-manager
convention), else ``ros2 lifecycle set <node> configure|activate`` drives it.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import typing
from typing import Any

from robot_rl.core.errors import RobotRLError
from robot_rl.deploy.node import NodeLogic, Out
from robot_rl.deploy.qos import to_rclpy
from robot_rl.msgs import ros_name


class RclpyMissing(RobotRLError):
    """rclpy cannot be imported."""


def require_rclpy():
    """The ``rclpy`` module, or a one-line error saying how to get it."""
    try:
        import rclpy
    except ImportError:
        raise RclpyMissing(
            "rclpy is not importable: source ROS 2 first (e.g. `source /opt/ros/jazzy/setup.bash`)"
            ", or run the nodes without ROS: `robot-rl launch launch/<file>.launch.xml`"
        ) from None
    return rclpy


def ros_class(cls: type) -> type:
    """The rclpy message class of one of our message structs."""
    pkg, _, name = ros_name(cls).split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _element_type(cls: type, field: str) -> type | None:
    """The struct type of a sequence-of-structs field, else None."""
    hint = typing.get_type_hints(cls, include_extras=True)[field]
    for meta in getattr(hint, "__metadata__", ()):
        sub = getattr(meta, "subtype", None)
        if isinstance(sub, type) and dataclasses.is_dataclass(sub):
            return sub
    return None


BYTE_TYPES = ("byte", "octet")
"""rosidl field types whose Python setter wants a 1-byte ``bytes`` (our structs hold an int)."""


def to_ros(msg: Any, target: type | None = None) -> Any:
    """Our struct → a ROS message of the same type (recursively)."""
    target = target or ros_class(type(msg))
    out = target()
    types = target.get_fields_and_field_types()
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if dataclasses.is_dataclass(value):
            setattr(out, f.name, to_ros(value, type(getattr(out, f.name))))
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            setattr(out, f.name, [to_ros(v) for v in value])
        elif types.get(f.name) in BYTE_TYPES and isinstance(value, int):
            setattr(out, f.name, bytes([value]))
        else:
            setattr(out, f.name, value)
    return out


def from_ros(ros_msg: Any, cls: type) -> Any:
    """A ROS message → our struct ``cls`` (recursively)."""
    kwargs = {}
    template = cls()
    for f in dataclasses.fields(cls):
        value = getattr(ros_msg, f.name)
        default = getattr(template, f.name)
        if dataclasses.is_dataclass(default):
            kwargs[f.name] = from_ros(value, type(default))
        elif (sub := _element_type(cls, f.name)) is not None:
            kwargs[f.name] = [from_ros(v, sub) for v in value]
        elif isinstance(default, int) and isinstance(value, bytes):
            kwargs[f.name] = value[0] if value else 0  # a ROS byte field
        elif isinstance(default, bytes):
            kwargs[f.name] = bytes(value)
        elif isinstance(default, list):
            kwargs[f.name] = list(value)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def run(executable: str, args: list[str] | None = None) -> int:
    """``ros2 run robot_rl_ros <executable>``: build the node logic from the node's ROS
    parameters and spin it until shutdown."""
    rclpy = require_rclpy()
    from rclpy.executors import ExternalShutdownException

    from robot_rl.deploy.nodes import node_class

    cls = node_class(executable)
    rclpy.init(args=args if args is not None else sys.argv)
    host = None
    try:
        host = RclpyHost(cls)
        rclpy.spin(host.node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RobotRLError as e:
        print(f"{executable}: {e}", file=sys.stderr)
        return 2
    finally:
        if host is not None:
            host.close()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


class RclpyHost:
    """One rclpy node around one node logic class."""

    def __init__(self, cls: type[NodeLogic]) -> None:
        from rclpy.node import Node

        if cls.lifecycle:
            self.node = _managed_node_class()(cls.default_name)
            self.node.host = self
        else:
            self.node = Node(cls.default_name)
        params = {}
        for key, default in cls.parameters.items():
            self.node.declare_parameter(key, default)
            params[key] = self.node.get_parameter(key).value
        # nav2's lifecycle-manager convention: a managed node configures and activates itself
        autostart = self.node.declare_parameter("autostart", True).value
        self.logic = cls(params)
        self.logic.log = self.node.get_logger().info
        self.pubs: dict[str, Any] = {}
        self.active = not cls.lifecycle
        self._timers: list[Any] = []
        self._subs: list[Any] = []
        if cls.lifecycle:
            if autostart:
                self.node.trigger_configure()
                self.node.trigger_activate()
        else:
            self._create()
            self.publish(self.logic.activate())

    def _create(self, lifecycle: bool = False) -> None:
        n, logic = self.node, self.logic
        for key, port in logic.publishers.items():
            make = n.create_lifecycle_publisher if lifecycle else n.create_publisher
            self.pubs[key] = make(ros_class(port.msg_type), port.topic, to_rclpy(port.qos))
        for key, port in logic.subscriptions.items():
            self._subs.append(
                n.create_subscription(
                    ros_class(port.msg_type),
                    port.topic,
                    lambda m, k=key, c=port.msg_type: self._on_message(k, m, c),
                    to_rclpy(port.qos),
                )
            )
        for key, period in logic.timers.items():
            self._timers.append(n.create_timer(period, lambda k=key: self._on_timer(k)))

    def _on_message(self, key: str, ros_msg: Any, cls: type) -> None:
        if not self.active:
            return  # an inactive managed node does not act on its inputs
        try:
            msg = from_ros(ros_msg, cls)
        except Exception as e:  # noqa: BLE001 — a message we cannot read is no message
            self.publish(self.logic.on_exception(key, e))
            return
        self.publish(self.logic.handle(key, msg))

    def _on_timer(self, key: str) -> None:
        if self.active:
            self.publish(self.logic.tick(key))

    def _destroy(self) -> None:
        """Remove every publisher, subscription and timer (lifecycle cleanup)."""
        n = self.node
        for sub in self._subs:
            n.destroy_subscription(sub)
        for timer in self._timers:
            n.destroy_timer(timer)
        for pub in self.pubs.values():
            n.destroy_publisher(pub)
        self._subs, self._timers, self.pubs = [], [], {}

    def publish(self, out: Out) -> None:
        if not self.active:
            return
        for key, msg in out:
            self.pubs[key].publish(to_ros(msg))

    def close(self) -> None:
        if self.active:
            try:  # the context may already be shut down (Ctrl-C under Jazzy)
                self.publish(self.logic.deactivate())
            except Exception as e:  # noqa: BLE001
                print(f"{self.logic.default_name}: final publish failed: {e}", file=sys.stderr)
        self.logic.shutdown()
        self.node.destroy_node()


def _managed_node_class() -> type:
    """An rclpy lifecycle node whose transitions drive the host (built on demand: rclpy is
    imported only when ROS 2 is there)."""
    from rclpy.lifecycle import Node as LifecycleNode
    from rclpy.lifecycle import TransitionCallbackReturn

    class ManagedNode(LifecycleNode):
        host: RclpyHost

        def on_configure(self, state) -> TransitionCallbackReturn:
            self.host._create(lifecycle=True)
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state) -> TransitionCallbackReturn:
            result = super().on_activate(state)  # activates the lifecycle publishers
            self.host.active = True
            self.host.publish(self.host.logic.activate())
            return result

        def on_deactivate(self, state) -> TransitionCallbackReturn:
            self.host.publish(self.host.logic.deactivate())
            self.host.active = False
            return super().on_deactivate(state)

        def on_cleanup(self, state) -> TransitionCallbackReturn:
            self.host._destroy()
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state) -> TransitionCallbackReturn:
            if self.host.active:
                self.host.publish(self.host.logic.deactivate())
                self.host.active = False
            self.host._destroy()
            return TransitionCallbackReturn.SUCCESS

    return ManagedNode
