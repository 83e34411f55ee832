"""The deploy mode machine (Unitree's deploy sequence): idle → ramp to the default pose → hold →
policy, with damping on stop or on any fault, and a latched e-stop.

Only ``hold`` leads to ``policy``, and only a finished ``ramp`` leads to ``hold``, so the policy
never takes over a robot that is not standing still in its default pose. Any exception raised
while computing a tick's command lands in ``damping``. ``estop`` latches: nothing but an
explicit :meth:`ModeMachine.reset` leaves it, and ``reset`` only goes back to ``idle``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import numpy as np

from robot_rl.safety.base import Fallback, Report, SafetyState, finite_rows, make_report


class Mode(str, Enum):
    IDLE = "idle"  # zero torque / passive: the low-level controller does not drive the joints
    RAMP = "ramp"  # moving smoothly from where the robot is to its default pose
    HOLD = "hold"  # holding the default pose
    POLICY = "policy"  # the (filtered) policy commands
    DAMPING = "damping"  # damping only, after stop() or a fault
    ESTOP = "estop"  # latched damping until reset()


DAMPED = (Mode.IDLE, Mode.DAMPING, Mode.ESTOP)


class ModeMachine:
    """Args:
    damp: the safe action used in idle, damping and e-stop (the measured pose; the low-level
        controller runs zero or damping gains in these modes, per :attr:`mode`).
    default: the default pose ``(A,)``.
    ramp_s: duration of the ramp to the default pose (s).
    """

    def __init__(self, damp: Fallback, default: np.ndarray, ramp_s: float) -> None:
        if not ramp_s > 0:
            raise ValueError(f"ramp duration must be > 0, got {ramp_s}")
        self.damp, self.default, self.ramp_s = damp, np.asarray(default, float), float(ramp_s)
        self.mode = Mode.IDLE
        self.ramp_from: np.ndarray | None = None
        self.ramp_t0: float | None = None
        self.last_fault = ""
        self.history: list[Mode] = [Mode.IDLE]

    def _go(self, mode: Mode) -> None:
        self.mode = mode
        self.history.append(mode)

    # events -------------------------------------------------------------------------------
    def start(self) -> bool:
        """idle → ramp. Returns whether the event was accepted."""
        if self.mode is not Mode.IDLE:
            return False
        self.ramp_from, self.ramp_t0 = None, None
        self._go(Mode.RAMP)
        return True

    def engage(self) -> bool:
        """hold → policy."""
        if self.mode is not Mode.HOLD:
            return False
        self._go(Mode.POLICY)
        return True

    def disengage(self) -> bool:
        """policy → hold."""
        if self.mode is not Mode.POLICY:
            return False
        self._go(Mode.HOLD)
        return True

    def stop(self) -> bool:
        """Anything but e-stop → damping."""
        if self.mode in (Mode.ESTOP, Mode.DAMPING):
            return False
        self._go(Mode.DAMPING)
        return True

    def fault(self, reason: str) -> None:
        """An exception or a broken input: damping (an e-stop stays latched)."""
        self.last_fault = reason
        if self.mode is not Mode.ESTOP:
            self._go(Mode.DAMPING)

    def estop(self) -> None:
        """Latched: only reset() leaves it."""
        if self.mode is not Mode.ESTOP:
            self._go(Mode.ESTOP)

    def reset(self) -> bool:
        """e-stop or damping → idle (an operator's explicit decision)."""
        if self.mode not in (Mode.ESTOP, Mode.DAMPING):
            return False
        self.last_fault = ""
        self._go(Mode.IDLE)
        return True

    # one control tick ---------------------------------------------------------------------
    def tick(
        self, state: SafetyState, policy: Callable[[], np.ndarray]
    ) -> tuple[np.ndarray, Report]:
        """The command for this tick ``(N, A)``. ``policy`` is called only in ``policy`` mode
        (it runs the policy and the safety chain); whatever it raises lands in damping."""
        try:
            out = np.asarray(self._command(state, policy), float)
            if out.shape != (state.n, len(self.default)) or not np.isfinite(out).all():
                raise ValueError(f"command of shape {out.shape} is not a finite command")
        except Exception as e:  # noqa: BLE001 — any fault must end in damping, never propagate
            self.fault(f"{type(e).__name__}: {e}")
            out = self.damp(state)
        fail = np.full(state.n, self.mode in DAMPED)
        reason = self.mode.value + (f" ({self.last_fault})" if self.last_fault else "")
        return out, make_report("mode", out, out, fail, [reason])

    def _command(self, state: SafetyState, policy: Callable[[], np.ndarray]) -> np.ndarray:
        if self.mode is Mode.RAMP:
            if self.ramp_from is None:
                if not finite_rows(state.q, state.n).all():
                    raise ValueError("cannot ramp from a non-finite joint reading")
                self.ramp_from, self.ramp_t0 = np.array(state.q, float), float(state.now)
            s = np.clip((state.now - self.ramp_t0) / self.ramp_s, 0.0, 1.0)
            s = s * s * (3 - 2 * s)  # smoothstep: zero velocity at both ends
            if s >= 1.0:
                self._go(Mode.HOLD)
            return self.ramp_from + s * (self.default - self.ramp_from)
        if self.mode is Mode.HOLD:
            return np.broadcast_to(self.default, (state.n, len(self.default))).copy()
        if self.mode is Mode.POLICY:
            return np.asarray(policy(), float)
        return self.damp(state)
