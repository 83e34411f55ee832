"""``robot-rl record`` driven through a pseudo-terminal with scripted keys, end to end."""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pytest
import torch

from robot_rl.algos.bc_data import BCData
from robot_rl.core.errors import ConfigError
from robot_rl.data import LeRobotDataset, validate_dataset
from tests.teleop.pty_driver import PtyProcess

LIMIT = 40  # task.episode_length: 2 s at the task's 20 Hz
SAVED = r"saved episode (\d+): (\d+) frames, (success|failure)"


def record(out, *extra: str) -> PtyProcess:
    return PtyProcess(
        "record", "task=arm_push", "device=keyboard", f"out={out}",
        f"task.episode_length={LIMIT}", *extra,
    )  # fmt: skip


def start(p: PtyProcess) -> None:
    p.expect(r"Enter/Start")
    p.send("\r")
    p.expect(r"recording episode")


@pytest.fixture
def recorded(tmp_path):
    """3 kept episodes: (1) pushed forward with the gripper closed, finished as a success;
    (2) one take re-recorded, the retake runs into the time limit; (3) one take discarded, the
    next finished as a failure."""
    out = tmp_path / "demo"
    p = record(out, "episodes=3", 'instruction="push it gently"', f"bag={tmp_path / 'bags'}")
    saved = []
    try:
        p.expect(r"w/s or")  # the key map is printed
        start(p)
        p.send(" ")
        for _ in range(4):
            p.send("w")
            time.sleep(0.1)
        p.send("y")
        saved.append(p.expect(SAVED).groups())
        start(p)
        p.send("x")
        p.expect(r"re-record: dropped episode 2/3")
        p.expect(r"re-recording episode 2/3")
        saved.append(p.expect(SAVED, timeout=LIMIT / 20 + 20).groups())
        start(p)
        time.sleep(0.2)
        p.send("c")
        p.expect(r"discarded episode 3/3")
        start(p)
        time.sleep(0.2)
        p.send("n")
        saved.append(p.expect(SAVED).groups())
        p.expect(r"done: kept 3 episodes \(1 successes, 2 dropped\)")
        assert p.wait() == 0
    finally:
        p.close()
    return out, [(int(i), int(n), v) for i, n, v in saved]


def test_record_keeps_three_episodes_with_their_frames(recorded):
    out, saved = recorded
    assert [s[0] for s in saved] == [0, 1, 2]
    assert [s[2] for s in saved] == ["success", "failure", "failure"]
    assert saved[1][1] == LIMIT  # the retake ran into the time limit
    assert all(1 <= n < LIMIT for _, n, _ in (saved[0], saved[2]))
    assert validate_dataset(out) == []
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 3
    assert ds.fps == 20
    assert ds.num_frames == sum(n for _, n, _ in saved)
    assert ds.tasks == ["push it gently"]
    # The BC loader reads it; windows cover every frame.
    data = BCData([out], obs_horizon=2, horizon=8)
    assert data.num_episodes == 3 and len(data) == ds.num_frames
    batch = data.sample(torch.arange(len(data)))
    assert batch["action"].shape[-1] == 7
    # Episode 1 drove forward with the gripper closed: +x actions, gripper +1 recorded.
    act = batch["action"][: saved[0][1], 0].numpy()
    assert act[:, 0].max() > 0.3
    assert act[-1, 6] == 1.0 and np.all(np.diff(act[:, 6]) >= 0)  # closed once, stays closed


def test_each_kept_episode_is_also_a_rosbag2_that_converts_back(recorded, tmp_path):
    from mcap.reader import make_reader
    from rosbags.rosbag2 import Reader

    from robot_rl.data.rosbag import bag_to_dataset

    out, saved = recorded
    bags = sorted((out.parent / "bags").iterdir())
    assert [b.name for b in bags] == ["episode_000000", "episode_000001", "episode_000002"]
    ds = LeRobotDataset(out)
    for i, bag in enumerate(bags):
        with open(next(bag.glob("*.mcap")), "rb") as f:  # the mcap package's own reader
            topics = {ch.topic for _, ch, _ in make_reader(f).iter_messages()}
        assert {"/action", "/observation/state", "/instruction"} <= topics
        with Reader(bag) as reader:  # and rosbags'
            assert reader.message_count == 2 * saved[i][1] + 1
        back = bag_to_dataset(bag, tmp_path / f"back{i}", fps=ds.fps)
        np.testing.assert_allclose(back.episode(0)["action"], ds.episode(i)["action"], atol=1e-6)
        assert back.tasks == ["push it gently"]


def test_kill_during_third_episode_keeps_two(tmp_path):
    out = tmp_path / "demo"
    p = record(out, "episodes=3")
    try:
        for _ in range(2):
            start(p)
            time.sleep(0.15)
            p.send("y")
            p.expect(SAVED)
        start(p)
        p.expect(r"step [1-9]")  # stepping the 3rd episode
        p.kill()
    finally:
        p.close()
    assert validate_dataset(out) == []
    assert LeRobotDataset(out).num_episodes == 2
    assert BCData([out], obs_horizon=2, horizon=8).num_episodes == 2
    # Without resume=true the recorder refuses to touch it, in one line.
    p = record(out, "episodes=1")
    try:
        assert p.wait() == 2
    finally:
        p.close()
    assert re.search(r"error: .*already exists and is not empty; pass resume=true", p.output)
    assert LeRobotDataset(out).num_episodes == 2
    # resume=true appends.
    p = record(out, "episodes=1", "resume=true")
    try:
        p.expect(r"appending after 2 episodes")
        start(p)
        time.sleep(0.15)
        p.send("y")
        assert p.expect(SAVED).group(1) == "2"
        assert p.wait() == 0
    finally:
        p.close()
    assert validate_dataset(out) == []
    assert LeRobotDataset(out).num_episodes == 3


def test_teleop_drives_until_quit():
    p = PtyProcess("teleop", "task=arm_push", "device=keyboard", "task.episode_length=10")
    try:
        p.expect(r"driving episode 1")
        p.send("w")
        p.expect(r"finished episode 1 \(time limit/env\): failure after 10 steps")
        p.expect(r"\[drive\] episode 2  step")
        p.send("q")
        p.expect(r"quit: dropped episode 2")
        p.expect(r"1 episodes finished, 0 successes")
        assert p.wait() == 0
    finally:
        p.close()


def test_sigterm_drops_the_episode_and_keeps_the_saved_ones(tmp_path):
    out = tmp_path / "demo"
    p = record(out, "episodes=3")
    try:
        start(p)
        time.sleep(0.15)
        p.send("y")
        p.expect(SAVED)
        start(p)
        p.expect(r"step [1-9]")
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait() == 128 + signal.SIGTERM  # unwound (finally blocks ran), not killed
    finally:
        p.close()
    assert "Traceback" not in p.output
    assert validate_dataset(out) == []
    assert LeRobotDataset(out).num_episodes == 1


def test_a_bag_directory_is_checked_before_recording(tmp_path):
    from robot_rl.cli.teleop import check_bag_dir

    check_bag_dir(tmp_path / "new", resume=False)  # absent: fine
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "episode_000000").mkdir()
    with pytest.raises(ConfigError, match="already holds bags"):
        check_bag_dir(tmp_path / "used", resume=False)
    check_bag_dir(tmp_path / "used", resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        check_bag_dir(tmp_path / "file", resume=False)
