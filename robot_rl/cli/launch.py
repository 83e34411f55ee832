"""``robot-rl launch FILE [name:=value ...]``: run a ROS 2 launch file's nodes without ROS."""

from __future__ import annotations

from pathlib import Path

from robot_rl.core.errors import ConfigError

HELP = """usage: robot-rl launch FILE [name:=value ...]

Run the nodes of a ROS 2 launch file (XML or YAML, the same files `ros2 launch` reads) without a
ROS installation: each node runs in its own process and talks over DDS (ROS_DOMAIN_ID applies),
its output prefixed with [node name]. A node that exits is reported and the others keep running;
Ctrl-C (or SIGTERM) stops every node: SIGINT, then SIGTERM after 5 s, then SIGKILL.

arguments:
  FILE          launch file, e.g. launch/arm.launch.xml
  name:=value   set a launch argument declared with <arg name=... default=.../>; arguments
                without a default must be given

supported launch actions: <arg>, <let>, <group>, <push_ros_namespace>, <node> with <param>
(name/value or from=FILE) and <remap>, <include> with <arg>; if/unless on each action;
substitutions $(var), $(env), $(optenv), $(find-pkg-share), $(dirname), $(filename).

exit status: 0 if every node stopped cleanly, 1 if one died or had to be killed, 2 for an error
in the launch file."""


def parse_args(args: list[str]) -> tuple[Path, dict[str, str]]:
    """``FILE [name:=value ...]`` -> (file, launch arguments)."""
    if not args:
        raise ConfigError("usage: robot-rl launch FILE [name:=value ...] (see --help)")
    path, overrides = Path(args[0]), {}
    for arg in args[1:]:
        name, sep, value = arg.partition(":=")
        if not sep or not name:
            raise ConfigError(f"launch arguments look like name:=value, got {arg!r}")
        overrides[name] = value
    return path, overrides


def main(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    from robot_rl.deploy.launch import run_launch

    path, overrides = parse_args(args)
    return run_launch(path, overrides)
