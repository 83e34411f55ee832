"""``python -m robot_rl.deploy.main EXEC [--ros-args ...]``: run one node over DDS.

What ``robot-rl launch`` starts for every ``<node>`` of a launch file, with the standard ROS 2
node arguments (``-r __node:=name``, ``-r __ns:=/ns``, ``-r from:=to``, ``-p key:=value``,
``--params-file FILE``).
"""

from __future__ import annotations

import sys

from robot_rl.core.errors import RobotRLError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m robot_rl.deploy.main EXEC [--ros-args ...]", file=sys.stderr)
        return 2
    executable, rest = argv[0], argv[1:]
    try:
        from robot_rl.deploy.dds import DdsHost
        from robot_rl.deploy.nodes import node_class
        from robot_rl.deploy.rosargs import parse_ros_args

        cls = node_class(executable)
        options = parse_ros_args(rest, cls.default_name)
        # `autostart` is the rclpy host's (a managed node activates itself); here it always does
        logic = cls({k: v for k, v in options.params.items() if k != "autostart"})
        name = options.fqn
        logic.log = lambda text: print(f"{name}: {text}", flush=True)
        host = DdsHost(logic, options)
    except RobotRLError as e:
        print(f"{executable}: {e}", file=sys.stderr, flush=True)
        return 2
    print(
        f"{name}: up ({executable}) " + " ".join(f"{k}->{v}" for k, v in host.names.items()),
        flush=True,
    )
    host.spin()
    return 0


if __name__ == "__main__":
    sys.exit(main())
