"""The racing expert: pure pursuit of the centreline with a curvature-based speed profile."""

from __future__ import annotations

import math

import torch

from robot_rl.envs.experts.base import EXPERTS, Expert
from robot_rl.envs.tasks.car.race import RaceEnv
from robot_rl.envs.tasks.car.track import Track
from robot_rl.envs.vec_env import Obs


def speed_profile(
    track: Track, v_max: float, lateral_accel: float, braking: float, smooth: int = 3
) -> torch.Tensor:
    """Highest speed (M,) at each centreline point that keeps the lateral acceleration under
    ``lateral_accel`` (v = √(a/|κ|)) and lets the car brake at ``braking`` m/s² into every slower
    point ahead (a backward pass around the closed loop)."""
    heading = torch.atan2(track.tangent[:, 1], track.tangent[:, 0]).double()
    turn = torch.remainder(heading - heading.roll(1) + math.pi, 2 * math.pi) - math.pi
    seg = track.segment_length.double()
    kappa = (turn / (0.5 * (seg + seg.roll(1)))).abs()
    if smooth:  # the largest curvature within ±smooth points: the car's path is no point-mass
        kappa = torch.stack([kappa.roll(k) for k in range(-smooth, smooth + 1)]).amax(0)
    v = (lateral_accel / kappa.clamp(min=1e-6)).sqrt().clamp(max=v_max)
    m = len(v)
    for _ in range(2):  # twice round the loop so the braking from the start line wraps
        for i in range(m - 1, -1, -1):
            nxt = v[(i + 1) % m]
            v[i] = min(float(v[i]), math.sqrt(float(nxt) ** 2 + 2 * braking * float(seg[i])))
    return v.to(track.centerline.dtype)


@EXPERTS.register("rccar_race")
class RaceExpert(Expert):
    """Pure pursuit from the rear axle of a point ``lookahead = base + gain·v`` metres ahead on the
        centreline, at the profile speed of a point a little ahead (the speed loop lags).

        It reads the car's privileged pose and track position (``env.pose``, ``env.s``), as scripted
        demonstrators do. A noise hesitation brakes (speed action −1, the bottom of the speed range,
    for that step) and keeps the steering.
    """

    env: RaceEnv
    lateral_accel = 5.0
    """m/s², about half of μ·g: margin for the tyres' slip and the randomised friction."""
    braking = 4.0
    lookahead_base = 0.6
    lookahead_gain = 0.3
    lookahead_max = 3.0
    preview_s = 0.3
    """Seconds of travel ahead at which the speed profile is read."""

    def __init__(self, env: RaceEnv, noise=0.0, seed=None, bias=None):
        _, hi = env.cfg.speed_range
        self.profiles = [speed_profile(t, hi, self.lateral_accel, self.braking) for t in env.tracks]
        vehicle = env.profile.extra.get("vehicle", {})
        self.wheelbase = float(vehicle.get("wheelbase", 0.3302))
        self.lr = float(vehicle.get("lr", 0.17145))
        super().__init__(env, noise=noise, seed=seed, bias=bias)

    def reset(self, ids: torch.Tensor | None = None) -> None:
        """Pure pursuit keeps no memory between steps."""

    def _hesitate(self, a: torch.Tensor, pause: torch.Tensor) -> None:
        a[pause, 1] = -1.0

    def _clean_action(self, obs: Obs) -> torch.Tensor:
        env = self.env
        pose, v = env.pose, env.speed.clamp(min=0.0)
        command = torch.zeros(env.num_envs, 2, device=env.device)
        for t, ids in env.track_groups:
            track, profile = env.tracks[t], self.profiles[t]
            yaw = pose[ids, 2]
            fwd = torch.stack((yaw.cos(), yaw.sin()), dim=-1)
            rear = pose[ids, :2] - self.lr * fwd
            ld = (self.lookahead_base + self.lookahead_gain * v[ids]).clamp(max=self.lookahead_max)
            target, _ = track.point_at(env.s[ids] + ld)
            d = target - rear
            x = fwd[:, 0] * d[:, 0] + fwd[:, 1] * d[:, 1]
            y = -fwd[:, 1] * d[:, 0] + fwd[:, 0] * d[:, 1]
            dist = torch.sqrt(x * x + y * y).clamp(min=1e-3)
            command[ids, 0] = torch.atan(2.0 * self.wheelbase * y / (dist * dist))
            # the slower of here and a little ahead: the speed loop lags, and the car leaving a
            # bend must not speed up before it is out of it
            ahead = env.s[ids] + self.preview_s * v[ids]
            command[ids, 1] = torch.minimum(
                _interp(track, profile, env.s[ids]), _interp(track, profile, ahead)
            )
        return env.command_to_action(command)


def _interp(track: Track, values: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``values`` (M,) given at the centreline points, linearly interpolated at arc lengths s."""
    s = s % track.length
    i = (torch.searchsorted(track.s, s, right=True) - 1).clamp(0, len(track.s) - 1)
    u = ((s - track.s[i]) / track.segment_length[i]).clamp(0.0, 1.0)
    return torch.lerp(values[i], values[(i + 1) % len(values)], u)
