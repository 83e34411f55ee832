"""End-effector workspace box, through forward kinematics of the commanded joint positions."""

from __future__ import annotations

import math

import numpy as np

from robot_rl.safety.base import (
    Fallback,
    Filter,
    Report,
    SafetyState,
    as_actions,
    finite_rows,
    make_report,
    unchanged,
)
from robot_rl.safety.kinematics import SerialChain, pull_back


def wrap_angle(x: np.ndarray) -> np.ndarray:
    """Angles folded into ``[-pi, pi)``."""
    return (x + np.pi) % (2 * np.pi) - np.pi


class WorkspaceBox(Filter):
    """Keeps the tool point of the *commanded* pose inside an axis-aligned box (shrunk by
    ``margin``) and, optionally, the tool's yaw inside ``yaw_range = (lo, hi)``: the arc from
    ``lo`` counter-clockwise to ``hi``, which may cross ±pi (``(3.0, -3.0)`` allows 0.28 rad
    around pi, not 6 rad around 0).

    A command whose tool point leaves the box is pulled back along the joint-space segment from
    the reference (last applied command, else the measured pose) toward it: the farthest of
    ``steps`` evenly spaced points whose tool points, and those of every point before it, lie in
    the box. Joints whose range spans a full turn or more are continuous: their segment takes the
    short way around (``wrap_angle``), so a command of ``+pi - e`` from ``-pi + e`` moves ``2e``,
    not almost a full turn. When the reference itself is outside the box (a robot started out
    there), the point of the segment closest to the box is taken, so the filter never moves the
    tool farther out and lets it come back.

    Args:
        fallback: the safe action.
        chain: forward kinematics of the first ``chain.dof`` command entries (later entries,
            e.g. a gripper, pass through).
        low, high: box corners ``(3,)`` in the chain's base frame (m).
        lower, upper: joint position limits ``(J,)`` (to find continuous joints).
        margin: shrinks the box on every side (m).
        steps: points on the segment that are checked.
        yaw_range: allowed tool yaw arc (rad), or None.
    """

    name = "workspace_box"

    def __init__(
        self,
        fallback: Fallback,
        chain: SerialChain,
        low: np.ndarray,
        high: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        margin: float = 0.0,
        steps: int = 16,
        yaw_range: tuple[float, float] | None = None,
    ) -> None:
        self.fallback, self.chain, self.steps = fallback, chain, int(steps)
        self.low = np.asarray(low, float) + margin
        self.high = np.asarray(high, float) - margin
        if (self.low >= self.high).any():
            raise ValueError(f"workspace margin {margin} leaves an empty box")
        span = (np.asarray(upper, float) - np.asarray(lower, float))[: chain.dof]
        self.continuous = span >= 2 * np.pi
        self.dim = len(lower)
        self._low, self._high = self.low.tolist(), self.high.tolist()
        self.yaw = None
        if yaw_range is not None:
            lo, hi = (float(v) for v in yaw_range)
            self.yaw = (lo, (hi - lo) % (2 * np.pi))  # start and counter-clockwise width

    def violation(self, x: np.ndarray, rot: np.ndarray | None = None) -> np.ndarray:
        """How far tool points ``(M, 3)`` (and orientations ``(M, 3, 3)``) are outside the box
        and the yaw arc (0 inside): metres, plus radians of yaw."""
        out = np.maximum(np.maximum(self.low - x, x - self.high), 0.0).max(axis=-1)
        if self.yaw is not None and rot is not None:
            lo, width = self.yaw
            yaw = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
            past = (yaw - lo) % (2 * np.pi)  # how far counter-clockwise from lo
            # outside the arc: the distance to the nearer end
            gap = np.where(past <= width, 0.0, np.minimum(past - width, 2 * np.pi - past))
            out = out + gap
        return out

    def _violation_of(self, q: np.ndarray) -> np.ndarray:
        return self.violation(*self.chain.pose(q))

    def inside_one(self, q: list[float]) -> bool:
        """Whether one pose's tool is in the box and yaw arc (the per-tick fast path in Python
        floats; NaN fails every comparison)."""
        _, _, tool, rot = self.chain._frames_one(q)
        for t, lo, hi in zip(tool, self._low, self._high):
            if not lo <= t <= hi:
                return False
        if self.yaw is None:
            return True
        lo, width = self.yaw
        return (math.atan2(rot[1][0], rot[0][0]) - lo) % (2 * math.pi) <= width

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n, dof = state.n, self.chain.dof
        a = as_actions(action, n, self.dim, self.name)
        ref = state.last_command if state.last_command is not None else state.q
        ref_ok = finite_rows(ref, n)
        fast = n == 1 and bool(ref_ok[0]) and np.isfinite(a).all()
        if fast and self.inside_one(a[0, :dof].tolist()):
            return a, unchanged(self.name, n)
        fail = ~np.isfinite(a).all(axis=-1) | ~ref_ok
        applied, reasons = a.copy(), []
        live = ~fail
        if live.any():
            outside = np.zeros(n, dtype=bool)
            outside[live] = self._violation_of(a[live, :dof]) > 0
            if outside.any():
                reasons.append("tool outside the workspace box (or yaw range)")
                r, target = ref[outside, :dof], a[outside, :dof]
                d = target - r
                d[:, self.continuous] = wrap_angle(d[:, self.continuous])
                applied[outside, :dof] = pull_back(r, d, self._violation_of, self.steps)
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
            reasons.append("non-finite command or reference")
        return applied, make_report(self.name, a, applied, fail, reasons)
