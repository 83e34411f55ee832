"""Safety for robots that move their base: a humanoid's fall detector and an RC car's automatic
emergency braking from time-to-collision."""

from __future__ import annotations

import numpy as np

from robot_rl.safety.base import (
    Fallback,
    Filter,
    Report,
    SafetyState,
    as_actions,
    finite_rows,
    make_report,
)


class FallDetector(Filter):
    """Damping once the base's roll or pitch (``state.extra["rpy"] (N, 3)``, rad) passes its
    threshold; latched until :meth:`reset` (a robot on the ground must be picked up first).
    Missing or non-finite attitude fails closed."""

    name = "fall_detector"

    def __init__(self, fallback: Fallback, max_roll: float, max_pitch: float, dim: int) -> None:
        self.fallback, self.dim = fallback, dim
        self.limit = np.array([max_roll, max_pitch], float)
        self.fallen: np.ndarray | None = None  # (N,) latched falls

    def detect(self, state: SafetyState) -> np.ndarray:
        rpy = state.extra.get("rpy")
        ok = finite_rows(rpy, state.n)
        tilted = np.zeros(state.n, dtype=bool)
        if ok.any():
            tilted[ok] = (np.abs(np.asarray(rpy, float)[ok, :2]) > self.limit).any(axis=-1)
        return tilted | ~ok

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        a = as_actions(action, state.n, self.dim, self.name)
        fail = self.detect(state)
        if self.fallen is not None and len(self.fallen) == state.n:
            fail |= self.fallen
        fail |= ~np.isfinite(a).all(axis=-1)
        applied = a.copy()
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
        reasons = ["fallen (roll/pitch beyond limit, or no attitude)"] if fail.any() else []
        return applied, make_report(self.name, a, applied, fail, reasons)

    def commit(self, state: SafetyState, applied: np.ndarray) -> None:
        now = self.detect(state)
        self.fallen = (
            now if self.fallen is None or len(self.fallen) != len(now) else self.fallen | now
        )

    def reset(self) -> None:
        self.fallen = None

    def reset_rows(self, rows: np.ndarray) -> None:
        if self.fallen is not None:
            self.fallen[rows] = False


class EmergencyBrake(Filter):
    """Automatic emergency braking for a car-like robot from a planar range scan.

    The command is ``[steer, speed]`` (indices ``steer_index``, ``speed_index``; m/s, forward
    positive). Beams whose hit lies in the corridor swept by the body (``|y| <= half_width``) ahead
    of the front (``x > front``) or behind the rear (``x < -rear``) give the free distance in
    each direction; the time to collision is that distance over the closing speed (the larger of
    the measured and the commanded speed in that direction). Below ``ttc_s``, or closer than
    ``stop_distance``, the speed in that direction is cut to 0 (the steering is kept).

    Readings: ``ranges (N, K)`` (m; +inf = no return, values below ``range_min`` are not
    returns either), ``range_angles (K,)`` (rad, 0 = forward, counter-clockwise), ``speed (N,)``
    measured forward speed. A NaN range, or a missing scan or speed, fails closed (brake).
    """

    name = "emergency_brake"

    def __init__(
        self,
        fallback: Fallback,
        dim: int,
        ttc_s: float = 0.8,
        stop_distance: float = 0.25,
        half_width: float = 0.15,
        front: float = 0.2,
        rear: float = 0.2,
        range_min: float = 0.02,
        steer_index: int = 0,
        speed_index: int = 1,
    ) -> None:
        self.fallback, self.dim, self.ttc, self.stop = fallback, dim, float(ttc_s), stop_distance
        self.half_width, self.front, self.rear, self.range_min = half_width, front, rear, range_min
        self.steer, self.speed = steer_index, speed_index

    def free_distance(
        self, ranges: np.ndarray, angles: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Free distance ahead and behind ``(N,)`` each (inf when nothing is in the corridor)."""
        r = np.where(ranges >= self.range_min, ranges, np.inf)
        with np.errstate(invalid="ignore"):
            x, y = r * np.cos(angles), r * np.sin(angles)
            lane = np.abs(y) <= self.half_width
            ahead = np.where(lane & (x > self.front), x - self.front, np.inf).min(axis=-1)
            behind = np.where(lane & (x < -self.rear), -x - self.rear, np.inf).min(axis=-1)
        return ahead, behind

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, self.dim, self.name)
        ranges, angles = state.extra.get("ranges"), state.extra.get("range_angles")
        speed = state.extra.get("speed")
        fail = ~np.isfinite(a).all(axis=-1) | ~finite_rows(speed, n)
        scan_ok = (
            ranges is not None
            and angles is not None
            and np.shape(ranges)[0] == n
            and np.shape(ranges)[-1] == np.shape(angles)[-1]
        )
        applied, reasons = a.copy(), []
        if not scan_ok:
            fail[:] = True
            reasons.append("no range scan")
        else:
            ranges, angles = np.asarray(ranges, float), np.asarray(angles, float)
            # a range may be +inf (no return); an angle must be a number
            fail |= np.isnan(ranges).any(axis=-1) | (not np.isfinite(angles).all())
            live = ~fail
            if live.any():
                ahead, behind = self.free_distance(ranges[live], angles)
                v = np.asarray(speed, float).reshape(n)[live]
                cmd = a[live, self.speed]
                fwd, back = (
                    np.maximum(np.maximum(v, cmd), 0.0),
                    np.maximum(-np.minimum(v, cmd), 0.0),
                )
                with np.errstate(divide="ignore", invalid="ignore"):
                    block_fwd = (ahead < self.stop) | (ahead < self.ttc * fwd)
                    block_back = (behind < self.stop) | (behind < self.ttc * back)
                new = np.where(block_fwd, np.minimum(cmd, 0.0), cmd)
                new = np.where(block_back, np.maximum(new, 0.0), new)
                applied[live, self.speed] = new
                if (new != cmd).any():
                    reasons.append("time to collision below the limit: braking")
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
            reasons.append("missing or NaN scan, speed or command")
        return applied, make_report(self.name, a, applied, fail, reasons)
