"""The recorder node in a LocalGraph with the sim bridge: episodes, frames, actions and bags.

Alignment in these graphs: the recorder's timer runs at the bridge's rate, in phase with it (after
the bridge's tick: its node comes later) or shifted; commands answer observations at once. So each
frame pairs the observation of a control step with the command sent for it, and an episode of L
steps gives exactly L frames (the bridge publishes L observations: the first one, then one after
each step but the last). Kill safety is the DatasetWriter's (tests/data).
"""

from pathlib import Path

import numpy as np
import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.data.reader import LeRobotDataset
from robot_rl.data.validate import validate_dataset
from robot_rl.deploy.graph import LocalGraph
from robot_rl.deploy.node import ManualClock, NodeLogic, Out, Port
from robot_rl.deploy.nodes import node_class
from robot_rl.deploy.nodes.policy import PolicyNode
from robot_rl.deploy.nodes.recorder import RecorderNode
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
from robot_rl.deploy.qos import COMMAND, SENSOR, STATE
from robot_rl.deploy.rosargs import NodeOptions
from robot_rl.msgs import Bool, Float64MultiArray, Image, JointState, String

CHECKPOINT = Path(__file__).resolve().parents[1] / "assets/policies/arm_reach_flow_small"
TASK = "move the gripper to the green target"
SHORT = '{"episode_length": 12}'


class Commander(NodeLogic):
    """Answers every ``/joint_states`` with a distinct arm and gripper command (and, with
    ``camera``, a flat 16×16 image of a distinct brightness); keeps, per episode, the state it
    answered, the command and the brightness."""

    default_name = "commander"

    def __init__(self, clock: ManualClock, camera: bool = False, delay: float = 0.0) -> None:
        """``delay``: seconds between a reading and the answer (a transport's latency)."""
        super().__init__({}, clock)
        self.delay, self.queue = delay, []
        if delay:
            self.timers = {"flush": 0.002}
        self.publishers = {
            "arm": Port("/arm_controller/commands", Float64MultiArray, COMMAND),
            "gripper": Port("/gripper_controller/commands", Float64MultiArray, COMMAND),
        }
        if camera:
            self.publishers["image"] = Port("/camera/front/image_raw", Image, SENSOR)
        self.subscriptions = {
            "episode": Port("/sim/episode", String, STATE),
            "joints": Port("/joint_states", JointState, STATE),
        }
        self.episodes: list[list[np.ndarray]] = []
        self.states: list[list[list[float]]] = []
        self.levels: list[list[int]] = []
        self.count = 0

    def on_episode(self, msg: String) -> Out:
        if '"start"' in msg.data:
            self.episodes.append([])
            self.states.append([])
            self.levels.append([])

    def on_joints(self, msg: JointState) -> Out:
        out = self._answer(msg)
        if not self.delay:
            return out
        self.queue.append((self.clock.now() + self.delay, out))
        return []

    def tick_flush(self) -> Out:
        due = [o for t, o in self.queue if t <= self.clock.now() + 1e-9]
        self.queue = [(t, o) for t, o in self.queue if t > self.clock.now() + 1e-9]
        return [m for o in due for m in o]

    def _answer(self, msg: JointState) -> Out:
        self.count += 1
        arm = np.asarray(msg.position[:6]) + 0.01 * np.sin(self.count)
        grip = 0.02 + 0.0005 * (self.count % 20)
        level = 40 + 8 * (self.count % 20)
        if self.episodes:
            self.episodes[-1].append(np.concatenate([arm, [grip]]))
            self.states[-1].append([*msg.position, *msg.velocity])
            self.levels[-1].append(level)
        out = []
        if "image" in self.publishers:  # the camera frame the command was computed from
            pix = bytes([level]) * (16 * 16 * 3)
            img = Image(height=16, width=16, encoding="rgb8", step=48, data=pix)
            out.append(("image", img))
        return out + [
            ("arm", Float64MultiArray(data=[float(x) for x in arm])),
            ("gripper", Float64MultiArray(data=[grip])),
        ]


class CommandTap(NodeLogic):
    """Keeps the latest arm and gripper command sent."""

    default_name = "tap"

    def __init__(self, clock: ManualClock) -> None:
        super().__init__({}, clock)
        topics = {"arm": "/arm_controller/commands", "gripper": "/gripper_controller/commands"}
        self.subscriptions = {k: Port(t, Float64MultiArray, COMMAND) for k, t in topics.items()}
        self.latest: dict[str, list[float]] = {}

    def on_arm(self, msg: Float64MultiArray) -> Out:
        self.latest["arm"] = list(msg.data)

    def on_gripper(self, msg: Float64MultiArray) -> Out:
        self.latest["gripper"] = list(msg.data)


def run(nodes: list[NodeLogic], clock: ManualClock, bridge: SimBridgeNode) -> LocalGraph:
    """Run the graph until the bridge's last episode ended."""
    for n in nodes:
        n.log = lambda text: None
    graph = LocalGraph([(n, NodeOptions(n.default_name)) for n in nodes], clock)
    graph.start()
    bridge.started = True
    while not bridge.done and clock.t < 1000.0 + 60.0:
        graph.run_until(clock.t + 1.0)
    graph.run_until(clock.t + 0.2)  # the last episode's end reaches the recorder
    return graph


def scripted(tmp_path: Path, episodes: int, camera: bool = False, delay: float = 0.0, **params):
    clock = ManualClock(1000.0)
    bridge = SimBridgeNode({"episodes": episodes, "seed": 1, "task_overrides": SHORT}, clock)
    commander = Commander(clock, camera, delay)
    images = "/camera/front/image_raw" if camera else ""
    rec = RecorderNode({"out": str(tmp_path / "ds"), "task": TASK, "image_topics": images,
                        **params}, clock)  # fmt: skip
    graph = run([bridge, commander, rec], clock, bridge)
    rec.shutdown()
    return bridge, commander, rec, graph


@pytest.mark.parametrize("delay", [0.0, 0.03])  # 30 ms of the 50 ms control period
def test_records_each_episode_with_the_commands_sent(tmp_path, delay):
    # each reading is paired with the command that answered it, however late that came
    bridge, commander, rec, _ = scripted(tmp_path, 3, camera=True, delay=delay)
    assert validate_dataset(tmp_path / "ds") == []
    ds = LeRobotDataset(tmp_path / "ds")
    lengths = [r["length"] for r in bridge.results]
    assert ds.num_episodes == 3 and ds.fps == 20 and ds.tasks == [TASK]
    assert ds.features["observation.state"].shape == (16,)
    assert ds.features["action"].names[-1] == "finger_left"
    success = ds.episodes_table().column("success").to_pylist()
    assert success == [r["success"] for r in bridge.results]
    for i, length in enumerate(lengths):
        ep = ds.episode(i)
        assert len(ep["action"]) == length  # the alignment rule of the module docstring
        np.testing.assert_allclose(ep["action"], np.stack(commander.episodes[i]), atol=1e-6)
        # each frame's state is the reading its command answered
        np.testing.assert_allclose(ep["observation.state"], commander.states[i], atol=1e-5)
        frames = ep["observation.images.front"]
        assert frames.shape == (length, 16, 16, 3)
        brightness = frames.reshape(length, -1).mean(1)
        np.testing.assert_allclose(brightness, commander.levels[i], atol=3)


def test_bag_holds_each_saved_episodes_messages(tmp_path):
    from rosbags.rosbag2 import Reader

    bridge, commander, rec, _ = scripted(tmp_path, 2, bag=True)
    bags = sorted((tmp_path / "ds/bags").iterdir())
    assert [b.name for b in bags] == ["episode_0", "episode_1"]
    for bag, result, cmds in zip(bags, bridge.results, commander.episodes, strict=True):
        assert sorted(p.suffix for p in bag.iterdir()) == [".mcap", ".yaml"]
        with Reader(bag) as r:
            counts = {c.topic: c.msgcount for c in r.connections}
            stamps = [t for _, t, _ in r.messages()]
        assert counts["/joint_states"] == result["length"]
        assert counts["/arm_controller/commands"] == counts["/gripper_controller/commands"]
        assert counts["/arm_controller/commands"] == len(cmds)
        assert counts["/sim/episode"] == 2  # its start and its end
        assert stamps == sorted(stamps) and stamps[0] >= 1000 * 10**9  # receipt times


def test_resume_appends_and_refuses_a_full_directory(tmp_path):
    scripted(tmp_path, 1, bag=True)
    with pytest.raises(ConfigError, match="not empty; pass resume:=true"):
        RecorderNode({"out": str(tmp_path / "ds"), "task": TASK})
    with pytest.raises(ConfigError, match="recorded at 20 fps, not 10"):
        RecorderNode({"out": str(tmp_path / "ds"), "task": TASK, "resume": True, "fps": 10})
    scripted(tmp_path, 2, resume=True, bag=True)  # the refused attempt left the lock free
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 3 and validate_dataset(tmp_path / "ds") == []
    assert sorted(b.name for b in (tmp_path / "ds/bags").iterdir()) == [
        "episode_0",
        "episode_1",
        "episode_2",
    ]


def test_policy_rollouts_through_the_safety_node(tmp_path):
    """The real graph of launch/arm_record.launch.xml: actions are the safety node's commands."""
    clock = ManualClock(1000.0)
    bridge = SimBridgeNode(
        {"episodes": 2, "seed": 3, "task_overrides": '{"episode_length": 40}'}, clock
    )
    policy = PolicyNode({"checkpoint": str(CHECKPOINT), "reset_topic": "/sim/episode",
                         "inference_budget_s": 60.0}, clock)  # fmt: skip
    safety = SafetyNode({"engage": True, "ramp_s": 0.1, "reset_topic": "/sim/episode"}, clock)
    tap = CommandTap(clock)
    rec = RecorderNode({"out": str(tmp_path / "ds"), "task": TASK}, clock)
    expected: list[list[float]] = []
    write = rec._write_pending

    def spy():  # in this graph the latest command when the next reading comes answers the last
        before = rec.frames
        write()
        if rec.frames > before:
            expected.append(tap.latest["arm"] + tap.latest["gripper"])

    rec._write_pending = spy
    run([bridge, policy, safety, tap, rec], clock, bridge)
    rec.shutdown()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and validate_dataset(tmp_path / "ds") == []
    ranges = ds.episode_ranges()
    assert list(ranges[:, 1] - ranges[:, 0]) == [r["length"] for r in bridge.results]
    actions = np.concatenate([ds.episode(i)["action"] for i in range(2)])
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    assert ds.episodes_table().column("success").to_pylist() == [
        r["success"] for r in bridge.results
    ]


def test_an_end_without_start_and_malformed_events_are_ignored_with_a_log(tmp_path):
    rec = RecorderNode({"out": str(tmp_path / "ds"), "task": TASK}, ManualClock())
    logs: list[str] = []
    rec.log = logs.append
    assert rec.handle("episode", String(data='{"event": "end", "success": true}')) == []
    assert rec.handle("episode", String(data="{not json")) == []
    assert rec.handle("episode", String(data='["end"]')) == []
    assert rec.handle("stop", Bool(data=True)) == []
    assert rec.frames == 0 and not rec.active
    assert any("without a start" in m for m in logs)
    assert sum("malformed" in m for m in logs) == 2
    rec.shutdown()
    assert not (tmp_path / "ds").exists()  # nothing was recorded


def test_operator_topics_and_an_array_state(tmp_path):
    clock = ManualClock()
    rec = RecorderNode({"out": str(tmp_path / "ds"), "task": TASK, "fps": 10,
                        "state_topic": "/state", "action_topics": "/cmd"}, clock)  # fmt: skip
    rec.log = lambda text: None
    for episode, keep in enumerate((True, False, True)):
        rec.handle("start", Bool(data=True))
        for k in range(4):  # readings at 10 Hz, each answered by a command
            clock.advance(0.1)
            rec.handle("state", Float64MultiArray(data=[float(episode)] * 3))
            rec.handle("action_0", Float64MultiArray(data=[k, -k]))
        clock.advance(0.01)  # a reading sooner than 0.95 / fps after the last: skipped
        rec.handle("state", Float64MultiArray(data=[9.0] * 3))
        rec.handle("stop" if keep else "discard", Bool(data=True))
    rec.shutdown()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and ds.features["action"].names is None
    ep = ds.episode(1)
    np.testing.assert_allclose(ep["observation.state"], np.full((4, 3), 2.0))
    np.testing.assert_allclose(ep["action"][:, 1], [0, -1, -2, -3])


def test_registered_and_refuses_bad_parameters(tmp_path):
    assert node_class("recorder_node") is RecorderNode
    with pytest.raises(ConfigError, match="out:=DIR"):
        RecorderNode({})
    with pytest.raises(ConfigError, match="task"):
        RecorderNode({"out": str(tmp_path), "instruction_topic": ""})
    cams = "/camera/front/image_raw,/camera/front/image_raw"
    with pytest.raises(ConfigError, match="repeat a camera name"):
        RecorderNode({"out": str(tmp_path), "task": TASK, "image_topics": cams})
    with pytest.raises(ConfigError, match="must be a int"):
        RecorderNode({"out": str(tmp_path), "task": TASK, "fps": 12.5})


def test_a_failed_save_stops_recording_and_keeps_the_saved_episodes(tmp_path):
    bridge, commander, rec, _ = scripted(tmp_path, 1)
    rec2 = RecorderNode({"out": str(tmp_path / "ds"), "task": TASK, "resume": True}, ManualClock())
    logs: list[str] = []
    rec2.log = logs.append

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    rec2.writer.save_episode = full_disk
    rec2.handle("episode", String(data='{"event": "start"}'))
    rec2.frames = 1  # as if it had recorded a frame
    rec2.handle("episode", String(data='{"event": "end", "success": true}'))
    assert rec2.failed and any("recording stopped" in m for m in logs)
    rec2.handle("episode", String(data='{"event": "start"}'))
    assert not rec2.active and any("not recording" in m for m in logs)
    rec2.shutdown()
    assert LeRobotDataset(tmp_path / "ds").num_episodes == 1  # the saved one is intact
