"""The safety contract: ``filter(state, action) -> (applied_action, report)``.

Everything is batched over a leading dimension ``N`` (one robot: ``N = 1``; N simulated envs in
training) and works in float64 numpy, so one tick of the whole chain costs microseconds.

Filters are pure functions of ``(state, action)``: what they remember between ticks (the last
applied command, an energy tank's level) lives in the :class:`SafetyState` the chain hands them or
is updated only in ``commit``, after the chain has decided what it applies. So filtering an already
filtered action again changes nothing, which the property tests check.

Fail closed: a row whose action or required state is NaN/Inf, stale or missing, or whose
constraint is infeasible or degenerate, is replaced by the :class:`Fallback`'s safe action (hold /
brake / damp), never passed through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robot_rl.core.errors import ConfigError

SAFE_MODES = ("hold", "damp", "brake")


@dataclass
class SafetyState:
    """What the filters may look at in one tick. Shapes: ``N`` robots, ``J`` commanded joints.

    Attributes:
        q: measured positions of the commanded joints ``(N, J)`` (rad, m), command order.
        dq: measured velocities ``(N, J)``; ``None`` when the robot does not report them.
        now: the current time (s), from the clock the node runs on.
        stamp: when ``q`` was measured (s), scalar or ``(N,)``.
        command_stamp: when the proposed action was produced (s); ``None``: never.
        last_command: what the chain applied on the previous tick ``(N, J)``; ``None`` at start.
        last_velocity: the commanded velocity of the previous tick ``(N, J)`` (for acceleration
            limits); ``None`` at start.
        elapsed: seconds since ``last_command`` was applied, when commands may come faster
            than once per control period (a node driven by its inputs); rate bounds then shrink
            to ``elapsed / dt`` of a period's step. ``None``: exactly one period.
        extra: robot-specific readings, e.g. ``rpy (N, 3)`` of a humanoid's base, ``ranges
            (N, K)`` and ``range_angles (K,)`` of a car's lidar, ``speed (N,)``.
    """

    q: np.ndarray
    dq: np.ndarray | None = None
    now: float = 0.0
    stamp: float | np.ndarray = 0.0
    command_stamp: float | None = None
    last_command: np.ndarray | None = None
    last_velocity: np.ndarray | None = None
    elapsed: float | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.q.shape[0])


@dataclass
class Report:
    """Whether and why one component changed the action. Shapes ``(N,)``.

    Attributes:
        component: the filter's name.
        intervened: the applied action differs from the proposed one.
        fail_closed: the row was replaced by the safe action.
        magnitude: largest absolute change per row (inf when the proposal was not finite).
        reason: why, one short phrase per distinct cause ("" when nothing happened).
    """

    component: str
    intervened: np.ndarray
    fail_closed: np.ndarray
    magnitude: np.ndarray
    reason: str = ""
    detail: dict[str, np.ndarray] = field(default_factory=dict)
    """Component-specific values per row, e.g. the reflex critic's ``risk``."""

    @property
    def any(self) -> bool:
        return bool(self.intervened.any())


def make_report(
    name: str,
    proposed: np.ndarray,
    applied: np.ndarray,
    fail: np.ndarray,
    reasons: list[str],
) -> Report:
    """A :class:`Report` from the proposed and applied actions ``(N, A)`` and the fail-closed
    rows ``(N,)``; ``reasons`` are the causes found (joined, duplicates dropped)."""
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(applied - proposed)
    if not fail.any() and (diff == 0).all():  # the common case, in a few µs: nothing changed
        zeros = np.zeros(len(applied))
        return Report(name, zeros.astype(bool), fail, zeros, "; ".join(dict.fromkeys(reasons)))
    same = (applied == proposed) | (np.isnan(applied) & np.isnan(proposed))
    diff = np.where(same, 0.0, np.where(np.isfinite(diff), diff, np.inf))
    magnitude = diff.max(axis=-1) if diff.shape[-1] else np.zeros(len(diff))
    intervened = (magnitude > 0) | fail
    return Report(
        name, intervened, fail, magnitude, "; ".join(dict.fromkeys(r for r in reasons if r))
    )


def unchanged(name: str, n: int) -> Report:
    """The report of a filter that let all ``n`` rows through (each filter's fast path)."""
    no = np.zeros(n, dtype=bool)
    return Report(name, no, no.copy(), np.zeros(n))


class SafetyFilter(Protocol):
    """One component of a safety chain."""

    name: str

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        """The action actually applied ``(N, A)`` and why it differs from ``action``."""
        ...

    def commit(self, state: SafetyState, applied: np.ndarray) -> None:
        """Called once per tick with what the whole chain applied (filters with memory)."""
        ...

    def reset(self) -> None:
        """Forget what earlier ticks left behind."""
        ...


class Filter:
    """Base for filters without memory: ``commit`` and ``reset`` do nothing."""

    name = "filter"
    damps = False
    """True: this filter failing closed means the robot must go to damping (the mode machine's
    latched fault), not just hold, e.g. a fallen humanoid its position loops must not push up."""

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        raise NotImplementedError

    def commit(self, state: SafetyState, applied: np.ndarray) -> None:
        return None

    def reset(self) -> None:
        return None


class Fallback:
    """The robot's safe action, from its profile: what a filter applies when it fails closed.

    ``hold`` (arms): keep the last applied command, else the measured position, else the default
    pose, each clipped into the position limits. ``damp`` (humanoids): the measured position (the
    low-level controller runs damping gains in this mode), else the last command, else default.
    ``brake`` (cars): zero speed with the steering held (``brake_action``).

    Args:
        mode: one of ``hold``, ``damp``, ``brake``.
        lower, upper: position limits ``(A,)`` of the command.
        default: the default pose ``(A,)`` (inside the limits).
        brake_action: the full braking command ``(A,)`` (``brake`` only).
    """

    def __init__(
        self,
        mode: str,
        lower: np.ndarray,
        upper: np.ndarray,
        default: np.ndarray,
        brake_action: np.ndarray | None = None,
    ) -> None:
        if mode not in SAFE_MODES:
            raise ConfigError(f"safe action must be one of {SAFE_MODES}, got {mode!r}")
        if mode == "brake" and brake_action is None:
            raise ConfigError("the brake safe action needs brake_action")
        self.mode = mode
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.default = np.clip(np.asarray(default, float), self.lower, self.upper)
        self.brake = None if brake_action is None else np.asarray(brake_action, float)

    def __call__(self, state: SafetyState) -> np.ndarray:
        """The safe action for every row ``(N, A)``: always finite and inside the limits."""
        n = state.n
        if self.mode == "brake":
            return np.broadcast_to(self.brake, (n, len(self.brake))).copy()
        out = np.broadcast_to(self.default, (n, len(self.default))).copy()
        # lowest priority first: each finite row of a later reference overwrites the earlier one
        if self.mode == "hold":
            refs = (state.q, state.last_command)
        else:
            refs = (state.last_command, state.q)
        for ref in refs:
            if ref is None or np.shape(ref) != out.shape:
                continue
            ok = np.isfinite(ref).all(axis=-1)
            out[ok] = ref[ok]
        return np.clip(out, self.lower, self.upper)


def finite_rows(x: np.ndarray | None, n: int) -> np.ndarray:
    """``(N,)``: rows of ``x`` with only finite entries (all False when ``x`` is missing)."""
    if x is None:
        return np.zeros(n, dtype=bool)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] != n:
        return np.zeros(n, dtype=bool)
    return np.isfinite(x).all(axis=-1)


def as_actions(action: np.ndarray, n: int, dim: int, name: str) -> np.ndarray:
    """``action`` as a float64 ``(N, A)`` array; a wrong shape is a bug of the caller."""
    a = np.asarray(action, dtype=float)
    if a.shape != (n, dim):
        raise ValueError(f"{name}: action shape {a.shape}, expected ({n}, {dim})")
    return a


def period_fraction(state: SafetyState, dt: float) -> float:
    """The share of a control period ``dt`` since the last command: ``elapsed / dt`` in
    [0, 1]; 1 when the state does not say (one tick per period). NaN or negative: 0, nothing
    may move (fail closed)."""
    if state.elapsed is None:
        return 1.0
    f = float(state.elapsed) / dt
    if f >= 1.0 - 1e-6:  # a period, up to the rounding of clock arithmetic
        return 1.0
    return f if f >= 0.0 else 0.0  # NaN fails the comparison: 0
