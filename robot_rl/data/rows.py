"""Arrow schemas of the data and episodes tables, and the per-episode values the writer checks.

Per-episode ``extras`` (e.g. ``success``) become columns of ``meta/episodes``; their names and types
are fixed by the first episode of a dataset so that every row has the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from robot_rl.core.errors import DatasetError
from robot_rl.data import stats as st
from robot_rl.data.features import DEFAULT_FEATURES, Feature, arrow_type, default_features, videos

EPISODE_COLUMNS = ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index")
_LOCATION_PREFIXES = ("data/", "videos/", "meta/", "stats/")


def table_features(features: dict[str, Feature]) -> dict[str, Feature]:
    """Columns of a data file: the non-video user features, then the default columns."""
    return {**{k: f for k, f in features.items() if not f.is_video}, **default_features()}


def data_schema(features: dict[str, Feature]) -> pa.Schema:
    return pa.schema([(k, arrow_type(f)) for k, f in table_features(features).items()])


def episode_schema(features: dict[str, Feature], extras: dict[str, pa.DataType]) -> pa.Schema:
    i64, f64 = pa.int64(), pa.float64()
    fields = [
        ("episode_index", i64),
        ("tasks", pa.list_(pa.string())),
        ("length", i64),
        ("data/chunk_index", i64),
        ("data/file_index", i64),
        ("dataset_from_index", i64),
        ("dataset_to_index", i64),
    ]
    for k in videos(features):
        fields += [(f"videos/{k}/{c}", i64) for c in ("chunk_index", "file_index")]
        fields += [(f"videos/{k}/{c}", f64) for c in ("from_timestamp", "to_timestamp")]
    fields += [("meta/episodes/chunk_index", i64), ("meta/episodes/file_index", i64)]
    for k in [*features, *DEFAULT_FEATURES]:
        fields += [
            (f"stats/{k}/{n}", pa.list_(i64 if n == "count" else f64)) for n in st.STAT_NAMES
        ]
    return pa.schema(fields + list(extras.items()))


def extras_schema(episodes: pa.Table) -> dict[str, pa.DataType]:
    """Types of the extras columns of an existing episodes table."""
    return {
        c: episodes.schema.field(c).type
        for c in episodes.column_names
        if c not in EPISODE_COLUMNS and not c.startswith(_LOCATION_PREFIXES)
    }


def _scalar(key: str, v: Any) -> tuple[Any, pa.DataType]:
    if hasattr(v, "item") and not isinstance(v, (str, bytes)) and np.ndim(v) == 0:
        v = v.item()  # numpy / torch 0-d values
    if isinstance(v, bool):
        return v, pa.bool_()
    if isinstance(v, int):
        return v, pa.int64()
    if isinstance(v, float):
        return v, pa.float64()
    if isinstance(v, str):
        return v, pa.string()
    raise DatasetError(
        f"extras[{key!r}] must be a bool, int, float or str, got {type(v).__name__} {str(v)[:60]!r}"
    )


def check_extras(
    extras: Mapping[str, Any] | None, known: dict[str, pa.DataType] | None
) -> tuple[dict[str, Any], dict[str, pa.DataType]]:
    """Validate per-episode extras against the columns of earlier episodes (``known``)."""
    out, types = {}, {}
    for k, v in dict(extras or {}).items():
        if not isinstance(k, str) or not k or "/" in k or k in EPISODE_COLUMNS:
            raise DatasetError(
                f"extras key {k!r} must be a non-empty name without '/' and not one "
                f"of {EPISODE_COLUMNS}"
            )
        out[k], types[k] = _scalar(k, v)
    if known is None:
        return out, types
    if set(types) != set(known):
        raise DatasetError(
            f"extras keys {sorted(types)} differ from the per-episode columns {sorted(known)} "
            "that earlier episodes of this dataset have"
        )
    for k, t in types.items():
        want = known[k]
        if want == pa.float64() and t == pa.int64():
            out[k] = float(out[k])
        elif t != want:
            raise DatasetError(
                f"extras[{k!r}] = {out[k]!r} is {t} but earlier episodes stored {want}"
            )
    return out, types


def check_task(task: Any) -> str:
    if not isinstance(task, str) or not task.strip():
        raise DatasetError(f"task must be a non-empty instruction string, got {task!r}")
    return task
