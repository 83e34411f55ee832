"""Loading the committed state of a dataset: info, tasks, the episodes table and the stats.

Only what ``meta/info.json`` counts is trusted: the first ``total_episodes`` episodes (by index) of
``meta/episodes/*`` and the first ``total_tasks`` tasks. Rows or files beyond them are leftovers of
an interrupted write and are ignored here (``validate_dataset`` reports them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from robot_rl.core.errors import DatasetError
from robot_rl.data import stats as st
from robot_rl.data.features import Feature, default_features, videos
from robot_rl.data.layout import STATS_PATH, TASKS_PATH, Info, load_info
from robot_rl.data.rows import EPISODE_COLUMNS, episode_schema
from robot_rl.data.storage import read_json, read_parquet, rel


@dataclass
class FileSpan:
    """The committed part of one data or video file: the frames/rows of the episodes it holds.

    ``first`` is the global frame index of its first row (data files), ``rows`` how many rows or
    frames the committed episodes use, ``episodes`` their indices in file order.
    """

    path: str
    first: int
    rows: int
    episodes: list[int]


@dataclass
class Meta:
    root: Path
    info: Info
    tasks: list[str]
    episodes: pa.Table  # committed rows only, sorted by episode_index

    def column(self, name: str) -> np.ndarray:
        return self.episodes.column(name).to_numpy()

    def data_files(self) -> dict[tuple[int, int], FileSpan]:
        """Committed data files by (chunk_index, file_index), in write order."""
        out: dict[tuple[int, int], FileSpan] = {}
        chunks, files = self.column("data/chunk_index"), self.column("data/file_index")
        starts, lengths = self.column("dataset_from_index"), self.column("length")
        for ep, (c, f, s, n) in enumerate(zip(chunks, files, starts, lengths)):
            key = (int(c), int(f))
            if key not in out:
                out[key] = FileSpan(self.info.data_file(*key), int(s), 0, [])
            out[key].rows += int(n)
            out[key].episodes.append(ep)
        return out

    def video_files(self, vkey: str) -> dict[tuple[int, int], FileSpan]:
        """Committed files of one camera; ``rows`` = frames up to the end of the last episode."""
        out: dict[tuple[int, int], FileSpan] = {}
        fps = self.info.fps
        p = f"videos/{vkey}/"
        chunks, files = self.column(p + "chunk_index"), self.column(p + "file_index")
        ends = self.column(p + "to_timestamp")
        for ep, (c, f, t1) in enumerate(zip(chunks, files, ends)):
            key = (int(c), int(f))
            if key not in out:
                out[key] = FileSpan(self.info.video_file(vkey, *key), 0, 0, [])
            out[key].rows = max(out[key].rows, round(float(t1) * fps))
            out[key].episodes.append(ep)
        return out

    def episode_stats(self, key: str, f: Feature) -> list[st.Stats]:
        """Per-episode stats of feature ``key`` from the ``stats/<key>/*`` columns."""
        cols = {n: self.episodes.column(f"stats/{key}/{n}").to_pylist() for n in st.STAT_NAMES}
        shape = st.stat_shape(f)
        return [
            {n: np.asarray(cols[n][i]).reshape((1,) if n == "count" else shape) for n in cols}
            for i in range(self.episodes.num_rows)
        ]


def load_tasks(root: Path, info: Info) -> list[str]:
    if info.total_tasks == 0:
        return []
    t = read_parquet(root, TASKS_PATH)
    name = next((c for c in ("task", "__index_level_0__") if c in t.column_names), None)
    if name is None or "task_index" not in t.column_names:
        raise DatasetError(
            f"{TASKS_PATH} needs columns 'task_index' and 'task', has {t.column_names}"
        )
    by_index = dict(zip(t.column("task_index").to_pylist(), t.column(name).to_pylist()))
    missing = [i for i in range(info.total_tasks) if i not in by_index]
    if missing:
        raise DatasetError(
            f"{TASKS_PATH} lacks task_index {missing[0]} (meta/info.json counts {info.total_tasks})"
        )
    return [str(by_index[i]) for i in range(info.total_tasks)]


def episode_files(root: Path) -> list[Path]:
    return sorted((Path(root) / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


def load_episodes(root: Path, info: Info) -> pa.Table:
    tables = []
    for path in episode_files(root):
        t = read_parquet(root, rel(root, path))
        if "episode_index" not in t.column_names:
            raise DatasetError(f"{rel(root, path)} has no 'episode_index' column")
        tables.append(t.filter(pc.less(t.column("episode_index"), info.total_episodes)))
    if not tables:
        if info.total_episodes:
            raise DatasetError(
                f"meta/episodes is missing under {root} ({info.total_episodes} listed)"
            )
        return episode_schema(info.features, {}).empty_table()
    table = pa.concat_tables(tables, promote_options="permissive")
    table = table.sort_by("episode_index")
    idx = table.column("episode_index").to_numpy()
    if len(idx) != info.total_episodes or not np.array_equal(idx, np.arange(len(idx))):
        raise DatasetError(
            f"meta/episodes holds episodes {_ranges(idx)} but meta/info.json counts "
            f"{info.total_episodes}, expected 0..{info.total_episodes - 1} once each"
        )
    need = list(EPISODE_COLUMNS) + ["data/chunk_index", "data/file_index"]
    for k in videos(info.features):
        need += [f"videos/{k}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
        need.append(f"videos/{k}/to_timestamp")
    absent = [c for c in need if c not in table.column_names]
    if absent:
        raise DatasetError(f"meta/episodes lacks column(s) {absent}")
    lengths = table.column("length").to_numpy()
    starts = table.column("dataset_from_index").to_numpy()
    ends = table.column("dataset_to_index").to_numpy()
    expect = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    bad = np.flatnonzero((starts != expect) | (ends - starts != lengths) | (lengths < 1))
    if len(bad):
        i = int(bad[0])
        raise DatasetError(
            f"meta/episodes: episode {i} spans frames {starts[i]}..{ends[i]} with length "
            f"{lengths[i]}, expected to start at {expect[i]}"
        )
    if int(lengths.sum()) != info.total_frames:
        raise DatasetError(
            f"meta/episodes lengths sum to {int(lengths.sum())} frames but meta/info.json "
            f"counts total_frames={info.total_frames}"
        )
    return table


def _ranges(idx: np.ndarray) -> str:
    if len(idx) == 0:
        return "none"
    return f"{int(idx.min())}..{int(idx.max())} ({len(idx)} rows)"


def load_meta(root: Path | str) -> Meta:
    root = Path(root)
    info = load_info(root)
    return Meta(root, info, load_tasks(root, info), load_episodes(root, info))


def stats_are_fresh(obj: dict, meta: Meta) -> bool:
    """True when ``meta/stats.json`` counts exactly the committed frames (not a crash leftover)."""
    return bool(meta.info.total_frames) and all(
        isinstance(obj.get(k), dict) and obj[k].get("count") == [meta.info.total_frames]
        for k, f in meta.info.features.items()
        if not f.is_video
    )


def load_stats(meta: Meta, *, rebuild: bool = False) -> tuple[dict[str, st.Stats], bool]:
    """Dataset stats and whether ``meta/stats.json`` was fresh.

    A stale or missing ``stats.json`` (a crash between writing it and ``info.json``) is rebuilt
    from the committed episodes' per-episode stats.
    """
    if meta.info.total_episodes == 0:
        return {}, True
    obj = read_json(meta.root, STATS_PATH) if (meta.root / STATS_PATH).is_file() else None
    if not rebuild and isinstance(obj, dict) and stats_are_fresh(obj, meta):
        return st.from_json(obj), True
    out = {}
    feats = {**meta.info.features, **default_features()}
    for k, f in feats.items():
        if f"stats/{k}/mean" in meta.episodes.column_names:
            out[k] = st.aggregate(meta.episode_stats(k, f))
    return out, False


_FILE_RE = re.compile(r"chunk-(\d+)/file-(\d+)\.(parquet|mp4)$")


def _file_key(relpath: str) -> tuple[int, int] | None:
    m = _FILE_RE.search(relpath)
    return (int(m.group(1)), int(m.group(2))) if m else None


def orphan_files(meta: Meta) -> list[tuple[str, bool]]:
    """Files under ``data/``, ``videos/`` and ``meta/episodes/`` that no committed episode uses.

    Each comes with whether it sorts after the last committed file of its folder: such a file can
    only be the leftover of an interrupted write, and a resuming writer deletes it.
    """
    root, used = meta.root, {}
    used["data"] = {s.path for s in meta.data_files().values()}
    for k in videos(meta.info.features):
        used[f"videos/{k}"] = {s.path for s in meta.video_files(k).values()}
    cols = meta.episodes.column_names
    if "meta/episodes/chunk_index" in cols:
        keys = set(
            zip(meta.column("meta/episodes/chunk_index"), meta.column("meta/episodes/file_index"))
        )
        used["meta/episodes"] = {
            f"meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet" for c, f in keys
        }
    else:
        used["meta/episodes"] = {rel(root, p) for p in episode_files(root)}
    out = []
    for tree in ("data", "videos", "meta/episodes"):
        for path in sorted((root / tree).rglob("*")) if (root / tree).is_dir() else []:
            r = rel(root, path)
            if not path.is_file() or path.name.startswith("."):
                continue
            folder = next((t for t in used if r.startswith(t + "/")), None)
            if folder is None or r not in used[folder]:
                keys = [k for u in used.get(folder, ()) if (k := _file_key(u)) is not None]
                key = _file_key(r)
                after = key is not None and key > max(keys, default=(-1, -1))
                out.append((r, folder is not None and after))
    return out
