"""`robot-rl collect` writes a dataset that round-trips; `dataset validate` catches corruption."""

import json

import numpy as np
import pytest

import robot_rl.envs as E
from robot_rl.algos.rollout import rollout
from robot_rl.cli.main import main
from robot_rl.data import LeRobotDataset
from robot_rl.envs.experts import make_expert


@pytest.fixture(scope="module")
def push_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "push"
    rc = main(
        [
            "collect",
            "task=arm_push",
            "episodes=12",
            "num_envs=5",
            "seed=3",
            "noise=0.2",
            f"out={out}",
        ]
    )
    assert rc == 0
    return out


def test_collect_round_trips_counts_actions_and_stats(push_dataset):
    ds = LeRobotDataset(push_dataset)
    assert ds.num_episodes == 12
    assert ds.fps == 20
    assert ds.tasks == ["push the red cube to the green target"]
    # Re-run the same seeded collection in memory: the dataset holds exactly these episodes.
    env = E.make("arm_push", 5, seed=3)
    expert = make_expert("arm_push", env, noise=0.2, seed=3)
    episodes = []
    rollout(
        env,
        expert.act,
        12,
        seed=3,
        on_reset=expert.reset,
        on_episode=lambda i, f, ep: episodes.append((f, ep)),
    )
    assert ds.num_frames == sum(ep["length"] for _, ep in episodes)
    all_actions, all_states = [], []
    for k, (frames, ep) in enumerate(episodes):
        got = ds.episode(k)
        np.testing.assert_array_equal(got["action"], frames["action"].numpy())
        np.testing.assert_array_equal(got["observation.state"], frames["observation.state"].numpy())
        assert bool(got["next.success"][-1]) == ep["success"]
        all_actions.append(got["action"])
        all_states.append(got["observation.state"])
    actions = np.concatenate(all_actions)
    stats = ds.stats["action"]
    np.testing.assert_allclose(stats["mean"], actions.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["std"], actions.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["min"], actions.min(0))
    np.testing.assert_allclose(stats["max"], actions.max(0))
    np.testing.assert_allclose(
        ds.stats["observation.state"]["max"], np.concatenate(all_states).max(0)
    )
    names = json.loads((push_dataset / "meta" / "info.json").read_text())["features"]["action"][
        "names"
    ]
    assert names == ["dx", "dy", "dz", "rx", "ry", "rz", "gripper"]


def test_validate_ok_then_truncated_parquet_fails_with_one_line(push_dataset, tmp_path, capsys):
    import shutil

    ds = tmp_path / "copy"
    shutil.copytree(push_dataset, ds)
    assert main(["dataset", "validate", str(ds)]) == 0
    capsys.readouterr()
    data_file = sorted((ds / "data").rglob("*.parquet"))[0]
    raw = data_file.read_bytes()
    data_file.write_bytes(raw[: len(raw) // 2])
    assert main(["dataset", "validate", str(ds)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(data_file.relative_to(ds)) in err


def test_collect_refuses_to_overwrite_and_resume_appends_new_episodes(push_dataset, capsys):
    assert main(["collect", "task=arm_push", "episodes=2", f"out={push_dataset}"]) == 2
    assert "exist" in capsys.readouterr().err
    # Same seed as the original run: resuming must not replay (duplicate) its episodes.
    args = ["collect", "task=arm_push", "episodes=3", "num_envs=3", "seed=3", "noise=0.2"]
    assert main([*args, f"out={push_dataset}", "resume=true"]) == 0
    ds = LeRobotDataset(push_dataset)
    assert ds.num_episodes == 15
    firsts = {ds.episode(i)["action"][0].tobytes() for i in range(12)}
    assert all(ds.episode(i)["action"][0].tobytes() not in firsts for i in range(12, 15))
    # A task with other features cannot be appended.
    assert (
        main(
            [
                "collect",
                "task=arm_push",
                "episodes=1",
                "images=true",
                "task.image.height=32",
                "task.image.width=32",
                f"out={push_dataset}",
                "resume=true",
            ]
        )
        == 2
    )
    assert "features" in capsys.readouterr().err
    assert LeRobotDataset(push_dataset).num_episodes == 15


def test_collect_with_camera_video(tmp_path):
    out = tmp_path / "pick"
    rc = main(
        [
            "collect",
            "task=arm_pick_place",
            "episodes=3",
            "num_envs=3",
            "images=true",
            "task.image.height=48",
            "task.image.width=64",
            "task.image.cameras=[front,wrist]",
            f"out={out}",
        ]
    )
    assert rc == 0
    ds = LeRobotDataset(out)
    ep = ds.episode(1)
    T = len(ep["action"])
    assert ep["observation.images.front"].shape == (T, 48, 64, 3)
    assert ep["observation.images.wrist"].shape == (T, 48, 64, 3)
    # The red cube is visible in the front camera's first frame.
    f = ep["observation.images.front"][0].astype(int)
    assert ((f[..., 0] > 120) & (f[..., 1] < 80) & (f[..., 2] < 80)).sum() > 5
