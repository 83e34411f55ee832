"""sensor_msgs: joint states, camera images, IMU and planar laser scans.

Python types of the array-like fields:
- `Image.data` (`uint8[]`) holds `bytes`. It serializes from anything `bytes()` accepts (bytes,
  bytearray, memoryview, a C-contiguous numpy uint8 array, a list of ints) and always deserializes
  to `bytes`; use `np.frombuffer(msg.data, np.uint8).reshape(h, w, c)` to view it as an image.
  cyclonedds' own uint8 sequence codes one Python int per byte (an 84x84x3 image: ~0.4 ms to
  serialize, ~0.15 ms to deserialize, plus list conversions); the block copy here takes ~5 us.
  A plain `bytes` annotation would be as fast but cyclonedds 11 cannot build its XTypes type
  object, so `Topic(participant, name, Image)` would fail: the IDL type stays `sequence<uint8>`.
- The other sequences hold `list[float]` / `list[str]`; the `float64[9]` IMU covariances hold a
  `list[float]` of length 9 (row-major 3x3; element 0 = -1 means "no estimate").
"""

from dataclasses import dataclass, field

import cyclonedds.idl.types as t
from cyclonedds.idl import IdlStruct
from cyclonedds.idl._machinery import PlainCdrV2SequenceOfPrimitiveMachine
from cyclonedds.idl._support import Buffer
from cyclonedds.idl.annotations import final

from robot_rl.msgs.geometry_msgs import Quaternion, Vector3
from robot_rl.msgs.std_msgs import Header


@dataclass
@final
class JointState(IdlStruct, typename="sensor_msgs.msg.dds_.JointState_"):
    """Per-joint position, velocity and effort, aligned with `name` (any list may be empty)."""

    header: Header = field(default_factory=Header)
    name: t.sequence[str] = field(default_factory=list)
    position: t.sequence[t.float64] = field(default_factory=list)
    velocity: t.sequence[t.float64] = field(default_factory=list)
    effort: t.sequence[t.float64] = field(default_factory=list)


@dataclass
@final
class Image(IdlStruct, typename="sensor_msgs.msg.dds_.Image_"):
    """An uncompressed image; `data` is `bytes` of `height` rows of `step` bytes each."""

    header: Header = field(default_factory=Header)
    height: t.uint32 = 0
    width: t.uint32 = 0
    encoding: str = ""
    is_bigendian: t.uint8 = 0
    step: t.uint32 = 0
    data: t.sequence[t.uint8] = field(default_factory=bytes)


@dataclass
@final
class Imu(IdlStruct, typename="sensor_msgs.msg.dds_.Imu_"):
    """Orientation, angular velocity and linear acceleration, each with a 3x3 covariance."""

    header: Header = field(default_factory=Header)
    orientation: Quaternion = field(default_factory=Quaternion)
    orientation_covariance: t.array[t.float64, 9] = field(default_factory=lambda: [0.0] * 9)
    angular_velocity: Vector3 = field(default_factory=Vector3)
    angular_velocity_covariance: t.array[t.float64, 9] = field(default_factory=lambda: [0.0] * 9)
    linear_acceleration: Vector3 = field(default_factory=Vector3)
    linear_acceleration_covariance: t.array[t.float64, 9] = field(default_factory=lambda: [0.0] * 9)


@dataclass
@final
class LaserScan(IdlStruct, typename="sensor_msgs.msg.dds_.LaserScan_"):
    """One sweep of a planar range finder; angles in rad, ranges in m, times in s."""

    header: Header = field(default_factory=Header)
    angle_min: t.float32 = 0.0
    angle_max: t.float32 = 0.0
    angle_increment: t.float32 = 0.0
    time_increment: t.float32 = 0.0
    scan_time: t.float32 = 0.0
    range_min: t.float32 = 0.0
    range_max: t.float32 = 0.0
    ranges: t.sequence[t.float32] = field(default_factory=list)
    intensities: t.sequence[t.float32] = field(default_factory=list)


class _OctetBlock(PlainCdrV2SequenceOfPrimitiveMachine):
    """A uint8 sequence coded as one block copy; same CDR bytes as cyclonedds' own machine."""

    def __init__(self) -> None:
        super().__init__(t.uint8)

    def serialize(self, buffer: Buffer, value: object, *args: object, **kwargs: object) -> None:
        raw = value if isinstance(value, bytes) else bytes(value)
        buffer.align(4)
        buffer.write("I", 4, len(raw))
        buffer.write_bytes(raw)

    def deserialize(self, buffer: Buffer, *args: object, **kwargs: object) -> bytes:
        buffer.align(4)
        return buffer.read_bytes(buffer.read("I", 4))


def _code_as_bytes(cls: type[IdlStruct], member: str) -> None:
    """Swap the coder of `cls.member` (a uint8 sequence) for the block copy, XCDR1 and XCDR2."""
    idl = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        current = machine.members_machines.get(member)
        if not isinstance(current, PlainCdrV2SequenceOfPrimitiveMachine) or current.code != "B":
            raise ImportError(
                f"cyclonedds internals changed: {cls.__name__}.{member} is not coded by "
                "PlainCdrV2SequenceOfPrimitiveMachine; update robot_rl/deploy/msgs/sensor_msgs.py"
            )
        machine.members_machines[member] = _OctetBlock()


_code_as_bytes(Image, "data")
