"""Crash-safe file writes and reads that turn every failure into a one-line DatasetError.

Every file is written to a temp name in its final directory, fsynced, then ``os.replace``d over the
final name, and the directory is fsynced, so a reader (or a crash) only ever sees the old or the new
file, never a partial one. Temp names start with ``.~`` and end with ``.tmp`` so that
:func:`temp_files` can find the leftovers of a killed writer.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robot_rl.core.errors import DatasetError

TEMP_PREFIX, TEMP_SUFFIX = ".~", ".tmp"


def rel(root: Path, path: Path) -> str:
    """``path`` relative to the dataset root, as written in error messages."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= 300 else msg[:297] + "..."


def temp_path(path: Path) -> Path:
    """A fresh temp name next to ``path`` (same directory, so ``os.replace`` is atomic)."""
    return path.with_name(
        f"{TEMP_PREFIX}{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    )


def is_temp(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX)


def temp_files(root: Path) -> list[Path]:
    """Temp files left under ``root`` by an interrupted writer."""
    return sorted(p for p in Path(root).rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}") if p.is_file())


def fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """Make the fully written ``tmp`` durable and move it over ``path`` atomically."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_parquet(path: Path, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    write_bytes(path, sink.getvalue().to_pybytes())


def read_json(root: Path, relpath: str) -> Any:
    path = Path(root) / relpath
    if not path.is_file():
        raise DatasetError(f"{relpath} is missing under {root}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(
            f"{relpath} is truncated or corrupt (invalid JSON: {one_line(e)})"
        ) from None


def read_parquet(root: Path, relpath: str, columns: list[str] | None = None) -> pa.Table:
    path = Path(root) / relpath
    if not path.is_file():
        raise DatasetError(f"{relpath} is missing under {root}")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(f"{relpath} is truncated or corrupt (pyarrow: {one_line(e)})") from None


def parquet_rows(root: Path, relpath: str) -> int:
    """Row count from the parquet footer (cheap: does not read the data pages)."""
    path = Path(root) / relpath
    if not path.is_file():
        raise DatasetError(f"{relpath} is missing under {root}")
    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(f"{relpath} is truncated or corrupt (pyarrow: {one_line(e)})") from None
