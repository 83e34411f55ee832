"""ROS 2 launch files (XML/YAML) without ROS: ``robot-rl launch FILE [name:=value ...]``.

:func:`parse_launch` reads a launch file into :class:`NodeSpec` s with ``ros2 launch`` semantics;
:func:`run_launch` runs each node in its own process and supervises them.
"""

from robot_rl.deploy.launch.parse import NodeSpec, parse_launch
from robot_rl.deploy.launch.run import node_command, run_launch
from robot_rl.deploy.launch.substitute import share_dir

__all__ = ["NodeSpec", "node_command", "parse_launch", "run_launch", "share_dir"]
