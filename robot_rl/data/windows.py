"""WindowDataset: behaviour-cloning training windows over a dataset's episodes.

One sample per frame ``t`` of every episode ``[s, e)`` (global frame indices), as diffusion_policy's
``SequenceSampler`` with ``To`` observation and ``Ta`` action steps:

- observations at ``t-To+1 .. t``, indices clamped to ``>= s`` (the first frame repeats);
- actions at ``t .. t+Ta-1``, indices clamped to ``<= e-1`` (the last action repeats), with
  ``action_is_pad[k] = t + k >= e``.

A window never reads another episode's frames.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from robot_rl.core.errors import DatasetError
from robot_rl.data.features import from_arrow
from robot_rl.data.reader import LeRobotDataset

MB = 1 << 20


class WindowDataset(Dataset):
    """Torch dataset of ``(observation window, action chunk)`` samples.

    Args:
        ds: the dataset to sample from.
        obs_horizon: ``To``, observation steps per sample.
        action_horizon: ``Ta``, action steps per sample.
        keys: non-video observation features; default every ``observation.*`` non-video feature.
        image_keys: video features to include; default none.
        action_key: the action feature.
        cache_mb: budget for decoded episodes kept in memory (least recently used are dropped).

    A sample is a dict of tensors: each key ``(To, *shape)``; ``action`` ``(Ta, A)``;
    ``action_is_pad`` ``(Ta,)`` bool; each image key ``(To, 3, H, W)`` uint8; ``task_index``,
    ``episode_index``, ``frame_index`` (the frame ``t`` within its episode) as int64 scalars.
    """

    def __init__(
        self,
        ds: LeRobotDataset,
        obs_horizon: int = 2,
        action_horizon: int = 16,
        *,
        keys: Sequence[str] | None = None,
        image_keys: Sequence[str] | None = None,
        action_key: str = "action",
        cache_mb: int = 2048,
    ) -> None:
        if obs_horizon < 1 or action_horizon < 1:
            raise ValueError(
                f"horizons must be >= 1, got obs {obs_horizon}, action {action_horizon}"
            )
        feats = ds.features
        if keys is None:
            keys = [k for k, f in feats.items() if k.startswith("observation.") and not f.is_video]
        for k in [*keys, action_key]:
            if k not in feats or feats[k].is_video:
                raise DatasetError(f"{k!r} is not a non-video feature of {ds.root}")
        for k in image_keys or ():
            if k not in feats or not feats[k].is_video:
                raise DatasetError(f"{k!r} is not a video feature of {ds.root}")
        self.ds, self.obs_horizon, self.action_horizon = ds, obs_horizon, action_horizon
        self.keys, self.image_keys, self.action_key = list(keys), list(image_keys or ()), action_key
        table = ds.frames_table()
        where = f"{ds.root} frames"

        def column(k: str, f) -> torch.Tensor:
            return torch.from_numpy(np.array(from_arrow(table.column(k), f, where), copy=True))

        self._obs = {k: column(k, feats[k]) for k in self.keys}
        self._action = column(action_key, feats[action_key])
        self._task = torch.from_numpy(table.column("task_index").to_numpy().astype(np.int64))
        ranges = ds.episode_ranges()
        self._start = torch.from_numpy(ranges[:, 0].astype(np.int64))
        self._end = torch.from_numpy(ranges[:, 1].astype(np.int64))
        self._episode = torch.repeat_interleave(torch.arange(len(ranges)), self._end - self._start)
        for k, v in {**self._obs, action_key: self._action}.items():
            self._check_finite(k, v)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_bytes, self._cache_limit = 0, cache_mb * MB

    def _check_finite(self, key: str, values: torch.Tensor) -> None:
        """One NaN in a training window poisons every weight it reaches: refuse the dataset."""
        if not values.is_floating_point():
            return
        bad = ~torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            e = int(self._episode[i])
            raise DatasetError(
                f"{self.ds.root}: {key!r} has non-finite values (NaN/inf) in {int(bad.sum())} "
                f"frames, first in episode {e} frame {i - int(self._start[e])}; "
                f"drop or repair those episodes before training"
            )

    def __len__(self) -> int:
        return len(self._episode)

    def indices(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Global frame indices of sample ``i``: observations ``(To,)``, actions ``(Ta,)`` and the
        action padding mask ``(Ta,)``."""
        e = int(self._episode[i])
        s, end = int(self._start[e]), int(self._end[e])
        obs = (i - self.obs_horizon + 1 + torch.arange(self.obs_horizon)).clamp(min=s)
        act = i + torch.arange(self.action_horizon)
        return obs, act.clamp(max=end - 1), act >= end

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range ({len(self)} samples)")
        i = i % len(self)
        obs, act, pad = self.indices(i)
        e = int(self._episode[i])
        out = {k: v[obs] for k, v in self._obs.items()}
        out[self.action_key] = self._action[act]
        out["action_is_pad"] = pad
        out["task_index"] = self._task[i]
        out["episode_index"] = torch.tensor(e)
        out["frame_index"] = torch.tensor(i - int(self._start[e]))
        local = (obs - self._start[e]).numpy()
        for k in self.image_keys:
            frames = self._frames(k, e)[local]  # (To, H, W, 3)
            out[k] = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        return out

    def _frames(self, key: str, e: int) -> np.ndarray:
        """Decoded frames of one episode's camera, decoded once and kept while within budget."""
        hit = self._cache.get((key, e))
        if hit is not None:
            self._cache.move_to_end((key, e))
            return hit
        frames = self.ds.video_frames(key, e)
        self._cache[(key, e)] = frames
        self._cache_bytes += frames.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return frames
