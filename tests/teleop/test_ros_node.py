"""``teleop_node`` in the node graph: a device's motion reaches the arm through the safety node,
its episode keys reach the recorder's topics, and quitting stops the actions."""

import numpy as np

from robot_rl.deploy.graph import LocalGraph
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
from robot_rl.deploy.rosargs import NodeOptions
from robot_rl.teleop.command import Event, TeleopCommand
from robot_rl.teleop.ros_node import TeleopNode


class ScriptedDevice:
    """The lowest input layer: one command per poll from a script."""

    def __init__(self, script):
        self.script, self.closed = list(script), False

    def poll(self) -> TeleopCommand:
        return self.script.pop(0) if self.script else TeleopCommand()

    def close(self) -> None:
        self.closed = True


def forward(events=()) -> TeleopCommand:
    cmd = TeleopCommand(events=list(events))
    cmd.twist = np.array([1.0, 0, 0, 0, 0, 0])
    return cmd


def test_the_operator_drives_the_arm_through_the_safety_node():
    clock = ManualClock(1000.0)
    script = [forward([Event.START])] + [forward() for _ in range(30)]
    script += [TeleopCommand(events=[Event.SUCCESS, Event.QUIT])]
    device = ScriptedDevice(script)
    bridge = SimBridgeNode({"task": "arm_reach", "seed": 0}, clock)
    teleop = TeleopNode({}, clock, device=device)
    safety = SafetyNode(
        {"engage": True, "ramp_s": 0.1, "action_topic": "/teleop_node/action_raw"}, clock
    )
    nodes = [bridge, teleop, safety]
    for n in nodes:
        n.log = lambda text: None
    graph = LocalGraph([(n, NodeOptions(n.default_name)) for n in nodes], clock)
    graph.start()
    bridge.started = True
    x0 = float(bridge.env.tcp_pos[0, 0])
    graph.run_until(clock.t + 2.0)
    assert float(bridge.env.tcp_pos[0, 0]) > x0 + 0.1  # +x on the device moved the tool +x
    assert graph.published["/recorder/start"][0].data is True
    assert [m.data for m in graph.published["/recorder/stop"]] == [True]
    sent = len(graph.published["/teleop_node/action_raw"])
    graph.run_until(clock.t + 1.0)
    assert len(graph.published["/teleop_node/action_raw"]) == sent  # quit: nothing more
    teleop.shutdown()
    assert device.closed
