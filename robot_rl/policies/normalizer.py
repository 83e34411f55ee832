"""Per-feature affine normalization held as buffers, so it travels with the weights.

Built from LeRobot-style stats (``meta/stats.json``: ``{key: {"min", "max", "mean", "std"}}``).
``min_max`` maps ``[min, max]`` to ``[-1, 1]`` (the diffusion default: DDPM clips x0 to that box);
``mean_std`` standardizes. A dimension with no spread (a constant joint) would divide by zero, so
it is only shifted: its training value maps to 0 and back exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_rl.core.errors import ConfigError
from robot_rl.policies.config import NORM_MODES

EPS = 1e-8  # spreads below this count as zero


def _slot(key: str) -> str:
    # Module names cannot contain "."; feature keys do ("observation.state").
    return key.replace(".", "__")


class _Affine(nn.Module):
    """``y = x * scale + offset`` for one feature. Shape of both buffers: the feature's shape."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(shape))
        self.register_buffer("offset", torch.zeros(shape))


class Normalizer(nn.Module):
    """Normalizes named features; identity until :meth:`fit` is given stats.

    Args:
        shapes: feature key -> feature shape, e.g. ``{"action": (7,)}``.
        modes: feature key -> ``"min_max"`` or ``"mean_std"``.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], modes: Mapping[str, str]) -> None:
        super().__init__()
        if set(shapes) != set(modes):
            raise ConfigError(
                f"normalizer shapes {sorted(shapes)} and modes {sorted(modes)} differ"
            )
        for key, mode in modes.items():
            if mode not in NORM_MODES:
                raise ConfigError(
                    f"normalization mode for {key!r} must be one of {NORM_MODES}, got {mode!r}"
                )
        self.modes = dict(modes)
        self.shapes = {k: tuple(s) for k, s in shapes.items()}
        self.features = nn.ModuleDict({_slot(k): _Affine(self.shapes[k]) for k in self.shapes})

    @classmethod
    def from_stats(
        cls,
        stats: Mapping[str, Mapping[str, Any]],
        shapes: Mapping[str, tuple[int, ...]],
        modes: Mapping[str, str],
    ) -> Normalizer:
        """A normalizer for ``shapes``/``modes`` fitted to ``stats`` (extra stats keys ignored)."""
        norm = cls(shapes, modes)
        norm.fit(stats)
        return norm

    @torch.no_grad()
    def fit(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Set every feature's scale/offset from ``stats``; raises ``ConfigError`` naming the key
        whose stats are missing, non-finite or of the wrong shape."""
        for key, mode in self.modes.items():
            if key not in stats:
                raise ConfigError(
                    f"normalizer stats have no entry for {key!r}; found {sorted(stats)}"
                )
            names = ("min", "max") if mode == "min_max" else ("mean", "std")
            lo, hi = (self._stat(stats[key], key, n) for n in names)
            if mode == "min_max":
                spread = hi - lo
                flat = spread < EPS
                scale = np.where(flat, 1.0, 2.0 / np.where(flat, 1.0, spread))
                offset = np.where(flat, -lo, -1.0 - lo * scale)
            else:
                flat = hi < EPS
                scale = np.where(flat, 1.0, 1.0 / np.where(flat, 1.0, hi))
                offset = -lo * scale
            affine = self.features[_slot(key)]
            affine.scale.copy_(torch.from_numpy(scale))
            affine.offset.copy_(torch.from_numpy(offset))

    def _stat(self, entry: Mapping[str, Any], key: str, name: str) -> np.ndarray:
        if name not in entry:
            raise ConfigError(
                f"normalizer stats for {key!r} have no {name!r}; found {sorted(entry)}"
            )
        value = np.asarray(entry[name], dtype=np.float64)
        shape = self.shapes[key]
        if value.size != int(np.prod(shape)):
            raise ConfigError(
                f"normalizer stats {key!r}.{name} has shape {value.shape}, expected {shape}"
            )
        if not np.isfinite(value).all():
            raise ConfigError(
                f"normalizer stats {key!r}.{name} has non-finite values: {value.tolist()}"
            )
        return value.reshape(shape)

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Normalized ``x``. Shape: ``(..., *shape_of(key))`` in and out."""
        affine = self._affine(key)
        return x * affine.scale + affine.offset

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`. Shape: ``(..., *shape_of(key))`` in and out."""
        affine = self._affine(key)
        return (y - affine.offset) / affine.scale

    def _affine(self, key: str) -> _Affine:
        slot = _slot(key)
        if slot not in self.features:
            raise KeyError(f"normalizer has no feature {key!r}; it has {sorted(self.shapes)}")
        return self.features[slot]
