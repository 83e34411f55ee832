"""ROS 2 message types as cyclonedds IDL structs, byte-identical on the wire to rmw_cyclonedds.

Shared vocabulary without I/O: the deploy nodes publish them, rosbag conversion (``data``) and
recording write them. Depends on nothing else in robot_rl.

One module per ROS package; field names, order and types follow the ROS 2 Humble/Jazzy definitions
(checked against rosbags' typestores in tests/deploy/test_msgs.py). Every struct is `@final`
(XCDR1, as rmw_cyclonedds requires) and every field has a default, so `JointState()` works.
``unitree_hg`` holds Unitree's bare-DDS low-level types (``LowCmd_``, ``LowState_``), as their SDK
defines them.
The modules do not use `from __future__ import annotations`: cyclonedds resolves string
annotations by attribute lookup and cannot parse `t.sequence[...]` from a string.
"""

from cyclonedds.idl import IdlStruct

from robot_rl.msgs.ackermann_msgs import AckermannDrive, AckermannDriveStamped
from robot_rl.msgs.builtin_interfaces import (
    Duration,
    Time,
    to_duration,
    to_seconds,
    to_time,
)
from robot_rl.msgs.diagnostic_msgs import DiagnosticArray, DiagnosticStatus, KeyValue
from robot_rl.msgs.geometry_msgs import (
    Point,
    Pose,
    PoseStamped,
    PoseWithCovariance,
    Quaternion,
    Twist,
    TwistStamped,
    TwistWithCovariance,
    Vector3,
)
from robot_rl.msgs.nav_msgs import Odometry
from robot_rl.msgs.sensor_msgs import Image, Imu, JointState, LaserScan
from robot_rl.msgs.std_msgs import (
    Bool,
    Empty,
    Float64,
    Float64MultiArray,
    Header,
    MultiArrayDimension,
    MultiArrayLayout,
    String,
)
from robot_rl.msgs.trajectory_msgs import JointTrajectory, JointTrajectoryPoint
from robot_rl.msgs.unitree_hg import (
    IMUState_,
    LowCmd_,
    LowState_,
    MotorCmd_,
    MotorState_,
    low_cmd_crc,
    low_state_crc,
)

_DDS_INFIX = ".msg.dds_."


def ros_name(cls: type[IdlStruct]) -> str:
    """ROS name of a message class: `JointState` -> "sensor_msgs/msg/JointState"."""
    package, sep, rest = getattr(cls, "__idl_typename__", "").partition(_DDS_INFIX)
    if not sep or not rest.endswith("_"):
        raise TypeError(f"ros_name: {cls!r} is not a ROS message struct (typename pkg.msg.dds_.T_)")
    return f"{package}/msg/{rest[:-1]}"


def dds_type_name(cls: type[IdlStruct]) -> str:
    """DDS type name of a message class: `JointState` -> "sensor_msgs::msg::dds_::JointState_"."""
    ros_name(cls)  # validates
    return cls.__idl_typename__.replace(".", "::")


MESSAGES: dict[str, type[IdlStruct]] = {
    ros_name(cls): cls
    for cls in (
        Time,
        Duration,
        Header,
        Bool,
        Float64,
        String,
        Empty,
        MultiArrayDimension,
        MultiArrayLayout,
        Float64MultiArray,
        JointState,
        Image,
        Imu,
        LaserScan,
        Vector3,
        Point,
        Quaternion,
        Pose,
        PoseStamped,
        Twist,
        TwistStamped,
        PoseWithCovariance,
        TwistWithCovariance,
        Odometry,
        JointTrajectoryPoint,
        JointTrajectory,
        AckermannDrive,
        AckermannDriveStamped,
        KeyValue,
        DiagnosticStatus,
        DiagnosticArray,
    )
}
"""Every standard ROS message class by ROS name ("sensor_msgs/msg/JointState"); the
``unitree_hg`` types are not among them (rosbags' typestores, which the tests check these
against, do not know them)."""

__all__ = [
    "MESSAGES",
    "dds_type_name",
    "ros_name",
    "to_duration",
    "to_seconds",
    "to_time",
    "Time",
    "Duration",
    "Header",
    "Bool",
    "Float64",
    "String",
    "Empty",
    "MultiArrayDimension",
    "MultiArrayLayout",
    "Float64MultiArray",
    "JointState",
    "Image",
    "Imu",
    "LaserScan",
    "Vector3",
    "Point",
    "Quaternion",
    "Pose",
    "PoseStamped",
    "Twist",
    "TwistStamped",
    "PoseWithCovariance",
    "TwistWithCovariance",
    "Odometry",
    "JointTrajectoryPoint",
    "JointTrajectory",
    "AckermannDrive",
    "AckermannDriveStamped",
    "KeyValue",
    "DiagnosticStatus",
    "DiagnosticArray",
    "MotorCmd_",
    "LowCmd_",
    "MotorState_",
    "IMUState_",
    "LowState_",
    "low_cmd_crc",
    "low_state_crc",
]
