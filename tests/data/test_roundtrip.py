"""Write episodes, read them back: counts, values, stats, videos and the LeRobot v3 layout."""

from __future__ import annotations

import json

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robot_rl.core.errors import DatasetError
from robot_rl.data import DatasetWriter, Feature, LeRobotDataset, dataset_info, validate_dataset

H = W = 32
CAM = "observation.images.front"
LENGTHS = [5, 9, 3, 12, 7]
TASKS = ["push the cube to the goal", "pick up the cube"]


def features() -> dict[str, Feature]:
    return {
        "observation.state": Feature("float32", (4,), ["x", "y", "z", "grip"]),
        "action": Feature("float32", (3,)),
        CAM: Feature("video", (H, W, 3)),
        "next.reward": Feature("float32", (1,)),
        "next.done": Feature("bool", (1,)),
    }


def smooth_images(n: int, seed: int) -> np.ndarray:
    """Gradients that H.264 keeps to within a few grey levels, different in every frame."""
    yy, xx = np.mgrid[0:H, 0:W]
    frames = [
        np.stack([xx * 3 + 4 * t + 20 * seed, yy * 3 + 2 * t, np.full_like(xx, 60 + 30 * seed)], -1)
        for t in range(n)
    ]
    return np.clip(frames, 0, 255).astype(np.uint8)


def make_episode(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.normal(size=(n, 4)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        CAM: smooth_images(n, seed),
        "next.reward": rng.normal(size=(n, 1)).astype(np.float32),
        "next.done": np.arange(n)[:, None] == n - 1,
    }


def write(root, lengths=LENGTHS, flush_every=2, **kw) -> list[dict[str, np.ndarray]]:
    eps = [make_episode(n, seed) for seed, n in enumerate(lengths)]
    with DatasetWriter.create(root, 20, features(), "arm", flush_every=flush_every, **kw) as w:
        for i, ep in enumerate(eps):
            assert w.add_episode(ep, TASKS[i % 2], extras={"success": i % 2 == 0}) == i
    return eps


def test_round_trip_values_counts_and_stats(tmp_path):
    eps = write(tmp_path / "ds")
    ds = LeRobotDataset(tmp_path / "ds")
    assert (ds.num_episodes, ds.num_frames, ds.fps, ds.robot_type) == (5, sum(LENGTHS), 20, "arm")
    assert ds.tasks == TASKS
    assert ds.features == features()
    assert ds.features["observation.state"].names == ["x", "y", "z", "grip"]
    start = 0
    for i, ep in enumerate(eps):
        got = ds.episode(i)
        n = LENGTHS[i]
        for k in ("observation.state", "action", "next.reward", "next.done"):
            assert got[k].dtype == ep[k].dtype and np.array_equal(got[k], ep[k]), k
        assert np.array_equal(got["frame_index"], np.arange(n))
        assert np.array_equal(got["index"], start + np.arange(n))
        assert np.array_equal(got["episode_index"], np.full(n, i))
        assert np.array_equal(got["task_index"], np.full(n, i % 2))
        assert np.allclose(got["timestamp"], np.arange(n) / 20)
        video = got[CAM]
        assert video.shape == (n, H, W, 3) and video.dtype == np.uint8
        err = np.abs(video.astype(int) - ep[CAM].astype(int))
        assert err.mean() < 3.0 and err.max() < 40
        start += n
    table = ds.frames_table()
    assert table.num_rows == sum(LENGTHS) and CAM not in table.column_names
    assert ds.episodes_table().column("success").to_pylist() == [True, False, True, False, True]

    for k in ("observation.state", "action", "next.reward"):
        x = np.concatenate([ep[k] for ep in eps]).astype(np.float64)
        s = ds.stats[k]
        assert np.array_equal(s["min"], x.min(0)) and np.array_equal(s["max"], x.max(0))
        np.testing.assert_allclose(s["mean"], x.mean(0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(s["std"], x.std(0), rtol=1e-12)
        assert s["count"].tolist() == [sum(LENGTHS)]
    # every episode is under 100 frames, so image stats use all frames: compare with all pixels
    pix = np.concatenate([ep[CAM] for ep in eps]).astype(np.float64) / 255
    s = ds.stats[CAM]
    assert s["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(s["mean"].ravel(), pix.mean((0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s["std"].ravel(), pix.std((0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(s["max"].ravel(), pix.max((0, 1, 2)))
    np.testing.assert_allclose(s["min"].ravel(), pix.min((0, 1, 2)))
    assert validate_dataset(tmp_path / "ds", decode_videos=True) == []


def test_files_follow_the_lerobot_v3_layout(tmp_path):
    root = tmp_path / "ds"
    write(root)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 36, 2)
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (
        1000,
        100,
        200,
    )
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["splits"] == {"train": "0:5"}
    cam = info["features"][CAM]
    assert cam["dtype"] == "video" and cam["shape"] == [H, W, 3]
    assert cam["names"] == ["height", "width", "channels"]
    assert cam["info"]["video.fps"] == 20 and cam["info"]["video.codec"] == "h264"
    assert cam["info"]["video.pix_fmt"] == "yuv420p"
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(
        info["features"]
    )
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.shape(stats[CAM]["mean"]) == (3, 1, 1)

    data = pq.read_table(root / "data/chunk-000/file-000.parquet")  # flushes shared one file
    assert data.num_rows == 36
    assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 4)
    assert data.schema.field("next.reward").type == pa.float32()
    assert data.schema.field("timestamp").type == pa.float32()
    assert data.schema.field("index").type == pa.int64()
    tasks = pq.read_table(root / "meta/tasks.parquet")
    # Upstream LeRobot's layout: pandas' index column holds the task string.
    assert tasks.to_pydict() == {"task_index": [0, 1], "__index_level_0__": TASKS}
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["__index_level_0__"]
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert eps["length"] == LENGTHS and eps["tasks"][1] == [TASKS[1]]
    assert eps["dataset_from_index"] == [0, 5, 14, 17, 29]
    assert eps["dataset_to_index"] == [5, 14, 17, 29, 36]
    assert eps[f"videos/{CAM}/file_index"] == [0] * 5
    assert eps[f"videos/{CAM}/from_timestamp"] == [0.0, 0.25, 0.7, 0.85, 1.45]
    assert eps[f"videos/{CAM}/to_timestamp"] == [0.25, 0.7, 0.85, 1.45, 1.8]
    with av.open(str(root / f"videos/{CAM}/chunk-000/file-000.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert sum(1 for _ in c.decode(s)) == 36


def test_open_appends_to_the_same_files(tmp_path):
    root = tmp_path / "ds"
    eps = write(root, LENGTHS[:3])
    w = DatasetWriter.open(root)
    assert (w.num_episodes, w.num_frames, w.tasks) == (3, 17, TASKS)
    more = [make_episode(n, 10 + i) for i, n in enumerate([4, 6])]
    for ep in more:
        w.add_episode(ep, "a third task", extras={"success": True})
    w.close()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 5 and ds.tasks == [*TASKS, "a third task"]
    for i, ep in enumerate(eps + more):
        got = ds.episode(i)
        assert np.array_equal(got["action"], ep["action"])
        assert np.abs(got[CAM].astype(int) - ep[CAM].astype(int)).mean() < 3
    assert ds.episode(4)["task_index"].tolist() == [2] * 6
    assert sorted(p.name for p in (root / f"videos/{CAM}/chunk-000").iterdir()) == ["file-000.mp4"]
    assert validate_dataset(root) == []


def test_files_roll_over_at_the_size_limit_and_chunks(tmp_path):
    root = tmp_path / "ds"
    feats = {"observation.state": Feature("float32", (40_000,)), "action": Feature("float32", (2,))}
    rng = np.random.default_rng(0)
    eps = [
        {
            "observation.state": rng.normal(size=(8, 40_000)).astype(np.float32),
            "action": rng.normal(size=(8, 2)).astype(np.float32),
        }
        for _ in range(3)
    ]  # 1.28 MB of incompressible floats each: every flush starts a new file
    with DatasetWriter.create(
        root, 10, feats, flush_every=1, chunks_size=2, data_files_size_in_mb=1
    ) as w:
        for ep in eps:
            w.add_episode(ep, "t")
    files = sorted(p.relative_to(root).as_posix() for p in (root / "data").rglob("*.parquet"))
    assert files == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet",
    ]
    ds = LeRobotDataset(root)
    for i, ep in enumerate(eps):
        assert np.array_equal(ds.episode(i)["observation.state"], ep["observation.state"])
    assert ds.frames_table().column("index").to_pylist() == list(range(24))
    assert validate_dataset(root) == []


def test_save_episode_is_durable_and_discard_drops_frames(tmp_path):
    root = tmp_path / "ds"
    ep = make_episode(4, 0)
    w = DatasetWriter.create(root, 20, features())
    for t in range(4):
        w.add_frame({k: v[t] for k, v in ep.items()})
    assert w.save_episode(TASKS[0], extras={"success": True}) == 0
    ds = LeRobotDataset(root)  # read while the writer is still open
    assert ds.num_episodes == 1 and np.array_equal(ds.episode(0)["action"], ep["action"])
    for t in range(3):
        w.add_frame({k: v[t] for k, v in make_episode(3, 1).items()})
    w.discard_episode()
    for t in range(2):
        frame = {k: v[t] for k, v in ep.items()}
        frame["next.reward"] = float(frame["next.reward"][0])  # scalars are fine for (1,)
        w.add_frame(frame)
    assert w.save_episode(TASKS[0], extras={"success": False}) == 1
    assert LeRobotDataset(root).episode(1)["action"].shape == (2, 3)
    with pytest.raises(DatasetError, match="no frames"):
        w.save_episode(TASKS[0], extras={"success": False})
    w.close()
    assert LeRobotDataset(root).num_frames == 6


def test_add_episode_buffers_until_flush_every_or_close(tmp_path):
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, 20, features(), flush_every=3)
    for i in range(2):
        w.add_episode(make_episode(3, i), "t")
    assert LeRobotDataset(root).num_episodes == 0 and w.num_episodes == 2
    w.add_episode(make_episode(3, 2), "t")
    assert LeRobotDataset(root).num_episodes == 3
    w.add_episode(make_episode(3, 3), "t")
    w.close()
    assert LeRobotDataset(root).num_episodes == 4
    with pytest.raises(DatasetError, match="closed"):
        w.add_episode(make_episode(3, 4), "t")


def test_context_manager_keeps_buffered_episodes_on_error(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError), DatasetWriter.create(root, 20, features()) as w:
        w.add_episode(make_episode(3, 0), "t")
        raise RuntimeError("collector crashed")
    assert LeRobotDataset(root).num_episodes == 1


def test_create_refuses_to_clobber_and_writers_exclude_each_other(tmp_path):
    root = tmp_path / "ds"
    write(root, [3])
    with pytest.raises(DatasetError, match="overwrite=True"):
        DatasetWriter.create(root, 20, features())
    w = DatasetWriter.open(root)
    with pytest.raises(DatasetError, match="another DatasetWriter"):
        DatasetWriter.open(root)
    with pytest.raises(DatasetError, match="another DatasetWriter"):
        DatasetWriter.create(root, 20, features(), overwrite=True)
    assert LeRobotDataset(root).num_episodes == 1  # nothing was cleared under the open writer
    w.close()
    DatasetWriter.create(root, 10, features(), overwrite=True).close()
    assert (LeRobotDataset(root).num_episodes, LeRobotDataset(root).fps) == (0, 10)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        DatasetWriter.create(other, 20, features(), overwrite=True)
    assert (other / "thesis.tex").exists()


def test_dataset_info_summarises(tmp_path):
    write(tmp_path / "ds")
    info = dataset_info(tmp_path / "ds")
    assert (info["episodes"], info["frames"], info["fps"]) == (5, 36, 20)
    assert info["tasks"] == TASKS and info["success_rate"] == pytest.approx(0.6)
    # deviations from 7.2: -2.2, 1.8, -4.2, 4.8, -0.2 -> squares sum to 48.8 -> std sqrt(48.8 / 5)
    std = pytest.approx(np.sqrt(48.8 / 5))
    assert info["episode_length"] == {"min": 3, "max": 12, "mean": 7.2, "std": std}
    assert info["features"][CAM] == {"dtype": "video", "shape": [H, W, 3]}
    assert info["duration_s"] == pytest.approx(1.8)
