"""LeRobotDataset: read the committed episodes of a LeRobot v3 dataset."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa

from robot_rl.core.errors import DatasetError
from robot_rl.data.features import DEFAULT_FEATURES, Feature, from_arrow, videos
from robot_rl.data.meta import FileSpan, load_meta, load_stats
from robot_rl.data.rows import data_schema, table_features
from robot_rl.data.storage import parquet_rows, read_parquet
from robot_rl.data.video import decode


class LeRobotDataset:
    """Read-only view of a dataset directory: only the episodes ``meta/info.json`` commits.

    Opening checks that every data file they use holds their rows (from the parquet footers) and
    that every video file exists; :func:`validate_dataset` checks everything.
    """

    def __init__(self, root: str | Path) -> None:
        self._meta = load_meta(Path(root))
        self.root = self._meta.root
        self._data = self._meta.data_files()
        for span in self._data.values():
            rows = parquet_rows(self.root, span.path)
            if rows < span.rows:
                raise DatasetError(
                    f"{span.path} has {rows} rows but meta/episodes puts {span.rows} frames in it"
                )
        for k in videos(self.features):
            for span in self._meta.video_files(k).values():
                if not (self.root / span.path).is_file():
                    raise DatasetError(f"{span.path} is missing under {self.root}")
        self._stats: dict[str, dict[str, np.ndarray]] | None = None
        self._tables: OrderedDict[str, pa.Table] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({str(self.root)!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, fps={self.fps})"
        )

    @property
    def fps(self) -> int:
        return self._meta.info.fps

    @property
    def features(self) -> dict[str, Feature]:
        """The user's features (not the index columns every frame carries)."""
        return dict(self._meta.info.features)

    @property
    def video_keys(self) -> list[str]:
        return videos(self._meta.info.features)

    @property
    def num_episodes(self) -> int:
        return self._meta.info.total_episodes

    @property
    def num_frames(self) -> int:
        return self._meta.info.total_frames

    @property
    def tasks(self) -> list[str]:
        """Instruction strings, indexed by ``task_index``."""
        return list(self._meta.tasks)

    @property
    def robot_type(self) -> str:
        return self._meta.info.robot_type

    @property
    def info(self) -> dict:
        """``meta/info.json`` as committed."""
        return self._meta.info.to_json()

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Per feature ``{min, max, mean, std, count}``; video stats have shape (3, 1, 1)."""
        if self._stats is None:
            self._stats = load_stats(self._meta)[0]
        return self._stats

    def episodes_table(self) -> pa.Table:
        """One row per committed episode (``meta/episodes``), sorted by ``episode_index``."""
        return self._meta.episodes

    def episode_ranges(self) -> np.ndarray:
        """``(num_episodes, 2)`` int64: global [from, to) frame indices of each episode."""
        m = self._meta
        return np.stack([m.column("dataset_from_index"), m.column("dataset_to_index")], axis=1)

    def frames_table(self) -> pa.Table:
        """Every committed frame's non-video columns, in global ``index`` order."""
        cols = list(table_features(self.features))
        tables = [self._table(s).select(cols).slice(0, s.rows) for s in self._data.values()]
        return pa.concat_tables(tables) if tables else data_schema(self.features).empty_table()

    def episode(self, i: int, *, decode_video: bool = True) -> dict[str, np.ndarray]:
        """Whole episode ``i``: each feature as ``(T, *shape)`` (images ``(T, H, W, 3)`` uint8),
        plus ``timestamp, frame_index, episode_index, index, task_index`` as ``(T,)``."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range: the dataset has {self.num_episodes}")
        row = self._meta.episodes.slice(i, 1).to_pylist()[0]
        span = self._data[(row["data/chunk_index"], row["data/file_index"])]
        n = row["length"]
        t = self._table(span).slice(row["dataset_from_index"] - span.first, n)
        out = {}
        for k, f in table_features(self.features).items():
            v = from_arrow(t.column(k), f, f"{span.path} column {k!r}")
            out[k] = v.reshape(n) if k in DEFAULT_FEATURES else v
        if (
            len(t) != n
            or (out["episode_index"] != i).any()
            or (out["frame_index"] != np.arange(n)).any()
        ):
            raise DatasetError(
                f"{span.path}: rows {row['dataset_from_index'] - span.first}.. do not hold frames "
                f"0..{n - 1} of episode {i} as meta/episodes says"
            )
        if decode_video:
            for k in self.video_keys:
                out[k] = self.video_frames(k, i)
        return out

    def video_frames(self, key: str, i: int) -> np.ndarray:
        """Decoded frames of camera ``key`` in episode ``i``: ``(T, H, W, 3)`` uint8 RGB."""
        if key not in self.video_keys:
            raise KeyError(f"{key!r} is not a video feature; video features: {self.video_keys}")
        row = self._meta.episodes.slice(i, 1).to_pylist()[0]
        p = f"videos/{key}/"
        path = self._meta.info.video_file(key, row[p + "chunk_index"], row[p + "file_index"])
        start = round(row[p + "from_timestamp"] * self.fps)
        if round(row[p + "to_timestamp"] * self.fps) - start != row["length"]:
            raise DatasetError(
                f"meta/episodes: episode {i}'s {key} timestamps do not span "
                f"{row['length']} frames at {self.fps} fps"
            )
        frames = decode(self.root, path, start, row["length"], self.fps)
        if frames.shape[1:] != self.features[key].shape:
            raise DatasetError(
                f"{path} has frames of shape {frames.shape[1:]}, "
                f"{self.features[key].shape} declared for {key!r}"
            )
        return frames

    def _table(self, span: FileSpan) -> pa.Table:
        if span.path not in self._tables:
            t = read_parquet(self.root, span.path)
            missing = [k for k in table_features(self.features) if k not in t.column_names]
            if missing:
                raise DatasetError(f"{span.path} lacks column(s) {missing}")
            self._tables[span.path] = t
            while len(self._tables) > 2:
                self._tables.popitem(last=False)
        self._tables.move_to_end(span.path)
        return self._tables[span.path]
