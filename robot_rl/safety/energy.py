"""Energy-tank passivity filter for contact-rich motion (Ferraguti et al., "A tank-based
approach to impedance control with variable stiffness", ICRA 2013; the idea, our code).

A position-controlled joint behaves like a spring of stiffness ``K`` pulling toward its command,
so the controller does work ``P dt = sum_j K_j (a_j - q_j) dq_j dt`` on the robot (and through it
on whatever it touches). The tank holds the energy the policy may still inject: each tick the
planned work is paid from it, it refills slowly (``refill_w``) up to ``capacity_j``, and a command
whose work would drain it below ``floor_j`` is pulled toward the measured pose until the work fits.
Commands that brake the motion (negative work) always pass. A robot pushing into the world with
a policy that keeps winding up its command thus runs out of energy instead of crushing anything.
"""

from __future__ import annotations

import numpy as np

from robot_rl.safety.base import (
    Fallback,
    Report,
    SafetyState,
    as_actions,
    finite_rows,
    make_report,
    unchanged,
)


class EnergyTank:
    """Args:
    fallback: the safe action.
    stiffness: ``K (J,)`` of the position controller (N·m/rad; N/m for a gripper).
    dt: control period (s).
    capacity_j, floor_j, initial_j: tank bounds and start level (J).
    refill_w: power returned to the tank every second (W).
    """

    name = "energy_tank"

    def __init__(
        self,
        fallback: Fallback,
        stiffness: np.ndarray,
        dt: float,
        capacity_j: float = 2.0,
        floor_j: float = 0.0,
        initial_j: float | None = None,
        refill_w: float = 1.0,
    ) -> None:
        if not 0 <= floor_j < capacity_j:
            raise ValueError(
                f"energy tank needs 0 <= floor < capacity, got {floor_j}, {capacity_j}"
            )
        self.fallback, self.dt = fallback, float(dt)
        self.k = np.asarray(stiffness, float)
        self.capacity, self.floor, self.refill = float(capacity_j), float(floor_j), float(refill_w)
        self.initial = self.capacity if initial_j is None else float(initial_j)
        self.level: np.ndarray | None = None  # (N,), created on the first tick

    def levels(self, n: int) -> np.ndarray:
        """The tank levels ``(N,)``; read only (the tank starts full until the first commit)."""
        if self.level is None or len(self.level) != n:
            return np.full(n, self.initial)
        return self.level

    def work(self, state: SafetyState, action: np.ndarray) -> np.ndarray:
        """The work ``(N,)`` a command would do in one tick (J); inf when it overflows."""
        with np.errstate(over="ignore", invalid="ignore"):
            w = (self.k * (action - state.q) * state.dq).sum(axis=-1) * self.dt
        return np.where(np.isnan(w), np.inf, w)

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, len(self.k), self.name)
        fits = (
            state.dq is not None
            and state.q.shape == a.shape
            and np.isfinite(a).all()
            and (self.work(state, a) <= self.levels(n) - self.floor).all()  # False for NaN
        )
        if fits:  # the fast path
            return a, unchanged(self.name, n)
        fail = ~np.isfinite(a).all(axis=-1) | ~finite_rows(state.q, n) | ~finite_rows(state.dq, n)
        applied, reasons = a.copy(), []
        live = ~fail
        if live.any():
            budget = self.levels(n)[live] - self.floor
            q = state.q[live]
            offset = a[live] - q
            with np.errstate(over="ignore", invalid="ignore"):
                w = (self.k * offset * state.dq[live]).sum(axis=-1) * self.dt
            # an absurd command (1e306 rad) overflows the work: that row fails closed
            fail[live] = ~np.isfinite(w)
            live = ~fail
            budget, q, offset, w = (x[np.isfinite(w)] for x in (budget, q, offset, w))
            # work is linear in the offset: scale it so the work fits the budget (0 when empty)
            over = w > np.maximum(budget, 0.0)
            if over.any():
                scale = np.where(over, np.maximum(budget, 0.0) / np.where(over, w, 1.0), 1.0)
                applied[live] = q + offset * scale[:, None]
                reasons.append("energy tank empty: command pulled toward the measured pose")
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
            reasons.append("non-finite command, position or velocity, or unbounded work")
        return applied, make_report(self.name, a, applied, fail, reasons)

    def commit(self, state: SafetyState, applied: np.ndarray) -> None:
        n = state.n
        level = self.levels(n)
        ok = finite_rows(state.q, n) & finite_rows(state.dq, n) & finite_rows(applied, n)
        w = np.zeros(n)
        if ok.any():
            w[ok] = self.work(
                SafetyState(q=state.q[ok], dq=state.dq[ok]), np.asarray(applied, float)[ok]
            )
        self.level = np.clip(level - w + self.refill * self.dt, 0.0, self.capacity)

    def reset(self) -> None:
        self.level = None

    def reset_rows(self, rows: np.ndarray) -> None:
        if self.level is not None:
            self.level[rows] = self.initial
