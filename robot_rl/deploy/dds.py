"""Run a :class:`~robot_rl.deploy.node.NodeLogic` over DDS, wire-compatible with ROS 2.

The ROS 2 conventions of rmw_cyclonedds: topic ``/a/b`` is DDS topic ``rt/a/b``, type
``pkg/msg/T`` is ``pkg::msg::dds_::T_``, final (XCDR1) structs, and the node's explicit QoS
presets. ``ros2 topic echo`` on the same domain (``ROS_DOMAIN_ID``) sees these topics, and a
ros2_control controller receives these commands.

The host is a single-threaded executor like rclpy's: one loop waits on a DDS WaitSet until a
message arrives or the next timer is due, then runs the handlers one at a time, so node logic
needs no locks.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from cyclonedds.core import GuardCondition, InstanceState, ReadCondition, SampleState, ViewState
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.node import NodeLogic, Out
from robot_rl.deploy.qos import to_dds
from robot_rl.deploy.rosargs import NodeOptions


def dds_topic(name: str) -> str:
    """The DDS topic of a fully qualified ROS topic name (``/a/b`` → ``rt/a/b``)."""
    if not name.startswith("/"):
        raise ConfigError(f"topic {name!r} is not fully qualified")
    return "rt" + name


def domain_id() -> int:
    """``ROS_DOMAIN_ID`` (default 0), as ROS 2 reads it."""
    raw = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"ROS_DOMAIN_ID must be an integer, got {raw!r}") from None
    if not 0 <= value <= 232:
        raise ConfigError(f"ROS_DOMAIN_ID must be in [0, 232], got {value}")
    return value


class DdsHost:
    """Publishers, subscriptions and timers of one node on a DDS domain.

    Args:
        logic: the node.
        options: its name, namespace and remappings (``robot_rl.deploy.rosargs``).
        participant: share a participant between nodes of one process (default: a new one on
            ``ROS_DOMAIN_ID``).
    """

    def __init__(
        self,
        logic: NodeLogic,
        options: NodeOptions,
        participant: DomainParticipant | None = None,
    ) -> None:
        self.logic, self.options = logic, options
        self.dp = participant or DomainParticipant(domain_id())
        self._topics: dict[str, Topic] = {}
        self.writers: dict[str, DataWriter] = {}
        self.readers: dict[str, tuple[DataReader, ReadCondition]] = {}
        self.names: dict[str, str] = {}
        """Fully qualified topic of every port key."""
        for key, port in logic.publishers.items():
            name = options.resolve(port.topic)
            self.names[key] = name
            self.writers[key] = DataWriter(
                self.dp, self._topic(name, port.msg_type), to_dds(port.qos)
            )
        mask = SampleState.NotRead | ViewState.Any | InstanceState.Any
        for key, port in logic.subscriptions.items():
            name = options.resolve(port.topic)
            self.names[key] = name
            reader = DataReader(self.dp, self._topic(name, port.msg_type), to_dds(port.qos))
            self.readers[key] = (reader, ReadCondition(reader, mask))
        self._wake = GuardCondition(self.dp)
        self._stop = threading.Event()
        self.active = not logic.lifecycle

    def _topic(self, name: str, msg_type: type) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = Topic(self.dp, dds_topic(name), msg_type)
        elif topic.data_type is not msg_type:
            raise ConfigError(
                f"topic {name} is used with two types: {topic.data_type.__name__} and "
                f"{msg_type.__name__}"
            )
        return topic

    # ------------------------------------------------------------------------------------
    def publish(self, out: Out) -> None:
        if not self.active:
            return  # a managed node publishes nothing before activation
        for key, msg in out:
            self.writers[key].write(msg)

    def stop(self) -> None:
        """Ask the loop to finish (thread- and signal-safe)."""
        self._stop.set()
        self._wake.set(True)

    def spin_once(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for messages and handle every one that arrived."""
        from cyclonedds.core import WaitSet

        if not hasattr(self, "_waitset"):
            self._waitset = WaitSet(self.dp)
            for _, cond in self.readers.values():
                self._waitset.attach(cond)
            self._waitset.attach(self._wake)
        self._waitset.wait(max(0, int(timeout * 1e9)))
        for key, (reader, cond) in self.readers.items():
            try:
                samples = reader.take(N=64, condition=cond)
            except Exception as e:  # noqa: BLE001 — undecodable data is no data
                self.publish(self.logic.on_exception(key, e))
                continue
            for sample in samples:
                if not getattr(sample.sample_info, "valid_data", True):
                    continue  # instance state changes (a writer left): no data
                self.publish(self.logic.handle(key, sample))

    def spin(self, duration: float | None = None, handle_signals: bool = True) -> None:
        """Run the node until :meth:`stop`, SIGINT/SIGTERM or ``duration`` seconds."""
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stop())
        self.active = True  # standalone managed nodes configure and activate themselves
        self.publish(self.logic.activate())
        start = time.monotonic()
        next_due = {key: start + period for key, period in self.logic.timers.items()}
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if duration is not None and now - start >= duration:
                    break
                deadline = min(next_due.values(), default=now + 0.1)
                if duration is not None:
                    deadline = min(deadline, start + duration)
                self.spin_once(max(0.0, deadline - now))
                if self._stop.is_set():
                    break
                now = time.monotonic()
                for key, due in next_due.items():
                    if now >= due:
                        self.publish(self.logic.tick(key))
                        period = self.logic.timers[key]
                        # fixed rate; after a stall skip the missed ticks instead of bursting
                        next_due[key] = due + period if now - due < period else now + period
        finally:
            self.publish(self.logic.deactivate())
            self.active = not self.logic.lifecycle
            self.logic.shutdown()

    def matched(self, key: str) -> int:
        """How many remote endpoints match the publisher or subscription ``key``."""
        if key in self.writers:
            return len(self.writers[key].get_matched_subscriptions())
        return len(self.readers[key][0].get_matched_publications())
