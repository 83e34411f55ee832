"""The LeRobot v3 directory layout and ``meta/info.json``, the commit point of a dataset.

``meta/info.json`` is always written last: the episodes, frames and tasks it counts are the
committed state, and anything on disk beyond them is the leftover of an interrupted write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_rl.core.errors import DatasetError
from robot_rl.data.features import DEFAULT_FEATURES, Feature, default_features
from robot_rl.data.storage import read_json, write_json

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
VIDEO_CODEC, PIX_FMT = "h264", "yuv420p"


def next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk_index, file_index) after ``(chunk, file)``: ``chunks_size`` files per chunk."""
    return (chunk + 1, 0) if file + 1 >= chunks_size else (chunk, file + 1)


def video_feature_info(f: Feature, fps: int) -> dict[str, Any]:
    h, w, c = f.shape
    return {
        "video.height": h,
        "video.width": w,
        "video.codec": VIDEO_CODEC,
        "video.pix_fmt": PIX_FMT,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": c,
        "has_audio": False,
    }


@dataclass
class Info:
    """Parsed ``meta/info.json``. ``features`` holds the user's features only."""

    fps: int
    features: dict[str, Feature]
    robot_type: str = "unknown"
    total_episodes: int = 0
    total_frames: int = 0
    total_tasks: int = 0
    chunks_size: int = 1000
    data_files_size_in_mb: int = 100
    video_files_size_in_mb: int = 200
    data_path: str = DATA_PATH
    video_path: str = VIDEO_PATH
    extra: dict[str, Any] = field(default_factory=dict)

    def data_file(self, chunk: int, file: int) -> str:
        return self.data_path.format(chunk_index=chunk, file_index=file)

    def video_file(self, key: str, chunk: int, file: int) -> str:
        return self.video_path.format(video_key=key, chunk_index=chunk, file_index=file)

    def to_json(self) -> dict[str, Any]:
        feats = {}
        for k, f in self.features.items():
            d = f.to_json()
            if f.is_video:
                d["info"] = video_feature_info(f, self.fps)
            feats[k] = d
        feats.update({k: f.to_json() for k, f in default_features().items()})
        return {
            **self.extra,
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": self.total_episodes,
            "total_frames": self.total_frames,
            "total_tasks": self.total_tasks,
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_files_size_in_mb,
            "video_files_size_in_mb": self.video_files_size_in_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{self.total_episodes}"} if self.total_episodes else {},
            "data_path": self.data_path,
            "video_path": self.video_path
            if any(f.is_video for f in self.features.values())
            else None,
            "features": feats,
        }

    def write(self, root: Path) -> None:
        """Write ``meta/info.json`` atomically: this is what commits everything written before."""
        write_json(Path(root) / INFO_PATH, self.to_json())


def _int(obj: dict, key: str, minimum: int) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise DatasetError(f"{INFO_PATH}: field {key!r} must be an integer >= {minimum}, got {v!r}")
    return v


def parse_info(obj: Any) -> Info:
    """Validate the JSON object of ``meta/info.json``; raises a one-line DatasetError."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{INFO_PATH} must hold a JSON object, got {type(obj).__name__}")
    version = obj.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetError(
            f"{INFO_PATH}: codebase_version is {version!r}, this reader reads {CODEBASE_VERSION!r}"
        )
    feats = obj.get("features")
    if not isinstance(feats, dict):
        raise DatasetError(f"{INFO_PATH}: field 'features' must be an object, got {feats!r}")
    features = {k: Feature.from_json(k, v) for k, v in feats.items() if k not in DEFAULT_FEATURES}
    has_video = any(f.is_video for f in features.values())
    for key in ("data_path", "video_path") if has_video else ("data_path",):
        v = obj.get(key)
        if not isinstance(v, str) or not v:
            raise DatasetError(f"{INFO_PATH}: field {key!r} must be a path template, got {v!r}")
    known = set(Info.__dataclass_fields__) | {"codebase_version", "splits"}
    return Info(
        fps=_int(obj, "fps", 1),
        features=features,
        robot_type=str(obj.get("robot_type") or "unknown"),
        total_episodes=_int(obj, "total_episodes", 0),
        total_frames=_int(obj, "total_frames", 0),
        total_tasks=_int(obj, "total_tasks", 0),
        chunks_size=_int(obj, "chunks_size", 1),
        data_files_size_in_mb=_int(obj, "data_files_size_in_mb", 1),
        video_files_size_in_mb=_int(obj, "video_files_size_in_mb", 1),
        data_path=obj["data_path"],
        video_path=obj.get("video_path") or VIDEO_PATH,
        extra={k: v for k, v in obj.items() if k not in known},
    )


def load_info(root: Path) -> Info:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist")
    if not (root / INFO_PATH).is_file():
        raise DatasetError(f"{root} is not a dataset: {INFO_PATH} is missing")
    return parse_info(read_json(root, INFO_PATH))
