"""Safety for robots that move their base: a humanoid's fall detector, and an RC car's automatic
emergency braking from time-to-collision and its geofence."""

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
    damps = True

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


class Geofence(Filter):
    """Keeps a car-like robot inside a polygon of the map / odometry frame.

    The body is a disk of radius ``body_radius`` whose centre lies ``body_offset`` ahead of the
    pose's origin. Moving forward (the larger of the measured and the commanded speed, as in
    :class:`EmergencyBrake`) at ``v`` needs ``v² / (2 · deceleration)`` to stop; the speed in a
    direction is cut to 0 (the steering is kept) when some fence point lies within that distance
    plus ``margin`` plus the body radius of the centre, on the side the car drives to (the open
    half-disk ahead, or behind when reversing). A half-disk rather than the straight path: the
    car steers while it brakes. A centre outside the fence brakes both ways: a car outside is a
    case for a person, not for the policy.

    Readings: ``pose (N, 3)`` = x, y (m), yaw (rad) of the base frame; ``speed (N,)`` forward
    speed (m/s). A missing or non-finite pose or speed fails closed (brake).

    Args:
        fallback: the safe action.
        dim: action size A.
        polygon: fence vertices ``(M, 2)``, a simple polygon in either orientation.
        margin: m kept between the stopped body and the fence.
        deceleration: m/s² the car is assumed to brake with.
        body_offset, body_radius: the body disk (m).
        speed_index: the speed's entry in the command.
    """

    name = "geofence"

    def __init__(
        self,
        fallback: Fallback,
        dim: int,
        polygon: np.ndarray,
        margin: float,
        deceleration: float,
        body_offset: float = 0.0,
        body_radius: float = 0.0,
        speed_index: int = 1,
    ) -> None:
        poly = np.asarray(polygon, float)
        if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3 or not np.isfinite(poly).all():
            raise ValueError(f"geofence polygon must be >= 3 finite [x, y] points, got {polygon}")
        x, y = poly[:, 0], poly[:, 1]
        if abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) < 1e-9:
            raise ValueError(f"geofence polygon {polygon} encloses no area")
        if not deceleration > 0 or not margin >= 0 or not body_radius >= 0:
            raise ValueError(
                f"geofence needs deceleration > 0, margin >= 0 and body_radius >= 0, got "
                f"{deceleration}, {margin}, {body_radius}"
            )
        edge = np.roll(poly, -1, axis=0) - poly
        keep = (edge != 0).any(axis=-1)  # a repeated vertex is no edge
        self.start, self.edge = poly[keep], edge[keep]  # (E, 2) each
        self.fallback, self.dim, self.speed = fallback, dim, speed_index
        self.margin, self.decel = float(margin), float(deceleration)
        self.offset, self.radius = float(body_offset), float(body_radius)

    def inside(self, c: np.ndarray) -> np.ndarray:
        """``(N,)``: points ``c (N, 2)`` strictly inside the fence (even-odd rule)."""
        a, b = self.start, self.start + self.edge
        cx, cy = c[:, :1], c[:, 1:]
        straddle = (a[:, 1] > cy) != (b[:, 1] > cy)  # (N, E); NaN: False
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x_cross = a[:, 0] + (cy - a[:, 1]) * self.edge[:, 0] / self.edge[:, 1]
        return (straddle & (cx < x_cross)).sum(axis=-1) % 2 == 1

    def fence_ahead(self, c: np.ndarray, d: np.ndarray, reach: np.ndarray) -> np.ndarray:
        """``(N,)``: some fence point ``p`` has ``|p - c| < reach`` and ``(p - c) · d > 0``, for
        centres ``c (N, 2)``, unit directions ``d (N, 2)`` and distances ``reach (N,)``."""
        w = self.start - c[:, None]  # (N, E, 2): edge start relative to the centre
        e = self.edge
        ee = (e * e).sum(axis=-1)  # (E,)
        with np.errstate(invalid="ignore", over="ignore"):
            we = (w * e).sum(axis=-1)  # (N, E)
            # |w + t e|² < reach² on the edge's stretch t0 < t < t1
            disc = we * we - ee * ((w * w).sum(axis=-1) - reach[:, None] ** 2)
            root = np.sqrt(np.maximum(disc, 0.0))
            t0 = np.clip((-we - root) / ee, 0.0, 1.0)
            t1 = np.clip((-we + root) / ee, 0.0, 1.0)
            # (w + t e) · d is linear in t: its largest value on [t0, t1] is at an end
            wd, ed = (w * d[:, None]).sum(axis=-1), (e * d[:, None]).sum(axis=-1)
            ahead = np.maximum(wd + t0 * ed, wd + t1 * ed) > 0
            hit = (disc > 0) & (t0 < t1) & ahead
        # anything NaN on the way (an absurd pose or speed) is not a clear road
        return hit.any(axis=-1) | ~np.isfinite(disc).all(axis=-1)

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, self.dim, self.name)
        pose, speed = state.extra.get("pose"), state.extra.get("speed")
        ok = np.isfinite(a).all(axis=-1) & finite_rows(speed, n)
        pose_ok = pose is not None and np.shape(pose) == (n, 3)
        ok &= finite_rows(pose, n) if pose_ok else np.zeros(n, dtype=bool)
        applied, reasons = a.copy(), []
        if ok.any():
            p, v = np.asarray(pose, float)[ok], np.asarray(speed, float).reshape(n)[ok]
            cmd = a[ok, self.speed]
            heading = np.stack([np.cos(p[:, 2]), np.sin(p[:, 2])], axis=-1)
            centre = p[:, :2] + self.offset * heading
            out = ~self.inside(centre)
            fwd = np.maximum(np.maximum(v, cmd), 0.0)
            back = np.maximum(-np.minimum(v, cmd), 0.0)
            with np.errstate(over="ignore"):
                base = self.radius + self.margin
                block_fwd = out | self.fence_ahead(
                    centre, heading, base + fwd**2 / (2 * self.decel)
                )
                block_back = out | self.fence_ahead(
                    centre, -heading, base + back**2 / (2 * self.decel)
                )
            new = np.where(block_fwd, np.minimum(cmd, 0.0), cmd)
            new = np.where(block_back, np.maximum(new, 0.0), new)
            applied[ok, self.speed] = new
            if out.any():
                reasons.append("outside the geofence: stopped")
            if (new != cmd).any():
                reasons.append("fence within the stopping distance: braking")
        fail = ~ok
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
            reasons.append("missing or non-finite pose, speed or command")
        return applied, make_report(self.name, a, applied, fail, reasons)
