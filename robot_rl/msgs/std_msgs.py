"""std_msgs: the header and the scalar / multi-array messages ros2_control's command topics use.

`Empty` carries the one-byte placeholder member rosidl generates for empty messages
(`structure_needs_at_least_one_member`), since IDL structs cannot be empty; that is also what
rmw_cyclonedds puts on the wire.
"""

from dataclasses import dataclass, field

import cyclonedds.idl.types as t
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

from robot_rl.msgs.builtin_interfaces import Time


@dataclass
@final
class Header(IdlStruct, typename="std_msgs.msg.dds_.Header_"):
    """Stamp and coordinate frame of the data that follows."""

    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
@final
class Bool(IdlStruct, typename="std_msgs.msg.dds_.Bool_"):
    """One boolean."""

    data: bool = False


@dataclass
@final
class Float64(IdlStruct, typename="std_msgs.msg.dds_.Float64_"):
    """One float64."""

    data: t.float64 = 0.0


@dataclass
@final
class String(IdlStruct, typename="std_msgs.msg.dds_.String_"):
    """One UTF-8 string."""

    data: str = ""


@dataclass
@final
class Empty(IdlStruct, typename="std_msgs.msg.dds_.Empty_"):
    """No content; the placeholder byte is always 0."""

    structure_needs_at_least_one_member: t.uint8 = 0


@dataclass
@final
class MultiArrayDimension(IdlStruct, typename="std_msgs.msg.dds_.MultiArrayDimension_"):
    """Label, size and stride of one dimension of a multi-array."""

    label: str = ""
    size: t.uint32 = 0
    stride: t.uint32 = 0


@dataclass
@final
class MultiArrayLayout(IdlStruct, typename="std_msgs.msg.dds_.MultiArrayLayout_"):
    """Dimensions of a multi-array and the offset of its first element."""

    dim: t.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: t.uint32 = 0


@dataclass
@final
class Float64MultiArray(IdlStruct, typename="std_msgs.msg.dds_.Float64MultiArray_"):
    """A float64 array with its layout; ForwardCommandController's `~/commands` type."""

    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: t.sequence[t.float64] = field(default_factory=list)
