"""unitree_hg: the low-level command and state of Unitree's humanoids (G1, H1-2) on bare DDS.

Unitree robots do not run ROS: their SDK (unitree_sdk2 / unitree_sdk2_python) speaks Cyclone DDS
with these structs, ``@final`` (XCDR1), on the topics ``rt/lowcmd`` and ``rt/lowstate`` (ROS
names ``/lowcmd`` and ``/lowstate``), type names ``unitree_hg::msg::dds_::LowCmd_`` etc. Field
names, order and types follow unitree_sdk2_python ``unitree_sdk2py/idl/unitree_hg/msg/dds_``
(``MotorState_.motorstate`` included; ``LowState_`` starts with ``version[2]``).

The robot drops a ``LowCmd_`` whose ``crc`` is wrong. :func:`low_cmd_crc` / :func:`low_state_crc`
compute it as unitree_sdk2 does: the struct laid out as its C struct (little-endian, 4-byte
aligned: 1004 bytes for ``LowCmd_``, 2092 for ``LowState_``), read as uint32 words, every word
but the last (the crc itself) fed to ``crc32_core`` (polynomial 0x04C11DB7, initial value
0xFFFFFFFF, most significant bit first, no reflection, no final xor: CRC-32/MPEG-2 of the words'
big-endian bytes; unitree_sdk2_python ``utils/crc.py`` computes ``crc32.mpeg_2`` of exactly these
bytes). Checked against the algorithm's catalogue check value and a literal port of
``crc32_core``; not yet against a CRC captured from a robot.
"""

import math
import struct
from dataclasses import dataclass, field

import cyclonedds.idl.types as t
import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

NUM_MOTORS = 35
"""Motor slots of a hg ``LowCmd_`` / ``LowState_`` (G1: 29 used, legs first)."""


@dataclass
@final
class MotorCmd_(IdlStruct, typename="unitree_hg.msg.dds_.MotorCmd_"):
    """One motor: ``mode`` (1 enable, 0 disable), targets ``q`` (rad) and ``dq`` (rad/s),
    feed-forward ``tau`` (N·m), gains ``kp``, ``kd``; the driver applies
    ``tau + kp (q - q_meas) + kd (dq - dq_meas)``."""

    mode: t.uint8 = 0
    q: t.float32 = 0.0
    dq: t.float32 = 0.0
    tau: t.float32 = 0.0
    kp: t.float32 = 0.0
    kd: t.float32 = 0.0
    reserve: t.uint32 = 0


@dataclass
@final
class LowCmd_(IdlStruct, typename="unitree_hg.msg.dds_.LowCmd_"):
    """``mode_pr`` (0: pitch/roll ankle joints), ``mode_machine`` (echo the robot's, from its
    ``LowState_``), 35 motor commands, ``crc`` (:func:`low_cmd_crc`)."""

    mode_pr: t.uint8 = 0
    mode_machine: t.uint8 = 0
    motor_cmd: t.array[MotorCmd_, NUM_MOTORS] = field(
        default_factory=lambda: [MotorCmd_() for _ in range(NUM_MOTORS)]
    )
    reserve: t.array[t.uint32, 4] = field(default_factory=lambda: [0] * 4)
    crc: t.uint32 = 0


@dataclass
@final
class MotorState_(IdlStruct, typename="unitree_hg.msg.dds_.MotorState_"):
    """One motor's measured position (rad), velocity, acceleration, estimated torque (N·m),
    temperatures (°C), voltage (V)."""

    mode: t.uint8 = 0
    q: t.float32 = 0.0
    dq: t.float32 = 0.0
    ddq: t.float32 = 0.0
    tau_est: t.float32 = 0.0
    temperature: t.array[t.int16, 2] = field(default_factory=lambda: [0] * 2)
    vol: t.float32 = 0.0
    sensor: t.array[t.uint32, 2] = field(default_factory=lambda: [0] * 2)
    motorstate: t.uint32 = 0
    reserve: t.array[t.uint32, 4] = field(default_factory=lambda: [0] * 4)


@dataclass
@final
class IMUState_(IdlStruct, typename="unitree_hg.msg.dds_.IMUState_"):
    """The pelvis IMU: ``quaternion`` (w, x, y, z), ``gyroscope`` (rad/s, body frame),
    ``accelerometer`` (m/s², body frame), ``rpy`` (rad), ``temperature`` (°C)."""

    quaternion: t.array[t.float32, 4] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])
    gyroscope: t.array[t.float32, 3] = field(default_factory=lambda: [0.0] * 3)
    accelerometer: t.array[t.float32, 3] = field(default_factory=lambda: [0.0] * 3)
    rpy: t.array[t.float32, 3] = field(default_factory=lambda: [0.0] * 3)
    temperature: t.int16 = 0


@dataclass
@final
class LowState_(IdlStruct, typename="unitree_hg.msg.dds_.LowState_"):
    """The robot's state at the low-level rate (G1: 500 Hz): ``tick`` (ms), IMU, 35 motors,
    the wireless remote's raw bytes, ``crc`` (:func:`low_state_crc`)."""

    version: t.array[t.uint32, 2] = field(default_factory=lambda: [0] * 2)
    mode_pr: t.uint8 = 0
    mode_machine: t.uint8 = 0
    tick: t.uint32 = 0
    imu_state: IMUState_ = field(default_factory=IMUState_)
    motor_state: t.array[MotorState_, NUM_MOTORS] = field(
        default_factory=lambda: [MotorState_() for _ in range(NUM_MOTORS)]
    )
    # cyclonedds reads a uint8 array back as bytes: the default is bytes too (equal after a trip)
    wireless_remote: t.array[t.uint8, 40] = field(default_factory=lambda: bytes(40))
    reserve: t.array[t.uint32, 4] = field(default_factory=lambda: [0] * 4)
    crc: t.uint32 = 0


# the C structs' layout (unitree_sdk2 motor_crc_hg.h): little-endian, 4-byte aligned
_LOW_CMD = struct.Struct("<2B2x" + "B3x5fI" * NUM_MOTORS + "4II")
_LOW_STATE = struct.Struct("<2I2B2xI" + "13fh2x" + "B3x4f2hf2II4I" * NUM_MOTORS + "40B4II")
assert _LOW_CMD.size == 1004 and _LOW_STATE.size == 2092


def _table() -> list[int]:
    out = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        out.append(crc & 0xFFFFFFFF)
    return out


_TABLE = _table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 of ``data`` (poly 0x04C11DB7, init 0xFFFFFFFF, unreflected, no xor-out)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ byte]
    return crc


def crc32_words(words: np.ndarray) -> int:
    """unitree_sdk2's ``crc32_core(ptr, len)`` of uint32 ``words`` ``(len,)``: each word fed
    most significant bit first, i.e. CRC-32/MPEG-2 of the words' big-endian bytes."""
    return crc32_mpeg2(np.asarray(words, dtype=np.uint32).astype(">u4").tobytes())


def _crc_of(packed: bytes) -> int:
    words = np.frombuffer(packed, dtype="<u4")
    return crc32_words(words[:-1])  # the last word is the crc field itself


def low_cmd_crc(msg: LowCmd_) -> int:
    """The ``crc`` the robot expects in ``msg``."""
    values: list = [msg.mode_pr, msg.mode_machine]
    for m in msg.motor_cmd:
        values += [m.mode, m.q, m.dq, m.tau, m.kp, m.kd, m.reserve]
    values += [*msg.reserve, msg.crc]
    return _crc_of(_LOW_CMD.pack(*values))


def low_state_crc(msg: LowState_) -> int:
    """The ``crc`` a robot writes into ``msg``."""
    imu = msg.imu_state
    values: list = [*msg.version, msg.mode_pr, msg.mode_machine, msg.tick]
    values += [*imu.quaternion, *imu.gyroscope, *imu.accelerometer, *imu.rpy, imu.temperature]
    for m in msg.motor_state:
        values += [m.mode, m.q, m.dq, m.ddq, m.tau_est, *m.temperature, m.vol, *m.sensor]
        values += [m.motorstate, *m.reserve]
    values += [*msg.wireless_remote, *msg.reserve, msg.crc]
    return _crc_of(_LOW_STATE.pack(*values))


def quat_rpy(quat) -> tuple[float, float, float]:
    """Roll, pitch, yaw (rad, ZYX) of a (w, x, y, z) quaternion, as an IMU reports ``rpy``."""
    w, x, y, z = (float(v) for v in quat)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw
