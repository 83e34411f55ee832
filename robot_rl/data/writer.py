"""DatasetWriter: append episodes to a LeRobot v3 dataset without ever leaving it unreadable.

A flush writes, in this order, each through temp file + fsync + ``os.replace``: the data file (the
last one rewritten as ``committed rows + new rows`` while under the size limit, else a new one),
each camera's video file (remuxed the same way), the episodes file, ``tasks.parquet``,
``stats.json`` and finally ``info.json``, the commit point. A kill anywhere before the last step
leaves files that hold extra rows or frames past the committed ones; readers ignore them and
:meth:`DatasetWriter.open` clears them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robot_rl.core.errors import DatasetError
from robot_rl.data import stats as st
from robot_rl.data.features import (
    Feature,
    check_frames,
    check_user_features,
    default_features,
    episode_length,
    numeric,
    to_arrow,
    videos,
)
from robot_rl.data.layout import EPISODES_PATH, INFO_PATH, STATS_PATH, TASKS_PATH, Info, next_file
from robot_rl.data.meta import Meta, load_meta, load_stats, orphan_files
from robot_rl.data.rows import (
    check_extras,
    check_task,
    data_schema,
    episode_schema,
    extras_schema,
    table_features,
)
from robot_rl.data.storage import (
    commit,
    is_temp,
    one_line,
    parquet_rows,
    read_parquet,
    temp_files,
    write_json,
    write_parquet,
)
from robot_rl.data.video import VideoSegment, append_segment, probe

MB = 1 << 20
LOCK_PATH = "meta/.writer.lock"


@dataclass
class _Episode:
    """An episode accepted by ``add_episode`` but not yet committed."""

    index: int
    start: int  # global index of its first frame
    length: int
    task: str
    columns: dict[str, np.ndarray]  # data-file columns, shape (T, *shape)
    stats: dict[str, st.Stats]
    extras: dict[str, Any]
    video_offset: dict[str, int]  # its first frame within each camera's segment


def _check_positive(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise DatasetError(f"{name} must be an integer >= 1, got {v!r}")


def _lock(root: Path) -> int:
    path = root / LOCK_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatasetError(
            f"{root} is being written by another DatasetWriter ({LOCK_PATH})"
        ) from None
    return fd


def _check_replaceable(root: Path, overwrite: bool) -> None:
    """``create`` may only start in an empty directory, or replace a dataset when told to."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} exists and is not a directory")
    entries = list(root.iterdir()) if root.is_dir() else []
    if entries and not overwrite:
        raise DatasetError(
            f"{root} already exists and is not empty; pass overwrite=True to replace it or use "
            "DatasetWriter.open to append to it"
        )
    foreign = [
        n.name for n in entries if n.name not in ("meta", "data", "videos") and not is_temp(n)
    ]
    if foreign:
        raise DatasetError(
            f"refusing to overwrite {root}: it holds {foreign[:3]}, not dataset files"
        )


def _clear(root: Path) -> None:
    """Delete a dataset's files, except the writer lock that the caller holds."""
    (root / INFO_PATH).unlink(missing_ok=True)  # no longer a dataset from here on
    for p in root.iterdir():
        for q in p.iterdir() if p.name == "meta" else [p]:
            if q == root / LOCK_PATH:
                continue
            if q.is_dir():
                shutil.rmtree(q)
            else:
                q.unlink()


class DatasetWriter:
    """Writes episodes into a dataset directory; use :meth:`create` or :meth:`open`.

    ``add_episode`` buffers up to ``flush_every`` episodes (or ``data_files_size_in_mb`` of frames)
    and commits them together; ``save_episode`` (after ``add_frame`` calls) commits at once.
    """

    def __init__(self, meta: Meta, stats: dict[str, st.Stats], flush_every: int, lock: int) -> None:
        self.root = meta.root
        self._info, self._episodes, self._stats = meta.info, meta.episodes, stats
        self._tasks = list(meta.tasks)
        self._task_ids = {t: i for i, t in enumerate(self._tasks)}
        self._extras = extras_schema(meta.episodes) if meta.info.total_episodes else None
        self._pending: list[_Episode] = []
        self._segments: dict[str, VideoSegment] = {}
        self._frames: dict[str, list[np.ndarray]] = {}
        self._flush_every, self._lock = flush_every, lock
        self._closed, self._failed = False, ""

    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: Mapping[str, Feature],
        robot_type: str = "unknown",
        overwrite: bool = False,
        *,
        flush_every: int = 50,
        chunks_size: int = 1000,
        data_files_size_in_mb: int = 100,
        video_files_size_in_mb: int = 200,
    ) -> DatasetWriter:
        """Start a new, empty dataset at ``root`` (committed at once: it loads with 0 episodes)."""
        root = Path(root)
        feats = check_user_features(dict(features))
        for name, v in (
            ("fps", fps),
            ("flush_every", flush_every),
            ("chunks_size", chunks_size),
            ("data_files_size_in_mb", data_files_size_in_mb),
            ("video_files_size_in_mb", video_files_size_in_mb),
        ):
            _check_positive(name, v)
        _check_replaceable(root, overwrite)
        lock = _lock(root)  # before deleting anything: never clear a dataset being written
        info = Info(
            int(fps),
            feats,
            str(robot_type),
            chunks_size=chunks_size,
            data_files_size_in_mb=data_files_size_in_mb,
            video_files_size_in_mb=video_files_size_in_mb,
        )
        try:
            _clear(root)
            info.write(root)
        except BaseException:
            os.close(lock)
            raise
        empty = episode_schema(feats, {}).empty_table()
        return cls(Meta(root, info, [], empty), {}, flush_every, lock)

    @classmethod
    def open(cls, root: str | Path, *, flush_every: int = 50) -> DatasetWriter:
        """Resume writing an existing dataset: clears what an interrupted writer left behind."""
        _check_positive("flush_every", flush_every)
        meta = load_meta(Path(root))
        lock = _lock(meta.root)
        try:
            for p in temp_files(meta.root):
                p.unlink(missing_ok=True)
            for relpath, after_last in orphan_files(meta):
                if after_last:
                    (meta.root / relpath).unlink(missing_ok=True)
            _check_tails(meta)
            stats, fresh = load_stats(meta)
            if not fresh:
                write_json(meta.root / STATS_PATH, st.to_json(stats))
        except BaseException:
            os.close(lock)
            raise
        return cls(meta, stats, flush_every, lock)

    # -- what has been written -------------------------------------------------------------

    @property
    def fps(self) -> int:
        return self._info.fps

    @property
    def features(self) -> dict[str, Feature]:
        return dict(self._info.features)

    @property
    def num_episodes(self) -> int:
        """Committed plus buffered episodes."""
        return self._info.total_episodes + len(self._pending)

    @property
    def num_frames(self) -> int:
        return self._info.total_frames + sum(e.length for e in self._pending)

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    # -- teleop path: one frame at a time -------------------------------------------------

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Buffer one frame: every declared feature, images as (H, W, 3) uint8."""
        self._check_usable()
        values = check_frames(self._info.features, dict(frame), None)
        for k, v in values.items():
            self._frames.setdefault(k, []).append(np.array(v, copy=True))

    def save_episode(self, task: str, extras: Mapping[str, Any] | None = None) -> int:
        """Commit the frames added since the last save; durable on return. Returns its index."""
        self._check_usable()
        if not self._frames:
            raise DatasetError("save_episode: no frames were added since the last save or discard")
        index = self.add_episode({k: np.stack(v) for k, v in self._frames.items()}, task, extras)
        self._frames = {}
        self.flush()
        return index

    def discard_episode(self) -> None:
        """Drop the frames added since the last save."""
        self._frames = {}

    # -- batch path --------------------------------------------------------------------

    def add_episode(
        self, frames: Mapping[str, Any], task: str, extras: Mapping[str, Any] | None = None
    ) -> int:
        """Buffer one whole episode; every array has a leading time axis of the same length T.

        Returns the episode's index. Bad input raises DatasetError and changes nothing.
        """
        self._check_usable()
        if not isinstance(frames, Mapping):
            raise DatasetError(f"add_episode needs a dict of arrays, got {type(frames).__name__}")
        feats = self._info.features
        n = episode_length(feats, frames)
        values = check_frames(feats, dict(frames), n)
        task = check_task(task)
        extras, types = check_extras(extras, self._extras)
        if self._extras is None:
            self._extras = types
        index, start = self.num_episodes, self.num_frames
        if task not in self._task_ids:
            self._task_ids[task] = len(self._tasks)
            self._tasks.append(task)
        ar = np.arange(n, dtype=np.int64)
        cols = {k: values[k] for k in numeric(feats)}
        cols.update(
            timestamp=(ar / self.fps).astype(np.float32),
            frame_index=ar,
            episode_index=np.full(n, index, np.int64),
            index=start + ar,
            task_index=np.full(n, self._task_ids[task], np.int64),
        )
        allf = {**feats, **default_features()}
        stats = {
            k: st.feature_stats(v.reshape(n, *allf[k].shape), allf[k]) for k, v in cols.items()
        }
        offsets = {}
        try:
            for k in videos(feats):
                if k not in self._segments:
                    self._segments[k] = VideoSegment(
                        self.root / "videos" / k, feats[k].shape, self.fps
                    )
                offsets[k] = self._segments[k].num_frames
                self._segments[k].write(values[k])
                stats[k] = st.feature_stats(values[k], feats[k])
        except BaseException as e:  # a half-encoded episode is in the segment: stop here
            self._failed = f"video encoding failed: {one_line(e)}"
            if isinstance(e, Exception):
                raise DatasetError(f"{self.root}: {self._failed}") from e
            raise
        self._pending.append(_Episode(index, start, n, task, cols, stats, extras, offsets))
        buffered = sum(v.nbytes for e in self._pending for v in e.columns.values())
        if (
            len(self._pending) >= self._flush_every
            or buffered >= self._info.data_files_size_in_mb * MB
        ):
            self.flush()
        return index

    def flush(self) -> None:
        """Commit every buffered episode (durable on return)."""
        self._check_usable()
        if not self._pending:
            return
        try:
            self._commit()
        except BaseException as e:
            self._failed = one_line(e)
            raise

    def close(self) -> None:
        """Flush and release the dataset; frames added but never saved are dropped (warning)."""
        if self._closed:
            return
        try:
            if self._frames:
                warnings.warn(
                    f"DatasetWriter.close: dropping {len(next(iter(self._frames.values())))}"
                    " frames added but never saved with save_episode",
                    stacklevel=2,
                )
                self._frames = {}
            if not self._failed:
                self.flush()
        finally:
            for seg in self._segments.values():
                seg.discard()
            os.close(self._lock)
            self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # keep the complete episodes buffered before the error
            self.close()
        except Exception as e:
            warnings.warn(
                f"DatasetWriter.close after an error also failed: {one_line(e)}", stacklevel=2
            )

    def _check_usable(self) -> None:
        if self._closed:
            raise DatasetError(f"the DatasetWriter for {self.root} is closed")
        if self._failed:
            raise DatasetError(
                f"the DatasetWriter for {self.root} stopped after a failed write ({self._failed}); "
                "committed episodes are intact, resume with DatasetWriter.open"
            )

    # -- commit ------------------------------------------------------------------------

    def _meta(self) -> Meta:
        return Meta(self.root, self._info, self._tasks, self._episodes)

    def _last(self, column: str) -> tuple[int, int] | None:
        """(chunk_index, file_index) of the last committed episode for a location prefix."""
        if not self._info.total_episodes:
            return None
        row = self._episodes.slice(self._info.total_episodes - 1, 1)
        c, f = (row.column(f"{column}/{x}")[0].as_py() for x in ("chunk_index", "file_index"))
        return int(c), int(f)

    def _target(
        self, last: tuple[int, int] | None, path: Path | None, size: int, limit_mb: int
    ) -> tuple[tuple[int, int], bool]:
        """Append to the last file while it stays under the limit, else the next file."""
        if last is not None and path is not None and path.stat().st_size + size <= limit_mb * MB:
            return last, True
        return (next_file(*last, self._info.chunks_size) if last else (0, 0)), False

    def _commit(self) -> None:
        eps, info, meta = self._pending, self._info, self._meta()
        data_loc = self._write_data(eps, meta)
        video_loc = {k: self._write_video(k, meta) for k in videos(info.features)}
        table = self._write_episodes(eps, data_loc, video_loc)
        if len(self._tasks) > info.total_tasks:
            write_parquet(self.root / TASKS_PATH, tasks_table(self._tasks))
        stats = {
            k: st.aggregate(
                ([self._stats[k]] if k in self._stats else []) + [e.stats[k] for e in eps]
            )
            for k in eps[0].stats
        }
        write_json(self.root / STATS_PATH, st.to_json(stats))
        new = replace(
            info,
            total_episodes=self.num_episodes,
            total_frames=self.num_frames,
            total_tasks=len(self._tasks),
        )
        new.write(self.root)  # the commit point
        self._info, self._episodes, self._stats = new, table, stats
        self._pending, self._segments = [], {}

    def _write_data(self, eps: list[_Episode], meta: Meta) -> tuple[int, int]:
        feats = table_features(self._info.features)
        schema = data_schema(self._info.features)
        cols = [to_arrow(np.concatenate([e.columns[k] for e in eps]), f) for k, f in feats.items()]
        table = pa.Table.from_arrays(cols, schema=schema)
        last = self._last("data")
        path = self.root / self._info.data_file(*last) if last else None
        target, append = self._target(last, path, 0, self._info.data_files_size_in_mb)
        if append:
            span = meta.data_files()[target]
            old = read_parquet(self.root, span.path).slice(0, span.rows)
            if old.num_rows < span.rows:
                raise DatasetError(
                    f"{span.path} has {old.num_rows} rows, {span.rows} are committed"
                )
            table = pa.concat_tables([old.select(schema.names).cast(schema), table])
        write_parquet(self.root / self._info.data_file(*target), table)
        return target

    def _write_video(self, key: str, meta: Meta) -> tuple[int, int, int]:
        """Place the camera's segment; returns (chunk, file, frame offset of the segment)."""
        seg = self._segments[key]
        seg.close()
        last = self._last(f"videos/{key}")
        path = self.root / self._info.video_file(key, *last) if last else None
        size = seg.path.stat().st_size
        target, append = self._target(last, path, size, self._info.video_files_size_in_mb)
        if append:
            keep = meta.video_files(key)[target].rows
            if append_segment(path, keep, seg.path, self.fps):
                seg.discard()
                return (*target, keep)
            target = next_file(*target, self._info.chunks_size)
        dest = self.root / self._info.video_file(key, *target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        commit(seg.path, dest)
        return (*target, 0)

    def _write_episodes(
        self,
        eps: list[_Episode],
        data_loc: tuple[int, int],
        video_loc: dict[str, tuple[int, int, int]],
    ) -> pa.Table:
        """Write the new episode rows; returns the table of all committed + new rows."""
        fps, rows = self.fps, []
        last = self._last("meta/episodes")
        path = (
            self.root / EPISODES_PATH.format(chunk_index=last[0], file_index=last[1])
            if last
            else None
        )
        target, append = self._target(last, path, 0, self._info.data_files_size_in_mb)
        for e in eps:
            row = {
                "episode_index": e.index,
                "tasks": [e.task],
                "length": e.length,
                "data/chunk_index": data_loc[0],
                "data/file_index": data_loc[1],
                "dataset_from_index": e.start,
                "dataset_to_index": e.start + e.length,
                "meta/episodes/chunk_index": target[0],
                "meta/episodes/file_index": target[1],
            }
            for k, (c, f, off) in video_loc.items():
                t0 = off + e.video_offset[k]
                row.update(
                    {
                        f"videos/{k}/chunk_index": c,
                        f"videos/{k}/file_index": f,
                        f"videos/{k}/from_timestamp": t0 / fps,
                        f"videos/{k}/to_timestamp": (t0 + e.length) / fps,
                    }
                )
            for k, s in e.stats.items():
                row.update({f"stats/{k}/{n}": np.asarray(s[n]).reshape(-1).tolist() for n in s})
            rows.append({**row, **e.extras})
        new = pa.Table.from_pylist(rows, schema=episode_schema(self._info.features, self._extras))
        old = self._episodes if self._info.total_episodes else None
        in_file = new
        if append and old is not None:
            c = old.column("meta/episodes/chunk_index").to_numpy()
            f = old.column("meta/episodes/file_index").to_numpy()
            mine = old.filter(pa.array((c == target[0]) & (f == target[1])))
            in_file = pa.concat_tables([mine, new], promote_options="permissive")
        write_parquet(
            self.root / EPISODES_PATH.format(chunk_index=target[0], file_index=target[1]), in_file
        )
        return new if old is None else pa.concat_tables([old, new], promote_options="permissive")


def tasks_table(tasks: list[str]) -> pa.Table:
    """``meta/tasks.parquet`` as upstream LeRobot writes it (``DataFrame.to_parquet`` of
    ``{task_index}`` indexed by the task string): the string is the pandas index column
    ``__index_level_0__``, declared in the ``pandas`` schema metadata so ``pd.read_parquet``
    restores it as the index."""
    index = "__index_level_0__"
    pandas_meta = {
        "index_columns": [index],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": index,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table(
        {
            "task_index": pa.array(range(len(tasks)), pa.int64()),
            index: pa.array(tasks, pa.string()),
        }
    )
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _check_tails(meta: Meta) -> None:
    """The files a resumed writer appends to must still hold their committed rows and frames."""
    spans = list(meta.data_files().values())[-1:]
    for span in spans:
        if parquet_rows(meta.root, span.path) < span.rows:
            raise DatasetError(f"{span.path} holds fewer rows than the {span.rows} committed")
    for k in videos(meta.info.features):
        for span in list(meta.video_files(k).values())[-1:]:
            if probe(meta.root, span.path)["frames"] < span.rows:
                raise DatasetError(f"{span.path} holds fewer frames than the {span.rows} committed")
