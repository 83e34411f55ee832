"""The node executables, by the name a launch file's ``exec`` gives them."""

from __future__ import annotations

import importlib

from robot_rl.core.errors import ConfigError

NODES = {
    "policy_node": "robot_rl.deploy.nodes.policy:PolicyNode",
    "recorder_node": "robot_rl.deploy.nodes.recorder:RecorderNode",
    "safety_node": "robot_rl.deploy.nodes.safety:SafetyNode",
    "sim_bridge_node": "robot_rl.deploy.nodes.sim_bridge:SimBridgeNode",
    # a teleop device in the graph; its logic lives with the other devices (robot_rl.teleop)
    "teleop_node": "robot_rl.teleop.ros_node:TeleopNode",
}


def node_class(executable: str) -> type:
    """The :class:`~robot_rl.deploy.node.NodeLogic` class of a node executable (imported on
    demand: a policy node does not import MuJoCo, a bridge does not import the policy)."""
    if executable not in NODES:
        raise ConfigError(f"unknown node executable {executable!r}; known: {sorted(NODES)}")
    module, _, name = NODES[executable].partition(":")
    return getattr(importlib.import_module(module), name)
