"""The car's physics backend: N single-track models in torch tensors, with the drive's speed loop.

No MuJoCo model, no per-car Python objects: one ``(N, 7)`` state tensor, per-car parameter
tensors for domain randomisation, one ``(N, 2)`` command tensor. Runs on any torch device.
"""

from __future__ import annotations

import dataclasses

import torch

from robot_rl.envs.backends import SimBackend
from robot_rl.envs.tasks.car import dynamics as D

RANDOMIZED = ("mu", "C_Sf", "C_Sr", "m", "I")
"""Parameters held per car (``(N,)`` tensors) so domain randomisation can draw them."""


class TorchCarBackend(SimBackend):
    """N cars integrated by :func:`dynamics.step` at ``dt``.

    The command is an AckermannDrive: ``command[:, 0]`` the wheel angle (rad), ``command[:, 1]``
    the speed (m/s). The drive's speed loop turns the speed into the acceleration command
    ``speed_gain · (speed − v)`` at every physics step (the dynamics clip it to the motor's
    limits), as a VESC in speed mode does.

    Attributes:
        state: Shape ``(N, 7)``, see :data:`dynamics.STATE_NAMES`. Writable.
        command: Shape ``(N, 2)``. Writable.
        params: the cars' parameters; fields in :data:`RANDOMIZED` are ``(N,)`` tensors.
        nominal: the parameters before randomisation (floats).
    """

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        params: D.CarParams = D.DEFAULT_PARAMS,
        dt: float = 0.01,
        speed_gain: float = 8.0,
    ):
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dt = dt
        self.speed_gain = speed_gain
        self.nominal = params
        per_car = {
            k: torch.full((num_envs,), float(getattr(params, k)), device=self.device)
            for k in RANDOMIZED
        }
        self.params = dataclasses.replace(params, **per_car)
        self.state = torch.zeros(num_envs, 7, device=self.device)
        self.command = torch.zeros(num_envs, 2, device=self.device)

    def param(self, name: str) -> torch.Tensor:
        """The per-car tensor ``(N,)`` of a randomised parameter; write into it in place."""
        return getattr(self.params, name)

    def step(self, nsubsteps: int) -> None:
        steer, speed = self.command[:, 0], self.command[:, 1]
        state = self.state
        for _ in range(nsubsteps):
            accel = self.speed_gain * (speed - state[:, D.V])
            state = D.step(state, steer, accel, self.params, self.dt)
        self.state = state

    def forward(self, ids: torch.Tensor | None = None) -> None:
        """Nothing is derived from the state: observations are computed by the task."""

    def reset_state(self, ids: torch.Tensor) -> None:
        self.state[ids] = 0.0
        self.command[ids] = 0.0

    def render(
        self, camera: str, ids: torch.Tensor | None, height: int, width: int
    ) -> torch.Tensor:
        raise NotImplementedError("the car backend has no cameras; the task renders top-down")
