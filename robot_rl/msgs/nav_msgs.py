"""nav_msgs: odometry, the pose in `header.frame_id` and the twist in `child_frame_id`."""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final

from robot_rl.msgs.geometry_msgs import PoseWithCovariance, TwistWithCovariance
from robot_rl.msgs.std_msgs import Header


@dataclass
@final
class Odometry(IdlStruct, typename="nav_msgs.msg.dds_.Odometry_"):
    """Estimated pose (parent frame) and twist (child frame) with covariances."""

    header: Header = field(default_factory=Header)
    child_frame_id: str = ""
    pose: PoseWithCovariance = field(default_factory=PoseWithCovariance)
    twist: TwistWithCovariance = field(default_factory=TwistWithCovariance)
