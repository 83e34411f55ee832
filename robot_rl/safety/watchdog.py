"""Command watchdog (twist_mux / diff_drive style timeouts): a command older than the timeout,
or none at all, is replaced by the safe action on the very tick the timeout passes."""

from __future__ import annotations

import numpy as np

from robot_rl.safety.base import (
    Fallback,
    Filter,
    Report,
    SafetyState,
    as_actions,
    make_report,
    unchanged,
)


class Watchdog(Filter):
    """Args:
    fallback: the safe action.
    timeout_s: largest age of the command (``state.now - state.command_stamp``).
    dim: action size A.
    """

    name = "watchdog"

    def __init__(self, fallback: Fallback, timeout_s: float, dim: int) -> None:
        if not timeout_s > 0:
            raise ValueError(f"watchdog timeout must be > 0, got {timeout_s}")
        self.fallback, self.timeout, self.dim = fallback, float(timeout_s), dim

    def expired(self, state: SafetyState) -> bool:
        if state.command_stamp is None:
            return True
        age = float(state.now) - float(state.command_stamp)
        # NaN ages and commands from the future (a clock jump) are not trusted either
        return not -self.timeout <= age <= self.timeout

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        a = as_actions(action, state.n, self.dim, self.name)
        if not self.expired(state):
            return a, unchanged(self.name, state.n)
        fail = np.ones(state.n, dtype=bool)
        applied = self.fallback(state)
        reasons = [f"no command for more than {self.timeout} s"]
        return applied, make_report(self.name, a, applied, fail, reasons)
