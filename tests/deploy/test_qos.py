"""QoS presets: the policies each one spells out, and what real DDS endpoints make of them."""

import enum
import sys
import time
import types
import uuid

import pytest
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from robot_rl.core.errors import ConfigError
from robot_rl.deploy import qos
from robot_rl.msgs import Float64MultiArray

# name -> (reliable, transient_local, depth); ROS 2 profiles per FIELD_NOTES "ROS 2 on the wire".
EXPECTED = {
    "sensor": (False, False, 5),  # qos_profile_sensor_data
    "state": (True, False, 10),  # rclpy default
    "command": (True, False, 1),  # ForwardCommandController `~/commands` under Cyclone
    "latched": (True, True, 1),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_policies(name):
    p = qos.preset(name)
    assert p is qos.PRESETS[name]
    assert (p.reliable, p.transient_local, p.depth) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_dds_sets_every_policy_explicitly(name):
    reliable, transient_local, depth = EXPECTED[name]

    q = qos.to_dds(qos.PRESETS[name])

    assert len(q) == 3
    if reliable:
        assert q[Policy.Reliability] == Policy.Reliability.Reliable(max_blocking_time=100_000_000)
    else:
        assert q[Policy.Reliability] == Policy.Reliability.BestEffort
    durability = Policy.Durability.TransientLocal if transient_local else Policy.Durability.Volatile
    assert q[Policy.Durability] == durability
    assert q[Policy.History] == Policy.History.KeepLast(depth=depth)


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        qos.preset("nope")
    assert (
        str(err.value)
        == "unknown QoS preset 'nope'; expected one of sensor, state, command, latched"
    )
    assert qos.preset("COMMAND") is qos.COMMAND


def test_depth_must_be_positive():
    with pytest.raises(ConfigError, match="depth=0 must be at least 1"):
        qos.QosPreset("bad", reliable=True, transient_local=False, depth=0)


def test_to_rclpy_maps_each_policy(monkeypatch):
    # rclpy is not installed off-robot; a stand-in with rclpy.qos' names checks the mapping.
    fake = types.ModuleType("rclpy.qos")
    fake.ReliabilityPolicy = enum.Enum("ReliabilityPolicy", "RELIABLE BEST_EFFORT")
    fake.DurabilityPolicy = enum.Enum("DurabilityPolicy", "TRANSIENT_LOCAL VOLATILE")
    fake.HistoryPolicy = enum.Enum("HistoryPolicy", "KEEP_LAST KEEP_ALL")
    fake.QoSProfile = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "rclpy", types.ModuleType("rclpy"))
    monkeypatch.setitem(sys.modules, "rclpy.qos", fake)

    assert qos.to_rclpy(qos.SENSOR) == {
        "reliability": fake.ReliabilityPolicy.BEST_EFFORT,
        "durability": fake.DurabilityPolicy.VOLATILE,
        "history": fake.HistoryPolicy.KEEP_LAST,
        "depth": 5,
    }
    assert qos.to_rclpy(qos.LATCHED) == {
        "reliability": fake.ReliabilityPolicy.RELIABLE,
        "durability": fake.DurabilityPolicy.TRANSIENT_LOCAL,
        "history": fake.HistoryPolicy.KEEP_LAST,
        "depth": 1,
    }


@pytest.fixture(scope="module")
def participant():
    return DomainParticipant()


def _topic(participant):
    return Topic(participant, f"rt/test_qos_{uuid.uuid4().hex}", Float64MultiArray)


def _wait(condition, timeout_s=2.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_best_effort_writer_never_matches_a_command_reader(participant):
    topic = _topic(participant)
    reader = DataReader(participant, topic, qos=qos.to_dds(qos.COMMAND))
    writer = DataWriter(participant, topic, qos=qos.to_dds(qos.SENSOR))

    assert _wait(lambda: reader.get_requested_incompatible_qos_status().total_count >= 1)
    assert writer.get_offered_incompatible_qos_status().total_count >= 1
    assert reader.get_matched_publications() == []


def test_command_writer_matches_a_sensor_reader(participant):
    topic = _topic(participant)
    reader = DataReader(participant, topic, qos=qos.to_dds(qos.SENSOR))
    writer = DataWriter(participant, topic, qos=qos.to_dds(qos.COMMAND))

    assert _wait(lambda: len(writer.get_matched_subscriptions()) == 1)
    assert len(reader.get_matched_publications()) == 1
    assert reader.get_requested_incompatible_qos_status().total_count == 0


def test_latched_sample_reaches_a_late_reader(participant):
    topic = _topic(participant)
    writer = DataWriter(participant, topic, qos=qos.to_dds(qos.LATCHED))
    writer.write(Float64MultiArray(data=[1.0]))
    writer.write(Float64MultiArray(data=[2.0]))
    reader = DataReader(participant, topic, qos=qos.to_dds(qos.LATCHED))

    received = []
    assert _wait(lambda: received.extend(reader.take(N=10)) or received)
    assert received == [Float64MultiArray(data=[2.0])]  # depth 1: only the last one is kept
