"""Analytic 2-D lidar: batched ray casting against line segments (the track boundaries).

Ray ``p + t·d`` (t ≥ 0, ``d`` unit) meets segment ``a + u·e`` (0 ≤ u ≤ 1) where
``t = (w × e) / (d × e)`` and ``u = (w × d) / (d × e)`` with ``w = a − p`` and ``×`` the 2-D cross
product. ``w × e`` depends on the car and segment only, so it is computed once per car and shared by
all beams; the range is the smallest valid ``t``, clipped to ``max_range``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robot_rl.core import ConfigError


@dataclass(frozen=True)
class LidarConfig:
    num_beams: int = 1080
    """Beams spread evenly over the field of view (f1tenth_gym: 1080)."""
    fov: float = 4.7
    """Field of view (rad), centred on the car's heading."""
    max_range: float = 30.0
    """Beams that hit nothing (or hit farther) read this range (m)."""
    noise_std: float = 0.0
    """Standard deviation (m) of additive Gaussian range noise."""
    mount_offset: float = 0.0
    """Sensor position ahead of the centre of gravity along the heading (m)."""
    max_elements: int = 1 << 18
    """Cars × beams × segments per chunk: bounds temporary memory. On CPU, ~1 MB temporaries
    (2^18 float32) stay in cache and ran 1.6× faster than 2^22; on a GPU raise it."""

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"LidarConfig.num_beams must be >= 1, got {self.num_beams}")
        if not 0 < self.fov <= 2 * math.pi:
            raise ConfigError(f"LidarConfig.fov must be in (0, 2π], got {self.fov}")
        if self.max_range <= 0 or self.noise_std < 0:
            raise ConfigError(
                f"LidarConfig needs max_range > 0 and noise_std >= 0, got "
                f"{self.max_range}, {self.noise_std}"
            )


def beam_angles(num_beams: int, fov: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Beam angles relative to the heading, shape ``(num_beams,)``, from −fov/2 to +fov/2."""
    if num_beams == 1:
        return torch.zeros(1, device=device, dtype=dtype)
    return torch.linspace(-fov / 2, fov / 2, num_beams, device=device, dtype=dtype)


def cast_rays(
    origin: torch.Tensor,
    directions: torch.Tensor,
    segments: torch.Tensor,
    max_range: float,
    max_elements: int = 1 << 18,
) -> torch.Tensor:
    """Distance along each ray to the nearest segment.

    Args:
        origin: Shape ``(N, 2)``, one ray origin per car.
        directions: Shape ``(N, B, 2)``, unit ray directions.
        segments: Shape ``(S, 2, 2)``: [segment, start/end, xy].
        max_range: range reported when nothing is hit closer.
        max_elements: cars per chunk are chosen so chunk × B × S stays below this.

    Returns:
        Shape ``(N, B)`` ranges in ``[0, max_range]``.
    """
    n, b = directions.shape[:2]
    a = segments[:, 0]  # (S, 2)
    ex, ey = (segments[:, 1] - a).unbind(-1)  # (S,)
    chunk = max(1, max_elements // max(1, b * segments.shape[0]))
    out = []
    for lo in range(0, n, chunk):
        p = origin[lo : lo + chunk]
        d = directions[lo : lo + chunk]
        wx = a[None, :, 0] - p[:, None, 0]  # (n, S)
        wy = a[None, :, 1] - p[:, None, 1]
        w_cross_e = (wx * ey - wy * ex)[:, None, :]  # (n, 1, S)
        dx, dy = d[..., 0:1], d[..., 1:2]  # (n, B, 1)
        inv = 1.0 / (dx * ey - dy * ex)  # (n, B, S); ±inf for a ray parallel to a segment
        t = w_cross_e * inv
        u = (wx[:, None, :] * dy - wy[:, None, :] * dx) * inv
        miss = (t < 0) | (u < 0) | (u > 1) | ~torch.isfinite(t)
        out.append(t.masked_fill_(miss, max_range).amin(dim=-1).clamp(max=max_range))
    return torch.cat(out)


class Lidar:
    """A lidar fixed on each car, casting against a fixed set of segments (e.g. track boundaries).

    Args:
        segments: Shape ``(S, 2, 2)``; :meth:`Track.boundary_segments` gives them for a track.
        cfg: beam layout, range, noise (defaults: :class:`LidarConfig`).
    """

    def __init__(self, segments: torch.Tensor, cfg: LidarConfig | None = None):
        if segments.ndim != 3 or segments.shape[1:] != (2, 2):
            raise ValueError(f"segments must have shape (S, 2, 2), got {tuple(segments.shape)}")
        cfg = cfg or LidarConfig()
        self.cfg = cfg
        self.segments = segments
        self.angles = beam_angles(cfg.num_beams, cfg.fov, segments.device, segments.dtype)

    def scan(self, pose: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ranges (N, num_beams) from poses ``(N, 3)`` = (x, y, yaw), beams ordered right to left.

        Noise, if configured, is drawn from ``generator`` (for reproducible scans) and the result
        is clipped to ``[0, max_range]``.
        """
        if pose.ndim != 2 or pose.shape[1] < 3:
            raise ValueError(f"pose must have shape (N, 3), got {tuple(pose.shape)}")
        yaw = pose[:, 2]
        origin = pose[:, :2]
        if self.cfg.mount_offset:
            origin = origin + self.cfg.mount_offset * torch.stack((yaw.cos(), yaw.sin()), dim=-1)
        theta = yaw[:, None] + self.angles
        directions = torch.stack((theta.cos(), theta.sin()), dim=-1)
        ranges = cast_rays(
            origin, directions, self.segments, self.cfg.max_range, self.cfg.max_elements
        )
        if self.cfg.noise_std > 0:
            noise = torch.randn(
                ranges.shape, generator=generator, device=ranges.device, dtype=ranges.dtype
            )
            ranges = (ranges + self.cfg.noise_std * noise).clamp(0.0, self.cfg.max_range)
        return ranges
