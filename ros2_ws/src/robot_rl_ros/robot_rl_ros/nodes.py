"""``ros2 run robot_rl_ros <node>``: each console script runs one robot_rl node under rclpy."""

import sys

from robot_rl.deploy.rclpy_host import run


def policy_node() -> None:
    sys.exit(run("policy_node"))


def recorder_node() -> None:
    sys.exit(run("recorder_node"))


def safety_node() -> None:
    sys.exit(run("safety_node"))


def sim_bridge_node() -> None:
    sys.exit(run("sim_bridge_node"))


def teleop_node() -> None:
    sys.exit(run("teleop_node"))
