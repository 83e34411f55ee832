"""Behaviour-cloning data: one or several LeRobot datasets as one stream of training windows.

Several datasets (e.g. one per task) train one instruction-conditioned policy: their instruction
strings are merged into one list (the policy's ``instructions``) and each dataset's ``task_index``
is remapped into it; their stats are merged as if computed over all frames at once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from robot_rl.core.errors import DatasetError
from robot_rl.data import LeRobotDataset, WindowDataset
from robot_rl.data.stats import aggregate
from robot_rl.policies.observations import ACTION, IMAGE_PREFIX, STATE


class BCData:
    """Training windows drawn from ``roots``.

    Args:
        roots: dataset directories.
        obs_horizon: ``To`` observation frames per sample.
        horizon: ``T`` actions per sample.
        cameras: camera names to read (``observation.images.<cam>``); ``None`` = every camera
            the first dataset has.
        state: patterns (``fnmatch``, e.g. ``joint_pos.*``) of the state entries to keep, by the
            dataset's ``observation.state`` names; ``None`` keeps the whole vector. Keeping only
            proprioception makes an image policy find the objects in its camera frames.
    """

    def __init__(
        self,
        roots: Sequence[str | Path],
        obs_horizon: int,
        horizon: int,
        cameras: Sequence[str] | None = None,
        state: Sequence[str] | None = None,
    ) -> None:
        if not roots:
            raise DatasetError("no dataset given: pass dataset=DIR (or a list of directories)")
        self.datasets = [LeRobotDataset(r) for r in roots]
        first = self.datasets[0]
        if cameras is None:
            cameras = [k[len(IMAGE_PREFIX) :] for k in first.video_keys]
        self.cameras = list(cameras)
        image_keys = [IMAGE_PREFIX + c for c in self.cameras]
        for ds in self.datasets:
            for k in (STATE, ACTION, *image_keys):
                if k not in ds.features:
                    raise DatasetError(
                        f"{ds.root} has no {k!r} feature; it has {sorted(ds.features)}"
                    )
        for ds in self.datasets[1:]:
            for k in (STATE, ACTION, *image_keys):
                mine, theirs = ds.features[k].shape, first.features[k].shape
                if mine != theirs:
                    raise DatasetError(
                        f"{ds.root} has {k!r} of shape {mine}, {first.root} has {theirs}: "
                        f"datasets must share features"
                    )
            if ds.fps != first.fps:
                raise DatasetError(f"{ds.root} is at {ds.fps} fps, {first.root} at {first.fps}")
        self.instructions: list[str] = []
        remaps = []
        for ds in self.datasets:
            ids = []
            for t in ds.tasks:
                if t not in self.instructions:
                    self.instructions.append(t)
                ids.append(self.instructions.index(t))
            remaps.append(torch.tensor(ids, dtype=torch.int64))
        self.windows = [
            WindowDataset(ds, obs_horizon, horizon, keys=[STATE], image_keys=image_keys)
            for ds in self.datasets
        ]
        self._remap = remaps
        sizes = torch.tensor([len(w) for w in self.windows])
        self._offsets = torch.cumsum(sizes, 0) - sizes
        self._total = int(sizes.sum())
        if self._total == 0:
            raise DatasetError(f"datasets {[str(r) for r in roots]} hold no frames")
        keys = (STATE, ACTION, *image_keys)
        self.stats = {k: aggregate([ds.stats[k] for ds in self.datasets]) for k in keys}
        self.state_names: list[str] = []
        self._state_index: torch.Tensor | None = None
        if state is not None:
            self.state_names, index = select_names(first.features[STATE].names, state, first.root)
            self._state_index = torch.tensor(index)
            self.stats[STATE] = {
                k: v[index] if k != "count" else v for k, v in self.stats[STATE].items()
            }

    @property
    def state_dim(self) -> int:
        if self._state_index is not None:
            return len(self._state_index)
        return int(np.prod(self.datasets[0].features[STATE].shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.datasets[0].features[ACTION].shape))

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the cameras (the policy default when there are none)."""
        if not self.cameras:
            return (84, 84)
        h, w, _ = self.datasets[0].features[IMAGE_PREFIX + self.cameras[0]].shape
        return (h, w)

    @property
    def num_episodes(self) -> int:
        return sum(ds.num_episodes for ds in self.datasets)

    def __len__(self) -> int:
        return self._total

    def sample(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Collated batch of samples ``indices`` (B,) in ``[0, len(self))``; ``task_index`` is
        the index into :attr:`instructions`."""
        which = torch.searchsorted(self._offsets, indices, right=True) - 1
        items = []
        for i, d in zip(indices.tolist(), which.tolist()):
            item = self.windows[d][i - int(self._offsets[d])]
            item["task_index"] = self._remap[d][item["task_index"]]
            if self._state_index is not None:
                item[STATE] = item[STATE][:, self._state_index]
            items.append(item)
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def select_names(
    names: Sequence[str] | None, patterns: Sequence[str], where: object
) -> tuple[list[str], list[int]]:
    """The entries of ``names`` matching any of ``patterns`` (in ``names`` order) and their
    indices; a pattern matching nothing raises :class:`DatasetError`."""
    if not names:
        raise DatasetError(f"{where}: observation.state has no entry names to select from")
    keep = []
    for pattern in patterns:
        hits = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise DatasetError(
                f"{where}: state pattern {pattern!r} matches none of {list(names)[:8]}..."
            )
        keep += hits
    index = sorted(set(keep))
    return [names[i] for i in index], index
