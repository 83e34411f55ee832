"""Episodes to MCAP rosbag2 and back: raw MCAP records, rosbags' typestore, zero-order hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from robot_rl import msgs
from robot_rl.core.errors import DatasetError
from robot_rl.data.rosbag import BagWriter, bag_to_dataset, write_episode_bag

T, FPS, H, W = 7, 10, 16, 24
START = 1_700_000_000.25  # bag time of frame 0, seconds
MS = 1_000_000  # ns
CAM = "observation.images.front"
STATE_NAMES = ["x", "y", "z", "grip"]


def episode() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    # smooth, distinct frames: H.264 keeps them within a few grey levels
    frames = [
        np.stack([xx * 8 + 5 * t, yy * 10 + 3 * t, np.full_like(xx, 120)], -1) for t in range(T)
    ]
    return {
        "observation.state": rng.normal(size=(T, 4)),
        "action": rng.normal(size=(T, 2)),
        CAM: np.clip(frames, 0, 255).astype(np.uint8),
    }


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    return write_episode_bag(
        tmp_path / "bag", episode(), fps=FPS, task="pick up the cube", start=START,
        names={"observation.state": STATE_NAMES},
    )  # fmt: skip


def test_bag_is_mcap_with_ros2_schemas(bag: Path) -> None:
    assert sorted(p.name for p in bag.iterdir()) == ["bag.mcap", "metadata.yaml"]
    with open(bag / "bag.mcap", "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        channels = {
            c.topic: (c.message_encoding, summary.schemas[c.schema_id].name)
            for c in summary.channels.values()
        }
        counts: dict[str, int] = {}
        for _, channel, message in reader.iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            assert message.data[:4] == b"\x00\x01\x00\x00"  # CDR little-endian encapsulation
    assert channels == {
        "/observation/state": ("cdr", "std_msgs/msg/Float64MultiArray"),
        "/action": ("cdr", "std_msgs/msg/Float64MultiArray"),
        "/camera/front/image_raw": ("cdr", "sensor_msgs/msg/Image"),
        "/instruction": ("cdr", "std_msgs/msg/String"),
    }
    assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
    assert counts == {"/observation/state": T, "/action": T, "/camera/front/image_raw": T,
                      "/instruction": 1}  # fmt: skip
    assert summary.statistics.message_count == 3 * T + 1


def test_rosbags_typestore_decodes_our_cdr(bag: Path) -> None:
    store, ep = get_typestore(Stores.ROS2_HUMBLE), episode()
    seen: dict[str, list] = {}
    with Reader(bag) as r:
        for c, t, raw in r.messages():
            seen.setdefault(c.topic, []).append((t, store.deserialize_cdr(raw, c.msgtype)))
    times = [t for t, _ in seen["/action"]]
    # frame i at START + i / FPS: 0.1 s = 100 ms apart, exactly, in integer ns
    assert times == [1_700_000_000_250 * MS + 100 * MS * i for i in range(T)]
    np.testing.assert_array_equal([m.data for _, m in seen["/action"]], ep["action"])
    np.testing.assert_array_equal(
        [m.data for _, m in seen["/observation/state"]], ep["observation.state"]
    )
    dim = seen["/observation/state"][0][1].layout.dim
    assert [(d.label, d.size) for d in dim] == [("x,y,z,grip", 4)]
    img = seen["/camera/front/image_raw"][3][1]
    assert (img.encoding, img.height, img.width, img.step) == ("rgb8", H, W, 3 * W)
    assert (img.header.stamp.sec, img.header.stamp.nanosec) == (1_700_000_000, 550_000_000)
    np.testing.assert_array_equal(img.data.reshape(H, W, 3), ep[CAM][3])
    assert seen["/instruction"][0][1].data == "pick up the cube"


def test_bag_round_trips_to_dataset(bag: Path, tmp_path: Path) -> None:
    ds, ep = bag_to_dataset(bag, tmp_path / "ds", fps=FPS), episode()
    assert (ds.num_episodes, ds.num_frames, ds.tasks) == (1, T, ["pick up the cube"])
    got = ds.episode(0)
    np.testing.assert_allclose(got["action"], ep["action"], rtol=1e-6)
    np.testing.assert_allclose(got["observation.state"], ep["observation.state"], rtol=1e-6)
    assert ds.features["observation.state"].names == STATE_NAMES
    assert got[CAM].shape == (T, H, W, 3)
    assert np.abs(got[CAM].astype(int) - ep[CAM]).mean() < 6  # lossy video, same pictures


def _jittered(path: Path, state_as_joint_state: bool = False) -> Path:
    """State at 0, 120, 190, 310 ms (values 0..3); action at 20, 90, 220, 280 ms (10..13)."""
    with BagWriter(path) as bag:
        for v, ms in enumerate([0, 120, 190, 310]):
            t = 5_000 * MS + ms * MS
            if state_as_joint_state:
                js = msgs.JointState(name=["j"], position=[float(v)], velocity=[-float(v)])
                bag.write("/joint_states", js, t)
            else:
                bag.write_vector("/observation/state", np.array([v]), t)
        for v, ms in enumerate([20, 90, 220, 280]):
            bag.write_vector("/action", np.array([10.0 + v]), 5_000 * MS + ms * MS)
    return path


def test_zero_order_hold_on_fps_grid(tmp_path: Path) -> None:
    # 10 fps grid from half a period after the first message (0 ms): 50, 150, 250, 350 ms (the
    # last message is at 310 ms). State: the latest at or before each tick -> 0, 1, 2, 3. Action:
    # the first one written at or after that state if it comes before the next tick, else the
    # latest: state@0 -> action@20 (10); state@120 -> action@220 < 250 (12); state@190 ->
    # action@220 (12); state@310 -> none after it, latest at 350 is action@280 (13).
    ds = bag_to_dataset(_jittered(tmp_path / "bag"), tmp_path / "ds", fps=10, task="t")
    got = ds.episode(0)
    np.testing.assert_array_equal(got["observation.state"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(got["action"][:, 0], [10, 12, 12, 13])
    # 20 fps: ticks 25, 75, ..., 325 ms. At 125 the state@120's answer (action@220) comes after
    # the next tick (175), so the held action@90 (11) is used.
    ds = bag_to_dataset(tmp_path / "bag", tmp_path / "ds20", fps=20, task="t")
    got = ds.episode(0)
    np.testing.assert_array_equal(got["observation.state"][:, 0], [0, 0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(got["action"][:, 0], [10, 10, 11, 12, 12, 12, 13])


def test_a_jittered_robot_bag_pairs_each_state_with_its_command(tmp_path: Path) -> None:
    # state at 50 Hz with 0.5 ms jitter, each command 3 ms after the state it answers
    rng = np.random.default_rng(0)
    with BagWriter(tmp_path / "bag") as bag:
        for k in range(100):
            t = 1_000 * MS + k * 20 * MS + int(rng.uniform(-0.5, 0.5) * MS)
            bag.write_vector("/observation/state", np.array([k]), t)
            bag.write_vector("/action", np.array([1000 + k]), t + 3 * MS)
    got = bag_to_dataset(tmp_path / "bag", tmp_path / "ds", fps=50, task="t").episode(0)
    state, action = got["observation.state"][:, 0], got["action"][:, 0]
    np.testing.assert_array_equal(state, np.arange(100))  # every state once, none twice
    np.testing.assert_array_equal(action, 1000 + state)  # with the command that answered it


def test_joint_state_gives_positions_then_velocities(tmp_path: Path) -> None:
    bag = _jittered(tmp_path / "bag", state_as_joint_state=True)
    ds = bag_to_dataset(bag, tmp_path / "ds", fps=10, state_topic="/joint_states", task="t")
    np.testing.assert_array_equal(
        ds.episode(0)["observation.state"], [[0, 0], [1, -1], [2, -2], [3, -3]]
    )
    assert ds.features["observation.state"].names == ["j.pos", "j.vel"]


def test_each_instruction_starts_an_episode(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as bag:
        for i in range(6):
            t = i * 100 * MS
            if i in (0, 4):
                bag.write_instruction("first" if i == 0 else "second", t)
            bag.write_vector("/observation/state", np.array([i]), t)
            bag.write_vector("/action", np.array([-i]), t)
    ds = bag_to_dataset(tmp_path / "bag", tmp_path / "ds", fps=10)
    assert (ds.num_episodes, ds.tasks) == (2, ["first", "second"])
    np.testing.assert_array_equal(ds.episode(1)["action"][:, 0], [-4, -5])


def test_errors_are_one_line(bag: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="more than one of state/action"):
        bag_to_dataset(bag, tmp_path / "d", fps=10, state_topic="/action", task="t")
    with pytest.raises(DatasetError, match="fps must be an integer >= 1"):
        bag_to_dataset(bag, tmp_path / "e", fps=0, task="t")
    with pytest.raises(DatasetError, match=r"bag .*nope does not exist"):
        bag_to_dataset(tmp_path / "nope", tmp_path / "a", fps=10)
    with pytest.raises(DatasetError, match=r"'/joint_states' is not in .* it has \['/action'"):
        bag_to_dataset(bag, tmp_path / "b", fps=10, state_topic="/joint_states")
    with pytest.raises(DatasetError, match=r"carries std_msgs/msg/String, expected std_msgs"):
        bag_to_dataset(bag, tmp_path / "c", fps=10, action_topic="/instruction")
    with pytest.raises(DatasetError, match=r"has no '/instruction' topic; pass task="):
        bag_to_dataset(_jittered(tmp_path / "j"), tmp_path / "d", fps=10)


def test_cli_convert_bag(bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robot_rl.cli.main import main

    out = tmp_path / "ds"
    assert main(["dataset", "convert-bag", str(bag), f"out={out}", "fps=10", "task=push"]) == 0
    # the console wraps long paths: compare with the line breaks taken out
    assert "1 episodes, 7 frames" in " ".join(capsys.readouterr().out.split())
    assert main(["dataset", "convert-bag", str(bag), f"out={out}2", "fps=10", "state=/js"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'/js' is not in" in err and "\n" not in err
    assert main(["dataset", "convert-bag", str(bag), "fps=10"]) == 2
    assert "needs out=DIR and fps=N" in capsys.readouterr().err
