"""diagnostic_msgs: status reports for `/diagnostics`.

`DiagnosticStatus.level` is a ROS `byte` (IDL octet): an int in [0, 255] on the Python side.
"""

from dataclasses import dataclass, field

import cyclonedds.idl.types as t
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

from robot_rl.msgs.std_msgs import Header


@dataclass
@final
class KeyValue(IdlStruct, typename="diagnostic_msgs.msg.dds_.KeyValue_"):
    """One named value of a status report."""

    key: str = ""
    value: str = ""


@dataclass
@final
class DiagnosticStatus(IdlStruct, typename="diagnostic_msgs.msg.dds_.DiagnosticStatus_"):
    """State of one component: level (OK/WARN/ERROR/STALE), message and key-values."""

    # Unannotated, so neither dataclass fields nor IDL members: ROS constants are not on the wire.
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3

    level: t.byte = 0
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: t.sequence[KeyValue] = field(default_factory=list)


@dataclass
@final
class DiagnosticArray(IdlStruct, typename="diagnostic_msgs.msg.dds_.DiagnosticArray_"):
    """All status reports published at one time."""

    header: Header = field(default_factory=Header)
    status: t.sequence[DiagnosticStatus] = field(default_factory=list)
