"""Damaged datasets: one-line DatasetErrors naming the file; leftovers reported as warnings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from robot_rl.core.errors import DatasetError
from robot_rl.data import DatasetWriter, Feature, LeRobotDataset, validate_dataset

CAM = "observation.images.top"
DATA = "data/chunk-000/file-000.parquet"
VIDEO = f"videos/{CAM}/chunk-000/file-000.mp4"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "ds"
    feats = {
        "observation.state": Feature("float32", (3,)),
        "action": Feature("float32", (2,)),
        CAM: Feature("video", (16, 16, 3)),
    }
    rng = np.random.default_rng(0)
    with DatasetWriter.create(root, 10, feats) as w:
        for n in (4, 6, 5):
            w.add_episode(
                {
                    "observation.state": rng.normal(size=(n, 3)).astype(np.float32),
                    "action": rng.normal(size=(n, 2)).astype(np.float32),
                    CAM: rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8),
                },
                "t",
            )
    assert validate_dataset(root) == []
    return root


def error_of(fn, *args) -> str:
    with pytest.raises(DatasetError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 500
    return msg


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_missing_directory_or_info(tmp_path):
    assert "does not exist" in error_of(LeRobotDataset, tmp_path / "nope")
    assert "meta/info.json is missing" in error_of(LeRobotDataset, tmp_path)
    assert "meta/info.json is missing" in error_of(validate_dataset, tmp_path)


@pytest.mark.parametrize("fn", [LeRobotDataset, validate_dataset, DatasetWriter.open])
def test_corrupt_info_json(root, fn):
    truncate(root / "meta/info.json")
    msg = error_of(fn, root)
    assert msg.startswith("meta/info.json is truncated or corrupt (invalid JSON")


def test_info_json_with_bad_fields(root):
    info = json.loads((root / "meta/info.json").read_text())
    for patch, match in [
        ({"codebase_version": "v2.1"}, "codebase_version is 'v2.1'"),
        ({"fps": "fast"}, "field 'fps' must be an integer"),
        ({"features": []}, "field 'features' must be an object"),
        ({"total_episodes": 7}, "meta/episodes holds episodes 0..2 .* counts 7"),
        ({"total_frames": 99}, "sum to 15 frames .* total_frames=99"),
    ]:
        (root / "meta/info.json").write_text(json.dumps({**info, **patch}))
        with pytest.raises(DatasetError, match=match):
            validate_dataset(root)
        assert error_of(LeRobotDataset, root) == error_of(validate_dataset, root)


def test_truncated_data_parquet_is_named(root):
    truncate(root / DATA)
    msg = error_of(validate_dataset, root)
    assert msg.startswith(f"{DATA} is truncated or corrupt (pyarrow: ")
    assert error_of(LeRobotDataset, root).startswith(f"{DATA} is truncated or corrupt")


def test_corrupt_data_pages_are_found_by_validate(root):
    raw = bytearray((root / DATA).read_bytes())
    raw[40:400] = b"\xff" * 360  # footer intact, column chunks destroyed
    (root / DATA).write_bytes(bytes(raw))
    LeRobotDataset(root)  # opening reads footers only
    assert error_of(validate_dataset, root).startswith(f"{DATA} is truncated or corrupt")


def test_data_file_lacking_committed_rows(root):
    t = pq.read_table(root / DATA)
    pq.write_table(t.slice(0, 12), root / DATA)
    assert "has 12 rows but meta/episodes puts 15" in error_of(LeRobotDataset, root)
    assert "has 12 rows but committed episodes put 15" in error_of(validate_dataset, root)


def test_data_file_disagreeing_with_episodes(root):
    t = pq.read_table(root / DATA)
    idx = t.column_names.index("frame_index")
    pq.write_table(t.set_column(idx, "frame_index", t.column("index")), root / DATA)
    assert error_of(validate_dataset, root).startswith(f"{DATA} row 4: frame_index is 4")
    assert "do not hold frames 0..5 of episode 1" in error_of(LeRobotDataset(root).episode, 1)


def test_truncated_video_is_named(root):
    truncate(root / VIDEO)
    assert error_of(validate_dataset, root).startswith(f"{VIDEO} is truncated or corrupt (av: ")
    ds = LeRobotDataset(root)  # opening reads no video; decoding does
    assert error_of(ds.episode, 0).startswith(f"{VIDEO} is truncated or corrupt")
    assert ds.episode(0, decode_video=False)["action"].shape == (4, 2)


def test_missing_video_is_named(root):
    (root / VIDEO).unlink()
    assert error_of(LeRobotDataset, root) == f"{VIDEO} is missing under {root}"


def test_corrupt_episodes_and_tasks_are_named(root, tmp_path):
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    truncate(root / EPISODES)
    assert error_of(LeRobotDataset, root).startswith(f"{EPISODES} is truncated or corrupt")
    truncate(backup / "meta/tasks.parquet")
    assert error_of(validate_dataset, backup).startswith("meta/tasks.parquet is truncated")


def test_corrupt_or_stale_stats(root):
    stats = json.loads((root / "meta/stats.json").read_text())
    stats["action"]["count"] = [3]  # as if written for other frames than the committed ones
    (root / "meta/stats.json").write_text(json.dumps(stats))
    assert any("meta/stats.json does not count" in w for w in validate_dataset(root))
    assert LeRobotDataset(root).stats["action"]["count"].tolist() == [15]  # rebuilt
    truncate(root / "meta/stats.json")
    assert error_of(validate_dataset, root).startswith("meta/stats.json is truncated or corrupt")


def test_leftovers_are_warnings_and_open_clears_them(root):
    (root / "data/chunk-000/file-007.parquet").write_bytes(b"orphan")
    (root / "data/chunk-000/.~file-000.parquet.1-ab.tmp").write_bytes(b"half written")
    warns = validate_dataset(root)
    assert len(warns) == 2
    assert any(w.startswith("data/chunk-000/file-007.parquet is not used") for w in warns)
    assert any(
        w.startswith("data/chunk-000/.~file-000.parquet.1-ab.tmp is a temp file") for w in warns
    )
    DatasetWriter.open(root).close()
    assert validate_dataset(root) == []
    assert LeRobotDataset(root).num_episodes == 3
