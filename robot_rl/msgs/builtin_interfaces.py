"""builtin_interfaces: the stamp and duration every ROS 2 header and trajectory carries."""

import math
from dataclasses import dataclass

import cyclonedds.idl.types as t
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

_NS_PER_S = 1_000_000_000


@dataclass
@final
class Time(IdlStruct, typename="builtin_interfaces.msg.dds_.Time_"):
    """A point in time: whole seconds plus nanoseconds in [0, 1e9)."""

    sec: t.int32 = 0
    nanosec: t.uint32 = 0


@dataclass
@final
class Duration(IdlStruct, typename="builtin_interfaces.msg.dds_.Duration_"):
    """A signed span of time: whole seconds plus nanoseconds in [0, 1e9)."""

    sec: t.int32 = 0
    nanosec: t.uint32 = 0


def to_time(seconds: float) -> Time:
    """Split `seconds` into a Time, flooring so that nanosec stays in [0, 1e9) for negatives too."""
    if not math.isfinite(seconds):
        raise ValueError(f"to_time: seconds={seconds!r} is not a finite number")
    sec, nanosec = divmod(round(seconds * _NS_PER_S), _NS_PER_S)
    if not -(2**31) <= sec < 2**31:
        raise ValueError(f"to_time: seconds={seconds!r} does not fit the int32 seconds of a Time")
    return Time(sec=sec, nanosec=nanosec)


def to_duration(seconds: float) -> Duration:
    """The Duration of `seconds` (same splitting as :func:`to_time`)."""
    stamp = to_time(seconds)
    return Duration(sec=stamp.sec, nanosec=stamp.nanosec)


def to_seconds(stamp: Time) -> float:
    """The stamp (or a Duration) as float seconds."""
    return stamp.sec + stamp.nanosec / _NS_PER_S
