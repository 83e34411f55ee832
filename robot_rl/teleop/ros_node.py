"""``teleop_node``: drive a robot by hand through the same safety node a policy goes through.

A device (gamepad, spacemouse, or the keyboard of the terminal the node runs in) is polled at
the control rate and mapped as ``robot-rl teleop`` maps it (the arm: end-effector deltas and the
gripper); the action goes out on ``~/action_raw``, so the safety node (``action_topic:=
/teleop_node/action_raw``) filters it exactly as a policy's. Episode keys drive a
``recorder_node``: start → ``<recorder>/start``, success / failure → ``<recorder>/stop`` (true /
false), discard or re-record → ``<recorder>/discard``. Quit stops sending: the safety node's
watchdog then holds the robot.

The keyboard needs the node's own terminal (``python -m robot_rl.deploy.main teleop_node
--ros-args -p device:=keyboard``); nodes started by a launch file have none, so use a gamepad
or a spacemouse there.
"""

from __future__ import annotations

from typing import Any

from robot_rl.core.profile import load_profile
from robot_rl.deploy.node import NodeLogic, Out, Port
from robot_rl.deploy.qos import COMMAND, STATE
from robot_rl.msgs import Bool, Float64MultiArray
from robot_rl.teleop.command import Event
from robot_rl.teleop.devices import Device, make_device
from robot_rl.teleop.mapping import mapping_for

RECORDER_EVENTS: dict[Event, tuple[str, bool]] = {
    Event.START: ("start", True),
    Event.SUCCESS: ("stop", True),
    Event.FAILURE: ("stop", False),
    Event.DISCARD: ("discard", True),
    Event.RERECORD: ("discard", True),
}


class TeleopNode(NodeLogic):
    """Parameters: ``device`` (gamepad | spacemouse | keyboard), ``profile`` (robot profile: the
    mapping and the control rate), ``linear_scale``, ``angular_scale``, ``recorder`` (the
    recorder node's name, "" for none)."""

    default_name = "teleop_node"
    parameters: dict[str, Any] = {
        "device": "gamepad",
        "profile": "arm",
        "linear_scale": 1.0,
        "angular_scale": 0.5,
        "recorder": "/recorder",
    }

    def __init__(self, params=None, clock=None, device: Device | None = None) -> None:
        super().__init__(params, clock)
        p = self.params
        profile = load_profile(p["profile"])
        self.mapping = mapping_for(
            profile.robot_type, linear_scale=p["linear_scale"], angular_scale=p["angular_scale"]
        )
        self.device = device if device is not None else make_device(p["device"])
        self.publishers = {"action": Port("~/action_raw", Float64MultiArray, COMMAND)}
        if p["recorder"]:
            for name in ("start", "stop", "discard"):
                self.publishers[name] = Port(f"{p['recorder']}/{name}", Bool, STATE)
        self.timers = {"poll": 1.0 / profile.control_rate_hz}
        self.quit = False

    def tick_poll(self) -> Out:
        if self.quit:
            return []
        cmd = self.device.poll()
        out: Out = []
        for event in cmd.events:
            if event is Event.QUIT:
                self.quit = True
                self.log("quit: no more actions (the safety node holds the robot)")
                return out
            if event in RECORDER_EVENTS and self.params["recorder"]:
                topic, value = RECORDER_EVENTS[event]
                out.append((topic, Bool(data=value)))
        action = self.mapping(cmd)
        return out + [("action", Float64MultiArray(data=[float(x) for x in action]))]

    def shutdown(self) -> None:
        self.device.close()
