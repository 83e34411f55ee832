"""Episode datasets in the LeRobot v3 layout: write, read, validate, and sample BC windows.

``WindowDataset`` imports torch, so it is loaded on first use: writing a dataset (collectors,
teleop recorders) does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robot_rl.data.features import Feature
from robot_rl.data.reader import LeRobotDataset
from robot_rl.data.validate import dataset_info, validate_dataset
from robot_rl.data.writer import DatasetWriter

if TYPE_CHECKING:
    from robot_rl.data.windows import WindowDataset

__all__ = [
    "DatasetWriter",
    "Feature",
    "LeRobotDataset",
    "WindowDataset",
    "dataset_info",
    "validate_dataset",
]


def __getattr__(name: str) -> Any:
    if name == "WindowDataset":
        from robot_rl.data.windows import WindowDataset

        return WindowDataset
    raise AttributeError(f"module 'robot_rl.data' has no attribute {name!r}")
