"""geometry_msgs: vectors, poses and twists, plain and stamped, with 6x6 covariances.

Covariances are fixed `float64[36]` arrays (row-major 6x6 over x, y, z, rot x, rot y, rot z); they
hold a `list[float]` of length 36 and serialize from any length-36 sequence (tuple, numpy array).
"""

from dataclasses import dataclass, field

import cyclonedds.idl.types as t
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

from robot_rl.msgs.std_msgs import Header


@dataclass
@final
class Vector3(IdlStruct, typename="geometry_msgs.msg.dds_.Vector3_"):
    """A free vector in 3-D space."""

    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0


@dataclass
@final
class Point(IdlStruct, typename="geometry_msgs.msg.dds_.Point_"):
    """A position in 3-D space."""

    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0


@dataclass
@final
class Quaternion(IdlStruct, typename="geometry_msgs.msg.dds_.Quaternion_"):
    """An orientation as (x, y, z, w); defaults to identity like the ROS 2 message (w = 1)."""

    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0
    w: t.float64 = 1.0


@dataclass
@final
class Pose(IdlStruct, typename="geometry_msgs.msg.dds_.Pose_"):
    """Position and orientation."""

    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@dataclass
@final
class PoseStamped(IdlStruct, typename="geometry_msgs.msg.dds_.PoseStamped_"):
    """A pose with a header."""

    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)


@dataclass
@final
class Twist(IdlStruct, typename="geometry_msgs.msg.dds_.Twist_"):
    """Linear and angular velocity."""

    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


@dataclass
@final
class TwistStamped(IdlStruct, typename="geometry_msgs.msg.dds_.TwistStamped_"):
    """A twist with a header."""

    header: Header = field(default_factory=Header)
    twist: Twist = field(default_factory=Twist)


@dataclass
@final
class PoseWithCovariance(IdlStruct, typename="geometry_msgs.msg.dds_.PoseWithCovariance_"):
    """A pose with its 6x6 row-major covariance."""

    pose: Pose = field(default_factory=Pose)
    covariance: t.array[t.float64, 36] = field(default_factory=lambda: [0.0] * 36)


@dataclass
@final
class TwistWithCovariance(IdlStruct, typename="geometry_msgs.msg.dds_.TwistWithCovariance_"):
    """A twist with its 6x6 row-major covariance."""

    twist: Twist = field(default_factory=Twist)
    covariance: t.array[t.float64, 36] = field(default_factory=lambda: [0.0] * 36)
