"""WindowDataset: observation history and action chunks, padded at episode ends, never crossing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from robot_rl.data import DatasetWriter, Feature, LeRobotDataset, WindowDataset

CAM = "observation.images.cam"
LENGTHS = [3, 5]  # global frames 0..2 (episode 0) and 3..7 (episode 1)


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> LeRobotDataset:
    """Values encode where they come from: state = [100 e + t, -t], action = [100 e + t] * 2,
    image = a flat grey level 20 + 40 t + 100 e."""
    root = tmp_path_factory.mktemp("win") / "ds"
    feats = {
        "observation.state": Feature("float32", (2,)),
        "observation.env_state": Feature("float32", (1,)),
        "action": Feature("float32", (2,)),
        CAM: Feature("video", (16, 16, 3)),
    }
    with DatasetWriter.create(root, 10, feats) as w:
        for e, n in enumerate(LENGTHS):
            t = np.arange(n, dtype=np.float32)
            w.add_episode(
                {
                    "observation.state": np.stack([100 * e + t, -t], 1),
                    "observation.env_state": 100 * e + t,
                    "action": np.stack([100 * e + t] * 2, 1),
                    CAM: np.broadcast_to(
                        (20 + 40 * t + 100 * e)[:, None, None, None], (n, 16, 16, 3)
                    ).astype(np.uint8),
                },
                ["push", "pick"][e],
            )
    return LeRobotDataset(root)


def test_windows_match_hand_computed_indices(ds):
    wd = WindowDataset(ds, obs_horizon=2, action_horizon=4)
    assert len(wd) == 8 and wd.keys == ["observation.state", "observation.env_state"]
    # (sample, obs frames (e, t), actions (e, t), pad) worked out from To=2, Ta=4, lengths 3 and 5
    cases = [
        (0, [0, 0], [0, 1, 2, 2], [0, 0, 0, 1]),  # episode 0, t=0: history repeats frame 0
        (1, [0, 1], [1, 2, 2, 2], [0, 0, 1, 1]),
        (2, [1, 2], [2, 2, 2, 2], [0, 1, 1, 1]),  # last frame: only one real action
        (3, [100, 100], [100, 101, 102, 103], [0, 0, 0, 0]),  # episode 1 starts fresh
        (5, [101, 102], [102, 103, 104, 104], [0, 0, 0, 1]),
        (7, [103, 104], [104, 104, 104, 104], [0, 1, 1, 1]),
    ]
    for i, obs, act, pad in cases:
        s = wd[i]
        assert s["observation.state"].tolist() == [[o, -(o % 100)] for o in obs], i
        assert s["observation.env_state"].tolist() == [[o] for o in obs], i
        assert s["action"][:, 0].tolist() == act, i
        assert s["action_is_pad"].tolist() == [bool(p) for p in pad], i
        assert s["action_is_pad"].dtype == torch.bool
        assert int(s["episode_index"]) == (0 if i < 3 else 1)
        assert int(s["frame_index"]) == (i if i < 3 else i - 3)
        assert int(s["task_index"]) == (0 if i < 3 else 1)


def test_longer_history_and_no_window_crosses_episodes(ds):
    wd = WindowDataset(ds, obs_horizon=3, action_horizon=6, keys=["observation.state"])
    assert wd[1]["observation.state"][:, 0].tolist() == [0, 0, 1]
    assert wd[4]["observation.state"][:, 0].tolist() == [100, 100, 101]
    for i in range(len(wd)):
        s = wd[i]
        e = int(s["episode_index"])
        assert (s["observation.state"][:, 0] // 100 == e).all()
        assert (s["action"][:, 0] // 100 == e).all()
        assert int(s["action_is_pad"].sum()) == max(0, int(s["frame_index"]) + 6 - LENGTHS[e])
    assert set(wd[0]) == {
        "observation.state",
        "action",
        "action_is_pad",
        "task_index",
        "episode_index",
        "frame_index",
    }


def test_images_are_stacked_channel_first_and_decoded_once(ds, monkeypatch):
    calls = []
    real = ds.video_frames
    monkeypatch.setattr(ds, "video_frames", lambda k, e: calls.append(e) or real(k, e))
    wd = WindowDataset(ds, obs_horizon=2, action_horizon=4, image_keys=[CAM])
    s = wd[4]  # episode 1, t=1: frames t=0, 1
    assert s[CAM].shape == (2, 3, 16, 16) and s[CAM].dtype == torch.uint8
    levels = s[CAM].float().mean(dim=(1, 2, 3)).tolist()
    assert levels == pytest.approx([120, 160], abs=3)
    assert wd[0][CAM].float().mean(dim=(1, 2, 3)).tolist() == pytest.approx([20, 20], abs=3)
    for i in range(len(wd)):
        wd[i]
    assert sorted(calls) == [0, 1]  # one decode per episode


def test_image_cache_stays_within_budget(ds, monkeypatch):
    calls = []
    real = ds.video_frames
    monkeypatch.setattr(ds, "video_frames", lambda k, e: calls.append(e) or real(k, e))
    wd = WindowDataset(ds, 1, 1, image_keys=[CAM], cache_mb=0)
    for i in [0, 3, 0, 3]:
        wd[i]
    assert calls == [0, 1, 0, 1] and len(wd._cache) == 1


def test_batches_through_a_dataloader(ds):
    wd = WindowDataset(ds, obs_horizon=2, action_horizon=4, image_keys=[CAM])
    batch = next(iter(DataLoader(wd, batch_size=8, shuffle=False)))
    assert batch["observation.state"].shape == (8, 2, 2)
    assert batch["action"].shape == (8, 4, 2) and batch["action_is_pad"].shape == (8, 4)
    assert batch[CAM].shape == (8, 2, 3, 16, 16)
    assert batch["task_index"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]


def test_bad_arguments(ds):
    from robot_rl.core.errors import DatasetError

    with pytest.raises(DatasetError, match="not a video feature"):
        WindowDataset(ds, image_keys=["action"])
    with pytest.raises(DatasetError, match="not a non-video feature"):
        WindowDataset(ds, keys=[CAM])
    with pytest.raises(ValueError, match="horizons"):
        WindowDataset(ds, obs_horizon=0)
    with pytest.raises(IndexError):
        WindowDataset(ds)[8]
