"""The rclpy host's message conversion, against stand-ins for rosidl-generated classes (rclpy is
not installable here): nested messages, sequences of messages, and ``byte`` fields, whose
generated setter on Humble accepts only a 1-byte ``bytes``."""

import sys
import types

import pytest

from robot_rl.deploy.rclpy_host import RclpyMissing, from_ros, require_rclpy, to_ros
from robot_rl.msgs import DiagnosticArray, DiagnosticStatus, Header, KeyValue, Time


class Generated:
    """What rosidl generates, reduced: defaults for every field, a type table, strict setters."""

    FIELDS: dict[str, str] = {}

    def __init__(self):
        for name, kind in self.FIELDS.items():
            object.__setattr__(self, name, _default(kind))

    @classmethod
    def get_fields_and_field_types(cls):
        return dict(cls.FIELDS)

    def __setattr__(self, name, value):
        kind = self.FIELDS[name]  # unknown fields raise, as __slots__ do
        if kind == "octet":
            assert isinstance(value, bytes) and len(value) == 1, "The 'level' field must be bytes"
        object.__setattr__(self, name, value)


def _default(kind):
    if kind == "octet":
        return b"\x00"
    if kind.startswith("sequence"):
        return []
    if kind in ("string",):
        return ""
    if kind in ("int32", "uint32"):
        return 0
    return CLASSES[kind]()


class RosTime(Generated):
    FIELDS = {"sec": "int32", "nanosec": "uint32"}


class RosHeader(Generated):
    FIELDS = {"stamp": "builtin_interfaces/Time", "frame_id": "string"}


class RosKeyValue(Generated):
    FIELDS = {"key": "string", "value": "string"}


class RosStatus(Generated):
    FIELDS = {
        "level": "octet",
        "name": "string",
        "message": "string",
        "hardware_id": "string",
        "values": "sequence<diagnostic_msgs/KeyValue>",
    }


class RosArray(Generated):
    FIELDS = {"header": "std_msgs/Header", "status": "sequence<diagnostic_msgs/DiagnosticStatus>"}


CLASSES = {"builtin_interfaces/Time": RosTime, "std_msgs/Header": RosHeader}


@pytest.fixture
def ros_packages(monkeypatch):
    for pkg, classes in {
        "builtin_interfaces": {"Time": RosTime},
        "std_msgs": {"Header": RosHeader},
        "diagnostic_msgs": {
            "KeyValue": RosKeyValue,
            "DiagnosticStatus": RosStatus,
            "DiagnosticArray": RosArray,
        },
    }.items():
        module = types.ModuleType(f"{pkg}.msg")
        for name, cls in classes.items():
            setattr(module, name, cls)
        monkeypatch.setitem(sys.modules, pkg, types.ModuleType(pkg))
        monkeypatch.setitem(sys.modules, f"{pkg}.msg", module)


def test_diagnostics_round_trip_through_generated_classes(ros_packages):
    ours = DiagnosticArray(
        header=Header(stamp=Time(sec=12, nanosec=34), frame_id="base"),
        status=[
            DiagnosticStatus(
                level=DiagnosticStatus.ERROR,
                name="robot_rl: safety_node",
                message="policy: safe action (watchdog)",
                hardware_id="robot_rl_arm",
                values=[KeyValue(key="mode", value="policy")],
            )
        ],
    )
    ros = to_ros(ours)
    assert isinstance(ros, RosArray) and isinstance(ros.status[0], RosStatus)
    assert ros.status[0].level == b"\x02" and ros.header.stamp.sec == 12
    assert isinstance(ros.status[0].values[0], RosKeyValue)
    assert from_ros(ros, DiagnosticArray) == ours


def test_without_ros_the_error_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "rclpy", None)  # import rclpy raises ImportError
    with pytest.raises(RclpyMissing, match="source ROS 2|robot-rl launch"):
        require_rclpy()
