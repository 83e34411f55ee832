"""Trainer checkpoints beside a policy checkpoint: optimizer moments, step, RNG, as safetensors +
JSON (never pickle), written so that a crash mid-save leaves the previous checkpoint intact."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from robot_rl.core.errors import ConfigError
from robot_rl.data.storage import fsync_dir
from robot_rl.policies import CheckpointError

OPTIM_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer.json"


def optimizer_tensors(optim: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Flatten an optimizer's state into named tensors plus its JSON-able param groups."""
    sd = optim.state_dict()
    tensors = {
        f"state.{idx}.{name}": torch.as_tensor(value).detach().cpu().contiguous()
        for idx, state in sd["state"].items()
        for name, value in state.items()
    }
    return tensors, sd["param_groups"]


def load_optimizer(
    optim: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list, where: Path | str
) -> None:
    """Inverse of :func:`optimizer_tensors`; a mismatch raises :class:`CheckpointError`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    try:
        optim.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{where}: optimizer state does not fit this model: {e}") from None


def _fsync_tree(directory: Path) -> None:
    for f in directory.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(directory)


def recover_checkpoint(directory: Path) -> Path:
    """``directory``, or its ``.old`` copy when a crash hit between the two renames of
    :func:`write_checkpoint` (the new one was not yet in place, the old one was set aside)."""
    old = directory.with_name(directory.name + ".old")
    if not directory.exists() and old.is_dir():
        return old
    return directory


def write_checkpoint(directory: Path, write: Callable[[Path], None]) -> Path:
    """Write a checkpoint with ``write(tmp_dir)`` into ``tmp_dir``, fsync it, then swap it in for
    ``directory``: a crash at any point leaves a whole checkpoint at ``directory`` or (between
    the renames) at ``directory.old``, which :func:`recover_checkpoint` finds and the next write
    puts back first."""
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    if not directory.exists() and old.is_dir():
        old.rename(directory)  # an earlier crash between the renames
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    _fsync_tree(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def save_trainer(directory: Path, optim: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Optimizer moments and ``meta`` (step, counters, RNG) next to a policy checkpoint."""
    tensors, groups = optimizer_tensors(optim)
    save_file(tensors, str(directory / OPTIM_FILE), metadata={"format": "pt"})
    (directory / TRAINER_FILE).write_text(
        json.dumps({**meta, "param_groups": groups}, indent=2) + "\n"
    )


def read_trainer(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, optimizer tensors)`` of a checkpoint written by :func:`save_trainer`."""
    meta_path, optim_path = directory / TRAINER_FILE, directory / OPTIM_FILE
    for p in (meta_path, optim_path):
        if not p.is_file():
            raise CheckpointError(
                f"{p} is missing: resume= needs a checkpoint written by `robot-rl train`"
            )
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(optim_path))
    except (ValueError, OSError, SafetensorError) as e:
        raise CheckpointError(f"cannot read trainer state in {directory}: {e}") from None
    if not isinstance(meta, dict) or "step" not in meta or "param_groups" not in meta:
        raise CheckpointError(f"{meta_path} lacks 'step' or 'param_groups'")
    return meta, tensors


def read_files(directory: Path, names: tuple[str, ...], missing: str, unreadable: str) -> list:
    """The ``.json`` and ``.safetensors`` files ``names`` of ``directory``, parsed, in order. A
    missing one is ConfigError(``missing`` formatted with its path), a damaged one
    ConfigError(``unreadable``: why)."""
    out: list = []
    for name in names:
        path = directory / name
        try:
            out.append(json.loads(path.read_text()) if name.endswith(".json") else load_file(path))
        except FileNotFoundError:
            raise ConfigError(missing.format(path)) from None
        except (json.JSONDecodeError, SafetensorError, OSError) as e:
            raise ConfigError(f"{unreadable}: {e}") from None
    return out


def refuse_changed_settings(where: str, differ: dict[str, Any]) -> None:
    """A one-line ConfigError naming each setting a resumed run would change (``differ``: name
    -> the saved run's value); nothing when it is empty."""
    if differ:
        shown = ", ".join(f"{k}={v!r}" for k, v in differ.items())
        raise ConfigError(f"{where}: the run had {shown}; a resumed run keeps its settings")


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` named ``prefix…``, without the prefix (one saved part)."""
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def to_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies, as safetensors writes them."""
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
