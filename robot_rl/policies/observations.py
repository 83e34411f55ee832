"""Reading policy inputs: training batches and live observations, checked before they reach a net.

Batches use the dataset's keys (``observation.state``, ``observation.images.<cam>``, ``action``,
``action_is_pad``, ``task_index``); live observations may use the VecEnv keys (``state``,
``image`` for a single camera, ``images`` {camera: frames}, ``instruction``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robot_rl.core.errors import RobotRLError
from robot_rl.policies.tokenizer import PAD_ID

STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."


class BatchError(RobotRLError, ValueError):
    """A batch or observation has missing keys, wrong shapes or dtypes, or non-finite values."""


def require_key(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise BatchError(f"{where} has no {key!r}; it has {sorted(data)}")
    return data[key]


def check_shape(x: torch.Tensor, expected: Sequence[int | None], key: str, where: str) -> None:
    """Raise unless ``x.shape`` matches ``expected`` (``None`` matches any size)."""
    ok = x.dim() == len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise BatchError(f"{where}[{key!r}] has shape {tuple(x.shape)}, expected {want}")


def check_finite(x: torch.Tensor, key: str, where: str) -> None:
    """Raise naming ``key`` when ``x`` holds NaN or inf: one bad sample would poison the weights."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise BatchError(f"{where}[{key!r}] has {int(bad.sum())} non-finite values (NaN/inf)")


def find_image(obs: Mapping[str, Any], camera: str, cameras: Sequence[str]) -> torch.Tensor:
    """The frames of ``camera`` under any accepted observation key."""
    nested = obs.get("images")
    if isinstance(nested, Mapping) and camera in nested:
        return nested[camera]
    if IMAGE_PREFIX + camera in obs:
        return obs[IMAGE_PREFIX + camera]
    if len(cameras) == 1 and "image" in obs:
        return obs["image"]
    raise BatchError(f"observation has no frames of camera {camera!r}; it has keys {sorted(obs)}")


def fit_tokens(tokens: torch.Tensor, max_len: int) -> torch.Tensor:
    """Token ids ``(B, L)`` padded with ``<pad>`` or truncated to ``(B, max_len)`` int64."""
    tokens = tokens.long()
    if tokens.dim() != 2:
        raise BatchError(f"instruction tokens must be (B, L), got shape {tuple(tokens.shape)}")
    if tokens.shape[1] >= max_len:
        return tokens[:, :max_len]
    pad = tokens.new_full((tokens.shape[0], max_len - tokens.shape[1]), PAD_ID)
    return torch.cat([tokens, pad], dim=1)


class ObservationHistory:
    """The last ``To`` single-frame observations, stacked into windows for the encoder.

    The first frame after :meth:`clear` fills the whole window (diffusion_policy's convention:
    at the start of an episode the past is assumed to look like the present).
    """

    def __init__(self, horizon: int) -> None:
        self.frames: deque[dict[str, torch.Tensor]] = deque(maxlen=horizon)

    def clear(self) -> None:
        self.frames.clear()

    def push(self, frame: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Add one frame (each value ``(B, ...)``) and return windows ``(B, To, ...)`` per key."""
        if self.frames:
            last = self.frames[-1]
            if last.keys() != frame.keys() or any(last[k].shape != frame[k].shape for k in frame):
                shapes = {k: tuple(v.shape) for k, v in frame.items()}
                before = {k: tuple(v.shape) for k, v in last.items()}
                raise BatchError(
                    f"observation shapes changed from {before} to {shapes}; call reset() first"
                )
        else:
            for _ in range(self.frames.maxlen - 1):
                self.frames.append(frame)
        self.frames.append(frame)
        return {k: torch.stack([f[k] for f in self.frames], dim=1) for k in frame}
