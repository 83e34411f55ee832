"""Per-env physical parameters of the humanoid: the generic model-field randomizer (link masses,
joint damping, actuator gains) plus one floor friction per env, joint dry friction, armature and
a pelvis payload. Every draw starts from the nominal values kept at construction."""

from __future__ import annotations

import dataclasses

import torch

from robot_rl.envs.backends import PhysicsBackend
from robot_rl.envs.randomization import DomainRandomizer
from robot_rl.envs.tasks.humanoid.config import HumanoidTaskConfig


class HumanoidRandomizer:
    """``apply(ids)`` draws new parameters for envs being reset; the draws that a privileged
    critic may see are kept: :attr:`friction` (N,) multiplier, :attr:`mass_offset` (N,) kg."""

    def __init__(
        self,
        cfg: HumanoidTaskConfig,
        backend: PhysicsBackend,
        gen: torch.Generator,
        pelvis: int,
        leg_dofs: torch.Tensor,
    ):
        self.cfg = cfg
        self.backend = backend
        self.gen = gen
        self.pelvis = pelvis
        self.leg_dofs = leg_dofs
        # friction is drawn here, once per env, not per geom as the generic randomizer does
        generic = dataclasses.replace(cfg.randomization, friction=(1.0, 1.0))
        self.generic = DomainRandomizer(generic, backend, gen)
        m = backend.model
        robot_geoms = (m.geom_bodyid > 0) & ((m.geom_contype | m.geom_conaffinity) != 0)
        self._geoms = torch.from_numpy(robot_geoms).nonzero().flatten()
        n, dev = backend.num_envs, torch.device("cpu")
        self.friction = torch.ones(n, device=dev)
        self.mass_offset = torch.zeros(n, device=dev)
        self._nominal = {
            name: backend.model_field(name)[0].clone()
            for name in ("geom_friction", "dof_frictionloss", "dof_armature", "body_mass")
        }
        self._nominal["body_inertia"] = backend.model_field("body_inertia")[0].clone()

    def _uniform(self, shape: tuple[int, ...], rng) -> torch.Tensor:
        lo, hi = float(rng[0]), float(rng[1])
        return lo + (hi - lo) * torch.rand(shape, generator=self.gen, dtype=torch.float64)

    def apply(self, ids: torch.Tensor) -> None:
        """Draw new parameters for envs ``ids`` (k,)."""
        self.generic.apply(ids)
        cfg, p, k, idx = self.cfg, self.cfg.perturbation, len(ids), ids.cpu()
        if tuple(cfg.randomization.friction) != (1.0, 1.0):
            scale = self._uniform((k,), cfg.randomization.friction)
            field = self.backend.model_field("geom_friction")
            g = self._geoms
            field[idx[:, None], g[None], 0] = self._nominal["geom_friction"][g, 0] * scale[:, None]
            self.friction[idx] = scale.float()
        d = self.leg_dofs
        if tuple(p.joint_friction) != (0.0, 0.0):
            loss = self._uniform((k, len(d)), p.joint_friction)
            self.backend.model_field("dof_frictionloss")[idx[:, None], d[None]] = loss
        if tuple(p.armature) != (1.0, 1.0):
            scale = self._uniform((k, len(d)), p.armature)
            nominal = self._nominal["dof_armature"][d]
            self.backend.model_field("dof_armature")[idx[:, None], d[None]] = nominal * scale
        if tuple(p.base_mass_offset) != (0.0, 0.0):
            offset = self._uniform((k,), p.base_mass_offset)
            mass = self.backend.model_field("body_mass")
            inertia = self.backend.model_field("body_inertia")
            b = self.pelvis
            if tuple(cfg.randomization.mass) != (1.0, 1.0):  # the generic draw just wrote these
                base_m, base_i = mass[idx, b].clone(), inertia[idx, b].clone()
            else:
                base_m = self._nominal["body_mass"][b].expand(k)
                base_i = self._nominal["body_inertia"][b].expand(k, 3)
            new_m = (base_m + offset).clamp(min=0.1 * base_m)
            mass[idx, b] = new_m
            inertia[idx, b] = base_i * (new_m / base_m)[:, None]
            self.mass_offset[idx] = (new_m - base_m).float()
        if tuple(p.base_mass_offset) != (0.0, 0.0) or tuple(p.armature) != (1.0, 1.0):
            self.backend.model_changed(ids)
