"""CPU backend: MuJoCo's native multi-threaded ``mujoco.batch`` with zero-copy torch views."""

from __future__ import annotations

import os
import warnings

import mujoco
import mujoco.batch
import numpy as np
import torch

from robot_rl.envs.backends.base import PhysicsBackend


class MuJoCoCPUBackend(PhysicsBackend):
    """N copies of one MuJoCo model stepped on ``num_threads`` threads.

    State fields are live numpy views of the batch's rows, wrapped by ``torch.from_numpy`` without
    copying; derived fields are refreshed by the batch after every call.
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, num_threads: int = 0) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = model
        self.num_envs = num_envs
        self.device = torch.device("cpu")
        threads = num_threads or min(num_envs, os.cpu_count() or 1)
        self._batch = mujoco.batch.Batch(model, nsim=num_envs, nthread=threads, persistent=True)
        self._views: dict[str, torch.Tensor] = {}
        self._fields: dict[str, torch.Tensor] = {}
        self._renderer: mujoco.Renderer | None = None
        self._render_data: mujoco.MjData | None = None

    def _bind(self, name: str) -> torch.Tensor:
        if name not in self._views:
            with warnings.catch_warnings():
                # Output fields are read-only numpy views; torch warns that it cannot mark them so.
                warnings.simplefilter("ignore", UserWarning)
                self._views[name] = torch.from_numpy(self._batch.bind(name))
        return self._views[name]

    def state(self, name: str) -> torch.Tensor:
        return self._bind(name)

    def output(self, name: str) -> torch.Tensor:
        return self._bind(name)

    def step(self, nsubsteps: int) -> None:
        # stage=VEL leaves positions, velocities and sensors current at the new state; a persistent
        # batch then continues its next step from there at no extra cost.
        self._batch.step(nstep=nsubsteps, stage=mujoco.mjtStage.mjSTAGE_VEL)

    def forward(self, ids: torch.Tensor | None = None) -> None:
        self._batch.forward(
            None if ids is None else ids.cpu().numpy(), stage=mujoco.mjtStage.mjSTAGE_VEL
        )

    def reset_state(self, ids: torch.Tensor) -> None:
        self._batch.reset(ids.cpu().numpy(), stage=mujoco.mjtStage.mjSTAGE_NONE)

    def site_jacobian(self, site: int) -> torch.Tensor:
        body = int(self.model.site_bodyid[site])
        point = self._bind("site_xpos")[:, site].numpy()
        jacp, jacr = self._batch.jac(body, point)
        return torch.from_numpy(np.concatenate([jacp, jacr], axis=1))

    def model_field(self, name: str) -> torch.Tensor:
        if name not in self._fields:
            self._fields[name] = torch.from_numpy(self._batch.expand(name))
        return self._fields[name]

    def model_changed(self, ids: torch.Tensor) -> None:
        self._batch.set_const(ids.cpu().numpy())

    def render(
        self, camera: str, ids: torch.Tensor | None, height: int, width: int
    ) -> torch.Tensor:
        if self._renderer is None or (self._renderer.height, self._renderer.width) != (
            height,
            width,
        ):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(self.model, height, width)
            self._render_data = mujoco.MjData(self.model)
        env_ids = range(self.num_envs) if ids is None else ids.tolist()
        out = np.empty((len(env_ids), height, width, 3), dtype=np.uint8)
        for k, i in enumerate(env_ids):
            data = self._batch.get_data(i, self._render_data)
            self._renderer.update_scene(data, camera)
            self._renderer.render(out=out[k])
        return torch.from_numpy(out)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
