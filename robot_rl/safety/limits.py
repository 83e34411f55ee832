"""Per-joint limits: the observation guard, the position/effort clamp and the rate limiter."""

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
    period_fraction,
    unchanged,
)


class ObservationGuard(Filter):
    """Fails closed when what the robot reports cannot be trusted: NaN/Inf positions or
    velocities, positions beyond the joint limits by more than ``position_tolerance``,
    speeds above ``velocity_factor`` times the limit, a measurement older than ``stale_s``, or
    non-finite robot-specific readings (``state.extra``).

    Args:
        fallback: the safe action.
        lower, upper: position limits ``(J,)``.
        velocity: velocity limits ``(J,)``.
        stale_s: largest age of a measurement.
        position_tolerance: how far outside its limits a joint may read (encoder noise, a joint
            pushed by contact) before the reading counts as broken.
        velocity_factor: readings faster than this many times the limit count as broken.
    """

    name = "observation_guard"

    def __init__(
        self,
        fallback: Fallback,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        stale_s: float,
        position_tolerance: float = 0.05,
        velocity_factor: float = 2.0,
    ) -> None:
        self.fallback = fallback
        self.lower = np.asarray(lower, float) - position_tolerance
        self.upper = np.asarray(upper, float) + position_tolerance
        self.max_speed = velocity_factor * np.asarray(velocity, float)
        self.stale_s = float(stale_s)

    def trusted(self, state: SafetyState) -> bool:
        """Every row's readings pass every check (the fast path: a few numpy calls)."""
        q, dq = state.q, state.dq
        age = state.now - state.stamp if isinstance(state.stamp, float | int) else None
        return (
            age is not None
            and -self.stale_s <= age <= self.stale_s
            and not state.extra
            and bool(((q >= self.lower) & (q <= self.upper)).all())  # False for NaN
            and (dq is None or bool((np.abs(dq) <= self.max_speed).all()))
        )

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, len(self.lower), self.name)
        if state.q.shape == a.shape and self.trusted(state):
            return a, unchanged(self.name, n)
        reasons = []
        fail = ~finite_rows(state.q, n)
        if fail.any():
            reasons.append("non-finite joint positions")
        with np.errstate(invalid="ignore"):
            out = ((state.q < self.lower) | (state.q > self.upper)).any(axis=-1) & ~fail
        if out.any():
            reasons.append("joint positions outside their limits")
        fail |= out
        if state.dq is not None:
            bad = ~finite_rows(state.dq, n)
            with np.errstate(invalid="ignore"):
                bad |= (np.abs(state.dq) > self.max_speed).any(axis=-1)
            if bad.any():
                reasons.append("implausible joint velocities")
            fail |= bad
        age = state.now - np.asarray(state.stamp, float)
        stale = ~(age <= self.stale_s) | ~(age >= -self.stale_s)  # NaN stamps are stale too
        stale = np.broadcast_to(stale, (n,))
        if stale.any():
            reasons.append(f"measurement older than {self.stale_s} s")
        fail = fail | stale
        for key, value in state.extra.items():
            v = np.asarray(value, float)
            if v.ndim >= 1 and v.shape[0] == n:
                # +inf is a valid "no return" in a range scan; NaN never is
                bad = np.isnan(v.reshape(n, -1)).any(axis=-1)
            else:  # shared per-robot data, e.g. beam angles
                bad = np.full(n, bool(np.isnan(v).any()))
            if bad.any():
                reasons.append(f"NaN in {key}")
            fail |= bad
        applied = a.copy()
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
        return applied, make_report(self.name, a, applied, fail, reasons)


class JointLimits(Filter):
    """Clamps commands into the position limits (shrunk by ``margin``); rows with a non-finite
    command fail closed (a clamp of NaN or of ±inf is not a command anyone asked for).

    With ``braking`` (rad/s² per joint) the limit a joint is moving toward is pulled in by its
    stopping distance ``dq² / (2 · braking)`` (measured speed): a position loop lags its command,
    so a joint commanded right up to its stop at speed runs past it. Never past the middle of
    the range, so the band is never empty.

    With ``deflection_gain`` a joint that *reads* beyond the band (an outside force, e.g. the
    hand pressed on a table, bends it past its command) pulls that side of the band in by the
    gain times the excess, so its servo pushes back harder the further it is bent: with the
    command clamped at the band, the servo pushes back with only its gain times the bend.

    For an effort interface pass the effort limits as ``lower = -effort``, ``upper = effort``.
    """

    name = "joint_limits"
    # a joint resting on its stop reads within ~1e-12 of it, either side: not bent
    ON_THE_BAND = 1e-6

    def __init__(
        self,
        fallback: Fallback,
        lower: np.ndarray,
        upper: np.ndarray,
        margin: float | np.ndarray = 0.0,
        braking: np.ndarray | None = None,
        deflection_gain: float = 0.0,
    ) -> None:
        lower, upper = np.asarray(lower, float) + margin, np.asarray(upper, float) - margin
        if (lower > upper).any():
            raise ValueError(f"joint limit margin {margin} leaves an empty range")
        if not deflection_gain >= 0:
            raise ValueError(f"deflection_gain must be >= 0, got {deflection_gain}")
        self.fallback, self.lower, self.upper = fallback, lower, upper
        self.braking = None if braking is None else np.asarray(braking, float)
        self.deflection_gain = float(deflection_gain)
        self.middle = (lower + upper) / 2

    def bounds(self, state: SafetyState) -> tuple[np.ndarray, np.ndarray]:
        """The position band ``(J,)`` or ``(N, J)`` commands are clamped into."""
        lower, upper = self.lower, self.upper
        if self.braking is not None and state.dq is not None:
            dq = np.where(np.isfinite(state.dq), state.dq, 0.0)
            with np.errstate(over="ignore"):  # an absurd speed: an infinite stopping distance
                stop = dq * dq / (2 * self.braking)
            upper = upper - np.where(dq > 0, stop, 0.0)
            lower = lower + np.where(dq < 0, stop, 0.0)
        if self.deflection_gain > 0 and np.shape(state.q)[-1:] == self.lower.shape:
            q = np.where(np.isfinite(state.q), state.q, self.middle)  # NaN: the guard's job
            with np.errstate(over="ignore", invalid="ignore"):
                over = np.maximum(q - self.upper - self.ON_THE_BAND, 0.0)
                under = np.maximum(self.lower - q - self.ON_THE_BAND, 0.0)
                upper = upper - self.deflection_gain * over
                lower = lower + self.deflection_gain * under
        if upper is self.upper and lower is self.lower:
            return lower, upper
        return np.minimum(lower, self.middle), np.maximum(upper, self.middle)

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        a = as_actions(action, state.n, len(self.lower), self.name)
        lower, upper = self.bounds(state)
        # without a speed reading the stopping distance is unknown: those rows fail closed
        blind = np.zeros(state.n, dtype=bool)
        if self.braking is not None:
            blind = ~finite_rows(state.dq, state.n)
        if not blind.any() and ((a >= lower) & (a <= upper)).all():  # False for NaN
            return a, unchanged(self.name, state.n)
        fail = ~np.isfinite(a).all(axis=-1) | blind
        applied = np.clip(np.where(fail[:, None], 0.0, a), lower, upper)
        if fail.any():
            applied[fail] = np.clip(self.fallback(state), lower, upper)[fail]
        reasons = ["non-finite command or speed reading"] if fail.any() else []
        if (applied != a)[~fail].any():
            reasons.append("command beyond a joint limit (or its stopping distance)")
        return applied, make_report(self.name, a, applied, fail, reasons)


class RateLimiter(Filter):
    """Bounds the commanded velocity ``|a - last| / dt <= velocity`` and, when acceleration
    limits are given, its change ``|(a - last) / dt - last_velocity| <= acceleration · dt``; then
    keeps the result inside the position limits (which win over the rate). The acceleration band
    always includes stopping (a change of 0), so the limiter never forces a motion on a robot
    that should hold.

    The reference is the last applied command, or the measured position on the first tick; with
    neither finite the row fails closed.
    """

    name = "rate_limiter"

    def __init__(
        self,
        fallback: Fallback,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        dt: float,
        acceleration: np.ndarray | None = None,
    ) -> None:
        self.fallback, self.dt = fallback, float(dt)
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.step = np.asarray(velocity, float) * self.dt
        self.dv = None if acceleration is None else np.asarray(acceleration, float) * self.dt

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, len(self.lower), self.name)
        ref = state.last_command if state.last_command is not None else state.q
        lo, hi = self.band(state)
        if ref is not None and np.shape(ref) == a.shape:  # fast path: within every bound
            delta = a - ref
            if ((delta >= lo) & (delta <= hi) & (a >= self.lower) & (a <= self.upper)).all():
                return a, unchanged(self.name, n)  # (NaN anywhere fails the comparisons)
        ref_ok = finite_rows(ref, n)
        fail = ~np.isfinite(a).all(axis=-1) | ~ref_ok
        ref = np.where(ref_ok[:, None], ref, 0.0) if ref is not None else np.zeros_like(a)
        delta = np.clip(np.where(fail[:, None], 0.0, a) - ref, lo, hi)
        applied = np.clip(ref + delta, self.lower, self.upper)
        reasons = []
        if fail.any():
            applied[fail] = self.fallback(state)[fail]
            reasons.append("non-finite command or reference")
        if (applied != a)[~fail].any():
            reasons.append("command faster than the rate limits")
        return applied, make_report(self.name, a, applied, fail, reasons)

    def band(self, state: SafetyState) -> tuple[np.ndarray, np.ndarray]:
        """The allowed step ``a - last`` per joint: lower and upper ends, ``(J,)`` or
        ``(N, J)``, shrunk to the share of a period since the last command
        (``state.elapsed``). Slowing down toward a stop is always allowed: the band keeps 0."""
        step = self.step * period_fraction(state, self.dt)
        lo, hi = -step, step
        if self.dv is None or state.last_velocity is None:
            return lo, hi
        v_ok = finite_rows(state.last_velocity, state.n)[:, None]
        v = np.where(v_ok, state.last_velocity, 0.0) * self.dt
        lo = np.clip(np.minimum(v - self.dv * self.dt, 0.0), lo, hi)
        hi = np.clip(np.maximum(v + self.dv * self.dt, 0.0), lo, hi)
        return lo, hi
