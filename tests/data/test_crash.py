"""Fault injection: a writer SIGKILLed at any moment leaves a dataset that loads and validates,
holding every episode committed before the kill, and that a resumed writer extends cleanly."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.data import DatasetWriter, Feature, LeRobotDataset, validate_dataset

REPO = Path(__file__).resolve().parents[2]

# Shared by this process and the child writer below, so both derive episode i's frames alike.
EPISODES = """
import numpy as np
from robot_rl.data import Feature

FEATURES = {
    "observation.state": Feature("float32", (3,)),
    "action": Feature("float32", (2,)),
    "observation.images.cam": Feature("video", (16, 16, 3)),
}

def make_episode(i):
    rng = np.random.default_rng(i)
    n = 3 + i % 5
    img = (np.arange(n)[:, None, None, None] * 8 + 40 * (i % 5) + np.zeros((1, 16, 16, 3)))
    return {
        "observation.state": rng.normal(size=(n, 3)).astype(np.float32),
        "action": rng.normal(size=(n, 2)).astype(np.float32),
        "observation.images.cam": img.astype(np.uint8),
    }
"""
ns: dict = {}
exec(EPISODES, ns)
make_episode, FEATURES = ns["make_episode"], ns["FEATURES"]
assert all(isinstance(f, Feature) for f in FEATURES.values())

CHILD = (
    EPISODES
    + """
import sys
from robot_rl.data import DatasetWriter

w = DatasetWriter.open(sys.argv[1])
i = w.num_episodes
while True:
    ep = make_episode(i)
    for t in range(len(ep["action"])):
        w.add_frame({k: v[t] for k, v in ep.items()})
    w.save_episode(f"task {i % 3}", extras={"success": i % 2 == 0})
    print(i, flush=True)
    i += 1
"""
)


def check_episodes(root: Path, at_least: int) -> int:
    """Loads, validates, and holds episodes 0..n-1 exactly as written, n >= at_least."""
    validate_dataset(root)  # raises on any hard problem; leftovers are only warnings
    ds = LeRobotDataset(root)
    assert ds.num_episodes >= at_least
    for i in range(ds.num_episodes):
        got, want = ds.episode(i), make_episode(i)
        assert np.array_equal(got["action"], want["action"])
        assert np.array_equal(got["observation.state"], want["observation.state"])
        cam = "observation.images.cam"
        assert np.abs(got[cam].astype(int) - want[cam].astype(int)).max() <= 3
    return ds.num_episodes


def seed_dataset(root: Path, n: int) -> None:
    with DatasetWriter.create(root, 10, FEATURES) as w:
        for i in range(n):
            w.add_episode(make_episode(i), f"task {i % 3}", extras={"success": i % 2 == 0})


def _kill_at(root: Path, destination: str, after: bool) -> None:
    """Child: append one episode, SIGKILLing itself around the replace onto ``destination``."""
    real = os.replace

    def replace(src, dst):
        hit = Path(dst).relative_to(root).as_posix().startswith(destination)
        if hit and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
        if hit and after:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    w = DatasetWriter.open(root)
    w.add_episode(make_episode(2), "a new task", extras={"success": True})
    w.flush()
    os._exit(0)


# The order in which a flush replaces files; meta/info.json is the commit point.
STEPS = ["data/", "videos/", "meta/episodes/", "meta/tasks.parquet", "meta/stats.json", "meta/info"]


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("step", STEPS)
def test_kill_at_every_step_of_a_flush(tmp_path, step, after):
    root = tmp_path / "ds"
    seed_dataset(root, 2)
    child = multiprocessing.get_context("fork").Process(target=_kill_at, args=(root, step, after))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    committed = step == "meta/info" and after
    assert check_episodes(root, 2) == (3 if committed else 2)
    assert LeRobotDataset(root).tasks == ["task 0", "task 1"] + (
        ["a new task"] if committed else []
    )
    # a resumed writer clears the leftovers and appends after the committed episodes
    n = LeRobotDataset(root).num_episodes
    with DatasetWriter.open(root) as w:
        w.add_episode(make_episode(n), f"task {n % 3}", extras={"success": True})
    assert validate_dataset(root) == []
    assert check_episodes(root, n + 1) == n + 1


def test_sigkill_at_random_moments_while_recording(tmp_path):
    root = tmp_path / "ds"
    seed_dataset(root, 1)
    rng, saved = random.Random(0), 0
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        watchdog = threading.Timer(60, proc.kill)  # a hung child fails the test, never hangs it
        watchdog.start()
        try:
            for _ in range(3):  # let it commit a few episodes, then kill it mid-whatever
                line = proc.stdout.readline()
                assert line, f"child writer died early (rc {proc.wait()})"
                saved = int(line) + 1
            time.sleep(rng.uniform(0.0, 0.03))
        finally:
            proc.kill()  # SIGKILL
            proc.wait()
            watchdog.cancel()
        # The child may have reported more episodes than were read before the kill (a fast
        # machine fills the pipe ahead of the reader): those count as reported too.
        for line in proc.stdout.read().split():
            saved = int(line) + 1
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        n = check_episodes(root, saved)  # every episode reported saved survived
        assert n <= saved + 1
    assert check_episodes(root, saved) >= 10
