"""Learned reflex critic (Recovery RL's Q_risk; Bresa's fast safety critic): ``Q_risk(s, a)``, the
discounted probability that the robot crosses a hard limit if it applies command ``a`` now,
evaluated on every control tick. Above a threshold the command is replaced by the reflex action
(the profile's safe action: hold / brake / damp).

It reads only what the safety node has on a real robot: measured joint positions and velocities,
the candidate joint command, and the tool points of both from forward kinematics. Trained in
simulation by ``robot-rl train reflex`` (``robot_rl.algos.reflex``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from robot_rl.core.errors import ConfigError
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
from robot_rl.safety.kinematics import SerialChain


class RiskFeatures:
    """``(q, dq, command, last) (N, J) each -> features (N, F)`` from what a safety node has:
    joint positions, velocities in units of their limits, the commanded step and the previous
    tick's step in units of one tick at the speed limit; each joint's distance to its nearer
    limit (rad); the measured and the commanded tool point (m), the tool's velocity (m/s), and
    for both points the signed distance to every workspace face and keep-out region (m) — the
    quantities a violation is a threshold of, so the critic need not learn forward kinematics.

    Args:
        chain: forward kinematics.
        lower, upper, velocity: joint limits ``(J,)``.
        dt: control period.
        box: workspace ``(low (3,), high (3,))`` or None.
        obstacles: keep-out regions (``robot_rl.safety.cbf.Obstacles``) or None.
    """

    def __init__(
        self,
        chain: SerialChain,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        dt: float,
        box: tuple[np.ndarray, np.ndarray] | None = None,
        obstacles=None,
    ) -> None:
        self.chain, self.velocity, self.step = chain, np.asarray(velocity, float), dt
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.box, self.obstacles = box, obstacles
        j = len(self.velocity)
        n_regions = 0 if obstacles is None else len(obstacles.offsets) + len(obstacles.radii)
        self.dim = 5 * j + 9 + 2 * ((6 if box is not None else 0) + n_regions)

    def clearances(self, x: np.ndarray) -> np.ndarray:
        """Signed distances ``(N, C)`` of points ``x (N, 3)`` to the box faces (inside > 0) and
        the keep-out regions (outside > 0)."""
        out = []
        if self.box is not None:
            out += [x - self.box[0], self.box[1] - x]
        if self.obstacles is not None:
            o = self.obstacles
            out.append(x @ o.normals.T - o.offsets)
            out.append(np.linalg.norm(x[:, None] - o.centers[None], axis=-1) - o.radii)
        return np.concatenate(out, axis=-1) if out else np.zeros((len(x), 0))

    def __call__(
        self, q: np.ndarray, dq: np.ndarray, command: np.ndarray, last: np.ndarray | None = None
    ) -> np.ndarray:
        """``last``: the previous tick's command ``(N, J)`` (the policy's momentum: a command
        that keeps heading somewhere, against one that wanders); the measured pose when none."""
        d = self.chain.dof
        jac, tool = self.chain.jacobian(q[:, :d])
        target = self.chain.fk(command[:, :d])
        tool_v = np.einsum("nij,nj->ni", jac, dq[:, :d])
        scale = self.velocity * self.step
        step = (command - q) / scale
        prev = (last - q) / scale if last is not None else np.zeros_like(step)
        to_limit = np.minimum(q - self.lower, self.upper - q)
        return np.concatenate(
            [
                q,
                dq / self.velocity,
                step,
                prev,
                to_limit,
                tool,
                target,
                tool_v,
                self.clearances(tool),
                self.clearances(target),
            ],
            axis=-1,
        )


def risk_features(profile, cfg) -> RiskFeatures:
    """The features of a robot profile and safety config (workspace box, ``cbf`` regions)."""
    from robot_rl.safety.cbf import Obstacles
    from robot_rl.safety.chain import CommandSpace
    from robot_rl.safety.kinematics import chain_from_profile

    space = CommandSpace.of(profile)
    box = None
    if profile.workspace is not None:
        box = (np.array(profile.workspace.low), np.array(profile.workspace.high))
    obstacles = Obstacles.build(cfg.cbf.get("halfspaces"), cfg.cbf.get("spheres"))
    return RiskFeatures(
        chain_from_profile(profile.extra, profile.source),
        space.lower,
        space.upper,
        space.velocity,
        space.dt,
        box,
        obstacles,
    )


class ReflexCritic(nn.Module):
    """Twin MLPs ``(features (B, F)) -> risk (2, B)`` in [0, 1] (sigmoid), LayerNorm between
    hidden layers; features are standardized with stats fitted on the training data."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.in_dim, self.hidden = in_dim, tuple(hidden)

        def net() -> nn.Sequential:
            layers: list[nn.Module] = []
            sizes = [in_dim, *hidden]
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
            return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

        self.q1, self.q2 = net(), net()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return torch.stack([self.q1(x)[:, 0], self.q2(x)[:, 0]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pessimistic risk ``(B,)``: the larger of the twins."""
        return torch.sigmoid(self.logits(x)).max(dim=0).values


def load_reflex(directory: str | Path) -> tuple[ReflexCritic, dict]:
    """A trained critic and its ``config.json`` (threshold, gamma, features) from a checkpoint
    directory; never unpickles."""
    d = Path(directory)
    if not (d / "config.json").is_file() or not (d / "reflex.safetensors").is_file():
        raise ConfigError(f"{d} is not a reflex checkpoint (config.json + reflex.safetensors)")
    try:
        meta = json.loads((d / "config.json").read_text())
        tensors = load_file(str(d / "reflex.safetensors"))
        critic = ReflexCritic(int(meta["in_dim"]), tuple(meta["hidden"]))
        critic.load_state_dict(tensors)
    except (ValueError, KeyError, RuntimeError, OSError, SafetensorError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"reflex checkpoint {d} is unreadable: {detail}") from None
    return critic.eval(), meta


class ReflexFilter(Filter):
    """Evaluates ``Q_risk`` of the candidate command every tick; above ``threshold`` (or when
    the risk cannot be computed) the command is replaced by the reflex: the safe action.

    Args:
        fallback: the safe action (the reflex).
        critic: the trained critic.
        features: how its inputs are formed.
        threshold: risk above which the reflex fires.
    """

    name = "reflex"

    def __init__(
        self, fallback: Fallback, critic: ReflexCritic, features: RiskFeatures, threshold: float
    ) -> None:
        if not 0 < threshold < 1:
            raise ConfigError(f"reflex threshold must be in (0, 1), got {threshold}")
        self.fallback, self.critic, self.features = fallback, critic.eval(), features
        self.threshold = float(threshold)

    def risk(self, state: SafetyState, action: np.ndarray) -> np.ndarray:
        """``(N,)`` risk of each row's command (NaN where it cannot be computed)."""
        dq = state.dq if state.dq is not None else np.full_like(state.q, np.nan)
        last = state.last_command
        if last is None or np.shape(last) != np.shape(state.q):
            last = state.q
        x = self.features(state.q, dq, action, last)
        ok = np.isfinite(x).all(axis=-1)
        out = np.full(len(x), np.nan)
        if ok.any():
            with torch.no_grad():
                out[ok] = self.critic(torch.as_tensor(x[ok], dtype=torch.float32)).double().numpy()
        return out

    def filter(self, state: SafetyState, action: np.ndarray) -> tuple[np.ndarray, Report]:
        n = state.n
        a = as_actions(action, n, len(self.fallback.lower), self.name)
        ok = np.isfinite(a).all(axis=-1) & finite_rows(state.q, n)
        risk = np.full(n, np.nan)
        if ok.any():
            risk[ok] = self.risk(_rows(state, ok), a[ok])
        fire = ~(risk <= self.threshold)  # NaN fires too
        if not fire.any():
            report = unchanged(self.name, n)
        else:
            applied = a.copy()
            applied[fire] = self.fallback(state)[fire]
            reasons = [f"risk above {self.threshold:.2f}: reflex"]
            a, report = applied, make_report(self.name, a, applied, fire, reasons)
        report.detail["risk"] = risk
        return a, report


def _rows(state: SafetyState, keep: np.ndarray) -> SafetyState:
    last = state.last_command
    return SafetyState(
        q=state.q[keep],
        dq=None if state.dq is None else state.dq[keep],
        now=state.now,
        last_command=None if last is None or np.shape(last) != np.shape(state.q) else last[keep],
    )
