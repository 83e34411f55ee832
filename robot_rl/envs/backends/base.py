"""Physics backend interface: batched rigid-body state for N envs, as torch tensors.

Tasks only talk to this interface, never to a simulator directly, so a task written against the
threaded MuJoCo CPU backend runs unchanged on a GPU backend (MuJoCo Warp, MJX, Isaac Lab) that
implements the same methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import mujoco
import torch


class SimBackend(ABC):
    """What the task loop (:class:`robot_rl.envs.task_env.TaskEnv`) needs of any batched
    simulator: stepping, resetting rows and rendering.

    Attributes:
        num_envs: number of simulations N.
        device: device of the returned tensors.
    """

    num_envs: int
    device: torch.device

    @abstractmethod
    def step(self, nsubsteps: int) -> None:
        """Advance every env ``nsubsteps`` physics steps holding the current controls."""

    @abstractmethod
    def forward(self, ids: torch.Tensor | None = None) -> None:
        """Recompute derived fields after writing state (e.g. on reset). ``ids``: (k,) int64."""

    @abstractmethod
    def reset_state(self, ids: torch.Tensor) -> None:
        """Reset envs ``ids`` to the default state."""

    @abstractmethod
    def render(
        self, camera: str, ids: torch.Tensor | None, height: int, width: int
    ) -> torch.Tensor:
        """RGB images from a named camera: uint8 (k, H, W, 3) for envs ``ids`` (all if None)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads, renderers and GL contexts."""


class PhysicsBackend(SimBackend):
    """Batched physics of one MJCF model.

    Attributes:
        model: the template ``mujoco.MjModel`` (names, addresses, defaults).
    """

    model: mujoco.MjModel

    @abstractmethod
    def state(self, name: str) -> torch.Tensor:
        """Writable view of a state field: ``qpos`` (N, nq), ``qvel`` (N, nv), ``ctrl`` (N, nu),
        ``mocap_pos`` (N, nmocap, 3), ``mocap_quat`` (N, nmocap, 4). Float64."""

    @abstractmethod
    def output(self, name: str) -> torch.Tensor:
        """Read-only derived field at the current state, e.g. ``site_xpos`` (N, nsite, 3),
        ``site_xmat`` (N, nsite, 9), ``xpos`` (N, nbody, 3), ``sensordata`` (N, nsensordata)."""

    @abstractmethod
    def step(self, nsubsteps: int) -> None:
        """Advance every env ``nsubsteps`` physics steps holding ``state("ctrl")``; derived fields
        (``output``) describe the new state afterwards."""

    @abstractmethod
    def reset_state(self, ids: torch.Tensor) -> None:
        """Reset envs ``ids`` to the model's default state (velocities, contacts, warm starts)."""

    @abstractmethod
    def site_jacobian(self, site: int) -> torch.Tensor:
        """Jacobian of site ``site`` for every env: (N, 6, nv), rows (linear xyz, angular xyz)."""

    @abstractmethod
    def model_field(self, name: str) -> torch.Tensor:
        """Writable per-env copy of a model field, (N, ...), e.g. ``geom_friction``, ``body_mass``,
        ``dof_damping``, ``actuator_gainprm``; call :meth:`model_changed` after writing."""

    @abstractmethod
    def model_changed(self, ids: torch.Tensor) -> None:
        """Recompute constants derived from model fields (masses ⇒ inertias) for envs ``ids``."""
