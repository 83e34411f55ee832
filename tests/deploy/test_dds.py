"""The DDS host: ROS names on the wire, remapping, timers, managed nodes silent until active,
a clean stop."""

import threading
import time

import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.dds import DdsHost, dds_topic, domain_id
from robot_rl.deploy.node import NodeLogic, Port
from robot_rl.deploy.qos import STATE
from robot_rl.deploy.rosargs import NodeOptions
from robot_rl.msgs import String


class Talker(NodeLogic):
    default_name = "talker"
    parameters = {"period": 0.01}

    def __init__(self, params=None):
        super().__init__(params)
        self.publishers = {"out": Port("~/chatter", String, STATE)}
        self.timers = {"talk": self.params["period"]}
        self.count = 0

    def tick_talk(self):
        self.count += 1
        return [("out", String(data=f"hello {self.count}"))]


class Listener(NodeLogic):
    default_name = "listener"
    lifecycle = True

    def __init__(self, params=None):
        super().__init__(params)
        self.subscriptions = {"heard": Port("chatter", String, STATE)}
        self.publishers = {"echo": Port("echo", String, STATE)}
        self.heard: list[str] = []
        self.stopped = False

    def on_heard(self, msg):
        self.heard.append(msg.data)
        return [("echo", String(data=msg.data))]

    def shutdown(self):
        self.stopped = True


def test_names_on_the_wire_and_the_domain(monkeypatch):
    assert dds_topic("/joint_states") == "rt/joint_states"
    with pytest.raises(ConfigError):
        dds_topic("joint_states")
    monkeypatch.setenv("ROS_DOMAIN_ID", "7")
    assert domain_id() == 7
    monkeypatch.setenv("ROS_DOMAIN_ID", "seven")
    with pytest.raises(ConfigError, match="ROS_DOMAIN_ID"):
        domain_id()


def test_two_nodes_talk_through_a_remapped_topic(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", "77")
    talker = DdsHost(Talker(), NodeOptions("talker", "/robot"))
    listener_logic = Listener()
    listener = DdsHost(
        listener_logic,
        NodeOptions("listener", "/robot", remaps={"/robot/chatter": "/robot/talker/chatter"}),
    )
    assert talker.names["out"] == "/robot/talker/chatter"
    assert listener.names["heard"] == "/robot/talker/chatter"
    assert listener.names["echo"] == "/robot/echo"
    # a managed node publishes nothing before activation (spin activates it)
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from robot_rl.deploy.qos import to_dds

    probe = DataReader(talker.dp, Topic(talker.dp, "rt/robot/echo", String), to_dds(STATE))
    assert not listener.active
    listener.publish([("echo", String(data="too early"))])
    threads = [
        threading.Thread(target=h.spin, kwargs={"handle_signals": False}, daemon=True)
        for h in (talker, listener)
    ]
    for t in threads:
        t.start()
    end = time.monotonic() + 10
    while len(listener_logic.heard) < 5 and time.monotonic() < end:
        time.sleep(0.01)
    for h in (talker, listener):
        h.stop()
    for t in threads:
        t.join(timeout=5)
    assert len(listener_logic.heard) >= 5
    assert listener_logic.heard[0].startswith("hello ")
    echoed = [m.data for m in probe.take(N=1000)]
    assert echoed and "too early" not in echoed  # the echoes, but not the early one
    assert listener_logic.stopped and not any(t.is_alive() for t in threads)
