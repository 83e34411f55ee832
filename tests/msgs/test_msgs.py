"""Golden tests: our cyclonedds structs put the same CDR bytes on the wire as rosbags' ROS 2
definitions (Humble and Jazzy), and read rosbags' bytes back into equal messages."""

import dataclasses
import itertools
import time
import typing
import uuid

import cyclonedds.idl.types as t
import numpy as np
import pytest
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype

from robot_rl import msgs
from robot_rl.deploy import qos
from robot_rl.msgs import MESSAGES, dds_type_name, ros_name, to_seconds, to_time

# ackermann_msgs is not in rosbags' stores; these are the ros-drivers/ackermann_msgs (ros2) files.
ACKERMANN_MSG = {
    "ackermann_msgs/msg/AckermannDrive": """
float32 steering_angle
float32 steering_angle_velocity
float32 speed
float32 acceleration
float32 jerk
""",
    "ackermann_msgs/msg/AckermannDriveStamped": """
std_msgs/Header header
AckermannDrive drive
""",
}

STORES = [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY]


def _typestore(store: Stores):
    typestore = get_typestore(store)
    for name, text in ACKERMANN_MSG.items():
        typestore.register(get_types_from_msg(text, name))
    return typestore


TYPESTORES = {store: _typestore(store) for store in STORES}

# rosbags holds numeric sequences and arrays as numpy arrays; ROS `byte` is an octet, not int8.
_DTYPES = {"byte": np.uint8, "bool": np.bool_}


def to_rosbags(msg, typestore):
    """Field-by-field copy of one of our messages into the typestore's class of the same name."""
    name = ros_name(type(msg))
    _, fielddefs = typestore.fielddefs[name]
    return typestore.types[name](
        **{field: _convert(getattr(msg, field), *spec, typestore) for field, spec in fielddefs}
    )


def _convert(value, node, spec, typestore):
    if node == Nodetype.BASE:
        return value
    if node == Nodetype.NAME:
        return to_rosbags(value, typestore)
    (subnode, subspec), _length = spec
    if subnode == Nodetype.NAME:
        return [to_rosbags(item, typestore) for item in value]
    if subspec[0] == "string":
        return list(value)
    dtype = _DTYPES.get(subspec[0], np.dtype(subspec[0]))
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=dtype)
    return np.array(value, dtype=dtype)


def filled(cls, counter=None):
    """A deterministic instance with every field non-default: non-zero numbers (exact in
    float32), strings of odd byte lengths so the next field needs padding, 2-3 sequence items."""
    counter = counter or itertools.count(1)
    return cls(**{name: _value(tp, counter) for name, tp in cls.__annotations__.items()})


def _value(tp, counter):
    k = next(counter)
    if typing.get_origin(tp) is typing.Annotated and not isinstance(tp.__metadata__[0], str):
        tp = tp.__metadata__[0]  # t.sequence[X] / t.array[X, n] annotate a typing.Sequence
    if isinstance(tp, t.sequence):
        if tp.subtype == t.uint8:  # Image.data holds bytes
            return bytes(range(k, k + 7))
        return [_value(tp.subtype, counter) for _ in range(2 + k % 2)]
    if isinstance(tp, t.array):
        return [k + 0.5 * i for i in range(tp.length)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return filled(tp, counter)
    if tp is str:
        return "abcdefghijk"[: 2 * (k % 6) + 1]
    if tp is bool:
        return True
    if tp in (t.float32, t.float64):
        return k + 0.5
    if tp == t.int32:
        return -k
    if tp in (t.uint8, t.byte):
        return k % 250 + 1
    if tp == t.uint32:
        return 1000 * k + 7
    raise AssertionError(f"no test value for field type {tp!r}")


EXPECTED = {
    "builtin_interfaces": ["Time", "Duration"],
    "std_msgs": ["Header", "Bool", "Float64", "String", "Empty", "MultiArrayDimension"]
    + ["MultiArrayLayout", "Float64MultiArray"],
    "sensor_msgs": ["JointState", "Image", "Imu", "LaserScan"],
    "geometry_msgs": ["Vector3", "Point", "Quaternion", "Pose", "PoseStamped", "Twist"]
    + ["TwistStamped", "PoseWithCovariance", "TwistWithCovariance"],
    "nav_msgs": ["Odometry"],
    "trajectory_msgs": ["JointTrajectoryPoint", "JointTrajectory"],
    "ackermann_msgs": ["AckermannDrive", "AckermannDriveStamped"],
    "diagnostic_msgs": ["KeyValue", "DiagnosticStatus", "DiagnosticArray"],
}


def test_messages_cover_the_full_list():
    expected = {f"{pkg}/msg/{name}" for pkg, names in EXPECTED.items() for name in names}
    assert set(MESSAGES) == expected
    assert all(getattr(msgs, cls.__name__) is cls for cls in MESSAGES.values())


@pytest.mark.parametrize("store", STORES, ids=lambda s: s.name)
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_field_names_and_order_match_ros(name, store):
    _, fielddefs = TYPESTORES[store].fielddefs[name]
    ours = [f.name for f in dataclasses.fields(MESSAGES[name])]
    assert ours == [field for field, _ in fielddefs]


@pytest.mark.parametrize("store", STORES, ids=lambda s: s.name)
@pytest.mark.parametrize("content", ["filled", "default"])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_cdr_bytes_match_rosbags(name, content, store):
    cls, typestore = MESSAGES[name], TYPESTORES[store]
    msg = filled(cls) if content == "filled" else cls()

    theirs = bytes(typestore.serialize_cdr(to_rosbags(msg, typestore), name))

    assert msg.serialize() == theirs
    assert cls.deserialize(theirs) == msg


def test_names():
    assert ros_name(msgs.JointState) == "sensor_msgs/msg/JointState"
    assert dds_type_name(msgs.JointState) == "sensor_msgs::msg::dds_::JointState_"
    assert dds_type_name(msgs.Time) == "builtin_interfaces::msg::dds_::Time_"
    with pytest.raises(TypeError, match="is not a ROS message struct"):
        ros_name(int)


def test_time_conversion():
    assert to_time(12.5) == msgs.Time(sec=12, nanosec=500_000_000)
    # Negative stamps floor, so nanosec stays in [0, 1e9): -1.25 s = -2 s + 0.75 s.
    assert to_time(-1.25) == msgs.Time(sec=-2, nanosec=750_000_000)
    # Rounding to the nanosecond carries into the seconds instead of giving nanosec = 1e9.
    assert to_time(1.9999999999) == msgs.Time(sec=2, nanosec=0)
    assert to_seconds(msgs.Time(sec=3, nanosec=250_000_000)) == 3.25
    assert to_seconds(to_time(1_700_000_000.123456)) == pytest.approx(
        1_700_000_000.123456, abs=1e-6
    )
    with pytest.raises(ValueError, match="not a finite number"):
        to_time(float("nan"))
    with pytest.raises(ValueError, match="int32 seconds"):
        to_time(2.0**31)


def test_defaults_match_ros():
    assert msgs.Quaternion() == msgs.Quaternion(0.0, 0.0, 0.0, 1.0)  # ROS 2: float64 w 1
    assert msgs.PoseWithCovariance().covariance == [0.0] * 36
    assert msgs.Imu().orientation_covariance == [0.0] * 9
    assert msgs.JointState().header.stamp == msgs.Time()
    # Mutable defaults are per instance.
    assert msgs.JointState().name is not msgs.JointState().name


@pytest.mark.parametrize("store", STORES, ids=lambda s: s.name)
def test_diagnostic_levels_are_ros_constants_not_fields(store):
    consts, _ = TYPESTORES[store].fielddefs["diagnostic_msgs/msg/DiagnosticStatus"]
    assert {name: getattr(msgs.DiagnosticStatus, name) for name, _, _ in consts} == {
        name: value for name, _, value in consts
    }
    assert "OK" not in {f.name for f in dataclasses.fields(msgs.DiagnosticStatus)}


def test_image_data_is_bytes_and_accepts_numpy():
    pixels = np.arange(84 * 84 * 3, dtype=np.uint64).astype(np.uint8).reshape(84, 84, 3)
    raw = pixels.tobytes()
    from_numpy = msgs.Image(height=84, width=84, encoding="rgb8", step=252, data=pixels)
    from_bytes = dataclasses.replace(from_numpy, data=raw)

    wire = from_numpy.serialize()

    assert wire == from_bytes.serialize()
    decoded = msgs.Image.deserialize(wire)
    assert isinstance(decoded.data, bytes)
    assert decoded == from_bytes
    assert np.array_equal(np.frombuffer(decoded.data, np.uint8).reshape(84, 84, 3), pixels)


def test_image_travels_through_a_dds_topic():
    """Topic creation builds the XTypes type object, which a plain `bytes` field would break."""
    participant = DomainParticipant()
    topic = Topic(participant, f"rt/test_image_{uuid.uuid4().hex}", msgs.Image)
    qos_state = qos.to_dds(qos.STATE)
    reader = DataReader(participant, topic, qos=qos_state)
    writer = DataWriter(participant, topic, qos=qos_state)
    sent = filled(msgs.Image)

    writer.write(sent)
    received = []
    deadline = time.monotonic() + 2.0
    while not received and time.monotonic() < deadline:
        received = reader.take()
        time.sleep(0.01)

    assert received == [sent]
