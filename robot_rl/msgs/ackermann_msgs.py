"""ackermann_msgs: drive commands for car-like robots (ackermann_mux's `drive` input)."""

from dataclasses import dataclass, field

import cyclonedds.idl.types as t
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

from robot_rl.msgs.std_msgs import Header


@dataclass
@final
class AckermannDrive(IdlStruct, typename="ackermann_msgs.msg.dds_.AckermannDrive_"):
    """Steering angle (rad) and rate (rad/s), speed (m/s), acceleration (m/s^2), jerk (m/s^3)."""

    steering_angle: t.float32 = 0.0
    steering_angle_velocity: t.float32 = 0.0
    speed: t.float32 = 0.0
    acceleration: t.float32 = 0.0
    jerk: t.float32 = 0.0


@dataclass
@final
class AckermannDriveStamped(IdlStruct, typename="ackermann_msgs.msg.dds_.AckermannDriveStamped_"):
    """A drive command with a header."""

    header: Header = field(default_factory=Header)
    drive: AckermannDrive = field(default_factory=AckermannDrive)
