"""What a dataset stores per frame: feature declarations, input checks and Arrow column codecs.

A feature of shape ``()`` or ``(1,)`` is stored as a scalar column (as LeRobot does), a vector as a
fixed-size list column and a higher-rank array as nested fixed-size lists. Video features are not in
the parquet tables at all: their frames live in mp4 files (see :mod:`robot_rl.data.video`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from robot_rl.core.errors import DatasetError

DTYPES = ("float32", "float64", "int64", "bool", "video")
VIDEO_NAMES = ["height", "width", "channels"]

# Columns every data file carries besides the user's features; names a user may not declare.
DEFAULT_FEATURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "timestamp": ("float32", (1,)),
    "frame_index": ("int64", (1,)),
    "episode_index": ("int64", (1,)),
    "index": ("int64", (1,)),
    "task_index": ("int64", (1,)),
}


@dataclass
class Feature:
    """One per-frame quantity of a dataset.

    Attributes:
        dtype: one of ``float32``, ``float64``, ``int64``, ``bool``, ``video``.
        shape: per-frame shape; ``(H, W, 3)`` for ``video`` (uint8 RGB frames, H and W even).
        names: optional names of the entries of a vector feature (``len(names) == shape[0]``).
    """

    dtype: str
    shape: tuple[int, ...]
    names: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise DatasetError(f"feature dtype must be one of {DTYPES}, got {self.dtype!r}")
        try:
            self.shape = tuple(int(s) for s in self.shape)
        except (TypeError, ValueError):
            raise DatasetError(
                f"feature shape must be a tuple of ints, got {self.shape!r}"
            ) from None
        if any(s < 1 for s in self.shape):
            raise DatasetError(f"feature shape entries must be >= 1, got {self.shape}")
        if self.names is not None:
            self.names = [str(n) for n in self.names] or None  # [] means "no names"
        if self.dtype == "video":
            if len(self.shape) != 3 or self.shape[2] != 3:
                raise DatasetError(f"video feature shape must be (H, W, 3), got {self.shape}")
            if self.shape[0] % 2 or self.shape[1] % 2:
                raise DatasetError(
                    f"video height and width must be even (yuv420p), got {self.shape}"
                )
            self.names = list(VIDEO_NAMES)
        elif self.names is not None and len(self.shape) == 1 and len(self.names) != self.shape[0]:
            raise DatasetError(f"feature has shape {self.shape} but {len(self.names)} names")

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    @property
    def is_scalar(self) -> bool:
        """Stored as a plain column (shape ``()`` or ``(1,)``)."""
        return self.shape in ((), (1,))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}
        if self.info:
            out["info"] = dict(self.info)
        return out

    @classmethod
    def from_json(cls, name: str, d: Any) -> Feature:
        """Parse one entry of ``info.json``'s ``features``; raises DatasetError naming ``name``."""
        if not isinstance(d, dict) or "dtype" not in d or "shape" not in d:
            raise DatasetError(
                f"meta/info.json: feature {name!r} needs 'dtype' and 'shape', got {d!r}"
            )
        if d["dtype"] in ("image", "string"):
            raise DatasetError(
                f"meta/info.json: feature {name!r} has unsupported dtype {d['dtype']!r}"
            )
        try:
            return cls(d["dtype"], tuple(d["shape"]), d.get("names"), dict(d.get("info") or {}))
        except (DatasetError, TypeError) as e:
            raise DatasetError(f"meta/info.json: feature {name!r}: {e}") from None


def arrow_type(f: Feature) -> pa.DataType:
    """Arrow type of the parquet column holding ``f`` (not defined for video features)."""
    t = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}
    typ = t[f.dtype]
    if not f.is_scalar:
        for d in reversed(f.shape):
            typ = pa.list_(typ, d)
    return typ


def to_arrow(values: np.ndarray, f: Feature) -> pa.Array:
    """Column of ``len(values)`` rows from an array of shape ``(T, *f.shape)``."""
    arr = pa.array(np.ascontiguousarray(values).reshape(-1))
    if not f.is_scalar:
        for d in reversed(f.shape):
            arr = pa.FixedSizeListArray.from_arrays(arr, d)
    return arr


def from_arrow(col: pa.Array | pa.ChunkedArray, f: Feature, where: str) -> np.ndarray:
    """Array of shape ``(T, *f.shape)`` from a column; ``where`` names the column in errors."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise DatasetError(f"{where} has {arr.null_count} null values")
    n = len(arr)
    if not f.is_scalar:
        for _ in f.shape:
            if not pa.types.is_fixed_size_list(arr.type) and not pa.types.is_list(arr.type):
                raise DatasetError(f"{where} has type {arr.type}, expected {arrow_type(f)}")
            arr = arr.flatten()
    out = arr.to_numpy(zero_copy_only=False)
    try:
        return out.reshape((n, *f.shape)).astype(np.dtype(f.dtype), copy=False)
    except ValueError:
        raise DatasetError(f"{where} does not hold values of shape {f.shape}") from None


def _preview(x: np.ndarray) -> str:
    flat = np.asarray(x).reshape(-1)
    s = np.array2string(flat[:8], precision=4, separator=", ", max_line_width=10_000)
    return s[:-1] + ", ...]" if flat.size > 8 else s


def check_values(name: str, f: Feature, value: Any, n: int | None = None) -> np.ndarray:
    """Validate and convert ``value`` for feature ``f``.

    With ``n`` given, ``value`` holds ``n`` frames (leading time axis) and the result has shape
    ``(n, *f.shape)``; otherwise it is one frame and the result has shape ``f.shape``. Raises a
    one-line DatasetError naming the feature and the bad shape, dtype or value.
    """
    arr = np.asarray(value)
    lead = () if n is None else (n,)
    want = lead + f.shape
    if f.shape == (1,) and arr.shape == lead:  # scalar per frame for a (1,) feature
        arr = arr.reshape(want)
    if arr.shape != want:
        if n is None:
            raise DatasetError(f"feature {name!r} has shape {arr.shape} but {f.shape} was declared")
        raise DatasetError(
            f"feature {name!r} has shape {arr.shape} but {want} was expected "
            f"({n} frames of declared shape {f.shape})"
        )
    if f.is_video:
        if arr.dtype != np.uint8:
            raise DatasetError(f"feature {name!r} must be uint8 RGB frames, got dtype {arr.dtype}")
        return arr
    kind = arr.dtype.kind
    ok = {"bool": "b", "int64": "biu", "float32": "biuf", "float64": "biuf"}[f.dtype]
    if kind not in ok:
        raise DatasetError(f"feature {name!r} is declared {f.dtype} but got dtype {arr.dtype}")
    arr = arr.astype(np.dtype(f.dtype), copy=False)
    if kind == "f" and f.dtype != "int64":  # after the cast: 1e39 is inf in float32
        bad = ~np.isfinite(arr)
        if bad.any():
            where = np.argwhere(bad)[0]
            frame = f" at frame {where[0]}" if n is not None else ""
            row = arr[where[0]] if n is not None else arr
            raise DatasetError(
                f"feature {name!r} has a non-finite value{frame} ({_preview(row)}); "
                "expected finite numbers"
            )
    return arr


def check_frames(features: dict[str, Feature], frames: dict[str, Any], n: int | None) -> dict:
    """Validate a frame (``n=None``) or ``n`` stacked frames holding exactly ``features``' keys."""
    _check_keys(features, frames)
    return {k: check_values(k, f, frames[k], n) for k, f in features.items()}


def _check_keys(features: dict[str, Feature], frames: Mapping[str, Any]) -> None:
    missing = [k for k in features if k not in frames]
    extra = [k for k in frames if k not in features]
    if missing:
        raise DatasetError(f"frame is missing feature(s) {missing}; declared: {list(features)}")
    if extra:
        raise DatasetError(f"frame has undeclared key(s) {extra}; declared: {list(features)}")


def episode_length(features: dict[str, Feature], frames: Mapping[str, Any]) -> int:
    """Number of frames ``T`` in a batch of stacked frames (the shared leading axis)."""
    _check_keys(features, frames)
    lengths = {}
    for k in features:
        shape = np.shape(frames[k])
        if not shape:
            raise DatasetError(f"feature {k!r} has no time axis (got a scalar)")
        lengths[k] = shape[0]
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"features have different numbers of frames: {lengths}")
    t = next(iter(lengths.values()), 0)
    if t < 1:
        raise DatasetError("an episode needs at least one frame, got 0")
    return t


def check_user_features(features: dict[str, Any]) -> dict[str, Feature]:
    """Validate a writer's feature declaration (names, types); returns a copy."""
    if not features:
        raise DatasetError("a dataset needs at least one feature")
    out = {}
    for name, f in features.items():
        if not isinstance(f, Feature):
            raise DatasetError(f"feature {name!r} must be a Feature, got {type(f).__name__}")
        if name in DEFAULT_FEATURES:
            raise DatasetError(f"feature name {name!r} is reserved for a column the writer adds")
        if not name or "/" in name:
            raise DatasetError(f"feature name {name!r} must be non-empty and contain no '/'")
        out[name] = Feature(f.dtype, f.shape, None if f.is_video else f.names, dict(f.info))
    return out


def default_features() -> dict[str, Feature]:
    return {k: Feature(d, s) for k, (d, s) in DEFAULT_FEATURES.items()}


def numeric(features: dict[str, Feature]) -> list[str]:
    """Names of the features stored in parquet (everything but video)."""
    return [k for k, f in features.items() if not f.is_video]


def videos(features: dict[str, Feature]) -> list[str]:
    return [k for k, f in features.items() if f.is_video]
