"""Check a dataset end to end (``validate_dataset``) and summarise it (``dataset_info``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robot_rl.core.errors import DatasetError
from robot_rl.data import stats as st
from robot_rl.data.features import DEFAULT_FEATURES, from_arrow, videos
from robot_rl.data.layout import CODEBASE_VERSION, STATS_PATH
from robot_rl.data.meta import Meta, load_meta, orphan_files, stats_are_fresh
from robot_rl.data.reader import LeRobotDataset
from robot_rl.data.rows import extras_schema, table_features
from robot_rl.data.storage import read_json, read_parquet, rel, temp_files
from robot_rl.data.video import count_packets, decode, probe


def validate_dataset(root: str | Path, *, decode_videos: bool = False) -> list[str]:
    """Check every committed file of a dataset; returns warnings, raises DatasetError on errors.

    Errors: unreadable or inconsistent metadata, truncated/corrupt files, files lacking committed
    rows or frames, index columns that disagree with ``meta/episodes``, non-finite values.
    Warnings: leftovers of an interrupted write (temp files, unreferenced files, rows or frames past
    the committed ones, stale ``meta/stats.json``), which readers ignore. With ``decode_videos``
    every committed video frame is decoded too (slow).
    """
    meta = load_meta(Path(root))
    warns = [
        f"{rel(meta.root, p)} is a temp file left by an interrupted write "
        "(DatasetWriter.open removes it)"
        for p in temp_files(meta.root)
    ]
    for r, _ in orphan_files(meta):
        warns.append(f"{r} is not used by any committed episode (left by an interrupted write?)")
    if meta.info.total_episodes:
        warns += _check_data(meta)
        for k in videos(meta.info.features):
            warns += _check_videos(meta, k, decode_videos)
        warns += _check_stats(meta)
    return warns


def _check_data(meta: Meta) -> list[str]:
    warns = []
    feats = table_features(meta.info.features)
    for span in meta.data_files().values():
        t = read_parquet(meta.root, span.path)  # reads every page: catches corrupt data too
        missing = [k for k in feats if k not in t.column_names]
        if missing:
            raise DatasetError(f"{span.path} lacks column(s) {missing}")
        if t.num_rows < span.rows:
            raise DatasetError(
                f"{span.path} has {t.num_rows} rows but committed episodes put {span.rows} in it"
            )
        if t.num_rows > span.rows:
            warns.append(
                f"{span.path} has {t.num_rows - span.rows} rows past the committed "
                "episodes (left by an interrupted write; ignored)"
            )
        t = t.slice(0, span.rows)
        cols = {
            k: from_arrow(t.column(k), f, f"{span.path} column {k!r}") for k, f in feats.items()
        }
        _check_index_columns(meta, span.path, span.episodes, {k: cols[k] for k in DEFAULT_FEATURES})
        for k, v in cols.items():
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                row = int(np.argwhere(~np.isfinite(v))[0][0])
                raise DatasetError(f"{span.path} column {k!r} has a non-finite value at row {row}")
    return warns


def _check_index_columns(meta: Meta, path: str, episodes: list[int], cols: dict) -> None:
    lengths = meta.column("length")[episodes]
    starts = meta.column("dataset_from_index")[episodes]
    ep = np.repeat(np.asarray(episodes), lengths)
    frame = np.concatenate([np.arange(n) for n in lengths])
    tasks = meta.episodes.column("tasks").to_pylist()
    want = {
        "episode_index": ep,
        "frame_index": frame,
        "index": np.repeat(starts, lengths) + frame,
        "timestamp": (frame / meta.info.fps).astype(np.float32),
    }
    for name, expected in want.items():
        got = cols[name].reshape(-1)
        bad = np.flatnonzero(got != expected)
        if len(bad):
            r = int(bad[0])
            raise DatasetError(
                f"{path} row {r}: {name} is {got[r]}, meta/episodes implies "
                f"{expected[r]} (episode {ep[r]}, frame {frame[r]})"
            )
    task_col = cols["task_index"].reshape(-1)
    if task_col.min() < 0 or task_col.max() >= len(meta.tasks):
        raise DatasetError(
            f"{path}: task_index {task_col.max()} is not in meta/tasks.parquet "
            f"({len(meta.tasks)} tasks)"
        )
    for e, s, n in zip(episodes, np.cumsum(lengths) - lengths, lengths):
        used = {meta.tasks[i] for i in np.unique(task_col[s : s + n])}
        if not used <= set(tasks[e] or []):
            raise DatasetError(
                f"{path}: episode {e} rows use tasks {sorted(used)}, meta/episodes lists {tasks[e]}"
            )


def _check_videos(meta: Meta, key: str, deep: bool) -> list[str]:
    warns, fps = [], meta.info.fps
    h, w, _ = meta.info.features[key].shape
    p = f"videos/{key}/"
    t0, t1 = meta.column(p + "from_timestamp"), meta.column(p + "to_timestamp")
    starts = np.round(t0 * fps).astype(np.int64)
    n = np.round(t1 * fps).astype(np.int64) - starts
    lengths = meta.column("length")
    bad = np.flatnonzero((n != lengths) | (np.abs(t0 * fps - starts) > 1e-3) | (starts < 0))
    if len(bad):
        e = int(bad[0])
        raise DatasetError(
            f"meta/episodes: episode {e}'s {key} timestamps {t0[e]}..{t1[e]} do not "
            f"span its {lengths[e]} frames at {fps} fps"
        )
    for span in meta.video_files(key).values():
        info = probe(meta.root, span.path)
        if (info["height"], info["width"]) != (h, w):
            raise DatasetError(
                f"{span.path} is {info['width']}x{info['height']}, {key!r} declares {w}x{h}"
            )
        frames = count_packets(meta.root, span.path)
        if frames != info["frames"]:
            raise DatasetError(
                f"{span.path} is truncated or corrupt (index lists {info['frames']} "
                f"frames, {frames} present)"
            )
        if frames < span.rows:
            raise DatasetError(
                f"{span.path} holds {frames} frames but committed episodes need {span.rows}"
            )
        if frames > span.rows:
            warns.append(
                f"{span.path} has {frames - span.rows} frames past the committed episodes "
                "(left by an interrupted write; ignored)"
            )
        if deep:
            for e in span.episodes:
                decode(meta.root, span.path, int(starts[e]), int(lengths[e]), fps)
    return warns


def _check_stats(meta: Meta) -> list[str]:
    if not (meta.root / STATS_PATH).is_file():
        return [f"{STATS_PATH} is missing; readers rebuild it from meta/episodes"]
    obj = read_json(meta.root, STATS_PATH)
    if not isinstance(obj, dict) or not stats_are_fresh(obj, meta):
        return [
            f"{STATS_PATH} does not count the {meta.info.total_frames} committed frames (stale "
            "after an interrupted write); readers rebuild it from meta/episodes"
        ]
    for k, f in meta.info.features.items():
        s = obj.get(k)
        if not isinstance(s, dict) or any(n not in s for n in st.STAT_NAMES):
            raise DatasetError(f"{STATS_PATH}: feature {k!r} lacks some of {st.STAT_NAMES}")
        for n in ("min", "max", "mean", "std"):
            if np.shape(s[n]) != st.stat_shape(f):
                raise DatasetError(
                    f"{STATS_PATH}: {k}/{n} has shape {np.shape(s[n])}, expected {st.stat_shape(f)}"
                )
    return []


def dataset_info(root: str | Path) -> dict[str, Any]:
    """Summary of a dataset: sizes, tasks, features, episode lengths, success rate."""
    ds = LeRobotDataset(root)
    eps = ds.episodes_table()
    lengths = eps.column("length").to_numpy() if ds.num_episodes else np.zeros(0, np.int64)
    extras = extras_schema(eps) if ds.num_episodes else {}
    success = None
    if "success" in extras and pa.types.is_boolean(extras["success"]):
        flags = [bool(x) for x in eps.column("success").to_pylist() if x is not None]
        success = float(np.mean(flags)) if flags else None
    return {
        "root": str(ds.root),
        "codebase_version": CODEBASE_VERSION,
        "robot_type": ds.robot_type,
        "fps": ds.fps,
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "duration_s": ds.num_frames / ds.fps,
        "tasks": ds.tasks,
        "features": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in ds.features.items()},
        "episode_length": None
        if not len(lengths)
        else {
            "min": int(lengths.min()),
            "max": int(lengths.max()),
            "mean": float(lengths.mean()),
            "std": float(lengths.std()),
        },
        "extras": sorted(extras),
        "success_rate": success,
    }
