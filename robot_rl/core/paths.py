"""Where the shipped data lives (sim models, robot profiles, configs).

A source checkout or editable install reads the repository's top-level ``sim/``, ``hardware/`` and
``configs/`` in place; a wheel install finds them under ``<prefix>/share/robot_rl`` (the ROS-style
share directory). ``ROBOT_RL_ASSETS`` overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_KINDS = ("sim", "hardware", "configs")


def asset_root() -> Path:
    """Directory that holds ``sim/``, ``hardware/`` and ``configs/``."""
    candidates = []
    if env := os.environ.get("ROBOT_RL_ASSETS"):
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[2])
    candidates.append(Path(sys.prefix) / "share" / "robot_rl")
    for root in candidates:
        if all((root / kind).is_dir() for kind in _KINDS):
            return root
    raise FileNotFoundError(
        "robot_rl assets (sim/, hardware/, configs/) not found in any of "
        f"{[str(c) for c in candidates]}"
    )


def asset_path(kind: str, *parts: str) -> Path:
    """Path of a shipped file, e.g. ``asset_path("hardware", "arm.yaml")``; raises if missing."""
    if kind not in _KINDS:
        raise ValueError(f"asset kind must be one of {_KINDS}, got {kind!r}")
    path = asset_root().joinpath(kind, *parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return path
