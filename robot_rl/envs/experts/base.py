"""Expert contract: batched, stateful per env, with an imperfection knob."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from robot_rl.core import ConfigError, Registry
from robot_rl.core.threads import torch_threads
from robot_rl.envs.vec_env import Obs, VecEnv


class Expert(ABC):
    """A scripted controller for every env of a :class:`VecEnv` at once.

    It may read the env's privileged state (object poses), as scripted demonstrators do.

    Args:
        env: the env it acts in.
        noise: imperfection knob ≥ 0. 0 = the clean expert. Otherwise Gaussian action noise of this
            std (in normalized action units) and, with probability ``noise / 10`` per step, a
            hesitation (:meth:`_hesitate`), so demonstrations look like a human's: slower, wobbly,
            sometimes failing.
        seed: seeds the noise.
        bias: a constant offset added to every action (length ``action_dim``): a systematically
            miscalibrated controller, e.g. the deliberately biased base of a residual-RL study.
    """

    def __init__(
        self,
        env: VecEnv,
        noise: float = 0.0,
        seed: int | None = None,
        bias: list[float] | tuple[float, ...] | None = None,
    ):
        if noise < 0:
            raise ConfigError(f"expert noise must be >= 0, got {noise}")
        if bias is not None and len(bias) != env.action_dim:
            raise ConfigError(f"expert bias needs {env.action_dim} entries, got {len(bias)}")
        self.env = env
        self.noise = noise
        self.bias = None if bias is None else torch.tensor(bias, dtype=torch.float32)
        self._gen = torch.Generator(device=env.device)
        self._gen.manual_seed(seed if seed is not None else 0)
        self.reset()

    @abstractmethod
    def reset(self, ids: torch.Tensor | None = None) -> None:
        """Forget the plan of envs ``ids`` (all if None): call after they reset."""

    @abstractmethod
    def _clean_action(self, obs: Obs) -> torch.Tensor:
        """The noiseless action, (N, action_dim) in [-1, 1]."""

    def act(self, obs: Obs) -> torch.Tensor:
        """Action for every env, (N, action_dim) float32 in [-1, 1]."""
        with torch_threads(1 if self.env.device.type == "cpu" else torch.get_num_threads()):
            return self._act(obs)

    __call__ = act  # a controller, as rollouts and the residual learner call them

    noise_free: tuple[int, ...] = ()
    """Action entries that get no noise (a gripper command stays decisive)."""

    def _hesitate(self, a: torch.Tensor, pause: torch.Tensor) -> None:
        """Rows ``pause`` (N,) bool of ``a`` hesitate, in place (default: zero motion)."""
        a[pause] = 0.0

    def _act(self, obs: Obs) -> torch.Tensor:
        a = self._clean_action(obs).to(torch.float32)
        if self.noise > 0:
            n, d = a.shape
            eps = torch.randn((n, d), generator=self._gen, device=a.device) * self.noise
            eps[:, list(self.noise_free)] = 0.0
            a = a + eps
            pause = torch.rand(n, generator=self._gen, device=a.device) < self.noise / 10
            self._hesitate(a, pause)
        if self.bias is not None:
            a = a + self.bias.to(a.device)
        return a.clamp(-1.0, 1.0)


EXPERTS: Registry[type[Expert]] = Registry("expert")


def make_expert(
    task: str,
    env: VecEnv,
    noise: float = 0.0,
    seed: int | None = None,
    bias: list[float] | tuple[float, ...] | None = None,
) -> Expert:
    """The registered expert of ``task``."""
    return EXPERTS.get(task)(env, noise=noise, seed=seed, bias=bias)
