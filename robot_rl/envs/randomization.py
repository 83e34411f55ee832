"""Per-env domain randomization of physical parameters, applied through the backend's model fields.

Every draw scales the *nominal* value (kept at construction), so repeated resets never drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import torch

from robot_rl.envs.backends import PhysicsBackend
from robot_rl.envs.config import RandomizationConfig


@dataclass(frozen=True)
class _Term:
    """One randomized model field: rows (and optionally one column) scaled from nominal."""

    field: str
    scale_range: tuple[float, float]
    rows: torch.Tensor
    col: int | None
    nominal: torch.Tensor
    """Per-row values of env 0 at construction, shape of the field without the env dim."""
    same_as: str | None
    """Reuse the draw of this field (inertia follows mass, −kp follows kp)."""


class DomainRandomizer:
    """Draws friction, mass, joint damping and actuator gain multipliers for envs being reset."""

    def __init__(self, cfg: RandomizationConfig, backend: PhysicsBackend, gen: torch.Generator):
        self.cfg = cfg
        self.backend = backend
        self.gen = gen
        m = backend.model
        self._terms: list[_Term] = []
        colliding = torch.from_numpy((m.geom_contype | m.geom_conaffinity) != 0)
        if tuple(cfg.friction) != (1.0, 1.0):
            # column 0 = sliding friction, only of geoms that can touch anything
            self._add("geom_friction", cfg.friction, colliding.nonzero().flatten(), 0)
        if tuple(cfg.mass) != (1.0, 1.0):
            self._add("body_mass", cfg.mass, torch.arange(1, m.nbody), None)
            self._add("body_inertia", cfg.mass, torch.arange(1, m.nbody), None, same_as="body_mass")
        if tuple(cfg.joint_damping) != (1.0, 1.0):
            self._add("dof_damping", cfg.joint_damping, torch.arange(m.nv), None)
        if tuple(cfg.actuator_gain) != (1.0, 1.0):
            pos = (
                torch.from_numpy(m.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE)
                .nonzero()
                .flatten()
            )
            # position servo: force = kp·ctrl − kp·q − kv·q̇ ⇒ gainprm[0] = kp, biasprm[1] = −kp
            self._add("actuator_gainprm", cfg.actuator_gain, pos, 0)
            self._add("actuator_biasprm", cfg.actuator_gain, pos, 1, same_as="actuator_gainprm")
        self._needs_const = any(t.field in ("body_mass", "body_inertia") for t in self._terms)

    def _add(
        self, field: str, rng, rows: torch.Tensor, col: int | None, same_as: str | None = None
    ) -> None:
        nominal = self.backend.model_field(field)[0].clone()
        self._terms.append(
            _Term(field, (float(rng[0]), float(rng[1])), rows, col, nominal, same_as)
        )

    def apply(self, ids: torch.Tensor) -> None:
        """Draw new parameters for envs ``ids`` (k,)."""
        if not self._terms:
            return
        draws: dict[str, torch.Tensor] = {}
        for term in self._terms:
            field, rows, col, nominal = term.field, term.rows, term.col, term.nominal
            if term.same_as is not None:
                scale = draws[term.same_as]
            else:
                lo, hi = term.scale_range
                u = torch.rand((len(ids), len(rows)), generator=self.gen, device=ids.device)
                scale = (lo + (hi - lo) * u).to(torch.float64).cpu()
                draws[field] = scale
            values = self.backend.model_field(field)
            idx = ids.cpu()
            if col is None:
                shape = (len(ids), len(rows)) + (1,) * (nominal.dim() - 1)
                values[idx[:, None], rows[None, :]] = nominal[rows].unsqueeze(0) * scale.view(shape)
            else:
                values[idx[:, None], rows[None, :], col] = nominal[rows, col].unsqueeze(0) * scale
        if self._needs_const:
            self.backend.model_changed(ids)
