"""Control-barrier-function filter: a QP keeps the tool out of obstacle half-spaces and spheres.

For a point ``x`` moved by a step ``u`` and barriers ``h_i(x) >= 0`` (the safe set), the
discrete-time CBF condition ``h_i(x + u) >= (1 - gamma) h_i(x)`` is linearized as
``grad h_i(x) · u >= -gamma h_i(x)``. The filter solves

    min ||u - u_des||²   s.t.   grad h_i · u >= -gamma h_i,   lb <= u <= ub

with DAQP (a dual active-set QP solver, through qpsolvers). Half-spaces are linear and spheres'
``h = ||x - c|| - r`` is convex, so for a point that moves exactly by ``u`` (an integrator) the
linearization is a lower bound and the safe set stays invariant. For an arm, ``u`` is the joint
step and ``grad h`` is composed with the tool Jacobian.

Degenerate and infeasible cases fail closed: a point at a sphere's centre (no gradient), a
solver that returns nothing or a non-finite answer, a point already inside an obstacle for which
no step within the bounds satisfies the condition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import qpsolvers

from robot_rl.safety.base import (
    Fallback,
    Filter,
    Report,
    SafetyState,
    as_actions,
    finite_rows,
    make_report,
    period_fraction,
    unchanged,
)
from robot_rl.safety.kinematics import SerialChain, pull_back


@dataclass(frozen=True)
class Obstacles:
    """Keep-out regions. Half-spaces: the safe side is ``normal · x >= offset``; spheres: the
    safe set is outside ``||x - center|| <= radius``.

    Shapes: ``normals (H, 3)``, ``offsets (H,)``, ``centers (S, 3)``, ``radii (S,)``.
    """

    normals: np.ndarray
    offsets: np.ndarray
    centers: np.ndarray
    radii: np.ndarray

    @staticmethod
    def build(
        halfspaces: list[dict] | None = None,
        spheres: list[dict] | None = None,
        dim: int = 3,
        with_margins: bool = False,
    ) -> Obstacles:
        """From config entries ``{normal, offset}`` and ``{center, radius}``; each may carry a
        ``margin`` (m) that the filter keeps (``with_margins``) and a violation count ignores."""
        hs, sp = halfspaces or [], spheres or []
        normals = np.array([h["normal"] for h in hs], float).reshape(-1, dim)
        norms = np.linalg.norm(normals, axis=1)
        if (norms <= 0).any():
            raise ValueError("a half-space needs a nonzero normal")
        offsets = np.array([h["offset"] for h in hs], float) / np.where(norms > 0, norms, 1)
        centers = np.array([s["center"] for s in sp], float).reshape(-1, dim)
        radii = np.array([s["radius"] for s in sp], float)
        if with_margins:
            offsets = offsets + np.array([h.get("margin", 0.0) for h in hs], float)
            radii = radii + np.array([s.get("margin", 0.0) for s in sp], float)
        if (radii <= 0).any():
            raise ValueError("a sphere needs a radius > 0")
        return Obstacles(normals / norms[:, None] if len(hs) else normals, offsets, centers, radii)

    def barriers(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``h (M,)`` and ``grad h (M, dim)`` at one point ``x (dim,)``; NaN gradient at a sphere
        centre (degenerate)."""
        h_half = self.normals @ x - self.offsets
        diff = x - self.centers
        dist = np.linalg.norm(diff, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            g_sphere = np.where(dist[:, None] > 1e-9, diff / dist[:, None], np.nan)
        return np.concatenate([h_half, dist - self.radii]), np.concatenate([self.normals, g_sphere])


def cbf_step(
    u_des: np.ndarray,
    h: np.ndarray,
    grad: np.ndarray,
    gamma: float,
    lb: np.ndarray,
    ub: np.ndarray,
) -> np.ndarray | None:
    """The step closest to ``u_des (n,)`` with ``grad (M, n) · u >= -gamma · h (M,)`` and
    ``lb <= u <= ub``; ``None`` when infeasible or degenerate. Solves no QP when ``u_des``
    already satisfies everything, bounds included (clipping a step into its bounds can break a
    barrier condition the unclipped step met)."""
    if not (np.isfinite(h).all() and np.isfinite(grad).all()):
        return None
    inside = bool(((u_des >= lb) & (u_des <= ub)).all())
    if inside and (len(h) == 0 or (grad @ u_des >= -gamma * h).all()):
        return u_des.copy()
    u = qpsolvers.solve_qp(
        np.eye(len(u_des)), -u_des, -grad, gamma * h, lb=lb, ub=ub, solver="daqp"
    )
    if u is None or not np.isfinite(u).all():
        return None
    # the solver's tolerance may leave a hair of violation: accept 1e-7, refuse anything worse
    if (grad @ u < -gamma * h - 1e-7).any() or (u < lb - 1e-9).any() or (u > ub + 1e-9).any():
        return None
    return np.clip(u, lb, ub)


class PointCBF(Filter):
    """The CBF filter for a point robot moved by its command: ``x' = x + a`` (an integrator,
    ``A = dim``). ``state.q`` is the point's position; ``a`` is its step, bounded by
    ``±max_step``."""

    name = "cbf"

    def __init__(
        self, fallback: Fallback, obstacles: Obstacles, gamma: float, max_step: np.ndarray
    ) -> None:
        self.fallback, self.obstacles, self.gamma = fallback, obstacles, float(gamma)
        self.max_step = np.asarray(max_step, float)

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, len(self.max_step), self.name)
        fail = ~np.isfinite(a).all(axis=-1) | ~finite_rows(state.q, n)
        applied, reasons = a.copy(), []
        for i in np.flatnonzero(~fail):
            h, grad = self.obstacles.barriers(state.q[i])
            u = cbf_step(a[i], h, grad, self.gamma, -self.max_step, self.max_step)
            if u is None:
                fail[i] = True
                reasons.append("no safe step (infeasible or degenerate barrier)")
            else:
                applied[i] = u
        if (applied != a)[~fail].any():
            reasons.append("step would enter an obstacle")
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
        return applied, make_report(self.name, a, applied, fail, reasons)


class ArmCBF(Filter):
    """The CBF filter on points of an arm's hand: the joint step ``u = a - q`` is chosen with
    ``grad h(p_k) · J_k(q) u >= -gamma h(p_k)`` for every guarded point ``p_k`` and every
    barrier, within the rate and position bounds on ``u``.

    Args:
        fallback: the safe action.
        chain: kinematics of the first ``chain.dof`` joints (later entries pass through).
        obstacles: keep-out regions for the guarded points.
        gamma: CBF decay rate in (0, 1].
        lower, upper: position limits ``(J,)``; velocity ``(J,)`` and ``dt`` bound the step to
            ``±2 · velocity · dt`` from the measured pose (the position controller's tracking lag
            fits in that band; the rate limiter bounds the command itself).
        points: guarded points as offsets ``(K, 3)`` from the tool point in the tool frame
            (default: the tool point only); e.g. the fingertips, which reach past the tool point.
        rate_step: the rate limiter's largest step per joint ``(J,)``: the corrected command
            stays within it of the last applied command, so the CBF never undoes the rate limit.
    """

    name = "cbf"

    def __init__(
        self,
        fallback: Fallback,
        chain: SerialChain,
        obstacles: Obstacles,
        gamma: float,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        dt: float,
        points: np.ndarray | None = None,
        rate_step: np.ndarray | None = None,
    ) -> None:
        self.fallback, self.chain, self.obstacles = fallback, chain, obstacles
        # the rate limiter's band around the last command, which the correction must keep
        self.rate_step = None if rate_step is None else np.asarray(rate_step, float)
        self.gamma = float(gamma)
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.step = 2.0 * np.asarray(velocity, float) * dt
        self.dt = float(dt)
        self.points = (
            np.zeros((1, 3)) if points is None else np.asarray(points, float).reshape(-1, 3)
        )
        d = chain.dof  # the same numbers as floats for passes_one
        self._lower, self._upper = self.lower[:d].tolist(), self.upper[:d].tolist()
        self._step = self.step[:d].tolist()
        self._points = self.points.tolist()
        self._halfspaces = list(zip(obstacles.normals.tolist(), obstacles.offsets.tolist()))
        self._spheres = list(zip(obstacles.centers.tolist(), obstacles.radii.tolist()))

    def guarded(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Guarded points ``(N, K, 3)`` and their Jacobians ``(N, K, 3, J)`` at poses ``q``."""
        origins, axes, tool, rot = self.chain.frames_of(q)
        pts = tool[:, None] + np.einsum("nij,kj->nki", rot, self.points)
        jac = np.cross(axes[:, None], pts[:, :, None] - origins[:, None])  # (N, K, J, 3)
        return pts, jac.transpose(0, 1, 3, 2)

    def passes_one(self, q: list[float], a: list[float]) -> bool:
        """Whether one robot's command already meets every constraint (the per-tick fast path
        in Python floats; NaN fails every comparison, so it goes to the full path)."""
        origins, axes, (tx, ty, tz), r = self.chain._frames_one(q)
        u = [aj - qj for aj, qj in zip(a, q)]
        for uj, aj, lo, hi, step in zip(u, a, self._lower, self._upper, self._step):
            if not (-step <= uj <= step and lo <= aj <= hi):
                return False
        g = self.gamma
        for ex, ey, ez in self._points:
            px = tx + r[0][0] * ex + r[0][1] * ey + r[0][2] * ez
            py = ty + r[1][0] * ex + r[1][1] * ey + r[1][2] * ez
            pz = tz + r[2][0] * ex + r[2][1] * ey + r[2][2] * ez
            vx = vy = vz = 0.0  # the point's displacement J u for the step u
            for (ox, oy, oz), (ax, ay, az), uj in zip(origins, axes, u):
                dx, dy, dz = px - ox, py - oy, pz - oz
                vx += (ay * dz - az * dy) * uj
                vy += (az * dx - ax * dz) * uj
                vz += (ax * dy - ay * dx) * uj
            for (nx, ny, nz), off in self._halfspaces:
                if not nx * vx + ny * vy + nz * vz >= -g * (nx * px + ny * py + nz * pz - off):
                    return False
            for (cx, cy, cz), rad in self._spheres:
                dx, dy, dz = px - cx, py - cy, pz - cz
                dist = math.sqrt(dx * dx + dy * dy + dz * dz)
                if not (dist > 1e-9 and (dx * vx + dy * vy + dz * vz) / dist >= -g * (dist - rad)):
                    return False
        return True

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n, dof = state.n, self.chain.dof
        a = as_actions(action, n, len(self.lower), self.name)
        tail_ok = dof == a.shape[1] or bool(
            ((a[:, dof:] >= self.lower[dof:]) & (a[:, dof:] <= self.upper[dof:])).all()
        )
        rate_step = None
        if self.rate_step is not None:
            rate_step = self.rate_step * period_fraction(state, self.dt)
        in_band = rate_step is None or state.last_command is None
        if not in_band and state.last_command.shape == a.shape:
            d = np.abs(a[0, :dof] - state.last_command[0, :dof])
            in_band = bool((d <= rate_step[:dof]).all())
        if (
            n == 1
            and tail_ok
            and in_band
            and self.passes_one(state.q[0, :dof].tolist(), a[0, :dof].tolist())
            and self.clear_one(a[0, :dof].tolist())
        ):
            return a, unchanged(self.name, n)
        fail = ~np.isfinite(a).all(axis=-1) | ~finite_rows(state.q, n)
        applied, reasons = a.copy(), []
        live = np.flatnonzero(~fail)
        last = state.last_command
        last_ok = finite_rows(last, n)
        if len(live):
            q = state.q[live, :dof]
            pts, jac = self.guarded(q)
            for row, i in enumerate(live):
                hs, gs = zip(*(self.obstacles.barriers(p) for p in pts[row]))
                h = np.concatenate(hs)
                grad = np.concatenate([g @ j for g, j in zip(gs, jac[row])])
                lb = np.maximum(-self.step[:dof], self.lower[:dof] - q[row])
                ub = np.minimum(self.step[:dof], self.upper[:dof] - q[row])
                if rate_step is not None and last is not None and last_ok[i]:
                    rel = last[i, :dof] - q[row]
                    lb = np.maximum(lb, rel - rate_step[:dof])
                    ub = np.minimum(ub, rel + rate_step[:dof])
                u_des = a[i, :dof] - q[row]
                u = None if (lb > ub).any() else cbf_step(u_des, h, grad, self.gamma, lb, ub)
                if u is None:
                    fail[i] = True
                    reasons.append("no safe step (infeasible or degenerate barrier)")
                else:
                    applied[i, :dof] = q[row] + u
            # the barrier was linearized: check the commanded pose itself, and pull a command
            # whose hand would end up in a region back toward the measured pose
            ok = np.flatnonzero(~fail)
            if len(ok):
                q, cmd = state.q[ok, :dof], applied[ok, :dof]
                inside = self.clearance(cmd) < 0
                if inside.any():
                    start, delta = q[inside], cmd[inside] - q[inside]
                    applied[ok[inside], :dof] = pull_back(start, delta, self._intrusion)
        if (applied != a)[~fail].any():
            reasons.append("step would bring the hand into an obstacle or past a limit")
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
        return applied, make_report(self.name, a, applied, fail, reasons)

    def clearance(self, q: np.ndarray) -> np.ndarray:
        """The smallest barrier value ``(N,)`` over guarded points and regions at poses ``q``
        (m; negative inside a region)."""
        _, _, tool, rot = self.chain.frames_of(q)
        pts = tool[:, None] + np.einsum("nij,kj->nki", rot, self.points)  # (N, K, 3)
        o = self.obstacles
        h = [pts @ o.normals.T - o.offsets]
        h.append(np.linalg.norm(pts[:, :, None] - o.centers, axis=-1) - o.radii)
        return np.concatenate([x.reshape(len(q), -1) for x in h], axis=-1).min(
            axis=-1, initial=np.inf
        )

    def _intrusion(self, q: np.ndarray) -> np.ndarray:
        """How deep ``(N,)`` the hand at poses ``q`` is in a region (0 when clear), m."""
        return np.maximum(-self.clearance(q), 0.0)

    def clear_one(self, a: list[float]) -> bool:
        """:meth:`clearance` ``>= 0`` for one pose, in Python floats."""
        _, _, (tx, ty, tz), r = self.chain._frames_one(a)
        for ex, ey, ez in self._points:
            px = tx + r[0][0] * ex + r[0][1] * ey + r[0][2] * ez
            py = ty + r[1][0] * ex + r[1][1] * ey + r[1][2] * ez
            pz = tz + r[2][0] * ex + r[2][1] * ey + r[2][2] * ez
            for (nx, ny, nz), off in self._halfspaces:
                if not nx * px + ny * py + nz * pz - off >= 0:
                    return False
            for (cx, cy, cz), rad in self._spheres:
                if not (px - cx) ** 2 + (py - cy) ** 2 + (pz - cz) ** 2 >= rad * rad:
                    return False
        return True
