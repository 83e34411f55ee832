"""Per-env domain randomization of physical parameters, applied through the backend's model fields.

Every draw scales the *nominal* value (kept at construction), so repeated resets never drift.
"""

from __future__ import annotations

import mujoco
import torch

from robot_rl.envs.backends import PhysicsBackend
from robot_rl.envs.config import RandomizationConfig


class DomainRandomizer:
    """Draws friction, mass, joint damping and actuator gain multipliers for envs being reset."""

    def __init__(self, cfg: RandomizationConfig, backend: PhysicsBackend, gen: torch.Generator):
        self.cfg = cfg
        self.backend = backend
        self.gen = gen
        m = backend.model
        self._terms: list[tuple[str, tuple[float, float], torch.Tensor, torch.Tensor]] = []
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
        self._needs_const = any(t[0] in ("body_mass", "body_inertia") for t in self._terms)

    def _add(
        self, field: str, rng, rows: torch.Tensor, col: int | None, same_as: str | None = None
    ):
        values = self.backend.model_field(field)
        nominal = values[0].clone()
        self._terms.append((field, tuple(rng), rows, col, nominal, same_as))

    @property
    def active(self) -> bool:
        return bool(self._terms)

    def apply(self, ids: torch.Tensor) -> None:
        """Draw new parameters for envs ``ids`` (k,)."""
        if not self._terms:
            return
        draws: dict[str, torch.Tensor] = {}
        for field, (lo, hi), rows, col, nominal, same_as in self._terms:
            if same_as is not None:
                scale = draws[same_as]
            else:
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
